//! The `Coordinator` port: shared state that must hold across pods
//! (docs/ARCHITECTURE.md#ports-and-adapters, #redis-keys).
//!
//! * the **ownership lock** of a session, which is also its route: the pod
//!   and connection that own it, with a fencing token so a stale owner can
//!   never renew or release a newer owner's lock;
//! * the user's **active session** (one per user, property 48: docs/PROPERTIES.md#p48);
//! * the **takeover lock** and the **admins watching** a session
//!   ([`takeover`]);
//! * **rate limits**: token buckets for users' messages, and fixed
//!   windows for notifications, whose held-back occurrences are taken by
//!   exactly one pod for the digest;
//! * the **pod heartbeat** ([`pods`]).
//!
//! Adapters: [`RedisCoordinator`] (Lua for every compare-and-set) for
//! the scaled roles and [`MemoryCoordinator`] for the all-in-one;
//! [`MeteredCoordinator`] wraps either to time it.
//! One conformance suite (`shared/tests/coordinator_conformance.rs`) runs
//! against both.

mod memory;
mod metered;
mod pods;
mod redis;
mod takeover;

pub use memory::MemoryCoordinator;
pub use metered::MeteredCoordinator;
pub use pods::{GatewayBeat, PodBeat, connected_sessions};
pub use redis::{RedisCoordinator, RedisOptions};
pub use takeover::{AdminClaim, AdminHolder, LiveState, Watcher};

use std::time::Duration;

use async_trait::async_trait;

use crate::protocol::Timestamp;

/// The holder of a session's ownership lock: `<pod>/<conn>/<fence>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OwnerToken {
    /// The gateway pod.
    pub pod_id: String,
    /// The connection on that pod.
    pub conn_id: u64,
    /// Increases with every claim of the session.
    pub fence: u64,
}

impl OwnerToken {
    /// The value stored in the lock.
    pub fn encode(&self) -> String {
        format!("{}/{}/{}", self.pod_id, self.conn_id, self.fence)
    }

    /// Parses a stored value.
    pub fn decode(value: &str) -> Option<Self> {
        let mut parts = value.rsplitn(3, '/');
        let fence = parts.next()?.parse().ok()?;
        let conn_id = parts.next()?.parse().ok()?;
        let pod_id = parts.next()?.to_owned();
        Some(OwnerToken {
            pod_id,
            conn_id,
            fence,
        })
    }
}

/// The result of claiming a session's ownership lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerClaim {
    /// The caller's token, needed to renew and release.
    pub token: OwnerToken,
    /// Who held the lock before, if anyone: that connection must close.
    pub previous: Option<OwnerToken>,
}

/// The user's active session after [`Coordinator::activate_session`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveSession {
    /// The session.
    pub session_id: String,
    /// `true` if the candidate became the active session (it is new).
    pub created: bool,
}

/// A token bucket: `capacity` messages at once, refilled at `capacity`
/// per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Burst size and tokens per window.
    pub capacity: u32,
    /// The refill window.
    pub window: Duration,
}

/// A kind of request with a rate-limit bucket of its own per user, apart
/// from messages (`chatbox.session_rate_limit`, `chatbox.request_rate_limit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestKind {
    /// Opening a socket, which opens, restores or starts a session.
    SessionOpen,
    /// `get_history` (socket or HTTP).
    History,
    /// `rename_session` (socket or HTTP).
    Rename,
}

impl RequestKind {
    /// Its name in keys, metrics and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestKind::SessionOpen => "session_open",
            RequestKind::History => "history",
            RequestKind::Rename => "rename",
        }
    }
}

/// Whether a rate-limited action may go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Go ahead: `granted` tokens (at least 1, at most the `want` asked
    /// for) were taken from the bucket, for this action and the next ones.
    Allowed { granted: u32 },
    /// Not now; a token is back after `retry_after`.
    Limited { retry_after: Duration },
}

/// Whether a notification goes out, from [`Coordinator::admit_notification`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyAdmission {
    /// Send it.
    Send,
    /// Too many of its kind in this window: held back for the digest.
    Suppressed,
}

/// What was held back in a notification window that has ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Suppressed {
    /// Occurrences held back.
    pub count: u64,
    /// Distinct `affected` values (user ids) they named, counted up to
    /// [`SUPPRESSED_USERS_MAX`].
    pub affected_users: u64,
}

/// Distinct affected users remembered per notification window: bounds the
/// memory a flood can take.
pub(crate) const SUPPRESSED_USERS_MAX: u64 = 10_000;

/// How long what was held back waits for its digest after its window
/// ended, before it is forgotten (no pod took it).
pub(crate) const DIGEST_GRACE: Duration = Duration::from_secs(3600);

/// One lock to renew in [`Coordinator::renew_owners`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Renewal {
    /// The session.
    pub session_id: String,
    /// The token the caller holds.
    pub token: OwnerToken,
}

/// Why a coordinator operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CoordinatorError {
    /// The backing store cannot be reached.
    #[error("coordinator is unavailable: {0}")]
    Unavailable(String),
    /// The store answered something unexpected.
    #[error("coordinator: {0}")]
    Other(String),
}

