//! `chat.ctl.<pod>`: orders addressed to this gateway.
//!
//! * `kill` — close the named socket here, after a `connection_status`
//!   that says why: a newer socket took the session (the kill switch), or
//!   the session ended.
//! * `attach` — a worker is about to publish frames this pod may not be
//!   listening for; subscribe to the session's `chat.out`, flush so the
//!   server knows, then reply.

use std::sync::Arc;

use bytes::Bytes;
use chatbox_shared::bus::{BusMessage, Subscription, respond};
use chatbox_shared::envelope::{AttachReply, Control, KillReason, RpcReply};
use chatbox_shared::protocol::outbound::StatusReason;
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::connection::status_order;
use crate::metrics;
use crate::state::GatewayState;

/// Serves control messages until cancelled.
pub(crate) async fn serve(state: Arc<GatewayState>, mut orders: Subscription, cancel: CancellationToken) {
    loop {
        let message = tokio::select! {
            _ = cancel.cancelled() => return,
            message = orders.next() => match message {
                Some(m) => m,
                None => {
                    warn!("control subscription ended");
                    return;
                }
            },
        };
        match serde_json::from_slice::<Control>(&message.payload) {
            Ok(Control::Kill {
                conn_id,
                session_id,
                reason,
            }) => match state.registry.get(conn_id) {
                Some(conn) if conn.session_id == session_id => {
                    let status = match reason {
                        KillReason::ConnectedElsewhere => StatusReason::ConnectedElsewhere,
                        KillReason::SessionEnded => StatusReason::SessionEnded,
                    };
                    info!(
                        conn_id,
                        session_id,
                        reason = status.as_str(),
                        "closing a socket on request"
                    );
                    state.metrics.kills.increment(1);
                    conn.close(status_order(&state, &session_id, status));
                }
                _ => debug!(
                    conn_id,
                    session_id, "close request for a socket that is already gone"
                ),
            },
            Ok(Control::Attach { session_id }) => {
                tokio::spawn(attach(Arc::clone(&state), session_id, message));
            }
            Err(e) => warn!("unreadable control message: {e}"),
        }
    }
}

async fn attach(state: Arc<GatewayState>, session_id: String, request: BusMessage) {
    let attached = match state.hub.attach(&session_id).await {
        Ok(attached) => attached,
        Err(e) => {
            metrics::bus_error("subscribe");
            warn!(session_id, "cannot attach: {e}");
            false
        }
    };
    if attached && let Err(e) = state.bus.flush().await {
        metrics::bus_error("flush");
        warn!(session_id, "cannot flush after attaching: {e}");
    }
    let reply = RpcReply::Ok(AttachReply { attached });
    let Ok(payload) = serde_json::to_vec(&reply) else {
        return;
    };
    if let Err(e) = respond(state.bus.as_ref(), &request, Bytes::from(payload)).await {
        metrics::bus_error("publish");
        debug!(session_id, "cannot answer attach: {e}");
    }
}
