//! Redis keys (docs/ARCHITECTURE.md#redis-keys). Keys of one session share the hash tag
//! `{s:<sid>}` and keys of one user share `{u:<uid>}`, so every Lua script
//! touches a single slot and the schema works on Redis Cluster.
//!
//! | key | value | lifetime |
//! |---|---|---|
//! | `chat:{s:<sid>}:owner` | `<pod>/<conn>/<fence>`: ownership lock and route | PX ~30 s, renewed ~10 s |
//! | `chat:{s:<sid>}:fence` | last fencing token issued for the session | session lifetime |
//! | `chat:{u:<uid>}:active` | the user's one active session id | while connected; then the reconnect timeout |
//! | `chat:{s:<sid>}:admin` | `<admin_id>/<since_ms>/<admin_name>`: takeover lock | the grace period, renewed while the admin is connected |
//! | `chat:{s:<sid>}:watchers` | hash: admin id → `<expires_ms>/<name>` (admin presence) | fields expire one by one, renewed while watching |
//! | `chat:pod:<pod>` | pod heartbeat | PX ~30 s |
//! | `chat:{pods}` | hash: pod id → `<expires_ms>/<heartbeat>` (live pods) | fields expire with the heartbeat |
//! | `chat:rl:u:<uid>` | the user's message token bucket | until full again |
//! | `chat:rl:{n:<key>}` | notification window: start, length, count, held back | the window; an hour more while something is held back |
//! | `chat:rl:{n:<key>}:users` | users named by the held-back notifications (bounded set) | as the window |
//! | `chat:rl:{n:<key>}:digest` | held back in ended windows, not yet taken for a digest | an hour |

/// Builds Redis keys for one namespace.
#[derive(Debug, Clone)]
pub struct Keys {
    /// `""` or `"<ns>:"`.
    prefix: String,
}

impl Keys {
    pub(super) fn new(prefix: &str) -> Self {
        Keys {
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}:")
            },
        }
    }

    /// Every key of this namespace starts with this.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The session's ownership lock, which is also its route.
    pub fn owner(&self, session_id: &str) -> String {
        format!("{}chat:{{s:{session_id}}}:owner", self.prefix)
    }

    /// The session's fencing-token counter.
    pub fn fence(&self, session_id: &str) -> String {
        format!("{}chat:{{s:{session_id}}}:fence", self.prefix)
    }

    /// The session's takeover lock (one admin at a time).
    pub fn admin(&self, session_id: &str) -> String {
        format!("{}chat:{{s:{session_id}}}:admin", self.prefix)
    }

    /// The admins watching the session (a hash: admin id → expiry and name).
    pub fn watchers(&self, session_id: &str) -> String {
        format!("{}chat:{{s:{session_id}}}:watchers", self.prefix)
    }

    /// The live pods (a hash: pod id → expiry and heartbeat).
    pub fn pods(&self) -> String {
        format!("{}chat:{{pods}}", self.prefix)
    }

    /// The user's active session.
    pub fn active(&self, user_id: &str) -> String {
        format!("{}chat:{{u:{user_id}}}:active", self.prefix)
    }

    /// A pod's heartbeat.
    pub(crate) fn pod(&self, pod_id: &str) -> String {
        format!("{}chat:pod:{pod_id}", self.prefix)
    }

    /// The user's message rate-limit bucket.
    pub(crate) fn user_rate(&self, user_id: &str) -> String {
        format!("{}chat:rl:u:{user_id}", self.prefix)
    }

    /// The user's rate-limit bucket of requests of `kind`.
    pub(crate) fn user_request_rate(&self, kind: &str, user_id: &str) -> String {
        format!("{}chat:rl:{kind}:u:{user_id}", self.prefix)
    }

    /// The current window of notification `key`.
    pub fn notification(&self, key: &str) -> String {
        format!("{}chat:rl:{{n:{key}}}", self.prefix)
    }

    /// The users named by notifications of `key` held back in its window.
    pub(crate) fn notification_users(&self, key: &str) -> String {
        format!("{}chat:rl:{{n:{key}}}:users", self.prefix)
    }

    /// What was held back in ended windows of `key`, awaiting its digest.
    pub(crate) fn notification_digest(&self, key: &str) -> String {
        format!("{}chat:rl:{{n:{key}}}:digest", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use crate::namespace::Namespace;

    #[test]
    fn keys_share_hash_tags_per_session_and_user() {
        let k = Namespace::default().keys();
        assert_eq!(k.owner("s1"), "chat:{s:s1}:owner");
        assert_eq!(k.fence("s1"), "chat:{s:s1}:fence");
        assert_eq!(k.active("u1"), "chat:{u:u1}:active");
        let k = Namespace::new("t1").unwrap().keys();
        assert_eq!(k.owner("s1"), "t1:chat:{s:s1}:owner");
        assert_eq!(k.user_rate("u1"), "t1:chat:rl:u:u1");
        assert_eq!(k.notification("help_request"), "t1:chat:rl:{n:help_request}");
        assert_eq!(
            k.notification_digest("help_request"),
            "t1:chat:rl:{n:help_request}:digest"
        );
    }
}
