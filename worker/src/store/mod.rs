//! The `Store` port: sessions and messages, kept by workers only
//! (gateways ask workers over `chat.rpc`).
//!
//! Adapters: [`mongo::MongoStore`] (MongoDB 6/7, the scaled workers) and
//! [`sqlite::SqliteStore`] (a file under `data_dir`, the all-in-one). One
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

pub mod cipher;
pub mod metered;
pub mod mongo;
pub mod sqlite;

use async_trait::async_trait;
use chatbox_shared::protocol::{MessageType, Metadata, Sender, Timestamp};

pub use cipher::ContentCipher;

/// A session, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// The session id.
    pub id: String,
    /// Its user.
    pub user_id: String,
    /// Its name (generated from the first message, or set by the user).
    pub name: String,
    /// The model chosen for it, if not the default.
    pub model_id: Option<String>,
    /// When it started.
    pub start_time: Timestamp,
    /// When it last saw a message or a connection.
    pub last_activity: Timestamp,
    /// When it ended.
    pub end_time: Option<Timestamp>,
    /// How long it lasted, in seconds (set when it ends).
    pub duration_s: Option<u64>,
    /// Whether it is the user's current session (not ended).
    pub is_active: bool,
    /// Whether the user asked for a person.
    pub help_requested: bool,
    /// When the user last asked for a person.
    pub help_requested_at: Option<Timestamp>,
    /// Whether an admin took part.
    pub admin_assisted: bool,
    /// The admin assisting now, if any.
    pub assisting_admin_id: Option<String>,
    /// Their name.
    pub assisting_admin_name: Option<String>,
    /// Running totals.
    pub counters: SessionCounters,
}

/// A session's running totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionCounters {
    /// Messages stored (user, AI and admin).
    pub message_count: u64,
    /// Tokens of every answer, prompt and completion.
    pub total_tokens: u64,
    /// Answers timed.
    pub response_count: u64,
    /// Their response times added up, in milliseconds.
    pub total_response_ms: u64,
    /// Average response time, in milliseconds.
    pub avg_response_ms: u64,
    /// Longest response time, in milliseconds.
    pub max_response_ms: u64,
    /// Times to the first token added up, in milliseconds.
    pub total_first_token_ms: u64,
    /// Average time to the first token, in milliseconds.
    pub avg_first_token_ms: u64,
}

impl SessionCounters {
    /// Counts one more answer that took `response_ms`, whose first token
    /// came after `first_token_ms`, and used `tokens`.
    pub fn add_answer(&mut self, tokens: u64, response_ms: u64, first_token_ms: u64) {
        self.message_count += 1;
        self.total_tokens += tokens;
        self.response_count += 1;
        self.total_response_ms += response_ms;
        self.avg_response_ms = self.total_response_ms / self.response_count;
        self.max_response_ms = self.max_response_ms.max(response_ms);
        self.total_first_token_ms += first_token_ms;
        self.avg_first_token_ms = self.total_first_token_ms / self.response_count;
    }
}

impl SessionRecord {
    /// A new, active session.
    pub fn new(id: &str, user_id: &str, now: Timestamp) -> Self {
        SessionRecord {
            id: id.to_owned(),
            user_id: user_id.to_owned(),
            name: String::new(),
            model_id: None,
            start_time: now,
            last_activity: now,
            end_time: None,
            duration_s: None,
            is_active: true,
            help_requested: false,
            help_requested_at: None,
            admin_assisted: false,
            assisting_admin_id: None,
            assisting_admin_name: None,
            counters: SessionCounters::default(),
        }
    }
}

/// Changes to a session. `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionPatch {
    /// New last activity.
    pub last_activity: Option<Timestamp>,
    /// New name.
    pub name: Option<String>,
    /// New totals (computed by the worker that holds the session).
    pub counters: Option<SessionCounters>,
    /// Active again (a resumed session).
    pub is_active: Option<bool>,
    /// The model the user chose.
    pub model_id: Option<String>,
    /// The user asked for a person at this time: sets `help_requested`
    /// too.
    pub help_requested_at: Option<Timestamp>,
    /// Whether an admin took part.
    pub admin_assisted: Option<bool>,
    /// The admin assisting now: `Some(None)` clears them.
    pub assisting_admin: Option<Option<AdminRef>>,
}

/// An admin, as sessions and the audit log name them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminRef {
    /// The admin's user id.
    pub id: String,
    /// Their display name.
    pub name: String,
}

