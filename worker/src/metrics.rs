//! Worker metrics.
//!
//! | metric | type | labels | meaning |
//! |---|---|---|---|
//! | `chatbox_worker_turns_total` | counter | `outcome` | turns finished: `ok`, `cut`, `stopped`, `interrupted`, `llm_error`, `timeout`, `rejected`, `store_error`, `blob_error`, `assisted`, `help_request`, `admin_join`, `admin_leave`, `admin_message` |
//! | `chatbox_worker_answers_total` | counter | `provider`, `finish_reason` | answers kept, by how they ended: `complete`, `length` and `content_filter` (the provider cut it), `stopped`, `user_left`, `admin_takeover`, `interrupted` |
//! | `chatbox_worker_turns_in_flight` | gauge | | turns running on this worker |
//! | `chatbox_worker_turn_duration_seconds` | histogram | `provider`, `model` | from the start of a turn to its last frame |
//! | `chatbox_worker_time_to_first_token_seconds` | histogram | `provider`, `model` | from the start of a turn to the first token |
//! | `chatbox_worker_duplicate_deliveries_total` | counter | | second deliveries of a message this worker was still running (its progress reports came late), left to the running turn |
//! | `chatbox_worker_queue_wait_seconds` | histogram | | time a message waited in the queue for a free turn slot (gateway accepted → worker took it; first deliveries) |
//! | `chatbox_worker_turn_wait_seconds` | histogram | | time a message waited for earlier messages of its session |
//! | `chatbox_worker_tokens_total` | counter | `provider`, `model`, `kind` | prompt and completion tokens |
//! | `chatbox_llm_requests_total` | counter | `provider`, `outcome` | model requests by how they started: `ok` or an error kind (`connect`, `timeout`, `rate_limited`, `server_error`, `refused`, `stream_error`, `protocol`, `breaker_open`) |
//! | `chatbox_llm_retries_total` | counter | `provider` | requests tried again before their first token |
//! | `chatbox_llm_fallbacks_total` | counter | `from`, `to` | answers given by a fallback provider |
//! | `chatbox_llm_breaker_state` | gauge | `provider` | circuit breaker: 0 closed, 1 open, 2 half-open |
//! | `chatbox_llm_breaker_transitions_total` | counter | `provider`, `to` | breaker state changes |
//! | `chatbox_llm_transcriptions_total` | counter | `provider`, `outcome` | speech-to-text requests |
//! | `chatbox_worker_redeliveries_total` | counter | | inbound messages delivered more than once |
//! | `chatbox_worker_rpc_total` | counter | `method`, `outcome` | RPCs answered |
//! | `chatbox_bus_errors_total` | counter | `op` | failed bus operations |
//! | `chatbox_notifications_total` | counter | `event`, `channel`, `outcome` | notifications by what became of them: `sent`, `failed`, `suppressed` (held back for the digest) |
//! | `chatbox_coordinator_errors_total` | counter | `op` | failed coordinator operations |
//! | `chatbox_uploads_total` | counter | `stage`, `kind`, `outcome` | upload slots given (`stage=slot`) and uploads checked (`stage=intake`) by outcome: `ok`, `too_large`, `type_not_allowed`, `rejected`, `missing`, `expired` |
//! | `chatbox_upload_bytes_total` | counter | `kind` | bytes of accepted uploads |
//! | `chatbox_upload_slots_expired_total` | counter | | upload slots never used, cleaned up |
//! | `chatbox_upload_orphans_swept_total` | counter | | quarantine objects no pending slot owned, deleted |
//! | `chatbox_generated_files_total` | counter | `source` | files that came with answers: `audio` (stored), `provider` and `answer` (linked) |
//! | `chatbox_blob_operation_seconds` | histogram | `adapter`, `op`, `outcome` | file store operations: `adapter` `s3` or `local`; `outcome` `ok`, `not_found`, `invalid_key`, `unavailable`, `error` |

use std::time::Duration;

use chatbox_shared::protocol::FinishReason;
use metrics::{counter, gauge, histogram};

