//! The session sweep: every `sweep_interval`, active sessions nobody came
//! back to within the reconnect timeout are ended (their end time is their
//! last activity). Every worker sweeps; ending is idempotent.

use std::sync::Arc;
use std::time::Duration;

use chatbox_shared::periodic::{FirstPass, every};
use chatbox_shared::protocol::Timestamp;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::state::WorkerState;
use crate::store::StoreError;

/// Ends active sessions nobody came back to: no socket owns them, the
/// coordinator no longer holds them as the user's active session, and
/// they saw nothing for the reconnect timeout. Their end time is their last
/// activity. Runs on every worker; ending is idempotent.
async fn sweep(state: &WorkerState, reconnect_timeout: Duration) -> Result<usize, StoreError> {
    let now = Timestamp::now();
    let cutoff_ms = now
        .as_millis()
        .saturating_sub(u64::try_from(reconnect_timeout.as_millis()).unwrap_or(u64::MAX));
    let stale = state
        .store
        .stale_sessions(Timestamp::from_millis(cutoff_ms), 200)
        .await?;
    let mut ended = 0;
    for s in stale {
        let owned = state
            .coordinator
            .owner(&s.id)
            .await
            .map(|o| o.is_some())
            .unwrap_or(true);
        let lingering = state
            .coordinator
            .active_session(&s.user_id)
            .await
            .map(|a| a.as_deref() == Some(s.id.as_str()))
            .unwrap_or(true);
        if owned || lingering {
            continue;
        }
        if state.store.end_session(&s.id, s.last_activity).await?.is_some() {
            ended += 1;
        }
    }
    if ended > 0 {
        info!(ended, "ended sessions left longer than the reconnect timeout");
    }
    Ok(ended)
}

/// Runs [`sweep`] every `interval` until cancelled.
pub(super) async fn sweep_loop(state: Arc<WorkerState>, cancel: CancellationToken) {
    let interval = state.config.chatbox.store.sweep_interval;
    let reconnect_timeout = state.config.chatbox.reconnect_timeout;
    every(interval, FirstPass::AfterPeriod, &cancel, || async {
        if let Err(e) = sweep(&state, reconnect_timeout).await {
            warn!("session sweep failed: {e}");
        }
    })
    .await;
}
