//! Frames out to a session's sockets, on `chat.out.<sid>`.
//!
//! A frame is serialized once here; gateways forward the bytes as they are.
//! Its type and audience travel in headers so gateways need not parse it,
//! with the trace context of the turn (chunks aside).
//! Stored frames carry their `seq`, and a turn's frames the delivery that
//! runs it, in headers too: gateways deliver each stored frame once and
//! drop the frames of a turn's earlier delivery once a later one speaks
//! (a worker that took the turn over; see docs/PROTOCOL.md, "When a
//! worker dies mid-answer").
//! Before publishing something a gateway may not be listening for (a turn
//! redelivered after a worker died, say), [`Outbox::attach`] asks the
//! session's owning gateway to subscribe first.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chatbox_shared::bus::{Bus, Headers};
use chatbox_shared::coordinator::Coordinator;
use chatbox_shared::envelope::{AttachReply, Audience, Control, KillReason, RpcReply, headers};
use chatbox_shared::frame_batch::FrameBatch;
use chatbox_shared::namespace::Subjects;
use chatbox_shared::protocol::Message;
use chatbox_shared::telemetry::propagation;
use tracing::{debug, warn};

use crate::metrics;

tokio::task_local! {
    /// The turn whose frames this task publishes: `<message_id>/<delivery>`
    /// (headers::TURN), set for the run of a delivery.
    pub(crate) static TURN: String;
}

/// Publishes frames to sessions.
#[derive(Clone)]
pub(crate) struct Outbox {
    bus: Arc<dyn Bus>,
    coordinator: Arc<dyn Coordinator>,
    subjects: Subjects,
    attach_timeout: Duration,
}

impl Outbox {
    /// An outbox on `bus`.
    pub(crate) fn new(
        bus: Arc<dyn Bus>,
        coordinator: Arc<dyn Coordinator>,
        subjects: Subjects,
        attach_timeout: Duration,
    ) -> Self {
        Outbox {
            bus,
            coordinator,
            subjects,
            attach_timeout,
        }
    }

    /// Publishes a frame to everyone in the session (`audience`). Every
    /// frame but a streamed chunk carries the trace context, so the
    /// gateway's delivery joins the turn's trace; chunks stay as light as
    /// they can be.
    ///
    /// Fire and forget, like the core NATS subject it goes out on: a
    /// failure is logged and counted here, and the turn goes on — what a
    /// client misses is in the session's history, which it reads when it
    /// reconnects.
    pub(crate) async fn send(&self, session_id: &str, frame: &Message, audience: Audience) {
        let mut batch = FrameBatch::new();
        batch.push(frame);
        self.publish(session_id, batch, audience).await;
    }

    /// Publishes frames that are ready together as one message
    /// ([`chatbox_shared::frame_batch`]); each reaches the clients as its
    /// own frame, in order.
    pub(crate) async fn send_all(&self, session_id: &str, frames: &[Message], audience: Audience) {
        let mut batch = FrameBatch::new();
        for frame in frames {
            batch.push(frame);
        }
        if !batch.is_empty() {
            self.publish(session_id, batch, audience).await;
        }
    }

    async fn publish(&self, session_id: &str, batch: FrameBatch, audience: Audience) {
        let traced = batch.traced();
        let mut headers = Headers::new();
        if audience != Audience::All {
            headers.insert(headers::AUDIENCE, audience.as_str());
        }
        // Outside a delivery's run (an RPC, a sweep) there is no turn.
        let _ = TURN.try_with(|turn| headers.insert(headers::TURN, turn.as_str()));
        if traced {
            propagation::inject_current(&mut headers);
        }
        let frames = batch.len();
        let payload = batch.finish(&mut headers);
        if let Err(e) = self
            .bus
            .publish(self.subjects.outbound(session_id), headers, payload)
            .await
        {
            metrics::bus_error("publish");
            debug!(session_id, frames, "frames not published: {e}");
        }
    }

    /// Closes the socket that owns the session, if any (its gateway tells
    /// the client why).
    pub(crate) async fn close_owner(&self, session_id: &str, reason: KillReason) {
        let owner = match self.coordinator.owner(session_id).await {
            Ok(Some(owner)) => owner,
            Ok(None) => return,
            Err(e) => {
                metrics::coordinator_error("owner");
                warn!(session_id, "cannot find the session's gateway: {e}");
                return;
            }
        };
        let kill = Control::Kill {
            conn_id: owner.conn_id,
            session_id: session_id.to_owned(),
            reason,
        };
        let Ok(payload) = serde_json::to_vec(&kill) else {
            return;
        };
        if let Err(e) = self
            .bus
            .publish(
                self.subjects.control(&owner.pod_id),
                Headers::new(),
                Bytes::from(payload),
            )
            .await
        {
            metrics::bus_error("publish_control");
            warn!(session_id, "cannot close the session's socket: {e}");
        }
    }

    /// Asks the gateway that owns the session to listen on its `chat.out`
    /// and waits for it to confirm. Best effort: if nobody owns the session
    /// (the user is away) there is no one to tell.
    pub(crate) async fn attach(&self, session_id: &str) {
        let owner = match self.coordinator.owner(session_id).await {
            Ok(Some(owner)) => owner,
            Ok(None) => return,
            Err(e) => {
                metrics::coordinator_error("owner");
                warn!(session_id, "cannot find the session's gateway: {e}");
                return;
            }
        };
        let request = Control::Attach {
            session_id: session_id.to_owned(),
        };
        let Ok(payload) = serde_json::to_vec(&request) else {
            return;
        };
        match self
            .bus
            .request(
                self.subjects.control(&owner.pod_id),
                Headers::new(),
                Bytes::from(payload),
                self.attach_timeout,
            )
            .await
        {
            Ok(reply) => match serde_json::from_slice::<RpcReply<AttachReply>>(&reply.payload) {
                Ok(RpcReply::Ok(AttachReply { attached })) => {
                    debug!(session_id, pod = %owner.pod_id, attached, "gateway attached")
                }
                _ => warn!(session_id, pod = %owner.pod_id, "unreadable attach reply"),
            },
            Err(e) => {
                metrics::bus_error("attach");
                warn!(session_id, pod = %owner.pod_id, "gateway did not confirm attach: {e}");
            }
        }
    }
}