/// How a turn ended: the `outcome` label of `chatbox_worker_turns_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TurnOutcome {
    /// Answered (or a model selected).
    Ok,
    /// The provider cut the answer (token limit, content filter).
    Cut,
    /// The answer was stopped (by the user, the user leaving, a takeover).
    Stopped,
    /// The answer broke off after some text reached the user.
    Interrupted,
    /// No model could answer.
    LlmError,
    /// The turn ran past `turn_timeout`.
    Timeout,
    /// Refused with an error the user saw (unknown model, session ended,
    /// file refused...).
    Rejected,
    /// Storage failed; the message comes again.
    StoreError,
    /// The file store failed; the message comes again.
    BlobError,
    /// The session is taken over: the admin answers.
    Assisted,
    /// A help request.
    HelpRequest,
    /// An admin joined (a takeover began).
    AdminJoin,
    /// An admin left (a takeover ended).
    AdminLeave,
    /// An admin wrote to the user.
    AdminMessage,
}

impl TurnOutcome {
    /// The label value.
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            TurnOutcome::Ok => "ok",
            TurnOutcome::Cut => "cut",
            TurnOutcome::Stopped => "stopped",
            TurnOutcome::Interrupted => "interrupted",
            TurnOutcome::LlmError => "llm_error",
            TurnOutcome::Timeout => "timeout",
            TurnOutcome::Rejected => "rejected",
            TurnOutcome::StoreError => "store_error",
            TurnOutcome::BlobError => "blob_error",
            TurnOutcome::Assisted => "assisted",
            TurnOutcome::HelpRequest => "help_request",
            TurnOutcome::AdminJoin => "admin_join",
            TurnOutcome::AdminLeave => "admin_leave",
            TurnOutcome::AdminMessage => "admin_message",
        }
    }
}

/// Counts an answer that was kept, by how it ended.
pub(crate) fn answer(provider: &str, finish: FinishReason) {
    counter!(
        "chatbox_worker_answers_total",
        "provider" => provider.to_owned(),
        "finish_reason" => finish.as_str()
    )
    .increment(1);
}

/// Counts a finished turn.
pub(crate) fn turn(outcome: TurnOutcome) {
    counter!("chatbox_worker_turns_total", "outcome" => outcome.as_str()).increment(1);
}

/// Tracks turns in flight.
pub(crate) fn in_flight(delta: f64) {
    gauge!("chatbox_worker_turns_in_flight").increment(delta);
}

/// Records a turn's duration and time to first token, by provider and
/// the model it is configured with.
pub(crate) fn turn_timing(provider: &str, model: &str, duration: f64, first_token: Option<f64>) {
    let labels = [("provider", provider.to_owned()), ("model", model.to_owned())];
    histogram!("chatbox_worker_turn_duration_seconds", &labels).record(duration);
    if let Some(ttft) = first_token {
        histogram!("chatbox_worker_time_to_first_token_seconds", &labels).record(ttft);
    }
}

/// Counts a second delivery of a message this worker was still running,
/// left to the first.
pub(crate) fn duplicate_delivery() {
    counter!("chatbox_worker_duplicate_deliveries_total").increment(1);
}

/// Records how long a message waited in the queue for a worker with a
/// free turn slot: from its gateway accepting it to a worker taking it.
pub(crate) fn queue_wait(seconds: f64) {
    histogram!("chatbox_worker_queue_wait_seconds").record(seconds);
}

/// Records time spent waiting for earlier messages of the session.
pub(crate) fn turn_wait(seconds: f64) {
    histogram!("chatbox_worker_turn_wait_seconds").record(seconds);
}

/// Counts tokens, by provider and model.
pub(crate) fn tokens(provider: &str, model: &str, prompt: u64, completion: u64) {
    for (kind, n) in [("prompt", prompt), ("completion", completion)] {
        counter!(
            "chatbox_worker_tokens_total",
            "provider" => provider.to_owned(),
            "model" => model.to_owned(),
            "kind" => kind
        )
        .increment(n);
    }
}

