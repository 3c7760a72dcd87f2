//! What the coordinator keeps about a takeover and the admins around a
//! session: the takeover lock
//! (`chat:{s:<sid>}:admin`, one admin at a time, property 57: docs/PROPERTIES.md#p57) and the
//! admins watching (`chat:{s:<sid>}:watchers`, admin presence). Both
//! expire unless the gateway holding the admin's socket renews them, so an
//! admin whose pod dies lets go by itself.

use crate::protocol::Timestamp;
use crate::protocol::admin::{AdminRef, Presence};

use super::OwnerToken;

/// The admin holding a session's takeover lock. Stored as
/// `<admin_id>/<since_ms>/<admin_name>` (the name last: it may hold `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminHolder {
    /// The admin's user id (their token's `sub`).
    pub admin_id: String,
    /// Their display name, shown to the user ("assisted by <name>").
    pub admin_name: String,
    /// When the takeover began.
    pub since: Timestamp,
}

impl AdminHolder {
    /// The value stored in the lock.
    pub fn encode(&self) -> String {
        format!("{}/{}/{}", self.admin_id, self.since.as_millis(), self.admin_name)
    }

    /// Parses a stored value.
    pub fn decode(value: &str) -> Option<Self> {
        let mut parts = value.splitn(3, '/');
        let admin_id = parts.next().filter(|s| !s.is_empty())?.to_owned();
        let since = Timestamp::from_millis(parts.next()?.parse().ok()?);
        let admin_name = parts.next()?.to_owned();
        Some(AdminHolder {
            admin_id,
            admin_name,
            since,
        })
    }

    /// The takeover's id in the audit log: one per lock taken.
    pub fn takeover_id(&self, session_id: &str) -> String {
        format!("{session_id}:{}:{}", self.admin_id, self.since.as_millis())
    }

    /// The id of the takeover's `admin_join` on the session's queue.
    pub fn join_message_id(&self, session_id: &str) -> String {
        format!("admin_join:{}", self.takeover_id(session_id))
    }

    /// The id of the takeover's `admin_leave` on the session's queue: one
    /// id whoever ends it, so it ends once.
    pub fn leave_message_id(&self, session_id: &str) -> String {
        format!("admin_leave:{}", self.takeover_id(session_id))
    }
}

/// What [`super::Coordinator::claim_admin`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminClaim {
    /// The lock was free: the takeover begins now.
    Taken(AdminHolder),
    /// The same admin already held it (a second tab, a reconnect within
    /// the grace period): the takeover goes on, renewed.
    Resumed(AdminHolder),
    /// Another admin holds it.
    HeldBy(AdminHolder),
}

/// An admin watching a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watcher {
    /// The admin's user id.
    pub admin_id: String,
    /// Their display name.
    pub admin_name: String,
}

/// What is live about a session right now, for the admin console.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveState {
    /// Where its user is connected, if anywhere.
    pub owner: Option<OwnerToken>,
    /// The admin who has taken it over, if any.
    pub assisting: Option<AdminHolder>,
    /// The admins watching it.
    pub watchers: Vec<Watcher>,
}

impl From<LiveState> for Presence {
    fn from(live: LiveState) -> Self {
        Presence {
            watchers: live
                .watchers
                .into_iter()
                .map(|w| AdminRef {
                    admin_id: w.admin_id,
                    admin_name: w.admin_name,
                    since: None,
                })
                .collect(),
            assisting: live.assisting.map(|h| AdminRef {
                admin_id: h.admin_id,
                admin_name: h.admin_name,
                since: Some(h.since),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holders_round_trip_with_slashes_in_names() {
        let h = AdminHolder {
            admin_id: "adm-1".into(),
            admin_name: "Ann / Support".into(),
            since: Timestamp::from_millis(42),
        };
        assert_eq!(h.encode(), "adm-1/42/Ann / Support");
        assert_eq!(AdminHolder::decode(&h.encode()), Some(h.clone()));
        assert_eq!(h.takeover_id("s1"), "s1:adm-1:42");
        assert_eq!(AdminHolder::decode("nonsense"), None);
    }
}
