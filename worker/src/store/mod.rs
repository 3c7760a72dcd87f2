//! The `Store` port: sessions and messages, kept by workers only
//! (gateways ask workers over `chat.rpc`).
//!
//! Adapters: [`MongoStore`] (MongoDB 6/7, the scaled workers) and
//! [`SqliteStore`] (a file under `data_dir`, the all-in-one), each timed
//! when wrapped in a [`MeteredStore`]. One
//! conformance suite (`worker/tests/store_conformance.rs`) runs against
//! both. Messages live in their own collection, one document per message,
//! so a session grows without limit; `(session_id, seq)` and the message's
//! id are unique, which is what makes a redelivered turn store nothing
//! twice. Files users upload (or models produce) are recorded in a
//! `files` collection of their own: their bytes live in the blob store,
//! the record says whose they are and where they are in their life
//! (pending → ready, rejected or expired). Content, session names, file
//! names and transcripts are sealed by a [`ContentCipher`] on the way in
//! and opened on the way out.
//!
//! Messages of a session are written by one worker at a time (the inbound
//! queue's session order), so a worker may read a session, compute its new
//! counters and write them back without racing another worker.
//!
//! The records are in files named after them (`session`, `message`,
//! `file`, and `admin` for what the admin console reads and records) and
//! re-exported here.

mod admin;
mod cipher;
mod file;
mod message;
mod metered;
mod mongo;
mod session;
mod sqlite;

use async_trait::async_trait;
use chatbox_shared::protocol::Timestamp;

pub use admin::{
    AdminRef, AdminSessionPage, AdminSessionQuery, ConcurrencySample, SessionAggregates, SessionSort,
    TakeoverRecord,
};
pub use cipher::{ContentCipher, key_id};
pub use file::{FileKind, FilePatch, FileRecord, FileStatus};
pub use message::{Appended, MessageRecord, TurnQuery, TurnView};
pub use metered::MeteredStore;
pub use mongo::{MongoOptions, MongoStore};
pub use session::{SessionCounters, SessionCursor, SessionPatch, SessionRecord};
pub use sqlite::SqliteStore;

/// Why a store operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Another message already holds this position in the session.
    #[error("sequence {seq} of session {session_id} is taken by another message")]
    SeqTaken { session_id: String, seq: u64 },
    /// A stored value could not be read back.
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    /// Anything else the database reported.
    #[error("database: {0}")]
    Other(String),
}