/// Counts a model request by how it started.
pub(crate) fn llm_request(provider: &str, outcome: &'static str) {
    counter!("chatbox_llm_requests_total", "provider" => provider.to_owned(), "outcome" => outcome)
        .increment(1);
}

/// Counts a request a provider refused for a reason waiting cannot fix
/// (`quota`, `auth`, `permission`, `not_found`).
pub(crate) fn llm_refusal(provider: &str, reason: &'static str) {
    counter!("chatbox_llm_refusals_total", "provider" => provider.to_owned(), "reason" => reason)
        .increment(1);
}

/// Counts a request tried again.
pub(crate) fn llm_retry(provider: &str) {
    counter!("chatbox_llm_retries_total", "provider" => provider.to_owned()).increment(1);
}

/// Counts an answer given by a fallback provider.
pub(crate) fn llm_fallback(from: &str, to: &str) {
    counter!("chatbox_llm_fallbacks_total", "from" => from.to_owned(), "to" => to.to_owned()).increment(1);
}

/// Sets a breaker's state (0 closed, 1 open, 2 half-open) and counts the
/// change to `to`, if it is one.
pub(crate) fn breaker_state(provider: &str, state: f64, to: Option<&'static str>) {
    gauge!("chatbox_llm_breaker_state", "provider" => provider.to_owned()).set(state);
    if let Some(to) = to {
        counter!("chatbox_llm_breaker_transitions_total", "provider" => provider.to_owned(), "to" => to)
            .increment(1);
    }
}

/// Counts a transcription.
pub(crate) fn transcription(provider: &str, outcome: &'static str) {
    counter!("chatbox_llm_transcriptions_total", "provider" => provider.to_owned(), "outcome" => outcome)
        .increment(1);
}

/// Counts a redelivered message.
pub(crate) fn redelivery() {
    counter!("chatbox_worker_redeliveries_total").increment(1);
}

/// Counts an RPC.
pub(crate) fn rpc(method: &'static str, outcome: &'static str) {
    counter!("chatbox_worker_rpc_total", "method" => method, "outcome" => outcome).increment(1);
}

/// Counts a failed bus operation.
pub(crate) fn bus_error(op: &'static str) {
    counter!("chatbox_bus_errors_total", "op" => op).increment(1);
}

/// Counts a notification on one channel by its outcome.
pub(crate) fn notification(event: &'static str, channel: &'static str, outcome: &'static str) {
    counter!("chatbox_notifications_total", "event" => event, "channel" => channel, "outcome" => outcome)
        .increment(1);
}

/// Counts a failed coordinator operation.
pub(crate) fn coordinator_error(op: &'static str) {
    counter!("chatbox_coordinator_errors_total", "op" => op).increment(1);
}

/// Counts an upload step by its outcome.
pub(crate) fn upload(stage: &'static str, kind: &'static str, outcome: &'static str) {
    counter!("chatbox_uploads_total", "stage" => stage, "kind" => kind, "outcome" => outcome).increment(1);
}

/// Counts the bytes of an accepted upload.
pub(crate) fn upload_bytes(kind: &'static str, bytes: u64) {
    counter!("chatbox_upload_bytes_total", "kind" => kind).increment(bytes);
}

/// Counts upload slots cleaned up unused.
pub(crate) fn slots_expired(n: u64) {
    counter!("chatbox_upload_slots_expired_total").increment(n);
}

/// Counts quarantine objects no pending slot owned, deleted.
pub(crate) fn orphans_swept(n: u64) {
    counter!("chatbox_upload_orphans_swept_total").increment(n);
}

/// Counts files that came with an answer.
pub(crate) fn generated_file(source: &'static str) {
    counter!("chatbox_generated_files_total", "source" => source).increment(1);
}

/// Records how long a file store operation took, by its outcome.
pub(crate) fn blob_operation(
    adapter: &'static str,
    op: &'static str,
    outcome: &'static str,
    elapsed: Duration,
) {
    histogram!("chatbox_blob_operation_seconds", "adapter" => adapter, "op" => op, "outcome" => outcome)
        .record(elapsed.as_secs_f64());
}
