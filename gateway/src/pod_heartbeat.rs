//! The pod heartbeat (`chat:pod:<pod>`): proof of life with a connection
//! count, for operators and for anything that wants to know which gateways
//! exist.

use chatbox_shared::periodic::{FirstPass, every};
use std::sync::Arc;

use chatbox_shared::coordinator::GatewayBeat;
use chatbox_shared::protocol::Timestamp;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::metrics;
use crate::state::GatewayState;

/// Writes the heartbeat until cancelled.
pub(crate) async fn beat_loop(state: Arc<GatewayState>, cancel: CancellationToken) {
    let interval = state.config.chatbox.gateway.heartbeat_interval;
    let started = Timestamp::now();
    every(interval, FirstPass::Now, &cancel, || async {
        let beat = GatewayBeat::new(
            state.registry.len() as u64,
            state.hub.len() as u64,
            started,
            env!("CARGO_PKG_VERSION"),
        );
        let Ok(info) = serde_json::to_string(&beat) else {
            return;
        };
        if let Err(e) = state
            .coordinator
            .heartbeat(&state.pod_id, &info, interval * 3)
            .await
        {
            metrics::coordinator_error("heartbeat");
            debug!("heartbeat not written: {e}");
        }
    })
    .await;
}
