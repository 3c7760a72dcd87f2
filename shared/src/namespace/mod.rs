//! Where things live on the backplane: NATS subject names and Redis keys.
//!
//! One [`Namespace`] (a short prefix, empty by default) names everything a
//! deployment puts on NATS and Redis, so several deployments — or several
//! test runs — can share one Redis and one NATS without seeing each other.

mod keys;
mod subjects;

pub use keys::Keys;
pub use subjects::{Subjects, WORKER_QUEUE_GROUP};

use crate::ids::is_valid_pod_id;

/// A deployment's prefix on Redis and NATS.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Namespace {
    prefix: String,
}

impl Namespace {
    /// A namespace; `""` is the default deployment (`chat.in.>`, `CHAT_IN`).
    pub fn new(prefix: &str) -> Result<Self, String> {
        if prefix.is_empty() || is_valid_pod_id(prefix) {
            Ok(Namespace {
                prefix: prefix.to_owned(),
            })
        } else {
            Err(format!(
                "namespace {prefix:?} must be 1 to 63 letters, digits, '-' or '_' (or empty)"
            ))
        }
    }

    /// The prefix, possibly empty.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Subject names in this namespace.
    pub fn subjects(&self) -> Subjects {
        Subjects::new(&self.prefix)
    }

    /// Redis keys in this namespace.
    pub fn keys(&self) -> Keys {
        Keys::new(&self.prefix)
    }
}
