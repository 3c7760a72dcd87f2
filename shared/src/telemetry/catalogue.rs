//! HELP text for every metric of the catalogue (docs/METRICS.md), given
//! to the recorder at start so each family is described on `/metrics`.
//! A test keeps this list and the catalogue equal.

/// How a metric is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
    /// A distribution.
    Histogram,
}

/// Every `chatbox_*` metric: name, kind and what it means.
pub(super) const CATALOGUE: &[(&str, Kind, &str)] = &[
    (
        "chatbox_gateway_connections",
        Kind::Gauge,
        "Sockets open on this pod (upgrades in progress included).",
    ),
    (
        "chatbox_gateway_connects_total",
        Kind::Counter,
        "Sockets that got a session.",
    ),
    (
        "chatbox_gateway_refused_total",
        Kind::Counter,
        "Upgrades refused (forbidden: an admin socket without the admin role).",
    ),
    (
        "chatbox_gateway_auth_failures_total",
        Kind::Counter,
        "Tokens refused (not_admin: a valid token without the admin role, on an admin socket or endpoint).",
    ),
    (
        "chatbox_gateway_reauths_total",
        Kind::Counter,
        "Fresh tokens sent over open sockets (`reauth`), by outcome: accepted, or why refused.",
    ),
    (
        "chatbox_gateway_disconnects_total",
        Kind::Counter,
        "Sockets closed.",
    ),
    (
        "chatbox_gateway_messages_in_total",
        Kind::Counter,
        "Frames received from clients.",
    ),
    (
        "chatbox_gateway_messages_out_total",
        Kind::Counter,
        "Frames sent to clients from the session fan-out.",
    ),
    (
        "chatbox_gateway_protocol_errors_total",
        Kind::Counter,
        "Error frames sent to clients.",
    ),
    (
        "chatbox_gateway_rate_limited_total",
        Kind::Counter,
        "Messages refused by the rate limit.",
    ),
    (
        "chatbox_gateway_requests_rate_limited_total",
        Kind::Counter,
        "Socket opens, history and rename requests refused by the user's rate limit of their kind.",
    ),
    (
        "chatbox_gateway_rate_limit_leases_total",
        Kind::Counter,
        "Messages whose rate limit asked the coordinator (a lease of tokens, or a refusal).",
    ),
    (
        "chatbox_gateway_rate_limit_local_total",
        Kind::Counter,
        "Messages whose rate limit was decided on the pod (a leased token, or a remembered refusal).",
    ),
    (
        "chatbox_gateway_kills_total",
        Kind::Counter,
        "Sockets closed by the kill switch.",
    ),
    (
        "chatbox_gateway_admin_connections",
        Kind::Gauge,
        "Admin console sockets open on this pod (also counted in chatbox_gateway_connections).",
    ),
    (
        "chatbox_gateway_takeovers_total",
        Kind::Counter,
        "Takeovers started from this pod (socket or HTTP).",
    ),
    (
        "chatbox_gateway_owner_renew_failures_total",
        Kind::Counter,
        "Ownership locks found lost on renewal.",
    ),
    (
        "chatbox_gateway_session_subscriptions",
        Kind::Gauge,
        "Sessions this pod listens to on chat.out.",
    ),
    (
        "chatbox_gateway_repeats_dropped_total",
        Kind::Counter,
        "Stored frames not sent again to a session's sockets (a turn run again after its worker died).",
    ),
    (
        "chatbox_gateway_stale_frames_dropped_total",
        Kind::Counter,
        "Frames of a turn's earlier delivery dropped after a later delivery of the same message spoke.",
    ),
    (
        "chatbox_gateway_enqueue_seconds",
        Kind::Histogram,
        "Time for JetStream to store an accepted message.",
    ),
    (
        "chatbox_gateway_send_queue_frames",
        Kind::Gauge,
        "Frames waiting in every send queue of this pod, sampled on each keepalive pass (at least every ping_period).",
    ),
    (
        "chatbox_gateway_send_queue_max_frames",
        Kind::Gauge,
        "Frames waiting in the deepest send queue of this pod (same sampling).",
    ),
    ("chatbox_worker_turns_total", Kind::Counter, "Turns finished."),
    (
        "chatbox_worker_answers_total",
        Kind::Counter,
        "Answers kept, by provider and how they ended (complete, length, content_filter, stopped, user_left, admin_takeover, interrupted).",
    ),
    (
        "chatbox_worker_turns_in_flight",
        Kind::Gauge,
        "Turns running (including waiting their turn).",
    ),
    (
        "chatbox_worker_turn_duration_seconds",
        Kind::Histogram,
        "Turn start to last frame.",
    ),
    (
        "chatbox_worker_time_to_first_token_seconds",
        Kind::Histogram,
        "Turn start to the first token.",
    ),
    (
        "chatbox_worker_duplicate_deliveries_total",
        Kind::Counter,
        "Second deliveries of a message this worker was still running (its progress reports came late), left to the running turn.",
    ),
    (
        "chatbox_worker_queue_wait_seconds",
        Kind::Histogram,
        "Time a message waited in the queue for a worker with a free turn slot (first deliveries): the signal to add workers.",
    ),
    (
        "chatbox_worker_turn_wait_seconds",
        Kind::Histogram,
        "Time a message waited for earlier messages of its session.",
    ),
    ("chatbox_worker_tokens_total", Kind::Counter, "Tokens used."),
    (
        "chatbox_bus_operation_seconds",
        Kind::Histogram,
        "Time of each call to the bus (outcome ok or error).",
    ),
    (
        "chatbox_coordinator_operation_seconds",
        Kind::Histogram,
        "Time of each call to the coordinator (outcome ok or error).",
    ),
    (
        "chatbox_store_operation_seconds",
        Kind::Histogram,
        "Time of each call to the store (outcome ok or error).",
    ),
    (
        "chatbox_llm_requests_total",
        Kind::Counter,
        "Model requests by how they started (each attempt counts).",
    ),
    (
        "chatbox_llm_refusals_total",
        Kind::Counter,
        "Requests a provider refused for a reason waiting cannot fix (quota, auth, permission, not_found): not retried, not counted by the breaker.",
    ),
    (
        "chatbox_llm_retries_total",
        Kind::Counter,
        "Requests tried again before their first token.",
    ),
    (
        "chatbox_llm_fallbacks_total",
        Kind::Counter,
        "Answers given by a fallback provider.",
    ),
    (
        "chatbox_llm_breaker_state",
        Kind::Gauge,
        "Circuit breaker: 0 closed, 1 open, 2 half-open.",
    ),
    (
        "chatbox_llm_breaker_transitions_total",
        Kind::Counter,
        "Breaker state changes.",
    ),
    (
        "chatbox_llm_transcriptions_total",
        Kind::Counter,
        "Speech-to-text requests.",
    ),
    (
        "chatbox_worker_inbound_pending",
        Kind::Gauge,
        "Messages in chat.in not yet delivered to any worker (the same on every worker).",
    ),
    (
        "chatbox_worker_inbound_ack_pending",
        Kind::Gauge,
        "Messages delivered to workers and not yet acked (the same on every worker).",
    ),
    (
        "chatbox_worker_redeliveries_total",
        Kind::Counter,
        "Messages delivered more than once (a worker died or gave one back).",
    ),
    ("chatbox_worker_rpc_total", Kind::Counter, "RPCs answered."),
    (
        "chatbox_notifications_total",
        Kind::Counter,
        "Notifications, per channel (the digest of a window counts as one sent).",
    ),
    (
        "chatbox_uploads_total",
        Kind::Counter,
        "Upload slots given and uploads checked.",
    ),
    (
        "chatbox_upload_bytes_total",
        Kind::Counter,
        "Bytes of accepted uploads.",
    ),
    (
        "chatbox_upload_slots_expired_total",
        Kind::Counter,
        "Upload slots never used, cleaned up.",
    ),
    (
        "chatbox_upload_orphans_swept_total",
        Kind::Counter,
        "Objects under the quarantine prefix that no pending upload slot owned, deleted.",
    ),
    (
        "chatbox_generated_files_total",
        Kind::Counter,
        "Files that came with answers.",
    ),
    (
        "chatbox_blob_operation_seconds",
        Kind::Histogram,
        "File store operations.",
    ),
    (
        "chatbox_bus_errors_total",
        Kind::Counter,
        "Failed bus operations (enqueue, publish, subscribe, rpc, inbound, ack, …).",
    ),
    (
        "chatbox_bus_slow_consumers_total",
        Kind::Counter,
        "NATS subscriptions that fell behind and lost messages.",
    ),
    (
        "chatbox_coordinator_errors_total",
        Kind::Counter,
        "Failed coordinator operations (admit_message, claim_owner, renew_owners, …).",
    ),
    (
        "chatbox_http_handshakes",
        Kind::Gauge,
        "Connections accepted that have not sent a whole request head yet (at most app.max_handshakes).",
    ),
    (
        "chatbox_http_connections_closed_early_total",
        Kind::Counter,
        "Connections closed before a whole request head arrived: handshake_limit (at accept), header_timeout, header_too_large.",
    ),
];

/// Describes every metric of the catalogue to the installed recorder.
pub(super) fn describe() {
    for &(name, kind, help) in CATALOGUE {
        match kind {
            Kind::Counter => metrics::describe_counter!(name, help),
            Kind::Gauge => metrics::describe_gauge!(name, help),
            Kind::Histogram => metrics::describe_histogram!(name, help),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalogue_and_docs_metrics_md_name_the_same_metrics() {
        let doc = include_str!("../../../docs/METRICS.md");
        let mut documented: Vec<(String, String)> = doc
            .lines()
            .filter_map(|line| {
                let cells: Vec<&str> = line.split(" | ").collect();
                let name = cells.first()?.strip_prefix("| `")?.strip_suffix('`')?;
                name.starts_with("chatbox_").then(|| {
                    (
                        name.to_owned(),
                        cells.get(1).copied().unwrap_or_default().to_owned(),
                    )
                })
            })
            .collect();
        documented.sort();
        let mut here: Vec<(String, String)> = CATALOGUE
            .iter()
            .map(|(name, kind, _)| ((*name).to_owned(), format!("{kind:?}").to_lowercase()))
            .collect();
        here.sort();
        assert_eq!(here, documented);
    }
}
