//! NATS subject names (docs/ARCHITECTURE.md#nats-subjects).
//!
//! | subject | transport | carries |
//! |---|---|---|
//! | `chat.in.<sid>` | JetStream `CHAT_IN`, work queue | gateway → worker: accepted client messages |
//! | `chat.out.<sid>` | core | worker → gateways: frames for the session's sockets |
//! | `chat.ctl.<pod>` | core | → one gateway: kill switch, attach |
//! | `chat.rpc.<method>` | request/reply, queue group `workers` | gateway → worker |

/// Builds subject names for one namespace.
#[derive(Debug, Clone)]
pub struct Subjects {
    /// `""` or `"<ns>."`.
    dot_prefix: String,
    /// `""` or `"<NS>_"`.
    stream_prefix: String,
}

/// The queue group every worker joins for RPCs.
pub const WORKER_QUEUE_GROUP: &str = "workers";

impl Subjects {
    pub(super) fn new(prefix: &str) -> Self {
        if prefix.is_empty() {
            Subjects {
                dot_prefix: String::new(),
                stream_prefix: String::new(),
            }
        } else {
            Subjects {
                dot_prefix: format!("{prefix}."),
                stream_prefix: format!("{}_", prefix.to_ascii_uppercase().replace('-', "_")),
            }
        }
    }

    /// `chat.in.<sid>`: inbound messages of one session.
    pub fn inbound(&self, session_id: &str) -> String {
        format!("{}chat.in.{session_id}", self.dot_prefix)
    }

    /// `chat.in.>`: everything the inbound stream holds.
    pub(crate) fn inbound_all(&self) -> String {
        format!("{}chat.in.>", self.dot_prefix)
    }

    /// The session id of an inbound subject, if it is one.
    pub fn session_of_inbound<'a>(&self, subject: &'a str) -> Option<&'a str> {
        subject
            .strip_prefix(self.dot_prefix.as_str())?
            .strip_prefix("chat.in.")
            .filter(|s| !s.is_empty() && !s.contains('.'))
    }

    /// `chat.out.<sid>`: frames for the sockets of one session.
    pub fn outbound(&self, session_id: &str) -> String {
        format!("{}chat.out.{session_id}", self.dot_prefix)
    }

    /// `chat.ctl.<pod>`: control messages for one gateway.
    /// `chat.stop.<session_id>`: stop the answer streaming to a session.
    /// Plain NATS, every worker listening: a stop cannot wait in the
    /// session's queue behind the answer it is meant to stop.
    pub fn stop(&self, session_id: &str) -> String {
        format!("{}chat.stop.{session_id}", self.dot_prefix)
    }

    /// `chat.stop.*`, what workers listen to.
    pub fn stop_all(&self) -> String {
        format!("{}chat.stop.*", self.dot_prefix)
    }

    /// The session a `chat.stop` subject names.
    pub fn session_of_stop<'a>(&self, subject: &'a str) -> Option<&'a str> {
        subject
            .strip_prefix(self.dot_prefix.as_str())?
            .strip_prefix("chat.stop.")
            .filter(|s| !s.is_empty() && !s.contains('.'))
    }

    pub fn control(&self, pod_id: &str) -> String {
        format!("{}chat.ctl.{pod_id}", self.dot_prefix)
    }

    /// `chat.rpc.<method>`: a request answered by one worker.
    pub fn rpc(&self, method: &str) -> String {
        format!("{}chat.rpc.{method}", self.dot_prefix)
    }

    /// The JetStream stream behind `chat.in.>`.
    pub fn inbound_stream(&self) -> String {
        format!("{}CHAT_IN", self.stream_prefix)
    }

    /// The durable consumer every worker pulls from.
    pub(crate) fn inbound_consumer(&self) -> String {
        "workers".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use crate::namespace::Namespace;

    #[test]
    fn default_namespace_uses_the_design_names() {
        let s = Namespace::default().subjects();
        assert_eq!(s.inbound("abc"), "chat.in.abc");
        assert_eq!(s.inbound_all(), "chat.in.>");
        assert_eq!(s.outbound("abc"), "chat.out.abc");
        assert_eq!(s.control("gw-1"), "chat.ctl.gw-1");
        assert_eq!(s.rpc("session.open"), "chat.rpc.session.open");
        assert_eq!(s.inbound_stream(), "CHAT_IN");
        assert_eq!(s.session_of_inbound("chat.in.abc"), Some("abc"));
        assert_eq!(s.stop("abc"), "chat.stop.abc");
        assert_eq!(s.stop_all(), "chat.stop.*");
        assert_eq!(s.session_of_stop("chat.stop.abc"), Some("abc"));
    }

    #[test]
    fn prefixed_namespace_prefixes_everything() {
        let s = Namespace::new("t-42").unwrap().subjects();
        assert_eq!(s.inbound("abc"), "t-42.chat.in.abc");
        assert_eq!(s.inbound_stream(), "T_42_CHAT_IN");
        assert_eq!(s.session_of_inbound("t-42.chat.in.abc"), Some("abc"));
        assert_eq!(s.session_of_inbound("chat.in.abc"), None);
        assert!(Namespace::new("a.b").is_err());
    }
}
