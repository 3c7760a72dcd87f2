//! Worker metrics.
//!
//! | metric | type | labels | meaning |
//! |---|---|---|---|
//! | `chatbox_worker_turns_total` | counter | `outcome` | turns finished: `ok`, `llm_error`, `timeout`, `rejected`, `store_error` |
//! | `chatbox_worker_turns_in_flight` | gauge | | turns running on this worker |
//! | `chatbox_worker_turn_duration_seconds` | histogram | `provider` | from the start of a turn to its last frame |
//! | `chatbox_worker_time_to_first_token_seconds` | histogram | `provider` | from the start of a turn to the first token |
//! | `chatbox_worker_turn_wait_seconds` | histogram | | time a message waited for earlier messages of its session |
//! | `chatbox_worker_tokens_total` | counter | `provider`, `kind` | prompt and completion tokens |
//! | `chatbox_worker_redeliveries_total` | counter | | inbound messages delivered more than once |
//! | `chatbox_worker_rpc_total` | counter | `method`, `outcome` | RPCs answered |
//! | `chatbox_bus_errors_total` | counter | `op` | failed bus operations |
//! | `chatbox_coordinator_errors_total` | counter | `op` | failed coordinator operations |

use metrics::{counter, gauge, histogram};

/// Counts a finished turn.
pub fn turn(outcome: &'static str) {
    counter!("chatbox_worker_turns_total", "outcome" => outcome).increment(1);
}

/// Tracks turns in flight.
pub fn in_flight(delta: f64) {
    gauge!("chatbox_worker_turns_in_flight").increment(delta);
}

/// Records a turn's duration and time to first token.
pub fn turn_timing(provider: &str, duration: f64, first_token: Option<f64>) {
    let provider = provider.to_owned();
    histogram!("chatbox_worker_turn_duration_seconds", "provider" => provider.clone()).record(duration);
    if let Some(ttft) = first_token {
        histogram!("chatbox_worker_time_to_first_token_seconds", "provider" => provider).record(ttft);
    }
}

/// Records time spent waiting for earlier messages of the session.
pub fn turn_wait(seconds: f64) {
    histogram!("chatbox_worker_turn_wait_seconds").record(seconds);
}

/// Counts tokens.
pub fn tokens(provider: &str, prompt: u64, completion: u64) {
    counter!("chatbox_worker_tokens_total", "provider" => provider.to_owned(), "kind" => "prompt")
        .increment(prompt);
    counter!("chatbox_worker_tokens_total", "provider" => provider.to_owned(), "kind" => "completion")
        .increment(completion);
}

/// Counts a redelivered message.
pub fn redelivery() {
    counter!("chatbox_worker_redeliveries_total").increment(1);
}

/// Counts an RPC.
pub fn rpc(method: &'static str, outcome: &'static str) {
    counter!("chatbox_worker_rpc_total", "method" => method, "outcome" => outcome).increment(1);
}

/// Counts a failed bus operation.
pub fn bus_error(op: &'static str) {
    counter!("chatbox_bus_errors_total", "op" => op).increment(1);
}

/// Counts a failed coordinator operation.
pub fn coordinator_error(op: &'static str) {
    counter!("chatbox_coordinator_errors_total", "op" => op).increment(1);
}
