//! Concurrency samples (property 58: docs/PROPERTIES.md#p58): every `sample_interval` the number
//! of connected sessions — user sockets on every live gateway, from their
//! heartbeats — is stored, at a time rounded down to the interval. Every
//! worker samples; samples of one slot replace each other, so the series
//! has one point per interval however many workers run.

use chatbox_shared::periodic::{FirstPass, every};
use std::sync::Arc;
use std::time::Duration;

use chatbox_shared::coordinator::connected_sessions;
use chatbox_shared::protocol::Timestamp;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::state::WorkerState;
use crate::store::ConcurrencySample;

/// Samples until cancelled.
pub(super) async fn sample_loop(state: Arc<WorkerState>, cancel: CancellationToken) {
    let interval = state.config.chatbox.admin.sample_interval;
    every(interval, FirstPass::Now, &cancel, || {
        sample_once(&state, interval)
    })
    .await;
}

/// Takes and stores one sample.
async fn sample_once(state: &WorkerState, interval: Duration) {
    let pods = match state.coordinator.pods().await {
        Ok(pods) => pods,
        Err(e) => {
            warn!("cannot count connected sessions: {e}");
            return;
        }
    };
    let step = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX).max(1);
    let now = Timestamp::now().as_millis();
    let sample = ConcurrencySample {
        at: Timestamp::from_millis(now - now % step),
        concurrent: connected_sessions(&pods),
    };
    match state.store.add_sample(&sample).await {
        Ok(()) => debug!(concurrent = sample.concurrent, "concurrency sampled"),
        Err(e) => warn!("cannot store a concurrency sample: {e}"),
    }
}
