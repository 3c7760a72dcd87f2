//! The worker's periodic passes, each on its own timer until the worker
//! stops pulling: the [`session_sweep`] (sessions nobody came back to),
//! [`takeover_expiry`] (takeovers whose admin is gone), the
//! [`concurrency_sampler`] (connected sessions for the admin console's
//! metrics) and the [`upload_cleanup`] (upload slots never used). Every
//! worker runs them all; each pass is safe to run on several workers at
//! once.

mod concurrency_sampler;
mod session_sweep;
mod takeover_expiry;
mod upload_cleanup;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::state::WorkerState;

/// Starts every pass on `tasks`; each ends when `cancel` fires.
pub(crate) fn spawn(state: &Arc<WorkerState>, tasks: &TaskTracker, cancel: &CancellationToken) {
    tasks.spawn(session_sweep::sweep_loop(Arc::clone(state), cancel.clone()));
    tasks.spawn(takeover_expiry::check_loop(Arc::clone(state), cancel.clone()));
    tasks.spawn(concurrency_sampler::sample_loop(
        Arc::clone(state),
        cancel.clone(),
    ));
    tasks.spawn(upload_cleanup::cleanup_loop(Arc::clone(state), cancel.clone()));
}
