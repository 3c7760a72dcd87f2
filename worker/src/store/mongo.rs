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

use std::time::Duration;

use async_trait::async_trait;
use chatbox_shared::protocol::{MessageType, Metadata, Sender, Timestamp};
use futures_util::TryStreamExt;
use mongodb::bson::{Bson, Document, doc};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::{ClientOptions, IndexOptions};
use mongodb::{Client, Collection, Database, IndexModel};

use super::cipher::{ContentCipher, Sealed};
use super::{
    AdminRef, AdminSessionPage, AdminSessionQuery, Appended, ConcurrencySample, FileKind, FilePatch,
    FileRecord, FileStatus, MessageRecord, SessionAggregates, SessionCounters, SessionCursor, SessionPatch,
    SessionRecord, Store, StoreError, TakeoverRecord, duration_s, file_context, insert_conflict,
    message_context, session_context, transcript_context,
};
use std::sync::Arc;

/// Sessions of one user that may share the cursor's millisecond.
const TIE_ALLOWANCE: usize = 64;

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

/// Typed reads from a document, with errors that name the field.
struct Fields<'a>(&'a Document);

impl Fields<'_> {
    fn corrupt(&self, field: &str) -> StoreError {
        StoreError::Corrupt(format!("field {field:?} is missing or has the wrong type"))
    }

    fn str(&self, field: &str) -> Result<String, StoreError> {
        self.0
            .get_str(field)
            .map(str::to_owned)
            .map_err(|_| self.corrupt(field))
    }

    fn opt_str(&self, field: &str) -> Option<String> {
        self.0.get_str(field).ok().map(str::to_owned)
    }

    fn uint(&self, field: &str) -> u64 {
        match self.0.get(field) {
            Some(Bson::Int64(v)) => u64::try_from(*v).unwrap_or(0),
            Some(Bson::Int32(v)) => u64::try_from(*v).unwrap_or(0),
            Some(Bson::Double(v)) if *v >= 0.0 => *v as u64,
            _ => 0,
        }
    }

    fn opt_uint(&self, field: &str) -> Option<u64> {
        self.0
            .get(field)
            .filter(|v| !matches!(v, Bson::Null))
            .map(|_| self.uint(field))
    }

    /// A flag. The stand-in stores a boolean written by `$set` as the
    /// integer 0 or 1 (its queries still match it as `false`/`true`).
    fn bool(&self, field: &str) -> bool {
        match self.0.get(field) {
            Some(Bson::Boolean(b)) => *b,
            Some(Bson::Int32(v)) => *v != 0,
            Some(Bson::Int64(v)) => *v != 0,
            _ => false,
        }
    }

    fn time(&self, field: &str) -> Result<Timestamp, StoreError> {
        self.opt_time(field).ok_or_else(|| self.corrupt(field))
    }

    fn opt_time(&self, field: &str) -> Option<Timestamp> {
        match self.0.get(field)? {
            Bson::Int64(ms) => Some(Timestamp::from_millis(u64::try_from(*ms).unwrap_or(0))),
            // The stand-in hands back an Int64 that fits 32 bits as Int32.
            Bson::Int32(ms) => Some(Timestamp::from_millis(u64::try_from(*ms).unwrap_or(0))),
            Bson::DateTime(d) => Some(Timestamp::from_millis(
                u64::try_from(d.timestamp_millis()).unwrap_or(0),
            )),
            _ => None,
        }
    }
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

    /// The raw stored document of a message, as the database holds it.
    pub async fn raw_message(
        &self,
        session_id: &str,
        message_id: &str,
    ) -> Result<Option<Document>, StoreError> {
        self.messages
            .find_one(doc! { "_id": format!("{session_id}/{message_id}") })
            .await
            .map_err(classify)
    }

    /// The raw stored document of a file, as the database holds it.
    pub async fn raw_file(&self, id: &str) -> Result<Option<Document>, StoreError> {
        self.files.find_one(doc! { "_id": id }).await.map_err(classify)
    }

    async fn create_indexes(db: Database) -> Result<Vec<String>, StoreError> {
        let index = |name: &str, keys: Document, unique: bool| {
            IndexModel::builder()
                .keys(keys)
                .options(
                    IndexOptions::builder()
                        .name(name.to_owned())
                        .unique(unique)
                        .build(),
                )
                .build()
        };
        let session_indexes = vec![
            index("idx_user_id", doc! { "user_id": 1 }, false),
            index("idx_start_time", doc! { "start_time": -1 }, false),
            index("idx_admin_assisted", doc! { "admin_assisted": 1 }, false),
            index(
                "idx_user_start_time",
                doc! { "user_id": 1, "start_time": -1 },
                false,
            ),
            index(
                "idx_user_last_activity",
                doc! { "user_id": 1, "last_activity": -1 },
                false,
            ),
            index(
                "idx_active_last_activity",
                doc! { "is_active": 1, "last_activity": 1 },
                false,
            ),
            // The admin session list: its sorts and filters.
            index("idx_last_activity", doc! { "last_activity": -1 }, false),
            index("idx_total_tokens", doc! { "total_tokens": -1 }, false),
            index("idx_avg_response_time", doc! { "avg_response_time": -1 }, false),
            index(
                "idx_help_requested",
                doc! { "help_requested": 1, "start_time": -1 },
                false,
            ),
            index(
                "idx_active_start_time",
                doc! { "is_active": 1, "start_time": -1 },
                false,
            ),
        ];
        let plan = [
            (SESSIONS, session_indexes),
            (
                MESSAGES,
                vec![index("idx_session_seq", doc! { "session_id": 1, "seq": 1 }, true)],
            ),
            (
                TAKEOVERS,
                vec![
                    index(
                        "idx_takeover_session",
                        doc! { "session_id": 1, "started_at": 1 },
                        false,
                    ),
                    index(
                        "idx_takeover_open",
                        doc! { "ended_at": 1, "started_at": 1 },
                        false,
                    ),
                ],
            ),
            (SAMPLES, vec![index("idx_sample_at", doc! { "at": 1 }, true)]),
            (
                FILES,
                vec![index(
                    "idx_file_slot",
                    doc! { "status": 1, "expires_at": 1 },
                    false,
                )],
            ),
        ];
        let mut names = Vec::new();
        for (collection, indexes) in plan {
            names.extend(
                indexes
                    .iter()
                    .filter_map(|m| m.options.as_ref().and_then(|o| o.name.clone())),
            );
            db.collection::<Document>(collection)
                .create_indexes(indexes)
                .await
                .map_err(classify)?;
        }
        names.sort();
        Ok(names)
    }

    fn session_doc(&self, s: &SessionRecord) -> Document {
        let name = self.cipher.seal(&s.name, &session_context(&s.id));
        let c = s.counters;
        doc! {
            "_id": &s.id,
            "user_id": &s.user_id,
            "name": name.text,
            "name_key_id": name.key_id,
            "model_id": s.model_id.clone(),
            "start_time": date(s.start_time),
            "last_activity": date(s.last_activity),
            "end_time": s.end_time.map(date),
            "duration": s.duration_s.map(n),
            "is_active": s.is_active,
            "help_requested": s.help_requested,
            "help_requested_at": s.help_requested_at.map(date),
            "admin_assisted": s.admin_assisted,
            "assisting_admin_id": s.assisting_admin_id.clone(),
            "assisting_admin_name": s.assisting_admin_name.clone(),
            "total_tokens": n(c.total_tokens),
            "message_count": n(c.message_count),
            "response_count": n(c.response_count),
            "total_response_ms": n(c.total_response_ms),
            "avg_response_time": n(c.avg_response_ms),
            "max_response_time": n(c.max_response_ms),
            "total_first_token_ms": n(c.total_first_token_ms),
            "avg_first_token_time": n(c.avg_first_token_ms),
        }
    }

    fn session_from(&self, d: &Document) -> Result<SessionRecord, StoreError> {
        let f = Fields(d);
        let id = f.str("_id")?;
        let sealed = Sealed {
            text: f.opt_str("name").unwrap_or_default(),
            key_id: f.opt_str("name_key_id"),
        };
        let name = self
            .cipher
            .open(&sealed, &session_context(&id))
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(SessionRecord {
            user_id: f.str("user_id")?,
            name,
            model_id: f.opt_str("model_id"),
            start_time: f.time("start_time")?,
            last_activity: f.time("last_activity")?,
            end_time: f.opt_time("end_time"),
            duration_s: f.opt_uint("duration"),
            is_active: f.bool("is_active"),
            help_requested: f.bool("help_requested"),
            help_requested_at: f.opt_time("help_requested_at"),
            admin_assisted: f.bool("admin_assisted"),
            assisting_admin_id: f.opt_str("assisting_admin_id"),
            assisting_admin_name: f.opt_str("assisting_admin_name"),
            counters: SessionCounters {
                total_tokens: f.uint("total_tokens"),
                message_count: f.uint("message_count"),
                response_count: f.uint("response_count"),
                total_response_ms: f.uint("total_response_ms"),
                avg_response_ms: f.uint("avg_response_time"),
                max_response_ms: f.uint("max_response_time"),
                total_first_token_ms: f.uint("total_first_token_ms"),
                avg_first_token_ms: f.uint("avg_first_token_time"),
            },
            id,
        })
    }

    fn message_doc(&self, m: &MessageRecord) -> Result<Document, StoreError> {
        let content = self
            .cipher
            .seal(&m.content, &message_context(&m.session_id, &m.message_id));
        let metadata = match &m.metadata {
            Some(meta) => {
                Some(mongodb::bson::to_document(meta).map_err(|e| StoreError::Other(e.to_string()))?)
            }
            None => None,
        };
        Ok(doc! {
            "_id": format!("{}/{}", m.session_id, m.message_id),
            "session_id": &m.session_id,
            "seq": n(m.seq),
            "message_id": &m.message_id,
            "client_id": m.client_id.clone(),
            "sender": m.sender.as_str(),
            "type": m.kind.as_str(),
            "content": content.text,
            "key_id": content.key_id,
            "file_id": m.file_id.clone(),
            "model_id": m.model_id.clone(),
            "timestamp": date(m.timestamp),
            "metadata": metadata,
            "tokens": m.tokens.map(n),
        })
    }

    fn message_from(&self, d: &Document) -> Result<MessageRecord, StoreError> {
        let f = Fields(d);
        let session_id = f.str("session_id")?;
        let message_id = f.str("message_id")?;
        let sealed = Sealed {
            text: f.str("content")?,
            key_id: f.opt_str("key_id"),
        };
        let content = self
            .cipher
            .open(&sealed, &message_context(&session_id, &message_id))
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let sender: Sender = serde_json::from_value(serde_json::Value::String(f.str("sender")?))
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let kind_name = f.str("type")?;
        let metadata = match d.get_document("metadata") {
            Ok(m) => Some(
                mongodb::bson::from_document::<Metadata>(m.clone())
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            ),
            Err(_) => None,
        };
        Ok(MessageRecord {
            seq: f.uint("seq"),
            client_id: f.opt_str("client_id"),
            sender,
            kind: MessageType::from_wire(&kind_name)
                .ok_or_else(|| StoreError::Corrupt(format!("unknown message type {kind_name:?}")))?,
            content,
            file_id: f.opt_str("file_id"),
            model_id: f.opt_str("model_id"),
            timestamp: f.time("timestamp")?,
            metadata,
            tokens: f.opt_uint("tokens"),
            session_id,
            message_id,
        })
    }

    fn file_doc(&self, f: &FileRecord) -> Document {
        let name = self.cipher.seal(&f.name, &file_context(&f.id));
        let transcript = f
            .transcript
            .as_ref()
            .map(|t| self.cipher.seal(t, &transcript_context(&f.id)));
        let (transcript, transcript_key_id) = transcript.map(|t| (t.text, t.key_id)).unzip();
        doc! {
            "_id": &f.id,
            "user_id": &f.user_id,
            "session_id": &f.session_id,
            "kind": f.kind.as_str(),
            "status": f.status.as_str(),
            "name": name.text,
            "name_key_id": name.key_id,
            "declared_type": &f.declared_type,
            "media_type": f.media_type.clone(),
            "declared_size": n(f.declared_size),
            "size": f.size.map(n),
            "object_key": &f.key,
            "created_at": date(f.created_at),
            "expires_at": date(f.expires_at),
            "reason": f.reason.clone(),
            "transcript": transcript,
            "transcript_key_id": transcript_key_id.flatten(),
            "sha256": f.sha256.clone(),
        }
    }

    fn file_from(&self, d: &Document) -> Result<FileRecord, StoreError> {
        let f = Fields(d);
        let id = f.str("_id")?;
        let name = Sealed {
            text: f.opt_str("name").unwrap_or_default(),
            key_id: f.opt_str("name_key_id"),
        };
        let name = self
            .cipher
            .open(&name, &file_context(&id))
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let transcript = f
            .opt_str("transcript")
            .map(|text| {
                let sealed = Sealed {
                    text,
                    key_id: f.opt_str("transcript_key_id"),
                };
                self.cipher
                    .open(&sealed, &transcript_context(&id))
                    .map_err(|e| StoreError::Corrupt(e.to_string()))
            })
            .transpose()?;
        let kind = f.str("kind")?;
        let status = f.str("status")?;
        Ok(FileRecord {
            user_id: f.str("user_id")?,
            session_id: f.str("session_id")?,
            kind: FileKind::parse(&kind)
                .ok_or_else(|| StoreError::Corrupt(format!("unknown file kind {kind:?}")))?,
            status: FileStatus::parse(&status)
                .ok_or_else(|| StoreError::Corrupt(format!("unknown file status {status:?}")))?,
            name,
            declared_type: f.str("declared_type")?,
            media_type: f.opt_str("media_type"),
            declared_size: f.uint("declared_size"),
            size: f.opt_uint("size"),
            key: f.str("object_key")?,
            created_at: f.time("created_at")?,
            expires_at: f.time("expires_at")?,
            reason: f.opt_str("reason"),
            transcript,
            sha256: f.opt_str("sha256"),
            id,
        })
    }

    async fn find_files(
        &self,
        filter: Document,
        sort: Document,
        limit: usize,
    ) -> Result<Vec<FileRecord>, StoreError> {
        let docs = find(&self.files, filter, sort, limit).await?;
        docs.iter().map(|d| self.file_from(d)).collect()
    }

    async fn find_sessions(
        &self,
        filter: Document,
        sort: Document,
        limit: usize,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        let docs = find(&self.sessions, filter, sort, limit).await?;
        docs.iter().map(|d| self.session_from(d)).collect()
    }

    async fn find_messages(
        &self,
        filter: Document,
        sort: Document,
        limit: usize,
    ) -> Result<Vec<MessageRecord>, StoreError> {
        let docs = find(&self.messages, filter, sort, limit).await?;
        docs.iter().map(|d| self.message_from(d)).collect()
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
        self.sessions
            .insert_one(self.session_doc(session))
            .await
            .map(|_| ())
            .map_err(classify)
    }

    async fn session(&self, id: &str) -> Result<Option<SessionRecord>, StoreError> {
        let found = self
            .sessions
            .find_one(doc! { "_id": id })
            .await
            .map_err(classify)?;
        found.as_ref().map(|d| self.session_from(d)).transpose()
    }

    async fn update_session(&self, id: &str, patch: &SessionPatch) -> Result<(), StoreError> {
        let mut set = Document::new();
        if let Some(t) = patch.last_activity {
            set.insert("last_activity", date(t));
        }
        if let Some(name) = &patch.name {
            let sealed = self.cipher.seal(name, &session_context(id));
            set.insert("name", sealed.text);
            set.insert("name_key_id", sealed.key_id);
        }
        if let Some(c) = patch.counters {
            set.insert("total_tokens", n(c.total_tokens));
            set.insert("message_count", n(c.message_count));
            set.insert("response_count", n(c.response_count));
            set.insert("total_response_ms", n(c.total_response_ms));
            set.insert("avg_response_time", n(c.avg_response_ms));
            set.insert("max_response_time", n(c.max_response_ms));
            set.insert("total_first_token_ms", n(c.total_first_token_ms));
            set.insert("avg_first_token_time", n(c.avg_first_token_ms));
        }
        if let Some(active) = patch.is_active {
            set.insert("is_active", active);
        }
        if let Some(model) = &patch.model_id {
            set.insert("model_id", model.as_str());
        }
        if let Some(t) = patch.help_requested_at {
            set.insert("help_requested", true);
            set.insert("help_requested_at", date(t));
        }
        if let Some(assisted) = patch.admin_assisted {
            set.insert("admin_assisted", assisted);
        }
        if let Some(admin) = &patch.assisting_admin {
            let (id, name) = admin.as_ref().map(|a| (a.id.as_str(), a.name.as_str())).unzip();
            set.insert("assisting_admin_id", id);
            set.insert("assisting_admin_name", name);
        }
        if set.is_empty() {
            return Ok(());
        }
        self.sessions
            .update_one(doc! { "_id": id }, doc! { "$set": set })
            .await
            .map(|_| ())
            .map_err(classify)
    }

    async fn end_session(&self, id: &str, at: Timestamp) -> Result<Option<SessionRecord>, StoreError> {
        let Some(session) = self.session(id).await? else {
            return Ok(None);
        };
        if !session.is_active {
            return Ok(Some(session));
        }
        self.sessions
            .update_one(
                doc! { "_id": id, "is_active": true },
                doc! { "$set": {
                    "is_active": false,
                    "end_time": date(at),
                    "duration": n(duration_s(session.start_time, at)),
                } },
            )
            .await
            .map_err(classify)?;
        self.session(id).await
    }

    async fn user_sessions(
        &self,
        user_id: &str,
        limit: usize,
        after: Option<&SessionCursor>,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        // Sessions up to the cursor's time, then those not after the cursor
        // dropped here: one range condition, no `$or`, and exact paging even
        // when several sessions share a millisecond.
        let Some(c) = after else {
            return self
                .find_sessions(
                    doc! { "user_id": user_id },
                    doc! { "last_activity": -1, "_id": -1 },
                    limit,
                )
                .await;
        };
        let filter = doc! { "user_id": user_id, "last_activity": { "$lte": date(c.last_activity) } };
        let candidates = self
            .find_sessions(
                filter,
                doc! { "last_activity": -1, "_id": -1 },
                limit + TIE_ALLOWANCE,
            )
            .await?;
        Ok(candidates
            .into_iter()
            .filter(|s| {
                s.last_activity < c.last_activity || (s.last_activity == c.last_activity && s.id < c.id)
            })
            .take(limit)
            .collect())
    }

    async fn stale_sessions(
        &self,
        before: Timestamp,
        limit: usize,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        self.find_sessions(
            doc! { "is_active": true, "last_activity": { "$lt": date(before) } },
            doc! { "last_activity": 1 },
            limit,
        )
        .await
    }

    async fn append_message(&self, message: &MessageRecord) -> Result<Appended, StoreError> {
        match self.messages.insert_one(self.message_doc(message)?).await {
            Ok(_) => Ok(Appended::Inserted),
            Err(e) if is_duplicate_key(&e) => {
                let stored = self.message(&message.session_id, &message.message_id).await?;
                insert_conflict(message, stored.is_some())
            }
            Err(e) => Err(classify(e)),
        }
    }

    async fn message(&self, session_id: &str, message_id: &str) -> Result<Option<MessageRecord>, StoreError> {
        let found = self.raw_message(session_id, message_id).await?;
        found.as_ref().map(|d| self.message_from(d)).transpose()
    }

    async fn last_seq(&self, session_id: &str) -> Result<u64, StoreError> {
        let last = self
            .messages
            .find_one(doc! { "session_id": session_id })
            .sort(doc! { "seq": -1 })
            .await
            .map_err(classify)?;
        Ok(last.map(|d| Fields(&d).uint("seq")).unwrap_or(0))
    }

    async fn messages_after(
        &self,
        session_id: &str,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<MessageRecord>, StoreError> {
        self.find_messages(
            doc! { "session_id": session_id, "seq": { "$gt": n(after_seq) } },
            doc! { "seq": 1 },
            limit,
        )
        .await
    }

    async fn messages_before(
        &self,
        session_id: &str,
        before_seq: u64,
        limit: usize,
    ) -> Result<Vec<MessageRecord>, StoreError> {
        self.find_messages(
            doc! { "session_id": session_id, "seq": { "$lt": n(before_seq) } },
            doc! { "seq": -1 },
            limit,
        )
        .await
    }

    async fn admin_sessions(&self, query: &AdminSessionQuery) -> Result<AdminSessionPage, StoreError> {
        let filter = admin_filter(query);
        let direction = if query.descending { -1 } else { 1 };
        let mut sort = Document::new();
        sort.insert(query.sort.field(), direction);
        sort.insert("_id", direction);
        let (total, docs) = futures_util::try_join!(
            async {
                self.sessions
                    .count_documents(filter.clone())
                    .await
                    .map_err(classify)
            },
            find_page(&self.sessions, filter.clone(), sort, query.offset, query.limit),
        )?;
        let sessions = docs
            .iter()
            .map(|d| self.session_from(d))
            .collect::<Result<_, _>>()?;
        Ok(AdminSessionPage { sessions, total })
    }

    async fn session_aggregates(
        &self,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<SessionAggregates, StoreError> {
        // The stand-in refuses a bare field path as `$cond`'s condition:
        // `{$eq: [field, true]}` means the same on both.
        let count_true = |field: &str| doc! { "$sum": { "$cond": [{ "$eq": [field, true] }, 1, 0] } };
        let pipeline = [
            doc! { "$match": { "start_time": { "$gte": date(from), "$lt": date(to) } } },
            doc! { "$group": {
                "_id": Bson::Null,
                "total_sessions": { "$sum": 1 },
                "total_tokens": { "$sum": "$total_tokens" },
                "response_count": { "$sum": "$response_count" },
                "total_response_ms": { "$sum": "$total_response_ms" },
                "max_response_ms": { "$max": "$max_response_time" },
                "admin_assisted": count_true("$admin_assisted"),
                "help_requests": count_true("$help_requested"),
            } },
        ];
        let totals = self
            .sessions
            .aggregate(pipeline)
            .await
            .map_err(classify)?
            .try_next()
            .await
            .map_err(classify)?;
        // No session in the period: no group at all.
        let Some(totals) = totals else {
            return Ok(SessionAggregates::default());
        };
        let f = Fields(&totals);
        Ok(SessionAggregates {
            total_sessions: f.uint("total_sessions"),
            total_tokens: f.uint("total_tokens"),
            response_count: f.uint("response_count"),
            total_response_ms: f.uint("total_response_ms"),
            max_response_ms: f.uint("max_response_ms"),
            admin_assisted: f.uint("admin_assisted"),
            help_requests: f.uint("help_requests"),
        })
    }

    async fn active_session_count(&self) -> Result<u64, StoreError> {
        self.sessions
            .count_documents(doc! { "is_active": true })
            .await
            .map_err(classify)
    }

    async fn start_takeover(&self, t: &TakeoverRecord) -> Result<(), StoreError> {
        let document = doc! {
            "_id": &t.id,
            "session_id": &t.session_id,
            "user_id": &t.user_id,
            "admin_id": &t.admin.id,
            "admin_name": &t.admin.name,
            "started_at": date(t.started_at),
            "ended_at": t.ended_at.map(date),
            "end_reason": t.end_reason.clone(),
        };
        match self.takeovers.insert_one(document).await {
            Ok(_) => Ok(()),
            Err(e) if is_duplicate_key(&e) => Ok(()),
            Err(e) => Err(classify(e)),
        }
    }

    async fn end_takeover(
        &self,
        id: &str,
        ended_at: Timestamp,
        reason: &str,
    ) -> Result<Option<TakeoverRecord>, StoreError> {
        // `ended_at: null` matches only a takeover not ended yet, so one
        // call of many ends it; the read comes after (no find_one_and_update).
        let ended = self
            .takeovers
            .update_one(
                doc! { "_id": id, "ended_at": Bson::Null },
                doc! { "$set": { "ended_at": date(ended_at), "end_reason": reason } },
            )
            .await
            .map_err(classify)?;
        if ended.matched_count == 0 {
            return Ok(None);
        }
        let found = self
            .takeovers
            .find_one(doc! { "_id": id })
            .await
            .map_err(classify)?;
        found.as_ref().map(takeover_from).transpose()
    }

    async fn takeovers(&self, session_id: &str) -> Result<Vec<TakeoverRecord>, StoreError> {
        let docs = find(
            &self.takeovers,
            doc! { "session_id": session_id },
            doc! { "started_at": 1, "_id": 1 },
            usize::MAX,
        )
        .await?;
        docs.iter().map(takeover_from).collect()
    }

    async fn open_takeovers(&self, limit: usize) -> Result<Vec<TakeoverRecord>, StoreError> {
        let docs = find(
            &self.takeovers,
            doc! { "ended_at": Bson::Null },
            doc! { "started_at": 1, "_id": 1 },
            limit,
        )
        .await?;
        docs.iter().map(takeover_from).collect()
    }

    async fn add_sample(&self, sample: &ConcurrencySample) -> Result<(), StoreError> {
        let upsert = || {
            self.samples
                .update_one(
                    doc! { "at": date(sample.at) },
                    doc! { "$set": { "concurrent": n(sample.concurrent) } },
                )
                .upsert(true)
        };
        match upsert().await {
            Ok(_) => Ok(()),
            // Another writer inserted the same moment first: replace theirs.
            Err(e) if is_duplicate_key(&e) => upsert().await.map(drop).map_err(classify),
            Err(e) => Err(classify(e)),
        }
    }

    async fn samples(&self, from: Timestamp, to: Timestamp) -> Result<Vec<ConcurrencySample>, StoreError> {
        let docs = find(
            &self.samples,
            doc! { "at": { "$gte": date(from), "$lt": date(to) } },
            doc! { "at": 1 },
            usize::MAX,
        )
        .await?;
        docs.iter()
            .map(|d| {
                let f = Fields(d);
                Ok(ConcurrencySample {
                    at: f.time("at")?,
                    concurrent: f.uint("concurrent"),
                })
            })
            .collect()
    }

    async fn create_file(&self, file: &FileRecord) -> Result<(), StoreError> {
        match self.files.insert_one(self.file_doc(file)).await {
            Ok(_) => Ok(()),
            Err(e) if is_duplicate_key(&e) => Ok(()),
            Err(e) => Err(classify(e)),
        }
    }

    async fn file(&self, id: &str) -> Result<Option<FileRecord>, StoreError> {
        let found = self.raw_file(id).await?;
        found.as_ref().map(|d| self.file_from(d)).transpose()
    }

    async fn files(&self, ids: &[String]) -> Result<Vec<FileRecord>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.find_files(
            doc! { "_id": { "$in": ids.to_vec() } },
            doc! { "_id": 1 },
            usize::MAX,
        )
        .await
    }

    async fn update_file(
        &self,
        id: &str,
        expected: FileStatus,
        patch: &FilePatch,
    ) -> Result<bool, StoreError> {
        let mut set = doc! { "status": patch.status.as_str() };
        if let Some(media_type) = &patch.media_type {
            set.insert("media_type", media_type.as_str());
        }
        if let Some(size) = patch.size {
            set.insert("size", n(size));
        }
        if let Some(key) = &patch.key {
            set.insert("object_key", key.as_str());
        }
        if let Some(reason) = &patch.reason {
            set.insert("reason", reason.as_str());
        }
        if let Some(transcript) = &patch.transcript {
            let sealed = self.cipher.seal(transcript, &transcript_context(id));
            set.insert("transcript", sealed.text);
            set.insert("transcript_key_id", sealed.key_id);
        }
        if let Some(sha256) = &patch.sha256 {
            set.insert("sha256", sha256.as_str());
        }
        // Matching on the status is the compare and set: of two writers
        // expecting the same status, one matches and the other finds none.
        let updated = self
            .files
            .update_one(
                doc! { "_id": id, "status": expected.as_str() },
                doc! { "$set": set },
            )
            .await
            .map_err(classify)?;
        Ok(updated.matched_count > 0)
    }

    async fn expired_slots(&self, before: Timestamp, limit: usize) -> Result<Vec<FileRecord>, StoreError> {
        self.find_files(
            doc! {
                "status": FileStatus::Pending.as_str(),
                "expires_at": { "$lt": date(before) },
            },
            doc! { "expires_at": 1, "_id": 1 },
            limit,
        )
        .await
    }
}

