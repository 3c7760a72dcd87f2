//! `chat.rpc.*`: requests from gateways, answered by whichever worker of
//! the `workers` queue group takes them. One subscription, `chat.rpc.>`,
//! dispatched by method to its handler: [`open`] (which session a socket
//! belongs to), [`sessions`] (a user's sessions: list, history, rename,
//! end), [`admin`] (the admin console's queries), [`upload_slot`].

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use chatbox_shared::bus::{BusMessage, Subscription, respond};
use chatbox_shared::envelope::{
    EndSession, ListSessions, ModelList, OpenSession, RenameSession, RpcError, RpcReply, SessionHistory,
    UploadSlotRequest, rpc,
};
use chatbox_shared::ids::is_valid_session_id;
use chatbox_shared::protocol::ErrorCode;
use chatbox_shared::protocol::admin::{AdminSessionRequest, AdminSessionsQuery, MetricsQuery};
use futures_util::StreamExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::metrics;
use crate::state::WorkerState;
use crate::store::{SessionRecord, StoreError};

mod admin;
mod open;
mod sessions;
mod upload_slot;

/// Answers RPCs until cancelled.
pub(crate) async fn serve(state: Arc<WorkerState>, mut requests: Subscription, cancel: CancellationToken) {
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
                        async move { open::open(&state, &r).await }
                    })
                    .await
                }
                rpc::LIST_SESSIONS => {
                    handle(&state, &request, rpc::LIST_SESSIONS, |r: ListSessions| {
                        let state = Arc::clone(&state);
                        async move { sessions::list_sessions(&state, r).await }
                    })
                    .await
                }
                rpc::SESSION_HISTORY => {
                    handle(&state, &request, rpc::SESSION_HISTORY, |r: SessionHistory| {
                        let state = Arc::clone(&state);
                        async move { sessions::session_history(&state, r).await }
                    })
                    .await
                }
                rpc::RENAME_SESSION => {
                    handle(&state, &request, rpc::RENAME_SESSION, |r: RenameSession| {
                        let state = Arc::clone(&state);
                        async move { sessions::rename_session(&state, r).await }
                    })
                    .await
                }
                rpc::END_SESSION => {
                    handle(&state, &request, rpc::END_SESSION, |r: EndSession| {
                        let state = Arc::clone(&state);
                        async move { sessions::end_session(&state, r).await }
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
                        async move { admin::sessions(&state, r).await }
                    })
                    .await
                }
                rpc::ADMIN_SESSION => {
                    handle(&state, &request, rpc::ADMIN_SESSION, |r: AdminSessionRequest| {
                        let state = Arc::clone(&state);
                        async move { admin::session(&state, r).await }
                    })
                    .await
                }
                rpc::ADMIN_METRICS => {
                    handle(&state, &request, rpc::ADMIN_METRICS, |r: MetricsQuery| {
                        let state = Arc::clone(&state);
                        async move { admin::metrics(&state, r).await }
                    })
                    .await
                }
                rpc::UPLOAD_SLOT => {
                    handle(&state, &request, rpc::UPLOAD_SLOT, |r: UploadSlotRequest| {
                        let state = Arc::clone(&state);
                        async move { upload_slot::open(&state, r).await }
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

/// The RPC error for a store failure.
pub(crate) fn store_error(e: StoreError) -> RpcError {
    warn!("store failure: {e}");
    RpcError {
        code: ErrorCode::DatabaseError,
        message: "conversations cannot be reached right now; try again shortly".into(),
    }
}

fn coordinator_error(e: impl std::fmt::Display) -> RpcError {
    warn!("coordinator failure: {e}");
    RpcError {
        code: ErrorCode::ServiceUnavailable,
        message: "sessions cannot be opened right now; reconnect shortly".into(),
    }
}

/// The answer for a session that does not exist or is someone else's.
fn not_found() -> RpcError {
    RpcError {
        code: ErrorCode::SessionNotFound,
        message: "no such session; connect without a session id to start one".into(),
    }
}

/// Loads a session only if `user_id` owns it.
async fn owned_session(
    state: &WorkerState,
    user_id: &str,
    session_id: &str,
) -> Result<SessionRecord, RpcError> {
    if !is_valid_session_id(session_id) {
        return Err(not_found());
    }
    match state.store.session(session_id).await.map_err(store_error)? {
        Some(s) if s.user_id == user_id => Ok(s),
        _ => Err(not_found()),
    }
}

fn bad_cursor() -> RpcError {
    RpcError {
        code: ErrorCode::InvalidField,
        message: "cursor is not one this server gave".into(),
    }
}
