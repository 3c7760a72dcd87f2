//! Keeps admins' takeover locks and presence alive while their sockets are
//! open on this pod: every `owner_renew_interval`, one pass over the admin
//! sockets. Entries of an admin whose pod dies simply expire (presence
//! after `owner_ttl`, a takeover after `takeover_grace`).

use chatbox_shared::periodic::{FirstPass, every};
use std::sync::Arc;

use chatbox_shared::coordinator::Watcher;
use chatbox_shared::protocol::{MessageType, outbound};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::metrics;
use crate::state::GatewayState;

/// Renews until cancelled.
pub(crate) async fn renew_loop(state: Arc<GatewayState>, cancel: CancellationToken) {
    let period = state.config.chatbox.gateway.owner_renew_interval;
    every(period, FirstPass::AfterPeriod, &cancel, || renew_once(&state)).await;
}

/// One renewal pass.
pub(crate) async fn renew_once(state: &GatewayState) {
    let presence_ttl = state.config.chatbox.gateway.owner_ttl;
    let grace = state.config.chatbox.admin.takeover_grace;
    for conn in state.admins.all() {
        let watcher = Watcher {
            admin_id: conn.admin.admin_id.clone(),
            admin_name: conn.admin.admin_name.clone(),
        };
        for session_id in conn.watching() {
            if let Err(e) = state.coordinator.watch(&session_id, &watcher, presence_ttl).await {
                metrics::coordinator_error("watch");
                warn!(session_id, "cannot renew an admin's presence: {e}");
            }
        }
        let held: Vec<(String, String)> = conn
            .held()
            .into_iter()
            .map(|sid| (sid, conn.admin.admin_id.clone()))
            .collect();
        if held.is_empty() {
            continue;
        }
        let renewed = match state.coordinator.renew_admins(&held, grace).await {
            Ok(renewed) => renewed,
            Err(e) => {
                metrics::coordinator_error("renew_admins");
                warn!(admin_id = %conn.admin.admin_id, "cannot renew takeover locks: {e}");
                continue;
            }
        };
        for ((session_id, _), renewed) in held.iter().zip(renewed) {
            if !renewed {
                warn!(session_id, admin_id = %conn.admin.admin_id, "takeover lock lost (it expired or was released elsewhere)");
                conn.set_held(session_id, false);
                let lost = serde_json::json!({ "session_id": session_id, "lost": true });
                let frame = outbound::reply(MessageType::Release, None, Some(session_id), lost);
                conn.queue.push(frame.to_json());
            }
        }
    }
}
