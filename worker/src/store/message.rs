//! A message as the store keeps it, what storing one did, and what a turn
//! reads of its session at once.

use chatbox_shared::protocol::{MessageType, Metadata, Sender, Timestamp};

use super::SessionRecord;

/// A message, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRecord {
    /// Its session.
    pub session_id: String,
    /// Its position in the session.
    pub seq: u64,
    /// Its id, unique within the session (the client's id for user
    /// messages that have one).
    pub message_id: String,
    /// The client's own id.
    pub client_id: Option<String>,
    /// Who wrote it.
    pub sender: Sender,
    /// Its protocol type.
    pub kind: MessageType,
    /// Its text.
    pub content: String,
    /// An attached file.
    pub file_id: Option<String>,
    /// The model that wrote it (answers).
    pub model_id: Option<String>,
    /// When it was written.
    pub timestamp: Timestamp,
    /// Free-form string pairs (token counts, timings).
    pub metadata: Option<Metadata>,
    /// Tokens it cost (answers).
    pub tokens: Option<u64>,
}

/// What [`Store::append_message`](super::Store::append_message) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// The message is stored now.
    Inserted,
    /// A message with the same id was already stored; nothing changed.
    AlreadyStored,
}

/// What a turn asks of the store: its session, its message and answer,
/// and the messages after those the caller holds already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TurnQuery<'a> {
    /// The session.
    pub session_id: &'a str,
    /// The user's message.
    pub message_id: &'a str,
    /// Its answer.
    pub answer_id: &'a str,
    /// Newer messages to read, at most.
    pub context: usize,
    /// The caller holds the messages up to this sequence number (0: none):
    /// only those after it are read (and decrypted).
    pub known_upto: u64,
}

/// Everything a turn needs from the store, read at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnView {
    /// The session.
    pub session: SessionRecord,
    /// The user's message, if a previous attempt stored it.
    pub user_message: Option<MessageRecord>,
    /// The answer, if a previous attempt stored it.
    pub answer: Option<MessageRecord>,
    /// The highest sequence number used in the session.
    pub last_seq: u64,
    /// The newest messages after [`TurnQuery::known_upto`], newest first,
    /// at most [`TurnQuery::context`] of them (they may include the user's
    /// message and its answer, when a previous attempt stored them).
    pub newer: Vec<MessageRecord>,
}
