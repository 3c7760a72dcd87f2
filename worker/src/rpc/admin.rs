//! The admin console's questions, answered over `chat.rpc.admin.*`:
//! every user's sessions (filtered, sorted, paged) with what is live about
//! each (where its user is connected, who assists, who watches), one
//! session in detail with its latest messages and its takeovers (the audit
//! log), and session metrics over a period.

use chatbox_shared::coordinator::{LiveState, connected_sessions};
use chatbox_shared::envelope::RpcError;
use chatbox_shared::ids::is_valid_session_id;
use chatbox_shared::protocol::Timestamp;
use chatbox_shared::protocol::admin::{
    AdminMetrics, AdminSessionDetail, AdminSessionList, AdminSessionRequest, AdminSessionView,
    AdminSessionsQuery, AdminSort, MetricsBucket, MetricsQuery, Order, Presence, SessionStatus, TakeoverView,
};
use tracing::warn;

use super::{bad_cursor, not_found, store_error};
use crate::history;
use crate::state::WorkerState;
use crate::store::{
    AdminSessionQuery, ConcurrencySample, SessionAggregates, SessionRecord, SessionSort, TakeoverRecord,
};

/// Longest page of sessions.
const MAX_PAGE: usize = 100;
/// Most messages in a session's detail.
const MAX_MESSAGES: usize = 500;

/// `admin.sessions`
pub(super) async fn sessions(
    state: &WorkerState,
    q: AdminSessionsQuery,
) -> Result<AdminSessionList, RpcError> {
    let offset = match q.cursor.as_deref() {
        Some(c) => c.parse::<usize>().map_err(|_| bad_cursor())?,
        None => 0,
    };
    let limit = q.limit.clamp(1, MAX_PAGE);
    let query = AdminSessionQuery {
        user_id: q.user_id,
        active: q.status.map(|s| s == SessionStatus::Active),
        help_requested: q.help_requested,
        admin_assisted: q.admin_assisted,
        started_from: q.from,
        started_to: q.to,
        sort: match q.sort {
            AdminSort::StartTime => SessionSort::StartTime,
            AdminSort::LastActivity => SessionSort::LastActivity,
            AdminSort::Tokens => SessionSort::Tokens,
            AdminSort::ResponseTime => SessionSort::ResponseTime,
        },
        descending: q.order == Order::Desc,
        offset,
        limit,
    };
    let page = state.store.admin_sessions(&query).await.map_err(store_error)?;
    let live = live_states(state, &page.sessions).await;
    let next = offset + page.sessions.len();
    Ok(AdminSessionList {
        sessions: page
            .sessions
            .iter()
            .zip(live)
            .map(|(s, live)| view(s, live))
            .collect(),
        total: page.total,
        next_cursor: (u64::try_from(next).unwrap_or(u64::MAX) < page.total && !page.sessions.is_empty())
            .then(|| next.to_string()),
    })
}

/// `admin.session`
pub(super) async fn session(
    state: &WorkerState,
    r: AdminSessionRequest,
) -> Result<AdminSessionDetail, RpcError> {
    if !is_valid_session_id(&r.session_id) {
        return Err(not_found());
    }
    let store = state.store.as_ref();
    let sid = r.session_id.as_str();
    let limit = r.messages.min(MAX_MESSAGES);
    let (session, last_seq, takeovers) =
        futures_util::try_join!(store.session(sid), store.last_seq(sid), store.takeovers(sid),)
            .map_err(store_error)?;
    let Some(session) = session else {
        return Err(not_found());
    };
    let mut messages = if limit == 0 {
        Vec::new()
    } else {
        store
            .messages_before(sid, last_seq + 1, limit)
            .await
            .map_err(store_error)?
    };
    messages.reverse();
    let live = live_states(state, std::slice::from_ref(&session)).await;
    let mut frames: Vec<_> = messages.iter().map(history::frame).collect();
    crate::uploads::links::sign(state, &mut frames).await;
    Ok(AdminSessionDetail {
        session: view(&session, live.into_iter().next().unwrap_or_default()),
        messages: frames,
        takeovers: takeovers.iter().map(takeover_view).collect(),
    })
}

