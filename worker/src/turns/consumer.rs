//! Pulls inbound messages and runs them as turns.
//!
//! A worker takes a delivery only when it has a free turn slot
//! (`max_concurrent_turns`), so pulling is bounded by what the worker can
//! do and the rest of the backlog stays available to other workers. Each
//! delivery runs in its own task; sessions never wait on each other.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use super::delivery;
use crate::metrics;
use crate::state::WorkerState;

/// Consumes the inbound queue until `stop_pulling` is cancelled. Turns run
/// on `turns`; `hard_stop` interrupts them.
pub(crate) async fn consume(
    state: Arc<WorkerState>,
    stop_pulling: CancellationToken,
    hard_stop: CancellationToken,
    turns: TaskTracker,
) {
    let slots = Arc::new(Semaphore::new(state.config.chatbox.worker.max_concurrent_turns));
    'connect: loop {
        let mut queue = match state.bus.inbound().await {
            Ok(queue) => queue,
            Err(e) => {
                metrics::bus_error("inbound");
                warn!("cannot consume the inbound queue yet: {e}");
                tokio::select! {
                    _ = stop_pulling.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue 'connect,
                }
            }
        };
        info!("consuming the inbound queue");
        loop {
            let slot = tokio::select! {
                _ = stop_pulling.cancelled() => return,
                slot = Arc::clone(&slots).acquire_owned() => match slot {
                    Ok(slot) => slot,
                    Err(_) => return,
                },
            };
            let delivery = tokio::select! {
                _ = stop_pulling.cancelled() => return,
                item = queue.next() => item,
            };
            match delivery {
                Some(Ok(delivery)) => {
                    let state = Arc::clone(&state);
                    let hard_stop = hard_stop.clone();
                    turns.spawn(async move {
                        delivery::process(state, delivery, hard_stop).await;
                        drop(slot);
                    });
                }
                Some(Err(e)) => {
                    metrics::bus_error("inbound");
                    warn!("inbound queue: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                None => {
                    warn!("inbound queue ended; consuming again");
                    continue 'connect;
                }
            }
        }
    }
}