/// The coordinator port.
#[async_trait]
pub trait Coordinator: Send + Sync + 'static {
    /// Which adapter this is, for logs (`"redis"`, `"memory"`).
    fn adapter(&self) -> &'static str;

    /// Returns the user's active session (made persistent again if it was
    /// lingering after a disconnect), or makes `candidate` the active one.
    async fn activate_session(
        &self,
        user_id: &str,
        candidate: &str,
    ) -> Result<ActiveSession, CoordinatorError>;

    /// The user's active session, if any.
    async fn active_session(&self, user_id: &str) -> Result<Option<String>, CoordinatorError>;

    /// Makes `session_id` the user's active session; returns the previous one.
    async fn switch_active_session(
        &self,
        user_id: &str,
        session_id: &str,
    ) -> Result<Option<String>, CoordinatorError>;

    /// Forgets the user's active session if it is still `session_id` (the
    /// session ended). Returns whether it was.
    async fn clear_active_session(&self, user_id: &str, session_id: &str) -> Result<bool, CoordinatorError>;

    /// If `session_id` is still the user's active session, lets it expire
    /// after `ttl` (`None`: keep it without expiry). Returns whether it was.
    async fn linger_active_session(
        &self,
        user_id: &str,
        session_id: &str,
        ttl: Option<Duration>,
    ) -> Result<bool, CoordinatorError>;

    /// Takes a session's ownership lock for `(pod_id, conn_id)` for `ttl`,
    /// whoever held it, with a new fencing token.
    async fn claim_owner(
        &self,
        session_id: &str,
        pod_id: &str,
        conn_id: u64,
        ttl: Duration,
    ) -> Result<OwnerClaim, CoordinatorError>;

    /// Extends each lock whose holder still matches; returns, per renewal,
    /// whether it was extended.
    async fn renew_owners(&self, renewals: &[Renewal], ttl: Duration) -> Result<Vec<bool>, CoordinatorError>;

    /// Releases a lock if `token` still holds it; returns whether it did.
    async fn release_owner(&self, session_id: &str, token: &OwnerToken) -> Result<bool, CoordinatorError>;

    /// The current owner of a session: where its user is connected.
    async fn owner(&self, session_id: &str) -> Result<Option<OwnerToken>, CoordinatorError>;

    /// Takes up to `want` tokens (at least 1, if the bucket holds one) from
    /// the user's message bucket: a lease the caller spends locally
    /// (docs/ARCHITECTURE.md, *Decisions*: leased in batches).
    async fn admit_message(
        &self,
        user_id: &str,
        limit: RateLimit,
        want: u32,
    ) -> Result<Admission, CoordinatorError>;

    /// Like [`Coordinator::admit_message`], from the user's bucket of
    /// requests of `kind`: one bucket per kind, apart from messages.
    async fn admit_request(
        &self,
        kind: RequestKind,
        user_id: &str,
        limit: RateLimit,
        want: u32,
    ) -> Result<Admission, CoordinatorError>;

    /// Takes a session's takeover lock for `ttl` (the grace period an
    /// admin has to come back after their socket drops), or renews it if
    /// the same admin holds it; otherwise says who does.
    async fn claim_admin(
        &self,
        session_id: &str,
        admin_id: &str,
        admin_name: &str,
        since: Timestamp,
        ttl: Duration,
    ) -> Result<AdminClaim, CoordinatorError>;

    /// Extends each takeover lock still held by its admin
    /// (`(session_id, admin_id)`); returns, per lock, whether it was.
    async fn renew_admins(
        &self,
        held: &[(String, String)],
        ttl: Duration,
    ) -> Result<Vec<bool>, CoordinatorError>;

    /// Releases a session's takeover lock if `admin_id` holds it; returns
    /// the takeover that ended.
    async fn release_admin(
        &self,
        session_id: &str,
        admin_id: &str,
    ) -> Result<Option<AdminHolder>, CoordinatorError>;

    /// Who holds a session's takeover lock.
    async fn admin_holder(&self, session_id: &str) -> Result<Option<AdminHolder>, CoordinatorError>;

    /// Records, or refreshes for another `ttl`, an admin watching a session.
    async fn watch(&self, session_id: &str, watcher: &Watcher, ttl: Duration)
    -> Result<(), CoordinatorError>;

    /// Forgets an admin watching a session.
    async fn unwatch(&self, session_id: &str, admin_id: &str) -> Result<(), CoordinatorError>;

    /// For each session, in order: where its user is connected, who has
    /// taken it over, who watches it.
    async fn live_state(&self, session_ids: &[String]) -> Result<Vec<LiveState>, CoordinatorError>;

    /// The pods whose heartbeat has not expired.
    async fn pods(&self) -> Result<Vec<PodBeat>, CoordinatorError>;
    /// Counts one occurrence of notification `key` in a fixed window of
    /// `limit.window`: `Send` while at most `limit.capacity` were counted
    /// in the window, else `Suppressed` (the occurrence and `affected` —
    /// e.g. a user id, kept in a bounded set; empty for none — are
    /// remembered for the digest).
    async fn admit_notification(
        &self,
        key: &str,
        limit: RateLimit,
        affected: &str,
    ) -> Result<NotifyAdmission, CoordinatorError>;

    /// Once the window of `key` is over, takes (atomically: one caller
    /// across all pods gets it) what was suppressed in it.
    async fn take_suppressed(&self, key: &str) -> Result<Option<Suppressed>, CoordinatorError>;

    /// Records that a pod is alive, with a short JSON description.
    async fn heartbeat(&self, pod_id: &str, info: &str, ttl: Duration) -> Result<(), CoordinatorError>;

    /// Checks that the coordinator answers, for readiness probes.
    async fn check(&self) -> Result<(), CoordinatorError>;
}

/// How long a session's fence counter outlives its last use.
pub(crate) const SESSION_COUNTER_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_tokens_round_trip_even_with_slashes_in_pod_ids() {
        let t = OwnerToken {
            pod_id: "gw/a".into(),
            conn_id: 42,
            fence: 7,
        };
        assert_eq!(t.encode(), "gw/a/42/7");
        assert_eq!(OwnerToken::decode(&t.encode()), Some(t));
        assert_eq!(OwnerToken::decode("nonsense"), None);
    }
}