/// `admin.metrics`: totals of the sessions that started in the period,
/// sessions active and connected now, and the concurrency samples taken in
/// the period (property 58: docs/PROPERTIES.md#p58); with `buckets`, the same figures per bucket.
pub(super) async fn metrics(state: &WorkerState, q: MetricsQuery) -> Result<AdminMetrics, RpcError> {
    let store = state.store.as_ref();
    let bounds = buckets(q.from, q.to, q.buckets.unwrap_or(0));
    let per_bucket = futures_util::future::try_join_all(
        bounds
            .iter()
            .map(|&(from, to)| store.session_aggregates(from, to)),
    );
    let (totals, active, samples, per_bucket) = futures_util::try_join!(
        store.session_aggregates(q.from, q.to),
        store.active_session_count(),
        store.samples(q.from, q.to),
        per_bucket,
    )
    .map_err(store_error)?;
    let connected = match state.coordinator.pods().await {
        Ok(pods) => connected_sessions(&pods),
        Err(e) => {
            warn!("cannot count connected sessions: {e}");
            0
        }
    };
    let concurrency = Concurrency::of(&samples);
    let series = bounds
        .iter()
        .zip(&per_bucket)
        .map(|(&(from, to), totals)| {
            // The store returns samples oldest first.
            let lo = samples.partition_point(|s| s.at < from);
            let hi = samples.partition_point(|s| s.at < to);
            let concurrency = Concurrency::of(&samples[lo..hi.max(lo)]);
            MetricsBucket {
                from,
                to,
                sessions: totals.total_sessions,
                tokens: totals.total_tokens,
                avg_response_ms: average_response_ms(totals),
                max_response_ms: totals.max_response_ms,
                avg_concurrent: concurrency.avg,
                max_concurrent: concurrency.max,
                help_requests: totals.help_requests,
                admin_assisted: totals.admin_assisted,
            }
        })
        .collect();
    Ok(AdminMetrics {
        from: q.from,
        to: q.to,
        total_sessions: totals.total_sessions,
        active_sessions: active,
        connected_sessions: connected,
        avg_concurrent: concurrency.avg,
        max_concurrent: concurrency.max,
        samples: concurrency.count,
        total_tokens: totals.total_tokens,
        avg_response_ms: average_response_ms(&totals),
        max_response_ms: totals.max_response_ms,
        admin_assisted: totals.admin_assisted,
        help_requests: totals.help_requests,
        series,
    })
}

/// `[from, to)` cut into `n` equal buckets (the last one ends at `to`).
fn buckets(from: Timestamp, to: Timestamp, n: u32) -> Vec<(Timestamp, Timestamp)> {
    let (start, end) = (from.as_millis(), to.as_millis());
    let n = u64::from(n);
    (0..n)
        .map(|i| {
            let edge = |k: u64| start + (end - start) * k / n;
            (
                Timestamp::from_millis(edge(i)),
                Timestamp::from_millis(edge(i + 1)),
            )
        })
        .collect()
}

fn average_response_ms(totals: &SessionAggregates) -> u64 {
    totals
        .total_response_ms
        .checked_div(totals.response_count)
        .unwrap_or(0)
}

/// Average and largest of some concurrency samples.
struct Concurrency {
    count: u64,
    avg: f64,
    max: u64,
}

impl Concurrency {
    fn of(samples: &[ConcurrencySample]) -> Concurrency {
        let count = u64::try_from(samples.len()).unwrap_or(u64::MAX);
        let sum: u64 = samples.iter().map(|s| s.concurrent).sum();
        Concurrency {
            count,
            avg: if count == 0 {
                0.0
            } else {
                sum as f64 / count as f64
            },
            max: samples.iter().map(|s| s.concurrent).max().unwrap_or(0),
        }
    }
}

/// What is live about each session; empty states if the coordinator does
/// not answer (the stored facts still come back).
async fn live_states(state: &WorkerState, sessions: &[SessionRecord]) -> Vec<LiveState> {
    let ids: Vec<String> = sessions.iter().map(|s| s.id.clone()).collect();
    match state.coordinator.live_state(&ids).await {
        Ok(live) => live,
        Err(e) => {
            warn!("cannot read live session state: {e}");
            vec![LiveState::default(); ids.len()]
        }
    }
}

fn view(s: &SessionRecord, live: LiveState) -> AdminSessionView {
    let gateway = live.owner.as_ref().map(|o| o.pod_id.clone());
    let presence = Presence::from(live);
    AdminSessionView {
        summary: history::summary(s),
        user_id: s.user_id.clone(),
        help_requested_at: s.help_requested_at,
        total_tokens: s.counters.total_tokens,
        avg_response_ms: s.counters.avg_response_ms,
        max_response_ms: s.counters.max_response_ms,
        connected: gateway.is_some(),
        gateway,
        assisting: presence.assisting,
        watchers: presence.watchers,
    }
}

fn takeover_view(t: &TakeoverRecord) -> TakeoverView {
    TakeoverView {
        admin_id: t.admin.id.clone(),
        admin_name: t.admin.name.clone(),
        started_at: t.started_at,
        ended_at: t.ended_at,
        end_reason: t.end_reason.clone(),
    }
}
