//! Turns that bring staff in: a user's help request, an admin joining and
//! leaving (takeover), and an admin's message. They run in the session's
//! order like every turn, so a takeover lands after the answer it stopped
//! and before the admin's first message.
//!
//! Each is stored as a message of the conversation (history shows who
//! joined and when) and sent to everyone on the session — the user
//! through whichever gateway they are on (asked to listen first), the
//! admins watching through theirs.

use chatbox_shared::envelope::{Audience, InboundEnvelope, TakeoverEnd};
use chatbox_shared::protocol::{
    ErrorCode, ErrorInfo, Message, MessageType, Metadata, Sender, Timestamp, outbound,
};
use tracing::{info, warn};

use crate::history;
use crate::metrics;
use crate::notify::{Alert, EventKind};
use crate::state::WorkerState;
use crate::store::{AdminRef, MessageRecord, SessionPatch, SessionRecord, StoreError, TakeoverRecord};
use crate::turn::Settle;
use chatbox_shared::coordinator::AdminHolder;

/// A message of one of these turns, as stored.
struct Note<'a> {
    kind: MessageType,
    sender: Sender,
    content: String,
    metadata: Metadata,
    patch: SessionPatch,
    envelope: &'a InboundEnvelope,
}

/// Stores the turn's message once (a redelivered turn finds it) with its
/// session patch; returns it and whether it is new.
async fn store_once(
    state: &WorkerState,
    session: &SessionRecord,
    note: Note<'_>,
) -> Result<(MessageRecord, bool), StoreError> {
    let sid = session.id.as_str();
    let store = state.store.as_ref();
    if let Some(stored) = store.message(sid, &note.envelope.message_id).await? {
        return Ok((stored, false));
    }
    let seq = store.last_seq(sid).await? + 1;
    let record = MessageRecord {
        session_id: sid.to_owned(),
        seq,
        message_id: note.envelope.message_id.clone(),
        client_id: note.envelope.client_id.clone(),
        sender: note.sender,
        kind: note.kind,
        content: note.content,
        file_id: None,
        model_id: None,
        timestamp: note.envelope.received_at,
        metadata: (!note.metadata.is_empty()).then_some(note.metadata),
        tokens: None,
    };
    let mut counters = session.counters;
    counters.message_count += 1;
    let patch = SessionPatch {
        last_activity: Some(Timestamp::now()),
        counters: Some(counters),
        ..note.patch
    };
    store.record_message(&record, &patch).await?;
    Ok((record, true))
}

/// Sends a frame to everyone on the session, asking the user's gateway to
/// listen first (nothing the user sent made it listen).
async fn announce(state: &WorkerState, sid: &str, frame: &Message) {
    state.outbox.attach(sid).await;
    let _ = state.outbox.send(sid, frame, Audience::All).await;
}

async fn refuse(
    state: &WorkerState,
    envelope: &InboundEnvelope,
    audience: Audience,
    info: ErrorInfo,
) -> Settle {
    let sid = envelope.session_id.as_str();
    let frame = outbound::error_reply(envelope.client_id.as_deref(), Some(sid), info);
    let _ = state.outbox.send(sid, &frame, audience).await;
    metrics::turn("rejected");
    Settle::Ack
}

/// The session a staff turn is about, if it is still going.
async fn live_session(
    state: &WorkerState,
    envelope: &InboundEnvelope,
) -> Result<Option<SessionRecord>, StoreError> {
    Ok(state
        .store
        .session(&envelope.session_id)
        .await?
        .filter(|s| s.is_active))
}

