//! The message a help or takeover turn adds to the conversation (history
//! shows who asked, who joined and when), stored once — a redelivered
//! turn finds it — and announced to everyone on the session: the user
//! through whichever gateway they are on (asked to listen first), the
//! admins watching through theirs.

use chatbox_shared::envelope::{Audience, InboundEnvelope};
use chatbox_shared::protocol::{Message, MessageType, Metadata, Sender, Timestamp};

use crate::state::WorkerState;
use crate::store::{MessageRecord, SessionPatch, SessionRecord, StoreError};

/// A message of one of these turns, as stored.
pub(super) struct Note<'a> {
    pub(super) kind: MessageType,
    pub(super) sender: Sender,
    pub(super) content: String,
    pub(super) metadata: Metadata,
    /// What else the turn changes on the session.
    pub(super) patch: SessionPatch,
    pub(super) envelope: &'a InboundEnvelope,
}

impl Note<'_> {
    /// Stores the note once with its session patch; returns it and
    /// whether it is new.
    pub(super) async fn store_once(
        self,
        state: &WorkerState,
        session: &SessionRecord,
    ) -> Result<(MessageRecord, bool), StoreError> {
        let sid = session.id.as_str();
        let store = state.store.as_ref();
        if let Some(stored) = store.message(sid, &self.envelope.message_id).await? {
            return Ok((stored, false));
        }
        let seq = store.last_seq(sid).await? + 1;
        let record = MessageRecord {
            session_id: sid.to_owned(),
            seq,
            message_id: self.envelope.message_id.clone(),
            client_id: self.envelope.client_id.clone(),
            sender: self.sender,
            kind: self.kind,
            content: self.content,
            file_id: None,
            model_id: None,
            timestamp: self.envelope.received_at,
            metadata: (!self.metadata.is_empty()).then_some(self.metadata),
            tokens: None,
        };
        let mut counters = session.counters;
        counters.message_count += 1;
        let patch = SessionPatch {
            last_activity: Some(Timestamp::now()),
            counters: Some(counters),
            ..self.patch
        };
        store.record_message(&record, &patch).await?;
        Ok((record, true))
    }
}

/// Sends a frame to everyone on the session, asking the user's gateway to
/// listen first (nothing the user sent made it listen).
pub(super) async fn announce(state: &WorkerState, sid: &str, frame: &Message) {
    state.outbox.attach(sid).await;
    state.outbox.send(sid, frame, Audience::All).await;
}

/// The session a help or takeover turn is about, if it is still going.
pub(super) async fn live_session(
    state: &WorkerState,
    envelope: &InboundEnvelope,
) -> Result<Option<SessionRecord>, StoreError> {
    Ok(state
        .store
        .session(&envelope.session_id)
        .await?
        .filter(|s| s.is_active))
}
