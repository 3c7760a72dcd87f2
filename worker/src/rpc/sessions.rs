//! A user's sessions over `chat.rpc.sessions.*`: their list (newest
//! activity first, paged by cursor), one session's history (paged by
//! sequence number, file links signed), renaming one, and ending one now
//! (its socket is closed).

use chatbox_shared::envelope::{
    EndSession, KillReason, ListSessions, RenameSession, RpcError, SessionHistory,
};
use chatbox_shared::protocol::sessions::{HistoryPage, SessionPage, SessionSummary};
use chatbox_shared::protocol::{ErrorCode, Timestamp};
use tracing::{info, warn};

use super::{bad_cursor, not_found, owned_session, store_error};
use crate::state::WorkerState;
use crate::store::{SessionCursor, SessionPatch, SessionRecord};
use crate::{history, uploads};

/// Longest page a client may ask for.
const MAX_PAGE: usize = 100;

pub(super) async fn list_sessions(state: &WorkerState, r: ListSessions) -> Result<SessionPage, RpcError> {
    let limit = r.limit.clamp(1, MAX_PAGE);
    let cursor = match r.cursor.as_deref() {
        Some(c) => Some(SessionCursor::decode(c).ok_or_else(bad_cursor)?),
        None => None,
    };
    // One more than asked tells whether there is a next page.
    let mut sessions = state
        .store
        .user_sessions(&r.user_id, limit + 1, cursor.as_ref())
        .await
        .map_err(store_error)?;
    let more = sessions.len() > limit;
    sessions.truncate(limit);
    let next_cursor = more
        .then(|| sessions.last())
        .flatten()
        .map(|s| SessionCursor {
            last_activity: s.last_activity,
            id: s.id.clone(),
        })
        .map(|c| c.encode());
    Ok(SessionPage {
        sessions: sessions.iter().map(history::summary).collect(),
        next_cursor,
    })
}

pub(super) async fn session_history(state: &WorkerState, r: SessionHistory) -> Result<HistoryPage, RpcError> {
    owned_session(state, &r.user_id, &r.session_id).await?;
    let limit = r.limit.clamp(1, MAX_PAGE);
    let after = match r.cursor.as_deref() {
        Some(c) => c.parse::<u64>().map_err(|_| bad_cursor())?,
        None => 0,
    };
    let mut messages = state
        .store
        .messages_after(&r.session_id, after, limit + 1)
        .await
        .map_err(store_error)?;
    let more = messages.len() > limit;
    messages.truncate(limit);
    let next_cursor = more.then(|| messages.last()).flatten().map(|m| m.seq.to_string());
    let mut frames: Vec<_> = messages.iter().map(history::frame).collect();
    uploads::links::sign(state, &mut frames).await;
    Ok(HistoryPage {
        session_id: r.session_id,
        messages: frames,
        next_cursor,
    })
}

pub(super) async fn rename_session(
    state: &WorkerState,
    r: RenameSession,
) -> Result<SessionSummary, RpcError> {
    let mut session = owned_session(state, &r.user_id, &r.session_id).await?;
    let name = chatbox_shared::protocol::inbound::sanitize_text(&r.name)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if name.is_empty() || name.chars().count() > chatbox_shared::protocol::inbound::MAX_SESSION_NAME_CHARS {
        return Err(RpcError {
            code: ErrorCode::InvalidField,
            message: "a session name is 1 to 100 characters".into(),
        });
    }
    let patch = SessionPatch {
        name: Some(name.clone()),
        ..SessionPatch::default()
    };
    state
        .store
        .update_session(&r.session_id, &patch)
        .await
        .map_err(store_error)?;
    session.name = name;
    Ok(history::summary(&session))
}

pub(super) async fn end_session(state: &WorkerState, r: EndSession) -> Result<SessionSummary, RpcError> {
    let ended = end(state, &r.user_id, &r.session_id).await?;
    state
        .outbox
        .close_owner(&r.session_id, KillReason::SessionEnded)
        .await;
    Ok(history::summary(&ended))
}

/// Ends a session of `user_id` now; the caller closes its sockets.
async fn end(state: &WorkerState, user_id: &str, session_id: &str) -> Result<SessionRecord, RpcError> {
    owned_session(state, user_id, session_id).await?;
    let ended = state
        .store
        .end_session(session_id, Timestamp::now())
        .await
        .map_err(store_error)?
        .ok_or_else(not_found)?;
    if let Err(e) = state.coordinator.clear_active_session(user_id, session_id).await {
        warn!(session_id, "cannot clear the active session: {e}");
    }
    info!(session_id, user_id, "session ended by the user");
    Ok(ended)
}
