//! The MongoDB adapter of the store (the official `mongodb` driver),
//! written for MongoDB 6/7.
//!
//! Collections: `sessions` (`_id` = session id), `messages` (`_id` =
//! `<session id>/<message id>`, so a message is stored once; one document
//! per message, never an array that grows inside the session),
//! `takeovers` (`_id` = the takeover id, so one is recorded once),
//! `concurrency_samples` (unique on `at`) and `files` (`_id` = the file
//! id; a status change is a compare and set on `status`). Indexes are
//! created at start,
//! idempotently: the seed's `idx_user_id`, `idx_start_time`,
//! `idx_admin_assisted` and `idx_user_start_time`, the listing and sweep
//! indexes, those of the admin session list's filters and sorts, the
//! unique `(session_id, seq)`, the takeover and sample indexes, and the
//! `(status, expires_at)` index of the sweep of ended upload slots. Updates
//! use only `$set` (counters are computed by the one worker holding the
//! session), no transactions and no change streams. Times are Int64
//! milliseconds since the epoch.
//!
//! The tests run against the nx-27017 stand-in as well as real MongoDB, so
//! the adapter keeps to what both do alike:
//! - no `_id` inside a compound index (the stand-in then refuses
//!   inserts): samples are unique on a plain `at` field, not on `_id`,
//!   and integer `_id`s would sort as text there anyway;
//! - no `find_one_and_update`: an update, then a read by `_id`;
//! - reads take a flag stored as 0/1 for `false`/`true` (the stand-in's
//!   `$set` writes booleans so, though its queries match them as
//!   booleans) and a time stored as Int32 (it narrows small Int64s);
//! - no `$or` for paging: the admin list pages by sort, skip and limit,
//!   with `count_documents` for the total;
//! - aggregation with `$match` and `$group` (`$sum`, `$max`) works on both,
//!   but the stand-in refuses a bare field path as the condition of
//!   `$cond`: flags are counted with `$cond: [{$eq: [field, true]}, 1, 0]`.
//!
//! Each collection's documents and queries are in a file named after it
//! (`sessions`, `messages`, `takeovers`, `samples`, `files`), the indexes
//! in `indexes`, and the [`Store`] implementation here hands every
//! operation to its collection's file.

mod fields;
mod files;
mod indexes;
mod messages;
mod samples;
mod sessions;
mod takeovers;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chatbox_shared::protocol::Timestamp;
use futures_util::TryStreamExt;
use mongodb::bson::{Document, doc};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::ClientOptions;
use mongodb::{Client, Collection, Database};

use super::cipher::ContentCipher;
use super::{
    AdminSessionPage, AdminSessionQuery, Appended, ConcurrencySample, FilePatch, FileRecord, FileStatus,
    MessageRecord, SessionAggregates, SessionCursor, SessionPatch, SessionRecord, Store, StoreError,
    TakeoverRecord, TurnQuery, TurnView,
};

const SESSIONS: &str = "sessions";
const MESSAGES: &str = "messages";
const TAKEOVERS: &str = "takeovers";
const SAMPLES: &str = "concurrency_samples";
const FILES: &str = "files";

/// Settings of the MongoDB adapter.
#[derive(Debug, Clone)]
pub struct MongoOptions {
    /// `mongodb://…` or `mongodb+srv://…`.
    pub uri: String,
    /// The database.
    pub database: String,
    /// The name this client gives the server.
    pub app_name: String,
    /// How long to wait for a server before an operation fails.
    pub server_timeout: Duration,
    /// How long index creation may take before start-up goes on without it.
    pub index_timeout: Duration,
}

/// The MongoDB [`Store`].
pub struct MongoStore {
    db: Database,
    sessions: Collection<Document>,
    messages: Collection<Document>,
    takeovers: Collection<Document>,
    samples: Collection<Document>,
    files: Collection<Document>,
    cipher: Arc<ContentCipher>,
    index_timeout: Duration,
}

fn classify(e: mongodb::error::Error) -> StoreError {
    match e.kind.as_ref() {
        ErrorKind::ServerSelection { .. }
        | ErrorKind::Io(_)
        | ErrorKind::ConnectionPoolCleared { .. }
        | ErrorKind::Shutdown
        | ErrorKind::DnsResolve { .. } => StoreError::Unavailable(e.to_string()),
        ErrorKind::BsonDeserialization(_) => StoreError::Corrupt(e.to_string()),
        _ => StoreError::Other(e.to_string()),
    }
}