/// How the admin session list is ordered (ties broken by session id, in
/// the same direction).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SessionSort {
    /// By start time.
    #[default]
    StartTime,
    /// By last activity.
    LastActivity,
    /// By tokens used.
    Tokens,
    /// By average response time.
    ResponseTime,
}

impl SessionSort {
    /// The stored field it orders by (the same name in every adapter).
    pub fn field(self) -> &'static str {
        match self {
            SessionSort::StartTime => "start_time",
            SessionSort::LastActivity => "last_activity",
            SessionSort::Tokens => "total_tokens",
            SessionSort::ResponseTime => "avg_response_time",
        }
    }
}

/// A filtered, sorted page of every user's sessions (admin console).
/// Filters left `None` match every session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdminSessionQuery {
    /// Only this user's sessions.
    pub user_id: Option<String>,
    /// Only active (`true`) or ended (`false`) sessions.
    pub active: Option<bool>,
    /// Only sessions where the user did (or did not) ask for a person.
    pub help_requested: Option<bool>,
    /// Only sessions an admin did (or did not) take part in.
    pub admin_assisted: Option<bool>,
    /// Only sessions that started at or after this time.
    pub started_from: Option<Timestamp>,
    /// Only sessions that started before this time.
    pub started_to: Option<Timestamp>,
    /// The order.
    pub sort: SessionSort,
    /// Largest first.
    pub descending: bool,
    /// Matching sessions to skip.
    pub offset: usize,
    /// At most this many sessions (0: none, only the total).
    pub limit: usize,
}

/// One page of [`Store::admin_sessions`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminSessionPage {
    /// The page, decrypted.
    pub sessions: Vec<SessionRecord>,
    /// Matching sessions in all.
    pub total: u64,
}

/// Totals over the sessions that started in a period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionAggregates {
    /// Sessions.
    pub total_sessions: u64,
    /// Their tokens.
    pub total_tokens: u64,
    /// Their answers timed.
    pub response_count: u64,
    /// Those answers' response times added up, in milliseconds.
    pub total_response_ms: u64,
    /// The longest response time, in milliseconds.
    pub max_response_ms: u64,
    /// Sessions an admin took part in.
    pub admin_assisted: u64,
    /// Sessions where the user asked for a person.
    pub help_requests: u64,
}

/// A takeover of a session by an admin, for the audit log (property 56).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TakeoverRecord {
    /// Unique; chosen by the caller.
    pub id: String,
    /// The session taken over.
    pub session_id: String,
    /// Its user.
    pub user_id: String,
    /// The admin who took it over.
    pub admin: AdminRef,
    /// When the takeover started.
    pub started_at: Timestamp,
    /// When it ended.
    pub ended_at: Option<Timestamp>,
    /// Why it ended: `"released"`, `"disconnected"`, `"session_ended"`, …
    pub end_reason: Option<String>,
}

/// The number of live sessions at one moment (property 58).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConcurrencySample {
    /// The moment.
    pub at: Timestamp,
    /// Sessions live then.
    pub concurrent: u64,
}

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

/// What [`Store::append_message`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// The message is stored now.
    Inserted,
    /// A message with the same id was already stored; nothing changed.
    AlreadyStored,
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
    /// Messages before the user's message, newest first (context).
    pub earlier: Vec<MessageRecord>,
}

/// Where a page of a user's sessions starts: after this session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionCursor {
    /// Its last activity.
    pub last_activity: Timestamp,
    /// Its id.
    pub id: String,
}

impl SessionCursor {
    /// `"<millis>_<id>"`: opaque to clients.
    pub fn encode(&self) -> String {
        format!("{}_{}", self.last_activity.as_millis(), self.id)
    }

    /// Parses what [`SessionCursor::encode`] wrote.
    pub fn decode(text: &str) -> Option<Self> {
        let (ms, id) = text.split_once('_')?;
        Some(SessionCursor {
            last_activity: Timestamp::from_millis(ms.parse().ok()?),
            id: id.to_owned(),
        })
    }
}

/// What a stored file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A file the user attached.
    Upload,
    /// A voice message the user recorded.
    Voice,
    /// A file a model produced.
    Generated,
}

impl FileKind {
    /// Its stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            FileKind::Upload => "upload",
            FileKind::Voice => "voice",
            FileKind::Generated => "generated",
        }
    }

    /// Reads what [`FileKind::as_str`] wrote.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "upload" => Some(FileKind::Upload),
            "voice" => Some(FileKind::Voice),
            "generated" => Some(FileKind::Generated),
            _ => None,
        }
    }
}

