//! `chat.rpc.*`: requests from gateways, answered by whichever worker of
//! the `workers` queue group takes them.

use std::sync::Arc;

use bytes::Bytes;
use chatbox_shared::bus::{BusMessage, Subscription, respond};
use chatbox_shared::envelope::{OpenSession, RpcError, RpcReply};
use chatbox_shared::protocol::ErrorCode;
use futures_util::StreamExt;
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::lifecycle;
use crate::metrics;
use crate::state::WorkerState;

/// Answers `session.open` requests until cancelled.
pub async fn serve_open_session(
    state: Arc<WorkerState>,
    mut requests: Subscription,
    cancel: CancellationToken,
) {
    loop {
        let request = tokio::select! {
            _ = cancel.cancelled() => return,
            request = requests.next() => match request {
                Some(r) => r,
                None => {
                    warn!("session.open subscription ended");
                    return;
                }
            },
        };
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let reply = match serde_json::from_slice::<OpenSession>(&request.payload) {
                Ok(open) => lifecycle::open(state.coordinator.as_ref(), &open).await,
                Err(e) => Err(RpcError {
                    code: ErrorCode::InvalidMessage,
                    message: format!("unreadable session.open request: {e}"),
                }),
            };
            metrics::rpc("session.open", if reply.is_ok() { "ok" } else { "error" });
            answer(&state, &request, reply).await;
        });
    }
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