/// The store port.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Which adapter this is (`"mongo"`, `"sqlite"`).
    fn adapter(&self) -> &'static str;

    /// Creates tables and indexes that are missing (idempotent).
    async fn prepare(&self) -> Result<(), StoreError>;

    /// Checks that the database answers, for readiness.
    async fn check(&self) -> Result<(), StoreError>;

    /// Stores a new session.
    async fn create_session(&self, session: &SessionRecord) -> Result<(), StoreError>;

    /// A session by id.
    async fn session(&self, id: &str) -> Result<Option<SessionRecord>, StoreError>;

    /// Applies `patch` to a session.
    async fn update_session(&self, id: &str, patch: &SessionPatch) -> Result<(), StoreError>;

    /// Ends a session if it is still active: records `at` as its end time
    /// and its duration. Returns the session as it is afterwards.
    async fn end_session(&self, id: &str, at: Timestamp) -> Result<Option<SessionRecord>, StoreError>;

    /// A user's sessions, most recently active first, after `after`.
    async fn user_sessions(
        &self,
        user_id: &str,
        limit: usize,
        after: Option<&SessionCursor>,
    ) -> Result<Vec<SessionRecord>, StoreError>;

    /// Active sessions with no activity since `before` (to be ended).
    async fn stale_sessions(&self, before: Timestamp, limit: usize)
    -> Result<Vec<SessionRecord>, StoreError>;

    /// Stores a message, once: a message whose id is already stored in its
    /// session is not stored again.
    async fn append_message(&self, message: &MessageRecord) -> Result<Appended, StoreError>;

    /// Stores a message (once) and applies `patch` to its session — in one
    /// transaction where the database has them.
    async fn record_message(
        &self,
        message: &MessageRecord,
        patch: &SessionPatch,
    ) -> Result<Appended, StoreError> {
        let appended = self.append_message(message).await?;
        self.update_session(&message.session_id, patch).await?;
        Ok(appended)
    }

    /// Stores a turn at once: the user's message (unless a previous step
    /// stored it), its answer and the session's new totals — in one
    /// transaction where the database has them, else the messages first
    /// and then the session. Each message is stored once (a redelivered
    /// turn stores nothing twice). Returns what storing the answer did.
    async fn record_turn(
        &self,
        question: Option<&MessageRecord>,
        answer: &MessageRecord,
        patch: &SessionPatch,
    ) -> Result<Appended, StoreError>;

    /// What a turn needs, read at once (one round trip in wall time): the
    /// session, the user's message and its answer if already stored, the
    /// last sequence number and the newest messages after
    /// `query.known_upto`. `None` if there is no such session.
    async fn turn_view(&self, query: &TurnQuery<'_>) -> Result<Option<TurnView>, StoreError>;

    /// A message by its id in a session.
    async fn message(&self, session_id: &str, message_id: &str) -> Result<Option<MessageRecord>, StoreError>;

    /// The highest sequence number used in a session (0 if none).
    async fn last_seq(&self, session_id: &str) -> Result<u64, StoreError>;

    /// Messages with a sequence number above `after_seq`, oldest first.
    async fn messages_after(
        &self,
        session_id: &str,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<MessageRecord>, StoreError>;

    /// Messages with a sequence number below `before_seq`, newest first.
    async fn messages_before(
        &self,
        session_id: &str,
        before_seq: u64,
        limit: usize,
    ) -> Result<Vec<MessageRecord>, StoreError>;

    /// Every user's sessions, filtered and sorted, one page at a time.
    async fn admin_sessions(&self, query: &AdminSessionQuery) -> Result<AdminSessionPage, StoreError>;

    /// Totals over the sessions that started in `[from, to)`.
    async fn session_aggregates(
        &self,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<SessionAggregates, StoreError>;

    /// How many sessions are active (not ended) now.
    async fn active_session_count(&self) -> Result<u64, StoreError>;

    /// Records the start of a takeover; storing the same id twice changes
    /// nothing.
    async fn start_takeover(&self, takeover: &TakeoverRecord) -> Result<(), StoreError>;

    /// Ends a takeover that has not ended yet; returns it as ended, or
    /// `None` if it was unknown or already ended.
    async fn end_takeover(
        &self,
        id: &str,
        ended_at: Timestamp,
        reason: &str,
    ) -> Result<Option<TakeoverRecord>, StoreError>;

    /// A session's takeovers, oldest first.
    async fn takeovers(&self, session_id: &str) -> Result<Vec<TakeoverRecord>, StoreError>;

    /// Takeovers not ended yet, oldest first, at most `limit`.
    async fn open_takeovers(&self, limit: usize) -> Result<Vec<TakeoverRecord>, StoreError>;

    /// Stores a sample; a sample at the same `at` is replaced.
    async fn add_sample(&self, sample: &ConcurrencySample) -> Result<(), StoreError>;

    /// Samples in `[from, to)`, oldest first.
    async fn samples(&self, from: Timestamp, to: Timestamp) -> Result<Vec<ConcurrencySample>, StoreError>;

    /// Stores a new file record; storing the same id again changes nothing.
    async fn create_file(&self, file: &FileRecord) -> Result<(), StoreError>;

    /// A file by id.
    async fn file(&self, id: &str) -> Result<Option<FileRecord>, StoreError>;

    /// Files by id, in any order; unknown ids are left out (history pages
    /// look up their files at once).
    async fn files(&self, ids: &[String]) -> Result<Vec<FileRecord>, StoreError>;

    /// Applies `patch` if the file's status is `expected` (compare and set:
    /// an upload being accepted and the cleanup of its expired slot cannot
    /// both win). Returns whether it applied.
    async fn update_file(
        &self,
        id: &str,
        expected: FileStatus,
        patch: &FilePatch,
    ) -> Result<bool, StoreError>;

    /// Pending files whose slot ended before `before`, oldest `expires_at`
    /// first (ties by id), at most `limit`.
    async fn expired_slots(&self, before: Timestamp, limit: usize) -> Result<Vec<FileRecord>, StoreError>;
}

/// What a refused insert of `m` means: the same message was stored
/// before (a redelivery), or another message holds its `seq`.
pub(crate) fn insert_conflict(m: &MessageRecord, same_id_stored: bool) -> Result<Appended, StoreError> {
    if same_id_stored {
        Ok(Appended::AlreadyStored)
    } else {
        Err(StoreError::SeqTaken {
            session_id: m.session_id.clone(),
            seq: m.seq,
        })
    }
}

/// The session's duration in seconds if it ends at `end`.
pub fn duration_s(start: Timestamp, end: Timestamp) -> u64 {
    end.since(start).as_secs()
}

/// The cipher context of a message's content.
pub(crate) fn message_context(session_id: &str, message_id: &str) -> String {
    format!("message:{session_id}/{message_id}")
}

/// The cipher context of a session's name.
pub(crate) fn session_context(session_id: &str) -> String {
    format!("session:{session_id}")
}

/// The cipher context of a file's name.
pub(crate) fn file_context(file_id: &str) -> String {
    format!("file:{file_id}")
}

/// The cipher context of a voice message's transcript.
pub(crate) fn transcript_context(file_id: &str) -> String {
    format!("transcript:{file_id}")
}
