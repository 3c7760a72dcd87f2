//! `chat.rpc.*`: requests from gateways, answered by whichever worker of
//! the `workers` queue group takes them. One subscription, `chat.rpc.>`,
//! dispatched by method.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use chatbox_shared::bus::{BusMessage, Subscription, respond};
use chatbox_shared::envelope::{
    EndSession, KillReason, ListSessions, ModelList, OpenSession, RenameSession, RpcError, RpcReply,
    SessionHistory, UploadSlotRequest, rpc,
};
use chatbox_shared::protocol::ErrorCode;
use chatbox_shared::protocol::admin::{AdminSessionRequest, AdminSessionsQuery, MetricsQuery};
use chatbox_shared::protocol::sessions::{HistoryPage, SessionPage};
use futures_util::StreamExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::state::WorkerState;
use crate::store::{SessionCursor, SessionPatch};
use crate::{admin_queries, history, lifecycle, metrics, uploads};

/// Longest page a client may ask for.
const MAX_PAGE: usize = 100;

/// Answers RPCs until cancelled.
pub async fn serve(state: Arc<WorkerState>, mut requests: Subscription, cancel: CancellationToken) {
    let prefix = state.subjects.rpc("");
    loop {
        let request = tokio::select! {
            _ = cancel.cancelled() => return,
            request = requests.next() => match request {
                Some(r) => r,
                None => {
                    warn!("rpc subscription ended");
                    return;
                }
            },
        };
        let method = request
            .subject
            .strip_prefix(prefix.as_str())
            .unwrap_or_default()
            .to_owned();
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            match method.as_str() {
                rpc::OPEN_SESSION => {
                    handle(&state, &request, rpc::OPEN_SESSION, |r: OpenSession| {
                        let state = Arc::clone(&state);
                        async move { lifecycle::open(&state, &r).await }
                    })
                    .await
                }
                rpc::LIST_SESSIONS => {
                    handle(&state, &request, rpc::LIST_SESSIONS, |r: ListSessions| {
                        let state = Arc::clone(&state);
                        async move { list_sessions(&state, r).await }
                    })
                    .await
                }
                rpc::SESSION_HISTORY => {
                    handle(&state, &request, rpc::SESSION_HISTORY, |r: SessionHistory| {
                        let state = Arc::clone(&state);
                        async move { session_history(&state, r).await }
                    })
                    .await
                }
                rpc::RENAME_SESSION => {
                    handle(&state, &request, rpc::RENAME_SESSION, |r: RenameSession| {
                        let state = Arc::clone(&state);
                        async move { rename_session(&state, r).await }
                    })
                    .await
                }
                rpc::END_SESSION => {
                    handle(&state, &request, rpc::END_SESSION, |r: EndSession| {
                        let state = Arc::clone(&state);
                        async move { end_session(&state, r).await }
                    })
                    .await
                }
                rpc::LIST_MODELS => {
                    handle(&state, &request, rpc::LIST_MODELS, |(): ()| {
                        let state = Arc::clone(&state);
                        async move {
                            Ok(ModelList {
                                models: state.providers.infos(),
                            })
                        }
                    })
                    .await
                }
                rpc::ADMIN_SESSIONS => {
                    handle(&state, &request, rpc::ADMIN_SESSIONS, |r: AdminSessionsQuery| {
                        let state = Arc::clone(&state);
                        async move { admin_queries::sessions(&state, r).await }
                    })
                    .await
                }
                rpc::ADMIN_SESSION => {
                    handle(&state, &request, rpc::ADMIN_SESSION, |r: AdminSessionRequest| {
                        let state = Arc::clone(&state);
                        async move { admin_queries::session(&state, r).await }
                    })
                    .await
                }
                rpc::ADMIN_METRICS => {
                    handle(&state, &request, rpc::ADMIN_METRICS, |r: MetricsQuery| {
                        let state = Arc::clone(&state);
                        async move { admin_queries::metrics(&state, r).await }
                    })
                    .await
                }
                rpc::UPLOAD_SLOT => {
                    handle(&state, &request, rpc::UPLOAD_SLOT, |r: UploadSlotRequest| {
                        let state = Arc::clone(&state);
                        async move { uploads::slots::open(&state, r).await }
                    })
                    .await
                }
                other => {
                    let error: Result<(), RpcError> = Err(RpcError {
                        code: ErrorCode::Unsupported,
                        message: format!("unknown method {other:?}"),
                    });
                    answer(&state, &request, error).await;
                }
            }
        });
    }
}

