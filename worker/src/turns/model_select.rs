//! `model_select`: a turn too, so it takes effect in order — the messages
//! sent after it use the new model. Validated against the configured
//! models, kept on the session for every later turn, confirmed to the
//! user.

use chatbox_shared::envelope::{Audience, InboundEnvelope};
use chatbox_shared::protocol::{ErrorCode, ErrorInfo, Timestamp, outbound};
use tracing::info;

use super::Settle;
use crate::metrics::{self, TurnOutcome};
use crate::state::WorkerState;
use crate::store::{SessionPatch, StoreError};

/// Runs a `model_select` turn.
pub(super) async fn turn(
    state: &WorkerState,
    envelope: &InboundEnvelope,
    model_id: &str,
) -> Result<Settle, StoreError> {
    let sid = envelope.session_id.as_str();
    let reply = match state.providers.select(Some(model_id)) {
        None => {
            metrics::turn(TurnOutcome::Rejected);
            outbound::error_reply(
                envelope.client_id.as_deref(),
                Some(sid),
                ErrorInfo::new(ErrorCode::InvalidField, unknown_model(state, model_id)),
            )
        }
        Some(model) => {
            let patch = SessionPatch {
                model_id: Some(model.id().to_owned()),
                last_activity: Some(Timestamp::now()),
                ..SessionPatch::default()
            };
            state.store.update_session(sid, &patch).await?;
            info!(model_id = model.id(), "model selected");
            metrics::turn(TurnOutcome::Ok);
            outbound::model_selected(
                envelope.client_id.as_deref(),
                sid,
                model.id(),
                model.provider.name(),
            )
        }
    };
    state.outbox.send(sid, &reply, Audience::All).await;
    Ok(Settle::Ack)
}

/// The error for a model id that is not configured, naming the ones that
/// are.
pub(super) fn unknown_model(state: &WorkerState, id: &str) -> String {
    let known: Vec<&str> = state.providers.all().iter().map(|m| m.id()).collect();
    format!("unknown model {id:?}; choose one of: {}", known.join(", "))
}
