//! `[chatbox.worker]`: how a worker takes turns off the inbound stream and
//! runs them (concurrency, ack deadline, batch size, turn timeout, chunk
//! window).
//!
//! Checked for the worker and the all-in-one; `listen` only for the scaled
//! worker (the all-in-one serves on `app.listen`).

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::duration;
use super::problems::Problems;
use super::validate::Role;

/// `[chatbox.worker]`: turn processing.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerConfig {
    /// Address of the worker's HTTP server (health, metrics).
    pub listen: String,
    /// Turns one worker runs at once. A turn in flight holds about 64–68
    /// KiB (measured by the crowd shape of `scripts/bench.sh`): 2048 is
    /// about 140 MiB at full load.
    pub max_concurrent_turns: usize,
    /// How long a turn may go without a sign of life before its message is
    /// handed to another worker: about what a user waits when the worker
    /// answering dies. A living worker reports progress every third of it,
    /// so a slow model is never handed out twice.
    #[serde(with = "duration")]
    pub ack_wait: Duration,
    /// Messages handed out to all workers and not yet acked.
    pub max_ack_pending: i64,
    /// The most messages a worker asks for in one pull (never more than
    /// its free turn slots: it holds no message it cannot start).
    pub pull_batch: usize,
    /// The longest a turn may run before it is abandoned with an error.
    #[serde(with = "duration")]
    pub turn_timeout: Duration,
    /// How long a streamed chunk may wait for more text before it is sent:
    /// text a model produces within the window goes out as one frame. A
    /// fast model then costs a few frames instead of one per token; a
    /// model slower than the window is not slowed down. 0 sends one frame
    /// per model event.
    #[serde(with = "duration")]
    pub chunk_window: Duration,
    /// Bytes of decrypted earlier messages a worker keeps per session, so a
    /// turn reads only the messages that are new since the session's last
    /// turn here (least recently used sessions go first). 0 turns it off.
    pub context_cache_bytes: u64,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            listen: "127.0.0.1:9091".into(),
            max_concurrent_turns: 2048,
            ack_wait: Duration::from_secs(3),
            max_ack_pending: 10_000,
            pull_batch: 64,
            turn_timeout: Duration::from_secs(300),
            chunk_window: Duration::from_millis(10),
            context_cache_bytes: 32 << 20,
        }
    }
}

impl WorkerConfig {
    /// The address parses and every limit lets at least one turn through.
    pub(super) fn check(&self, p: &mut Problems, role: Role) {
        if role == Role::Worker {
            p.check(
                self.listen.parse::<SocketAddr>().is_ok(),
                "chatbox.worker.listen",
                || format!("{:?} is not an address like 127.0.0.1:9091", self.listen),
            );
        }
        p.check(
            self.max_concurrent_turns > 0,
            "chatbox.worker.max_concurrent_turns",
            || "must be at least 1".into(),
        );
        p.check(
            self.ack_wait >= Duration::from_secs(1),
            "chatbox.worker.ack_wait",
            || "must be at least 1s".into(),
        );
        p.check(self.max_ack_pending > 0, "chatbox.worker.max_ack_pending", || {
            "must be at least 1".into()
        });
        p.check(self.pull_batch > 0, "chatbox.worker.pull_batch", || {
            "must be at least 1".into()
        });
        p.positive(self.turn_timeout, "chatbox.worker.turn_timeout");
    }
}