/// Parses a request, runs it, answers it, counts it.
async fn handle<Req, Resp, F, Fut>(state: &WorkerState, request: &BusMessage, method: &'static str, run: F)
where
    Req: DeserializeOwned,
    Resp: Serialize,
    F: FnOnce(Req) -> Fut,
    Fut: Future<Output = Result<Resp, RpcError>>,
{
    let reply = match serde_json::from_slice::<Req>(&request.payload) {
        Ok(req) => run(req).await,
        Err(e) => Err(RpcError {
            code: ErrorCode::InvalidMessage,
            message: format!("unreadable {method} request: {e}"),
        }),
    };
    metrics::rpc(method, if reply.is_ok() { "ok" } else { "error" });
    answer(state, request, reply).await;
}

async fn answer<T: Serialize>(state: &WorkerState, request: &BusMessage, reply: Result<T, RpcError>) {
    let reply = match reply {
        Ok(value) => RpcReply::Ok(value),
        Err(e) => {
            debug!(code = %e.code, "rpc refused: {}", e.message);
            RpcReply::Error(e)
        }
    };
    let Ok(payload) = serde_json::to_vec(&reply) else {
        return;
    };
    if let Err(e) = respond(state.bus.as_ref(), request, Bytes::from(payload)).await {
        metrics::bus_error("publish");
        warn!("cannot answer an rpc: {e}");
    }
}

fn bad_cursor() -> RpcError {
    RpcError {
        code: ErrorCode::InvalidField,
        message: "cursor is not one this server gave".into(),
    }
}

async fn list_sessions(state: &WorkerState, r: ListSessions) -> Result<SessionPage, RpcError> {
    let limit = r.limit.clamp(1, MAX_PAGE);
    let cursor = match r.cursor.as_deref() {
        Some(c) => Some(SessionCursor::decode(c).ok_or_else(bad_cursor)?),
        None => None,
    };
    // One more than asked tells whether there is a next page.
    let mut sessions = state
        .store
        .user_sessions(&r.user_id, limit + 1, cursor.as_ref())
        .await
        .map_err(lifecycle::store_error)?;
    let more = sessions.len() > limit;
    sessions.truncate(limit);
    let next_cursor = more
        .then(|| sessions.last())
        .flatten()
        .map(|s| SessionCursor {
            last_activity: s.last_activity,
            id: s.id.clone(),
        })
        .map(|c| c.encode());
    Ok(SessionPage {
        sessions: sessions.iter().map(history::summary).collect(),
        next_cursor,
    })
}

async fn session_history(state: &WorkerState, r: SessionHistory) -> Result<HistoryPage, RpcError> {
    lifecycle::owned_session(state, &r.user_id, &r.session_id).await?;
    let limit = r.limit.clamp(1, MAX_PAGE);
    let after = match r.cursor.as_deref() {
        Some(c) => c.parse::<u64>().map_err(|_| bad_cursor())?,
        None => 0,
    };
    let mut messages = state
        .store
        .messages_after(&r.session_id, after, limit + 1)
        .await
        .map_err(lifecycle::store_error)?;
    let more = messages.len() > limit;
    messages.truncate(limit);
    let next_cursor = more.then(|| messages.last()).flatten().map(|m| m.seq.to_string());
    let mut frames: Vec<_> = messages.iter().map(history::frame).collect();
    uploads::links::sign(state, &mut frames).await;
    Ok(HistoryPage {
        session_id: r.session_id,
        messages: frames,
        next_cursor,
    })
}

async fn rename_session(
    state: &WorkerState,
    r: RenameSession,
) -> Result<chatbox_shared::protocol::sessions::SessionSummary, RpcError> {
    let mut session = lifecycle::owned_session(state, &r.user_id, &r.session_id).await?;
    let name = chatbox_shared::protocol::inbound::sanitize_text(&r.name)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if name.is_empty() || name.chars().count() > chatbox_shared::protocol::inbound::MAX_SESSION_NAME_CHARS {
        return Err(RpcError {
            code: ErrorCode::InvalidField,
            message: "a session name is 1 to 100 characters".into(),
        });
    }
    let patch = SessionPatch {
        name: Some(name.clone()),
        ..SessionPatch::default()
    };
    state
        .store
        .update_session(&r.session_id, &patch)
        .await
        .map_err(lifecycle::store_error)?;
    session.name = name;
    Ok(history::summary(&session))
}

async fn end_session(
    state: &WorkerState,
    r: EndSession,
) -> Result<chatbox_shared::protocol::sessions::SessionSummary, RpcError> {
    let ended = lifecycle::end(state, &r.user_id, &r.session_id).await?;
    state
        .outbox
        .close_owner(&r.session_id, KillReason::SessionEnded)
        .await;
    Ok(history::summary(&ended))
}
