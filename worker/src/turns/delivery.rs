//! One delivery of the inbound queue, to its settlement: decode it, wait
//! until every earlier message of its session is done (session order),
//! run its turn within `turn_timeout` while extending its lease, then ack
//! it — last — or hand it back (`nak`) to be delivered again. A worker
//! shutting down mid-turn hands the message to another worker.
//!
//! A worker that dies before the ack leaves the message to be redelivered
//! to another worker, which streams the answer again under the same
//! `message_id` (the `loading` frame tells the client to drop the partial
//! text it holds).

use std::sync::Arc;
use std::time::Duration;

use chatbox_shared::bus::InboundDelivery;
use chatbox_shared::envelope::{Audience, InboundEnvelope};
use chatbox_shared::protocol::{ErrorCode, ErrorInfo, Timestamp, outbound};
use chatbox_shared::telemetry::propagation;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, error, info, info_span, warn};

use super::{Settle, run};
use crate::metrics::{self, TurnOutcome};
use crate::outbox;
use crate::state::WorkerState;

/// Counts the turn in flight while it lives.
struct InFlight;

impl InFlight {
    fn start() -> Self {
        metrics::in_flight(1.0);
        InFlight
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        metrics::in_flight(-1.0);
    }
}

/// Processes one delivery to its settlement.
pub(super) async fn process(
    state: Arc<WorkerState>,
    delivery: InboundDelivery,
    hard_stop: CancellationToken,
) {
    let _in_flight = InFlight::start();
    let Some(envelope) = decode(&state, &delivery) else {
        metrics::turn(TurnOutcome::Rejected);
        // Unreadable now is unreadable on every redelivery: drop it.
        ack(delivery).await;
        return;
    };
    let span = info_span!(
        "turn",
        pod_id = %state.pod_id,
        session_id = %envelope.session_id,
        user_id = %envelope.user_id,
        message_id = %envelope.message_id,
        delivery = delivery.delivery_count,
    );
    propagation::adopt_parent(&span, &delivery.headers);
    settle(state, delivery, envelope, hard_stop)
        .instrument(span)
        .await;
}

/// The envelope of a delivery, if it is readable and names the session of
/// its subject.
fn decode(state: &WorkerState, delivery: &InboundDelivery) -> Option<InboundEnvelope> {
    match serde_json::from_slice::<InboundEnvelope>(&delivery.payload) {
        Ok(envelope)
            if state.subjects.session_of_inbound(&delivery.subject) == Some(envelope.session_id.as_str()) =>
        {
            Some(envelope)
        }
        Ok(_) => {
            error!(subject = %delivery.subject, "inbound message names another session than its subject; dropped");
            None
        }
        Err(e) => {
            error!(subject = %delivery.subject, "unreadable inbound message; dropped: {e}");
            None
        }
    }
}

async fn settle(
    state: Arc<WorkerState>,
    delivery: InboundDelivery,
    envelope: InboundEnvelope,
    hard_stop: CancellationToken,
) {
    if delivery.delivery_count > 1 {
        metrics::redelivery();
    } else {
        metrics::queue_wait(Timestamp::now().since(envelope.received_at).as_secs_f64());
    }
    if let Err(later) = wait_for_earlier(&state, &delivery, &envelope).await {
        nak(delivery, Some(later)).await;
        return;
    }
    let worker = &state.config.chatbox.worker;
    let turn = format!("{}/{}", envelope.message_id, delivery.delivery_count);
    let work = outbox::TURN.scope(
        turn,
        tokio::time::timeout(
            worker.turn_timeout,
            run(&state, &envelope, delivery.delivery_count),
        ),
    );
    tokio::pin!(work);
    let mut progress = tokio::time::interval(worker.ack_wait / 3);
    progress.tick().await;
    let settled = loop {
        tokio::select! {
            outcome = &mut work => break match outcome {
                Ok(settled) => settled,
                Err(_) => abandon(&state, &envelope).await,
            },
            _ = progress.tick() => {
                if let Err(e) = delivery.progress().await {
                    warn!("cannot extend the turn's lease: {e}");
                }
            }
            _ = hard_stop.cancelled() => {
                info!("shutting down mid-turn; handing the message to another worker");
                nak(delivery, None).await;
                return;
            }
        }
    };
    match settled {
        Settle::Ack => ack(delivery).await,
        Settle::Retry(delay) => nak(delivery, Some(delay)).await,
    }
}

/// Waits until the session's earlier messages are done; if they are not
/// done in time, how long to wait before the delivery comes again.
async fn wait_for_earlier(
    state: &WorkerState,
    delivery: &InboundDelivery,
    envelope: &InboundEnvelope,
) -> Result<(), Duration> {
    let waiting = Instant::now();
    match tokio::time::timeout(state.config.chatbox.worker.ack_wait, delivery.wait_turn()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            metrics::bus_error("wait_turn");
            warn!("cannot tell whether earlier messages are done: {e}");
            return Err(Duration::from_millis(500));
        }
        Err(_) => {
            debug!("an earlier message of the session is still running; later");
            return Err(Duration::from_millis(200));
        }
    }
    let waited = waiting.elapsed();
    metrics::turn_wait(waited.as_secs_f64());
    if delivery.delivery_count > 1 || waited > Duration::from_secs(5) {
        // The session's gateway may have stopped listening meanwhile.
        state.outbox.attach(&envelope.session_id).await;
    }
    Ok(())
}

/// A turn that ran past `turn_timeout`: the user is told, the message is
/// done.
async fn abandon(state: &WorkerState, envelope: &InboundEnvelope) -> Settle {
    let timeout = state.config.chatbox.worker.turn_timeout;
    warn!(?timeout, "turn took too long; abandoned");
    metrics::turn(TurnOutcome::Timeout);
    let info = ErrorInfo::new(
        ErrorCode::LlmUnavailable,
        "the answer took too long and was abandoned; please try again",
    );
    let sid = envelope.session_id.as_str();
    state
        .outbox
        .send(sid, &outbound::error(Some(sid), info), Audience::All)
        .await;
    Settle::Ack
}

async fn ack(delivery: InboundDelivery) {
    if let Err(e) = delivery.ack().await {
        metrics::bus_error("ack");
        warn!("turn done but not acknowledged (it may run again): {e}");
    }
}

/// Hands the message back. If even that fails, the queue redelivers it
/// when its ack wait runs out: nothing is lost, only later.
async fn nak(delivery: InboundDelivery, delay: Option<Duration>) {
    if let Err(e) = delivery.nak(delay).await {
        metrics::bus_error("nak");
        debug!("cannot hand the message back; it comes again after the ack wait: {e}");
    }
}
