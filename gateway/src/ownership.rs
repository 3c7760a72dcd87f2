//! Keeps this pod's ownership locks alive.
//!
//! Every `owner_renew_interval` one task renews the lock of every socket on
//! the pod in one pipelined batch, instead of a timer per socket. A lock
//! found lost (another socket took the session and its kill switch message
//! went astray, or the lock expired while Redis was away) closes its
//! socket, which then reconnects and takes the session back cleanly.

use chatbox_shared::periodic::{FirstPass, every};
use std::sync::Arc;

use chatbox_shared::coordinator::Renewal;
use chatbox_shared::protocol::outbound::{self, StatusReason};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::metrics;
use crate::send_queue::CloseOrder;
use crate::state::GatewayState;

/// Renews locks until cancelled.
pub(crate) async fn renew_loop(state: Arc<GatewayState>, cancel: CancellationToken) {
    let period = state.config.chatbox.gateway.owner_renew_interval;
    every(period, FirstPass::AfterPeriod, &cancel, || renew_once(&state)).await;
}

/// One renewal round.
pub(crate) async fn renew_once(state: &GatewayState) {
    let conns = state.registry.all();
    if conns.is_empty() {
        return;
    }
    let renewals: Vec<Renewal> = conns
        .iter()
        .map(|c| Renewal {
            session_id: c.session_id.clone(),
            token: c.owner.clone(),
        })
        .collect();
    let ttl = state.config.chatbox.gateway.owner_ttl;
    let results = match state.coordinator.renew_owners(&renewals, ttl).await {
        Ok(results) => results,
        Err(e) => {
            metrics::coordinator_error("renew_owners");
            warn!(locks = renewals.len(), "cannot renew ownership locks: {e}");
            return;
        }
    };
    for (conn, renewed) in conns.iter().zip(results) {
        if !renewed {
            state.metrics.owner_renew_failures.increment(1);
            warn!(conn_id = conn.conn_id, session_id = %conn.session_id, "ownership lock lost; closing the socket");
            conn.close(CloseOrder {
                reason: StatusReason::OwnershipLost,
                last_frame: Some(
                    outbound::connection_status(
                        &conn.session_id,
                        StatusReason::OwnershipLost,
                        state.config.chatbox.reconnect_timeout,
                    )
                    .to_json(),
                ),
            });
        } else if !conn.confirm_active() {
            // An earlier socket of the user may have set the active-session
            // key to expire just before this one took over; undo that once.
            match state
                .coordinator
                .linger_active_session(&conn.user_id, &conn.session_id, None)
                .await
            {
                Ok(_) => {}
                Err(e) => {
                    metrics::coordinator_error("linger_active_session");
                    debug!("cannot confirm the active session: {e}");
                }
            }
        }
    }
}