/// `help_request`: the session is flagged (property 51), the request kept
/// in the conversation and acknowledged, and the admins are told by the
/// channels the rules name (property 52) — unless an admin is already
/// there.
pub(crate) async fn help_request(
    state: &WorkerState,
    envelope: &InboundEnvelope,
    content: Option<&str>,
) -> Result<Settle, StoreError> {
    let Some(session) = live_session(state, envelope).await? else {
        return Ok(refuse(
            state,
            envelope,
            Audience::User,
            ErrorInfo::new(
                ErrorCode::SessionEnded,
                "this conversation has ended; reconnect to start a new one",
            ),
        )
        .await);
    };
    let assisted = session.assisting_admin_id.is_some();
    let now = Timestamp::now();
    let mut metadata = Metadata::new();
    metadata.insert(
        "status".into(),
        if assisted { "assisted" } else { "requested" }.into(),
    );
    let text = content
        .filter(|c| !c.trim().is_empty())
        .unwrap_or("I would like to talk to a person.")
        .to_owned();
    let (record, new) = store_once(
        state,
        &session,
        Note {
            kind: MessageType::HelpRequest,
            sender: Sender::User,
            content: text.clone(),
            metadata,
            patch: SessionPatch {
                help_requested_at: Some(now),
                ..SessionPatch::default()
            },
            envelope,
        },
    )
    .await?;
    let _ = state
        .outbox
        .send(&session.id, &history::frame(&record), Audience::All)
        .await;
    if new && !assisted {
        state.notifications.notify(Alert {
            event: EventKind::HelpRequest,
            title: format!("User {} asks for a person", session.user_id),
            details: format!(
                "User {} asked for help in session {} at {}: {}",
                session.user_id, session.id, now, text
            ),
            affected_users: 1,
            at: now,
            session_id: Some(session.id.clone()),
            user_id: Some(session.user_id.clone()),
            source: state.pod_id.clone(),
        });
        info!("help requested; admins notified");
    }
    metrics::turn("help_request");
    Ok(Settle::Ack)
}

/// `admin_join`: the takeover begins for the user ("assisted by <name>"),
/// the session records who assists, the audit log records the start.
pub(crate) async fn admin_join(
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
    let (record, _) = store_once(
        state,
        &session,
        Note {
            kind: MessageType::AdminJoin,
            sender: Sender::Admin,
            content: format!("Assisted by {}", holder.admin_name),
            metadata,
            patch: SessionPatch {
                assisting_admin: Some(Some(admin)),
                ..SessionPatch::default()
            },
            envelope,
        },
    )
    .await?;
    announce(state, &session.id, &history::frame(&record)).await;
    info!(admin_id = %holder.admin_id, "admin joined the session");
    metrics::turn("admin_join");
    Ok(Settle::Ack)
}

/// `admin_leave`: the takeover ends — released, or its admin gone beyond
/// the grace period. The session is marked admin-assisted (property 55),
/// the audit entry gets its end (property 56), the user is told. A
/// takeover already ended (the release and the workers' check both asked)
/// ends once.
pub(crate) async fn admin_leave(
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
    let (record, _) = store_once(
        state,
        &session,
        Note {
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
        },
    )
    .await?;
    if session.is_active {
        announce(state, sid, &history::frame(&record)).await;
    }
    info!(admin_id = %holder.admin_id, reason = reason.as_str(), "admin left the session");
    metrics::turn("admin_leave");
    Ok(Settle::Ack)
}

/// An admin's message to the user of a session they have taken over
/// (property 54): stored and sent to everyone on the session; the
/// assistant says nothing.
pub(crate) async fn admin_message(
    state: &WorkerState,
    envelope: &InboundEnvelope,
    content: &str,
) -> Result<Settle, StoreError> {
    let Some(session) = live_session(state, envelope).await? else {
        return Ok(refuse(
            state,
            envelope,
            Audience::Admins,
            ErrorInfo::new(ErrorCode::SessionEnded, "this session has ended"),
        )
        .await);
    };
    if session.assisting_admin_id.as_deref() != Some(envelope.user_id.as_str()) {
        return Ok(refuse(
            state,
            envelope,
            Audience::Admins,
            ErrorInfo::new(
                ErrorCode::NotAllowed,
                "you are not assisting this session (take it over first)",
            ),
        )
        .await);
    }
    let mut metadata = Metadata::new();
    if let Some(name) = &envelope.user_name {
        metadata.insert("admin_name".into(), name.clone());
    }
    let (record, _) = store_once(
        state,
        &session,
        Note {
            kind: MessageType::UserMessage,
            sender: Sender::Admin,
            content: content.to_owned(),
            metadata,
            patch: SessionPatch::default(),
            envelope,
        },
    )
    .await?;
    announce(state, &session.id, &history::frame(&record)).await;
    metrics::turn("admin_message");
    Ok(Settle::Ack)
}