/// Where a file is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileStatus {
    /// Its upload slot is open; no bytes accepted yet.
    Pending,
    /// Its bytes are stored and checked.
    Ready,
    /// Its bytes were refused (see [`FileRecord::reason`]).
    Rejected,
    /// Its upload slot ended before the upload did.
    Expired,
}

impl FileStatus {
    /// Its stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            FileStatus::Pending => "pending",
            FileStatus::Ready => "ready",
            FileStatus::Rejected => "rejected",
            FileStatus::Expired => "expired",
        }
    }

    /// Reads what [`FileStatus::as_str`] wrote.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "pending" => Some(FileStatus::Pending),
            "ready" => Some(FileStatus::Ready),
            "rejected" => Some(FileStatus::Rejected),
            "expired" => Some(FileStatus::Expired),
            _ => None,
        }
    }
}

/// A file a user uploaded (or a model produced), as stored (`files`
/// collection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRecord {
    /// Unique; chosen by the caller.
    pub id: String,
    /// Its user.
    pub user_id: String,
    /// The session it belongs to.
    pub session_id: String,
    /// What it is.
    pub kind: FileKind,
    /// Where it is in its life.
    pub status: FileStatus,
    /// Its name as the user gave it (sealed, context [`file_context`]).
    pub name: String,
    /// The media type the client declared.
    pub declared_type: String,
    /// The media type found in its bytes (once ready).
    pub media_type: Option<String>,
    /// The size the client declared, in bytes.
    pub declared_size: u64,
    /// Its actual size, in bytes (once ready).
    pub size: Option<u64>,
    /// Its object key in the blob store.
    pub key: String,
    /// When it was recorded.
    pub created_at: Timestamp,
    /// When its upload slot ends.
    pub expires_at: Timestamp,
    /// Why it was refused.
    pub reason: Option<String>,
    /// A voice message's text (sealed, context [`transcript_context`]).
    pub transcript: Option<String>,
    /// The hex SHA-256 of its content (once ready).
    pub sha256: Option<String>,
}

/// A change of a file's status and what comes with it; `None` leaves a
/// field as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilePatch {
    /// The new status.
    pub status: FileStatus,
    /// The media type found in its bytes.
    pub media_type: Option<String>,
    /// Its actual size, in bytes.
    pub size: Option<u64>,
    /// Its object key in the blob store.
    pub key: Option<String>,
    /// Why it was refused.
    pub reason: Option<String>,
    /// A voice message's text.
    pub transcript: Option<String>,
    /// The hex SHA-256 of its content.
    pub sha256: Option<String>,
}

impl FilePatch {
    /// A change of status only.
    pub fn status(status: FileStatus) -> Self {
        FilePatch {
            status,
            media_type: None,
            size: None,
            key: None,
            reason: None,
            transcript: None,
            sha256: None,
        }
    }
}

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

    /// What a turn for message `message_id` needs: the session, the
    /// message and its answer if already stored, the last sequence number
    /// and up to `context` earlier messages. `None` if there is no such
    /// session.
    async fn turn_view(
        &self,
        session_id: &str,
        message_id: &str,
        answer_id: &str,
        context: usize,
    ) -> Result<Option<TurnView>, StoreError> {
        // Independent reads, in flight together: two round trips, not five.
        let (session, user_message, answer, last_seq) = futures_util::try_join!(
            self.session(session_id),
            self.message(session_id, message_id),
            self.message(session_id, answer_id),
            self.last_seq(session_id),
        )?;
        let Some(session) = session else {
            return Ok(None);
        };
        let before = user_message.as_ref().map_or(last_seq + 1, |m| m.seq);
        let earlier = self.messages_before(session_id, before, context).await?;
        Ok(Some(TurnView {
            session,
            user_message,
            answer,
            last_seq,
            earlier,
        }))
    }

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
pub fn insert_conflict(m: &MessageRecord, same_id_stored: bool) -> Result<Appended, StoreError> {
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
pub fn message_context(session_id: &str, message_id: &str) -> String {
    format!("message:{session_id}/{message_id}")
}

/// The cipher context of a session's name.
pub fn session_context(session_id: &str) -> String {
    format!("session:{session_id}")
}

/// The cipher context of a file's name.
pub fn file_context(file_id: &str) -> String {
    format!("file:{file_id}")
}

/// The cipher context of a voice message's transcript.
pub fn transcript_context(file_id: &str) -> String {
    format!("transcript:{file_id}")
}
