//! The `Store` port, timed: every call of any adapter is recorded in
//! `chatbox_store_operation_seconds{adapter, op, outcome}` (see
//! `chatbox_shared::metered_port!`), so store latency and errors show
//! per operation whichever database is behind it. Default methods of the
//! trait (`record_message`) go to the adapter too, so its own
//! versions (a transaction, a batched read) are the ones timed.

use chatbox_shared::protocol::Timestamp;

use super::{
    AdminSessionPage, AdminSessionQuery, Appended, ConcurrencySample, FilePatch, FileRecord, FileStatus,
    MessageRecord, SessionAggregates, SessionCursor, SessionPatch, SessionRecord, Store, StoreError,
    TakeoverRecord, TurnQuery, TurnView,
};

chatbox_shared::metered_port! {
    /// A store whose calls are timed.
    MeteredStore: Store, "chatbox_store_operation_seconds";
    async fn prepare(&self) -> Result<(), StoreError>;
    async fn check(&self) -> Result<(), StoreError>;
    async fn create_session(&self, session: &SessionRecord) -> Result<(), StoreError>;
    async fn session(&self, id: &str) -> Result<Option<SessionRecord>, StoreError>;
    async fn update_session(&self, id: &str, patch: &SessionPatch) -> Result<(), StoreError>;
    async fn end_session(&self, id: &str, at: Timestamp) -> Result<Option<SessionRecord>, StoreError>;
    async fn user_sessions(&self, user_id: &str, limit: usize, after: Option<&SessionCursor>) -> Result<Vec<SessionRecord>, StoreError>;
    async fn stale_sessions(&self, before: Timestamp, limit: usize) -> Result<Vec<SessionRecord>, StoreError>;
    async fn append_message(&self, message: &MessageRecord) -> Result<Appended, StoreError>;
    async fn record_message(&self, message: &MessageRecord, patch: &SessionPatch) -> Result<Appended, StoreError>;
    async fn record_turn(&self, question: Option<&MessageRecord>, answer: &MessageRecord, patch: &SessionPatch) -> Result<Appended, StoreError>;
    async fn turn_view(&self, query: &TurnQuery<'_>) -> Result<Option<TurnView>, StoreError>;
    async fn message(&self, session_id: &str, message_id: &str) -> Result<Option<MessageRecord>, StoreError>;
    async fn last_seq(&self, session_id: &str) -> Result<u64, StoreError>;
    async fn messages_after(&self, session_id: &str, after_seq: u64, limit: usize) -> Result<Vec<MessageRecord>, StoreError>;
    async fn messages_before(&self, session_id: &str, before_seq: u64, limit: usize) -> Result<Vec<MessageRecord>, StoreError>;
    async fn admin_sessions(&self, query: &AdminSessionQuery) -> Result<AdminSessionPage, StoreError>;
    async fn session_aggregates(&self, from: Timestamp, to: Timestamp) -> Result<SessionAggregates, StoreError>;
    async fn active_session_count(&self) -> Result<u64, StoreError>;
    async fn start_takeover(&self, takeover: &TakeoverRecord) -> Result<(), StoreError>;
    async fn end_takeover(&self, id: &str, ended_at: Timestamp, reason: &str) -> Result<Option<TakeoverRecord>, StoreError>;
    async fn takeovers(&self, session_id: &str) -> Result<Vec<TakeoverRecord>, StoreError>;
    async fn open_takeovers(&self, limit: usize) -> Result<Vec<TakeoverRecord>, StoreError>;
    async fn add_sample(&self, sample: &ConcurrencySample) -> Result<(), StoreError>;
    async fn samples(&self, from: Timestamp, to: Timestamp) -> Result<Vec<ConcurrencySample>, StoreError>;
    async fn create_file(&self, file: &FileRecord) -> Result<(), StoreError>;
    async fn file(&self, id: &str) -> Result<Option<FileRecord>, StoreError>;
    async fn files(&self, ids: &[String]) -> Result<Vec<FileRecord>, StoreError>;
    async fn update_file(&self, id: &str, expected: FileStatus, patch: &FilePatch) -> Result<bool, StoreError>;
    async fn expired_slots(&self, before: Timestamp, limit: usize) -> Result<Vec<FileRecord>, StoreError>;
}
