//! `session.open`: which session a new socket belongs to.
//!
//! One active session per user (property 48: docs/PROPERTIES.md#p48):
//!
//! * a socket without a session id resumes the user's active session, or
//!   starts a new one;
//! * a socket that names its active session resumes it — within the
//!   reconnect timeout after its last socket left (the coordinator's
//!   active-session key lingers that long), or within the timeout after its
//!   last message if the coordinator forgot;
//! * naming an expired or ended session of one's own starts a new one (the
//!   old one ends if it had not); naming a session that does not exist or
//!   belongs to someone else is refused with `SESSION_NOT_FOUND`, the same
//!   answer for both;
//! * `new_session` starts a new one whatever is active.
//!
//! Starting a session ends the one that was active, and the gateway closes
//! that one's sockets. Sessions also end explicitly (`end_session`,
//! [`super::sessions`]) and by the sweep
//! ([`crate::background::session_sweep`]), which ends active sessions left
//! alone for longer than the reconnect timeout.

use chatbox_shared::envelope::{OpenSession, OpenedSession, RpcError};
use chatbox_shared::ids::{is_valid_user_id, new_session_id};
use chatbox_shared::protocol::{ErrorCode, Timestamp};
use tracing::info;

use super::{coordinator_error, owned_session, store_error};
use crate::state::WorkerState;
use crate::store::{SessionPatch, SessionRecord};

/// Opens or restores the session for a new socket.
pub(super) async fn open(state: &WorkerState, request: &OpenSession) -> Result<OpenedSession, RpcError> {
    let user_id = request.user_id.as_str();
    if !is_valid_user_id(user_id) {
        return Err(RpcError {
            code: ErrorCode::InvalidField,
            message: "invalid user id".into(),
        });
    }
    let now = Timestamp::now();
    if request.new_session {
        return start(state, user_id, now).await;
    }
    let active = state
        .coordinator
        .active_session(user_id)
        .await
        .map_err(coordinator_error)?;
    if let Some(requested) = request.requested_session_id.as_deref() {
        let session = owned_session(state, user_id, requested).await?;
        if resumable(state, &session, active.as_deref(), now) {
            return resume(state, session, now).await;
        }
        if session.is_active {
            state
                .store
                .end_session(&session.id, now)
                .await
                .map_err(store_error)?;
        }
        return start(state, user_id, now).await;
    }
    let candidate = match active {
        Some(id) => state.store.session(&id).await.map_err(store_error)?,
        // The coordinator may have forgotten (a Redis restart): the user's
        // most recent session, if still resumable.
        None => state
            .store
            .user_sessions(user_id, 1, None)
            .await
            .map_err(store_error)?
            .into_iter()
            .next(),
    };
    match candidate {
        Some(s) if s.user_id == user_id && resumable(state, &s, None, now) => resume(state, s, now).await,
        Some(s) if s.user_id == user_id && s.is_active => {
            state.store.end_session(&s.id, now).await.map_err(store_error)?;
            start(state, user_id, now).await
        }
        _ => start(state, user_id, now).await,
    }
}

/// Whether a session may be resumed now: not ended, and either still the
/// user's active session in the coordinator (whose key outlives the last
/// socket by the reconnect timeout) or active recently enough.
fn resumable(state: &WorkerState, s: &SessionRecord, active: Option<&str>, now: Timestamp) -> bool {
    if !s.is_active {
        return false;
    }
    active == Some(s.id.as_str()) || now.since(s.last_activity) < state.config.chatbox.reconnect_timeout
}

async fn resume(
    state: &WorkerState,
    session: SessionRecord,
    now: Timestamp,
) -> Result<OpenedSession, RpcError> {
    let previous = state
        .coordinator
        .switch_active_session(&session.user_id, &session.id)
        .await
        .map_err(coordinator_error)?
        .filter(|p| *p != session.id);
    if let Some(previous) = &previous {
        state
            .store
            .end_session(previous, now)
            .await
            .map_err(store_error)?;
    }
    let patch = SessionPatch {
        last_activity: Some(now),
        ..SessionPatch::default()
    };
    state
        .store
        .update_session(&session.id, &patch)
        .await
        .map_err(store_error)?;
    Ok(OpenedSession {
        model_id: session_model(state, session.model_id.as_deref()),
        models: state.providers.infos(),
        session_id: session.id,
        restored: true,
        previous_session_id: previous,
    })
}

/// The id of the model a session uses.
fn session_model(state: &WorkerState, chosen: Option<&str>) -> String {
    state
        .providers
        .for_session(chosen)
        .map_or_else(String::new, |m| m.id().to_owned())
}

async fn start(state: &WorkerState, user_id: &str, now: Timestamp) -> Result<OpenedSession, RpcError> {
    let session = SessionRecord::new(&new_session_id(), user_id, now);
    state.store.create_session(&session).await.map_err(store_error)?;
    let previous = state
        .coordinator
        .switch_active_session(user_id, &session.id)
        .await
        .map_err(coordinator_error)?;
    if let Some(previous) = &previous {
        state
            .store
            .end_session(previous, now)
            .await
            .map_err(store_error)?;
    }
    info!(session_id = %session.id, user_id, "session started");
    Ok(OpenedSession {
        model_id: session_model(state, None),
        models: state.providers.infos(),
        session_id: session.id,
        restored: false,
        previous_session_id: previous,
    })
}
