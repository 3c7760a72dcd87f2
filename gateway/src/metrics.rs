//! Gateway metrics, resolved once so the per-frame path only bumps atomics.
//!
//! | metric | type | labels | meaning |
//! |---|---|---|---|
//! | `chatbox_gateway_connections` | gauge | | open sockets on this pod |
//! | `chatbox_gateway_connects_total` | counter | | sockets accepted |
//! | `chatbox_gateway_refused_total` | counter | `reason` | upgrades refused before the socket opened |
//! | `chatbox_gateway_auth_failures_total` | counter | `reason` | tokens refused |
//! | `chatbox_gateway_disconnects_total` | counter | `reason` | sockets closed |
//! | `chatbox_gateway_messages_in_total` | counter | `type` | frames received from clients |
//! | `chatbox_gateway_messages_out_total` | counter | `type` | frames sent to clients |
//! | `chatbox_gateway_protocol_errors_total` | counter | `code` | client frames refused |
//! | `chatbox_gateway_rate_limited_total` | counter | | messages refused by the rate limit |
//! | `chatbox_gateway_requests_rate_limited_total` | counter | `kind` | socket opens, history and renames refused by their rate limit (`rate_limit.rs`) |
//! | `chatbox_gateway_rate_limit_leases_total` | counter | | messages whose rate limit asked the coordinator (registered by [`crate::rate_limit`]) |
//! | `chatbox_gateway_rate_limit_local_total` | counter | | messages whose rate limit was decided on the pod |
//! | `chatbox_gateway_kills_total` | counter | | sockets closed by the kill switch |
//! | `chatbox_gateway_owner_renew_failures_total` | counter | | ownership locks found lost on renewal |
//! | `chatbox_gateway_session_subscriptions` | gauge | | sessions this pod listens to on `chat.out` |
//! | `chatbox_gateway_repeats_dropped_total` | counter | | stored frames not sent again (same `seq`: a turn run again after its worker died) |
//! | `chatbox_gateway_stale_frames_dropped_total` | counter | | frames of a turn's earlier delivery, dropped once a later delivery of the message spoke |
//! | `chatbox_gateway_enqueue_seconds` | histogram | | time to get a message stored in `chat.in` |
//! | `chatbox_gateway_send_queue_frames` | gauge | | frames waiting in every send queue of this pod (sampled by the keepalive pass) |
//! | `chatbox_gateway_send_queue_max_frames` | gauge | | frames waiting in the deepest send queue |
//! | `chatbox_bus_errors_total` | counter | `op` | failed bus operations |
//! | `chatbox_coordinator_errors_total` | counter | `op` | failed coordinator operations |

use chatbox_shared::protocol::MessageType;
use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};

/// Pre-registered gateway metrics.
pub(crate) struct GatewayMetrics {
    pub connections: Gauge,
    pub connects: Counter,
    pub rate_limited: Counter,
    pub kills: Counter,
    pub owner_renew_failures: Counter,
    pub admin_connections: Gauge,
    pub takeovers: Counter,
    pub session_subscriptions: Gauge,
    pub enqueue_seconds: Histogram,
    pub repeats_dropped: Counter,
    pub stale_frames_dropped: Counter,
    messages_in: Vec<Counter>,
    messages_out: Vec<Counter>,
    messages_out_other: Counter,
}

fn index(kind: MessageType) -> usize {
    MessageType::ALL.iter().position(|t| *t == kind).unwrap_or(0)
}

impl GatewayMetrics {
    /// Registers the metrics with the global recorder.
    pub(crate) fn new() -> Self {
        GatewayMetrics {
            connections: gauge!("chatbox_gateway_connections"),
            connects: counter!("chatbox_gateway_connects_total"),
            rate_limited: counter!("chatbox_gateway_rate_limited_total"),
            kills: counter!("chatbox_gateway_kills_total"),
            owner_renew_failures: counter!("chatbox_gateway_owner_renew_failures_total"),
            admin_connections: gauge!("chatbox_gateway_admin_connections"),
            takeovers: counter!("chatbox_gateway_takeovers_total"),
            session_subscriptions: gauge!("chatbox_gateway_session_subscriptions"),
            enqueue_seconds: histogram!("chatbox_gateway_enqueue_seconds"),
            repeats_dropped: counter!("chatbox_gateway_repeats_dropped_total"),
            stale_frames_dropped: counter!("chatbox_gateway_stale_frames_dropped_total"),
            messages_in: MessageType::ALL
                .iter()
                .map(|t| counter!("chatbox_gateway_messages_in_total", "type" => t.as_str()))
                .collect(),
            messages_out: MessageType::ALL
                .iter()
                .map(|t| counter!("chatbox_gateway_messages_out_total", "type" => t.as_str()))
                .collect(),
            messages_out_other: counter!("chatbox_gateway_messages_out_total", "type" => "other"),
        }
    }

    /// Counts a frame received.
    pub(crate) fn message_in(&self, kind: MessageType) {
        self.messages_in[index(kind)].increment(1);
    }

    /// Counts a frame sent, by the type named in its bus header.
    pub(crate) fn message_out(&self, kind: Option<MessageType>) {
        match kind {
            Some(kind) => self.messages_out[index(kind)].increment(1),
            None => self.messages_out_other.increment(1),
        }
    }
}

impl Default for GatewayMetrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Frames waiting in all send queues of this pod, and in the deepest one.
pub(crate) fn send_queues(total: usize, deepest: usize) {
    gauge!("chatbox_gateway_send_queue_frames").set(total as f64);
    gauge!("chatbox_gateway_send_queue_max_frames").set(deepest as f64);
}

/// Counts an upgrade refused before the socket opened.
pub(crate) fn refused(reason: &'static str) {
    counter!("chatbox_gateway_refused_total", "reason" => reason).increment(1);
}

/// Counts a token refused.
pub(crate) fn auth_failure(reason: &'static str) {
    counter!("chatbox_gateway_auth_failures_total", "reason" => reason).increment(1);
}

/// Counts a `reauth`: `accepted`, or why the fresh token was refused.
pub(crate) fn reauth(outcome: &'static str) {
    counter!("chatbox_gateway_reauths_total", "outcome" => outcome).increment(1);
}

/// Counts a socket closed.
pub(crate) fn disconnect(reason: &'static str) {
    counter!("chatbox_gateway_disconnects_total", "reason" => reason).increment(1);
}

/// Counts a refused client frame.
pub(crate) fn protocol_error(code: &'static str) {
    counter!("chatbox_gateway_protocol_errors_total", "code" => code).increment(1);
}

/// Counts a failed bus operation.
pub(crate) fn bus_error(op: &'static str) {
    counter!("chatbox_bus_errors_total", "op" => op).increment(1);
}

/// Counts a failed coordinator operation.
pub(crate) fn coordinator_error(op: &'static str) {
    counter!("chatbox_coordinator_errors_total", "op" => op).increment(1);
}