/// The filter of an admin session query: an equality per flag given, a
/// range on the start time.
fn admin_filter(q: &AdminSessionQuery) -> Document {
    let mut filter = Document::new();
    if let Some(user) = &q.user_id {
        filter.insert("user_id", user.as_str());
    }
    if let Some(active) = q.active {
        filter.insert("is_active", active);
    }
    if let Some(help) = q.help_requested {
        filter.insert("help_requested", help);
    }
    if let Some(assisted) = q.admin_assisted {
        filter.insert("admin_assisted", assisted);
    }
    let mut started = Document::new();
    if let Some(from) = q.started_from {
        started.insert("$gte", date(from));
    }
    if let Some(to) = q.started_to {
        started.insert("$lt", date(to));
    }
    if !started.is_empty() {
        filter.insert("start_time", started);
    }
    filter
}

fn takeover_from(d: &Document) -> Result<TakeoverRecord, StoreError> {
    let f = Fields(d);
    Ok(TakeoverRecord {
        id: f.str("_id")?,
        session_id: f.str("session_id")?,
        user_id: f.str("user_id")?,
        admin: AdminRef {
            id: f.str("admin_id")?,
            name: f.str("admin_name")?,
        },
        started_at: f.time("started_at")?,
        ended_at: f.opt_time("ended_at"),
        end_reason: f.opt_str("end_reason"),
    })
}
