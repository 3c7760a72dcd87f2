//! A takeover, as the session's queue sees it: an admin joining
//! (`admin_join`: "assisted by <name>", the audit log's start), leaving
//! (`admin_leave`: released, or gone beyond the grace period; the audit
//! log's end) and writing to the user (`AdminMessage`). They run in the
//! session's order like every turn, so a takeover lands after the answer
//! it stopped and before the admin's first message. The takeover lock
//! itself is the coordinator's; the gateway takes and renews it.

use chatbox_shared::coordinator::AdminHolder;
use chatbox_shared::envelope::{Audience, InboundEnvelope, TakeoverEnd};
use chatbox_shared::protocol::{ErrorCode, ErrorInfo, MessageType, Metadata, Sender, Timestamp};
use tracing::{info, warn};

use super::note::{Note, announce, live_session};
use super::{Settle, refuse};
use crate::history;
use crate::metrics::{self, TurnOutcome};
use crate::state::WorkerState;
use crate::store::{AdminRef, SessionPatch, StoreError, TakeoverRecord};

/// `admin_join`: the takeover begins for the user ("assisted by <name>"),
/// the session records who assists, the audit log records the start.
pub(super) async fn join(
    state: &WorkerState,
    envelope: &InboundEnvelope,
    holder: AdminHolder,
) -> Result<Settle, StoreError> {
    let Some(session) = live_session(state, envelope).await? else {
        warn!(admin_id = %holder.admin_id, "takeover of a session that has ended; ignored");
        return Ok(Settle::Ack);
    };
    let admin = AdminRef {
        id: holder.admin_id.clone(),
        name: holder.admin_name.clone(),
    };
    state
        .store
        .start_takeover(&TakeoverRecord {
            id: holder.takeover_id(&session.id),
            session_id: session.id.clone(),
            user_id: session.user_id.clone(),
            admin: admin.clone(),
            started_at: holder.since,
            ended_at: None,
            end_reason: None,
        })
        .await?;
    let mut metadata = Metadata::new();
    metadata.insert("admin_name".into(), holder.admin_name.clone());
    let note = Note {
        kind: MessageType::AdminJoin,
        sender: Sender::Admin,
        content: format!("Assisted by {}", holder.admin_name),
        metadata,
        patch: SessionPatch {
            assisting_admin: Some(Some(admin)),
            ..SessionPatch::default()
        },
        envelope,
    };
    let (record, _) = note.store_once(state, &session).await?;
    announce(state, &session.id, &history::frame(&record)).await;
    info!(admin_id = %holder.admin_id, "admin joined the session");
    metrics::turn(TurnOutcome::AdminJoin);
    Ok(Settle::Ack)
}

/// `admin_leave`: the takeover ends — released, or its admin gone beyond
/// the grace period. The session is marked admin-assisted (property 55: docs/PROPERTIES.md#p55),
/// the audit entry gets its end (property 56: docs/PROPERTIES.md#p56), the user is told. A
/// takeover already ended (the release and the workers' check both asked)
/// ends once.
pub(super) async fn leave(
    state: &WorkerState,
    envelope: &InboundEnvelope,
    holder: AdminHolder,
    reason: TakeoverEnd,
) -> Result<Settle, StoreError> {
    let sid = envelope.session_id.as_str();
    let takeover_id = holder.takeover_id(sid);
    let ended = state
        .store
        .end_takeover(&takeover_id, Timestamp::now(), reason.as_str())
        .await?;
    let Some(session) = state.store.session(sid).await? else {
        return Ok(Settle::Ack);
    };
    let already_told = state.store.message(sid, &envelope.message_id).await?.is_some();
    if ended.is_none() && !already_told {
        // Never started (its join was not processed) or ended before.
        return Ok(Settle::Ack);
    }
    // A newer takeover may hold the session by now: it stays.
    let newer = match state.coordinator.admin_holder(sid).await {
        Ok(Some(current)) => current.takeover_id(sid) != takeover_id,
        Ok(None) => false,
        Err(e) => {
            warn!("cannot check for a newer takeover: {e}");
            false
        }
    };
    let assisting_this = session.assisting_admin_id.as_deref() == Some(holder.admin_id.as_str());
    let mut metadata = Metadata::new();
    metadata.insert("admin_name".into(), holder.admin_name.clone());
    metadata.insert("reason".into(), reason.as_str().into());
    let content = match reason {
        TakeoverEnd::Released => format!(
            "{} has left the conversation; the assistant is back",
            holder.admin_name
        ),
        TakeoverEnd::Disconnected => format!(
            "{} lost their connection and has left the conversation; the assistant is back",
            holder.admin_name
        ),
    };
    let note = Note {
        kind: MessageType::AdminLeave,
        sender: Sender::Admin,
        content,
        metadata,
        patch: SessionPatch {
            admin_assisted: Some(true),
            assisting_admin: (assisting_this && !newer).then_some(None),
            ..SessionPatch::default()
        },
        envelope,
    };
    let (record, _) = note.store_once(state, &session).await?;
    if session.is_active {
        announce(state, sid, &history::frame(&record)).await;
    }
    info!(admin_id = %holder.admin_id, reason = reason.as_str(), "admin left the session");
    metrics::turn(TurnOutcome::AdminLeave);
    Ok(Settle::Ack)
}

/// An admin's message to the user of a session they have taken over
/// (property 54: docs/PROPERTIES.md#p54): stored and sent to everyone on the session; the
/// assistant says nothing.
pub(super) async fn admin_message(
    state: &WorkerState,
    envelope: &InboundEnvelope,
    content: &str,
) -> Result<Settle, StoreError> {
    let Some(session) = live_session(state, envelope).await? else {
        let info = ErrorInfo::new(ErrorCode::SessionEnded, "this session has ended");
        return Ok(refuse(state, envelope, Audience::Admins, info).await);
    };
    if session.assisting_admin_id.as_deref() != Some(envelope.user_id.as_str()) {
        let info = ErrorInfo::new(
            ErrorCode::NotAllowed,
            "you are not assisting this session (take it over first)",
        );
        return Ok(refuse(state, envelope, Audience::Admins, info).await);
    }
    let mut metadata = Metadata::new();
    if let Some(name) = &envelope.user_name {
        metadata.insert("admin_name".into(), name.clone());
    }
    let note = Note {
        kind: MessageType::UserMessage,
        sender: Sender::Admin,
        content: content.to_owned(),
        metadata,
        patch: SessionPatch::default(),
        envelope,
    };
    let (record, _) = note.store_once(state, &session).await?;
    announce(state, &session.id, &history::frame(&record)).await;
    metrics::turn(TurnOutcome::AdminMessage);
    Ok(Settle::Ack)
}