fn is_duplicate_key(e: &mongodb::error::Error) -> bool {
    matches!(e.kind.as_ref(), ErrorKind::Write(WriteFailure::WriteError(w)) if w.code == 11000)
}

/// Times are stored as Int64 milliseconds since the Unix epoch: exact to
/// the millisecond, ordered, and written the same way by `$set` on every
/// server (the nx-27017 stand-in turns a BSON date written by `$set` into a
/// string).
fn date(t: Timestamp) -> i64 {
    i64::try_from(t.as_millis()).unwrap_or(i64::MAX)
}

fn n(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl MongoStore {
    /// Connects (lazily: the driver connects on first use) and checks the
    /// URI.
    pub async fn connect(options: MongoOptions, cipher: Arc<ContentCipher>) -> Result<Self, StoreError> {
        let mut client_options = ClientOptions::parse(&options.uri)
            .await
            .map_err(|e| StoreError::Other(format!("invalid MongoDB URI: {e}")))?;
        client_options.app_name = Some(options.app_name.clone());
        client_options.server_selection_timeout = Some(options.server_timeout);
        client_options.connect_timeout = Some(options.server_timeout);
        let client = Client::with_options(client_options).map_err(classify)?;
        let db = client.database(&options.database);
        Ok(MongoStore {
            sessions: db.collection(SESSIONS),
            messages: db.collection(MESSAGES),
            takeovers: db.collection(TAKEOVERS),
            samples: db.collection(SAMPLES),
            files: db.collection(FILES),
            db,
            cipher,
            index_timeout: options.index_timeout,
        })
    }

    /// Drops the database (tests clean up with it).
    pub async fn drop_database(&self) -> Result<(), StoreError> {
        self.db.drop().await.map_err(classify)
    }
}

/// Up to `limit` documents matching `filter`, in `sort` order.
async fn find(
    collection: &Collection<Document>,
    filter: Document,
    sort: Document,
    limit: usize,
) -> Result<Vec<Document>, StoreError> {
    find_page(collection, filter, sort, 0, limit).await
}

/// Up to `limit` documents matching `filter`, in `sort` order, after the
/// first `skip`.
async fn find_page(
    collection: &Collection<Document>,
    filter: Document,
    sort: Document,
    skip: usize,
    limit: usize,
) -> Result<Vec<Document>, StoreError> {
    // A limit of 0 means "no limit" to MongoDB.
    if limit == 0 {
        return Ok(Vec::new());
    }
    collection
        .find(filter)
        .sort(sort)
        .skip(u64::try_from(skip).unwrap_or(u64::MAX))
        .limit(i64::try_from(limit).unwrap_or(i64::MAX))
        .await
        .map_err(classify)?
        .try_collect()
        .await
        .map_err(classify)
}

#[async_trait]
impl Store for MongoStore {
    fn adapter(&self) -> &'static str {
        "mongo"
    }

    async fn prepare(&self) -> Result<(), StoreError> {
        // Index creation can take long on a big collection; start-up goes on
        // after `index_timeout` and the indexes finish in the background.
        let task = tokio::spawn(Self::create_indexes(self.db.clone()));
        let timeout = self.index_timeout;
        match tokio::time::timeout(timeout, task).await {
            Ok(Ok(Ok(indexes))) => {
                tracing::info!(?indexes, "MongoDB indexes created successfully");
                Ok(())
            }
            Ok(Ok(Err(e))) => {
                tracing::warn!("MongoDB indexes could not be created (queries will be slower): {e}");
                Ok(())
            }
            Ok(Err(e)) => Err(StoreError::Other(format!("index task failed: {e}"))),
            Err(_) => {
                tracing::warn!(
                    ?timeout,
                    "MongoDB index creation is slow; continuing while it finishes"
                );
                Ok(())
            }
        }
    }

    async fn check(&self) -> Result<(), StoreError> {
        self.db
            .run_command(doc! { "ping": 1 })
            .await
            .map(|_| ())
            .map_err(classify)
    }

    async fn create_session(&self, session: &SessionRecord) -> Result<(), StoreError> {
        sessions::create_session(self, session).await
    }

    async fn session(&self, id: &str) -> Result<Option<SessionRecord>, StoreError> {
        sessions::session(self, id).await
    }

    async fn update_session(&self, id: &str, patch: &SessionPatch) -> Result<(), StoreError> {
        sessions::update_session(self, id, patch).await
    }

    async fn end_session(&self, id: &str, at: Timestamp) -> Result<Option<SessionRecord>, StoreError> {
        sessions::end_session(self, id, at).await
    }

    async fn user_sessions(
        &self,
        user_id: &str,
        limit: usize,
        after: Option<&SessionCursor>,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        sessions::user_sessions(self, user_id, limit, after).await
    }

    async fn stale_sessions(
        &self,
        before: Timestamp,
        limit: usize,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        sessions::stale_sessions(self, before, limit).await
    }

    async fn append_message(&self, message: &MessageRecord) -> Result<Appended, StoreError> {
        messages::append_message(self, message).await
    }

    async fn record_turn(
        &self,
        question: Option<&MessageRecord>,
        answer: &MessageRecord,
        patch: &SessionPatch,
    ) -> Result<Appended, StoreError> {
        messages::record_turn(self, question, answer, patch).await
    }

    async fn turn_view(&self, query: &TurnQuery<'_>) -> Result<Option<TurnView>, StoreError> {
        messages::turn_view(self, query).await
    }

    async fn message(&self, session_id: &str, message_id: &str) -> Result<Option<MessageRecord>, StoreError> {
        messages::message(self, session_id, message_id).await
    }

    async fn last_seq(&self, session_id: &str) -> Result<u64, StoreError> {
        messages::last_seq(self, session_id).await
    }

    async fn messages_after(
        &self,
        session_id: &str,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<MessageRecord>, StoreError> {
        messages::messages_after(self, session_id, after_seq, limit).await
    }

    async fn messages_before(
        &self,
        session_id: &str,
        before_seq: u64,
        limit: usize,
    ) -> Result<Vec<MessageRecord>, StoreError> {
        messages::messages_before(self, session_id, before_seq, limit).await
    }

    async fn admin_sessions(&self, query: &AdminSessionQuery) -> Result<AdminSessionPage, StoreError> {
        sessions::admin_sessions(self, query).await
    }

    async fn session_aggregates(
        &self,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<SessionAggregates, StoreError> {
        sessions::session_aggregates(self, from, to).await
    }

    async fn active_session_count(&self) -> Result<u64, StoreError> {
        sessions::active_session_count(self).await
    }

    async fn start_takeover(&self, t: &TakeoverRecord) -> Result<(), StoreError> {
        takeovers::start_takeover(self, t).await
    }

    async fn end_takeover(
        &self,
        id: &str,
        ended_at: Timestamp,
        reason: &str,
    ) -> Result<Option<TakeoverRecord>, StoreError> {
        takeovers::end_takeover(self, id, ended_at, reason).await
    }

    async fn takeovers(&self, session_id: &str) -> Result<Vec<TakeoverRecord>, StoreError> {
        takeovers::takeovers(self, session_id).await
    }

    async fn open_takeovers(&self, limit: usize) -> Result<Vec<TakeoverRecord>, StoreError> {
        takeovers::open_takeovers(self, limit).await
    }

    async fn add_sample(&self, sample: &ConcurrencySample) -> Result<(), StoreError> {
        samples::add_sample(self, sample).await
    }

    async fn samples(&self, from: Timestamp, to: Timestamp) -> Result<Vec<ConcurrencySample>, StoreError> {
        samples::samples(self, from, to).await
    }

    async fn create_file(&self, file: &FileRecord) -> Result<(), StoreError> {
        files::create_file(self, file).await
    }

    async fn file(&self, id: &str) -> Result<Option<FileRecord>, StoreError> {
        files::file(self, id).await
    }

    async fn files(&self, ids: &[String]) -> Result<Vec<FileRecord>, StoreError> {
        files::files(self, ids).await
    }

    async fn update_file(
        &self,
        id: &str,
        expected: FileStatus,
        patch: &FilePatch,
    ) -> Result<bool, StoreError> {
        files::update_file(self, id, expected, patch).await
    }

    async fn expired_slots(&self, before: Timestamp, limit: usize) -> Result<Vec<FileRecord>, StoreError> {
        files::expired_slots(self, before, limit).await
    }
}
