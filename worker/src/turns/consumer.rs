//! Pulls inbound messages and runs them as turns.
//!
//! A worker asks the queue for as many messages as it has free turn slots
//! (`max_concurrent_turns`, at most `pull_batch` per pull) and starts each
//! as it arrives. It never holds a message it cannot start: a held
//! message's ack wait runs from the moment it is handed out, and with a
//! short ack wait a message waiting for a slot would be handed to a second
//! worker. The rest of the backlog stays available to other workers. Each
//! delivery runs in its own task; sessions never wait on each other.
//!
//! On stop the worker pulls no more; what an open pull still brings is
//! handed back at once (`nak`), so another worker takes it without waiting
//! for the ack wait.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chatbox_shared::bus::{DeliveryBatch, InboundDelivery, InboundQueue};
use futures_util::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use super::delivery;
use crate::metrics;
use crate::state::WorkerState;

/// How long one pull waits for messages before it is renewed. A pull ends
/// as soon as it has brought what it asked for, so this matters only while
/// the queue is idle; it is long because the moment a pull expires is the
/// one moment a message can slip past it (the server may hand a message to
/// a request whose expiry the client has already heard: it comes again
/// only after the ack wait).
const PULL_WAIT: Duration = Duration::from_secs(30);

/// How long a stopping worker waits for an open pull to end, handing back
/// what it brings.
const HAND_BACK_WAIT: Duration = Duration::from_secs(2);

/// What a turn needs besides its delivery.
struct Runner {
    state: Arc<WorkerState>,
    hard_stop: CancellationToken,
    turns: TaskTracker,
    /// The queue ids of the messages running here.
    running: Arc<Mutex<HashSet<u64>>>,
}

impl Runner {
    fn start(&self, delivery: InboundDelivery, slot: OwnedSemaphorePermit) {
        let id = delivery.queue_id;
        if !lock(&self.running).insert(id) {
            // A second delivery of a message this worker still runs (the
            // queue heard no progress in time: a stalled process, a slow
            // network). The running turn settles the message; this copy is
            // left unsettled rather than answered twice.
            metrics::duplicate_delivery();
            debug!(subject = %delivery.subject, "already running here; the second delivery is left to the first");
            return;
        }
        let state = Arc::clone(&self.state);
        let hard_stop = self.hard_stop.clone();
        let running = Arc::clone(&self.running);
        self.turns.spawn(async move {
            delivery::process(state, delivery, hard_stop).await;
            lock(&running).remove(&id);
            drop(slot);
        });
    }
}

fn lock(running: &Mutex<HashSet<u64>>) -> MutexGuard<'_, HashSet<u64>> {
    // A panic while the set was held left it whole.
    running.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Consumes the inbound queue until `stop_pulling` is cancelled. Turns run
/// on `turns`; `hard_stop` interrupts them.
pub(crate) async fn consume(
    state: Arc<WorkerState>,
    stop_pulling: CancellationToken,
    hard_stop: CancellationToken,
    turns: TaskTracker,
) {
    let worker = &state.config.chatbox.worker;
    let slots = Arc::new(Semaphore::new(worker.max_concurrent_turns));
    let most_per_pull = worker.pull_batch;
    let runner = Runner {
        state: Arc::clone(&state),
        hard_stop,
        turns,
        running: Arc::default(),
    };
    loop {
        let queue = tokio::select! {
            _ = stop_pulling.cancelled() => return,
            queue = state.bus.inbound() => queue,
        };
        let mut queue = match queue {
            Ok(queue) => queue,
            Err(e) => {
                metrics::bus_error("inbound");
                warn!("cannot consume the inbound queue yet: {e}");
                tokio::select! {
                    _ = stop_pulling.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        info!("consuming the inbound queue");
        if pull_until_stopped(&mut queue, &slots, most_per_pull, &runner, &stop_pulling).await {
            return;
        }
    }
}

/// Pulls for free slots until stopped (`true`) or the queue fails
/// (`false`: consume again).
async fn pull_until_stopped(
    queue: &mut InboundQueue,
    slots: &Arc<Semaphore>,
    most_per_pull: usize,
    runner: &Runner,
    stop_pulling: &CancellationToken,
) -> bool {
    loop {
        let Some(mut free) = free_slots(slots, most_per_pull, stop_pulling).await else {
            return true;
        };
        let batch = tokio::select! {
            _ = stop_pulling.cancelled() => return true,
            batch = queue.pull(free.len(), PULL_WAIT) => batch,
        };
        let mut batch = match batch {
            Ok(batch) => batch,
            Err(e) => {
                metrics::bus_error("inbound");
                warn!("cannot pull from the inbound queue: {e}");
                tokio::select! {
                    _ = stop_pulling.cancelled() => return true,
                    _ = tokio::time::sleep(Duration::from_millis(500)) => return false,
                }
            }
        };
        loop {
            let item = tokio::select! {
                _ = stop_pulling.cancelled() => {
                    // Bounded: with the bus gone the pull never ends by itself.
                    if tokio::time::timeout(HAND_BACK_WAIT, hand_back(batch)).await.is_err() {
                        debug!("the open pull did not end; its messages come again after the ack wait");
                    }
                    return true;
                }
                item = batch.next() => item,
            };
            match item {
                Some(Ok(delivery)) => match free.pop() {
                    Some(slot) => runner.start(delivery, slot),
                    // A queue never brings more than asked for; if one
                    // did, the message goes back rather than wait.
                    None => hand_back_one(delivery).await,
                },
                Some(Err(e)) => {
                    metrics::bus_error("inbound");
                    warn!("inbound queue: {e}");
                }
                // The pull is over; unused slots are freed with `free`.
                None => break,
            }
        }
    }
}

/// Waits for one free slot, then takes every other free one, up to `most`.
async fn free_slots(
    slots: &Arc<Semaphore>,
    most: usize,
    stop_pulling: &CancellationToken,
) -> Option<Vec<OwnedSemaphorePermit>> {
    let first = tokio::select! {
        _ = stop_pulling.cancelled() => return None,
        slot = Arc::clone(slots).acquire_owned() => slot.ok()?,
    };
    let mut free = vec![first];
    while free.len() < most {
        match Arc::clone(slots).try_acquire_owned() {
            Ok(slot) => free.push(slot),
            Err(_) => break,
        }
    }
    Some(free)
}

/// Hands back what a pull still brings after the worker stopped pulling.
async fn hand_back(mut batch: DeliveryBatch) {
    while let Some(item) = batch.next().await {
        if let Ok(delivery) = item {
            hand_back_one(delivery).await;
        }
    }
}

async fn hand_back_one(delivery: InboundDelivery) {
    debug!(subject = %delivery.subject, "handing a message back to the queue");
    if let Err(e) = delivery.nak(None).await {
        metrics::bus_error("nak");
        debug!("cannot hand the message back; it comes again after the ack wait: {e}");
    }
}
