//! Turns: every message of a session's inbound queue, run in the session's
//! order, from the queue to the acknowledgement.
//!
//! - [`consumer`] pulls deliveries while the worker has a free turn slot;
//! - [`delivery`] takes one delivery to its settlement: decode it, wait
//!   for the session's earlier messages, keep its lease alive, ack or
//!   hand it back;
//! - [`user`] answers a user's message (text, file or voice: [`input`]),
//!   streaming the model's [`answer`], with the session's earlier messages
//!   from the [`context_cache`]; [`model_select`] changes the session's
//!   model;
//! - [`help`] and [`takeover`] bring a person in (help requests, an
//!   admin joining, leaving and writing), storing a [`note`] in the
//!   conversation;
//! - [`stops`] cancels answers that are streaming here.
//!
//! A turn's result is how the delivery settles ([`Settle`]). While storage
//! fails nothing is acked: the message comes back until it can be stored;
//! the user and the admins (a `database_failure` notification) hear about
//! it on the first attempt.

mod answer;
pub(crate) mod consumer;
pub(crate) mod context_cache;
mod delivery;
mod help;
mod input;
mod model_select;
mod note;
pub(crate) mod stops;
mod takeover;
mod user;

use std::time::Duration;

use chatbox_shared::coordinator::AdminHolder;
use chatbox_shared::envelope::{Audience, InboundBody, InboundEnvelope};
use chatbox_shared::protocol::{ErrorCode, ErrorInfo, outbound};
use tracing::warn;

use crate::metrics::{self, TurnOutcome};
use crate::notify::{Alert, EventKind};
use crate::state::WorkerState;
use crate::store::StoreError;

/// How a turn ends for the inbound queue.
pub(crate) enum Settle {
    /// Done (answered, or refused with an error the user saw).
    Ack,
    /// Not done: deliver the message again after the delay.
    Retry(Duration),
}

/// How long a turn waits before it tries storage again.
const STORE_RETRY: Duration = Duration::from_secs(2);

/// Runs the turn the envelope's body names.
async fn run(state: &WorkerState, envelope: &InboundEnvelope, attempt: u64) -> Settle {
    let result = match &envelope.body {
        InboundBody::UserMessage {
            content, model_id, ..
        } => {
            let said = input::Input::Text {
                content,
                model_id: model_id.as_deref(),
            };
            user::turn(state, envelope, said, attempt).await
        }
        InboundBody::FileUpload { file_id, content } => {
            let said = input::Input::File {
                file_id,
                caption: content.as_deref().unwrap_or_default(),
            };
            user::turn(state, envelope, said, attempt).await
        }
        InboundBody::VoiceMessage { file_id } => {
            user::turn(state, envelope, input::Input::Voice { file_id }, attempt).await
        }
        InboundBody::ModelSelect { model_id } => model_select::turn(state, envelope, model_id).await,
        InboundBody::HelpRequest { content } => help::turn(state, envelope, content.as_deref()).await,
        InboundBody::AdminJoin {
            admin_id,
            admin_name,
            since,
        } => {
            let holder = AdminHolder {
                admin_id: admin_id.clone(),
                admin_name: admin_name.clone(),
                since: *since,
            };
            takeover::join(state, envelope, holder).await
        }
        InboundBody::AdminLeave {
            admin_id,
            admin_name,
            since,
            reason,
        } => {
            let holder = AdminHolder {
                admin_id: admin_id.clone(),
                admin_name: admin_name.clone(),
                since: *since,
            };
            takeover::leave(state, envelope, holder, *reason).await
        }
        InboundBody::AdminMessage { content } => takeover::admin_message(state, envelope, content).await,
    };
    match result {
        Ok(settle) => settle,
        Err(e) => storage_failed(state, envelope, attempt, &e).await,
    }
}

/// Nothing is acked while storage fails: the message comes back and is
/// answered once the database is back. Says so once.
async fn storage_failed(
    state: &WorkerState,
    envelope: &InboundEnvelope,
    attempt: u64,
    e: &StoreError,
) -> Settle {
    metrics::turn(TurnOutcome::StoreError);
    warn!(attempt, "storage failed; the message will be retried: {e}");
    if attempt == 1 {
        let info = ErrorInfo::new(
            ErrorCode::DatabaseError,
            "your message is safe but cannot be answered right now; it will be answered as soon as storage is back",
        )
        .retry_after(STORE_RETRY);
        let sid = envelope.session_id.as_str();
        let frame = outbound::error_reply(envelope.client_id.as_deref(), Some(sid), info);
        state.outbox.send(sid, &frame, Audience::User).await;
        let alert = Alert::new(
            EventKind::DatabaseFailure,
            "a message cannot be stored; it waits in the queue until storage is back",
            format!("Store: {}\nError: {e}", state.store.adapter()),
            state.pod_id.as_str(),
        )
        .affecting(1)
        .about(sid, envelope.user_id.as_str());
        state.notifications.notify(alert);
    }
    Settle::Retry(STORE_RETRY)
}

/// Refuses the turn with an error to `audience`; the message is done.
async fn refuse(
    state: &WorkerState,
    envelope: &InboundEnvelope,
    audience: Audience,
    info: ErrorInfo,
) -> Settle {
    let sid = envelope.session_id.as_str();
    let frame = outbound::error_reply(envelope.client_id.as_deref(), Some(sid), info);
    state.outbox.send(sid, &frame, audience).await;
    metrics::turn(TurnOutcome::Rejected);
    Settle::Ack
}
