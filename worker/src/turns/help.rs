//! `help_request`: the user asks for a person. The session is flagged
//! (`help_requested`, `help_requested_at`), the request kept in the
//! conversation and echoed as its acknowledgement, and the admins are told
//! by the channels the notification rules name — unless an admin already
//! assists.

use chatbox_shared::envelope::{Audience, InboundEnvelope};
use chatbox_shared::protocol::{ErrorCode, ErrorInfo, MessageType, Metadata, Sender, Timestamp};
use tracing::info;

use super::note::{Note, live_session};
use super::{Settle, refuse};
use crate::history;
use crate::metrics::{self, TurnOutcome};
use crate::notify::{Alert, EventKind};
use crate::state::WorkerState;
use crate::store::{SessionPatch, StoreError};

/// What a help request says when the user wrote nothing.
const DEFAULT_REQUEST: &str = "I would like to talk to a person.";

/// Runs a `help_request` turn.
pub(super) async fn turn(
    state: &WorkerState,
    envelope: &InboundEnvelope,
    content: Option<&str>,
) -> Result<Settle, StoreError> {
    let Some(session) = live_session(state, envelope).await? else {
        let info = ErrorInfo::new(
            ErrorCode::SessionEnded,
            "this conversation has ended; reconnect to start a new one",
        );
        return Ok(refuse(state, envelope, Audience::User, info).await);
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
        .unwrap_or(DEFAULT_REQUEST)
        .to_owned();
    let note = Note {
        kind: MessageType::HelpRequest,
        sender: Sender::User,
        content: text.clone(),
        metadata,
        patch: SessionPatch {
            help_requested_at: Some(now),
            ..SessionPatch::default()
        },
        envelope,
    };
    let (record, new) = note.store_once(state, &session).await?;
    state
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
    metrics::turn(TurnOutcome::HelpRequest);
    Ok(Settle::Ack)
}
