//! The SQLite adapter of the store: one file under `data_dir`, for the
//! all-in-one (one process, so one writer).
//!
//! One thread owns the connection (WAL mode) and runs every query in
//! order: no lock to contend for, and no task of the async runtime ever
//! blocks on the database. Each job runs inside its own savepoint, so one
//! that fails leaves nothing behind; jobs that queue up while the thread
//! is busy run together in one transaction (group commit), and their
//! callers hear back once that transaction is committed.

use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};

use async_trait::async_trait;
use chatbox_shared::protocol::{MessageType, Metadata, Sender, Timestamp};
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::cipher::{ContentCipher, Sealed};
use super::{
    AdminRef, AdminSessionPage, AdminSessionQuery, Appended, ConcurrencySample, FileKind, FilePatch,
    FileRecord, FileStatus, MessageRecord, SessionAggregates, SessionCounters, SessionCursor, SessionPatch,
    SessionRecord, Store, StoreError, TakeoverRecord, TurnView, duration_s, file_context, insert_conflict,
    message_context, session_context, transcript_context,
};

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    name_key_id TEXT,
    model_id TEXT,
    start_time INTEGER NOT NULL,
    last_activity INTEGER NOT NULL,
    end_time INTEGER,
    duration INTEGER,
    is_active INTEGER NOT NULL,
    help_requested INTEGER NOT NULL DEFAULT 0,
    admin_assisted INTEGER NOT NULL DEFAULT 0,
    assisting_admin_id TEXT,
    assisting_admin_name TEXT,
    total_tokens INTEGER NOT NULL DEFAULT 0,
    message_count INTEGER NOT NULL DEFAULT 0,
    response_count INTEGER NOT NULL DEFAULT 0,
    total_response_ms INTEGER NOT NULL DEFAULT 0,
    avg_response_time INTEGER NOT NULL DEFAULT 0,
    max_response_time INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS idx_user_id ON sessions (user_id);
CREATE INDEX IF NOT EXISTS idx_start_time ON sessions (start_time DESC);
CREATE INDEX IF NOT EXISTS idx_admin_assisted ON sessions (admin_assisted);
CREATE INDEX IF NOT EXISTS idx_user_start_time ON sessions (user_id, start_time DESC);
CREATE INDEX IF NOT EXISTS idx_user_last_activity ON sessions (user_id, last_activity DESC);
CREATE INDEX IF NOT EXISTS idx_active_last_activity ON sessions (is_active, last_activity);
CREATE TABLE IF NOT EXISTS messages (
    id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    message_id TEXT NOT NULL,
    client_id TEXT,
    sender TEXT NOT NULL,
    type TEXT NOT NULL,
    content TEXT NOT NULL,
    key_id TEXT,
    file_id TEXT,
    model_id TEXT,
    timestamp INTEGER NOT NULL,
    metadata TEXT,
    tokens INTEGER,
    UNIQUE (session_id, seq)
);
"#;

/// Changes to the schema after version 1, in order: the database's
/// `user_version` says how many of them it has (plus one).
const MIGRATIONS: [&str; 3] = [
    // 2: time to first token, per session.
    "ALTER TABLE sessions ADD COLUMN total_first_token_ms INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE sessions ADD COLUMN avg_first_token_time INTEGER NOT NULL DEFAULT 0;",
    // 3: the admin console — when help was asked for, the sorts and
    // filters of the session list, the takeover audit log and the
    // concurrency samples.
    "ALTER TABLE sessions ADD COLUMN help_requested_at INTEGER;
     CREATE INDEX idx_last_activity ON sessions (last_activity DESC);
     CREATE INDEX idx_total_tokens ON sessions (total_tokens DESC);
     CREATE INDEX idx_avg_response_time ON sessions (avg_response_time DESC);
     CREATE INDEX idx_help_requested ON sessions (help_requested, start_time DESC);
     CREATE INDEX idx_active_start_time ON sessions (is_active, start_time DESC);
     CREATE TABLE takeovers (
         id TEXT PRIMARY KEY,
         session_id TEXT NOT NULL,
         user_id TEXT NOT NULL,
         admin_id TEXT NOT NULL,
         admin_name TEXT NOT NULL,
         started_at INTEGER NOT NULL,
         ended_at INTEGER,
         end_reason TEXT
     );
     CREATE INDEX idx_takeover_session ON takeovers (session_id, started_at);
     CREATE INDEX idx_takeover_open ON takeovers (ended_at, started_at);
     CREATE TABLE concurrency_samples (
         at INTEGER PRIMARY KEY,
         concurrent INTEGER NOT NULL
     );",
    // 4: files users upload (or models produce), and the sweep of upload
    // slots that ended while still pending.
    "CREATE TABLE files (
         id TEXT PRIMARY KEY,
         user_id TEXT NOT NULL,
         session_id TEXT NOT NULL,
         kind TEXT NOT NULL,
         status TEXT NOT NULL,
         name TEXT NOT NULL,
         name_key_id TEXT,
         declared_type TEXT NOT NULL,
         media_type TEXT,
         declared_size INTEGER NOT NULL,
         size INTEGER,
         object_key TEXT NOT NULL,
         created_at INTEGER NOT NULL,
         expires_at INTEGER NOT NULL,
         reason TEXT,
         transcript TEXT,
         transcript_key_id TEXT,
         sha256 TEXT
     );
     CREATE INDEX idx_file_slot ON files (status, expires_at);",
];

/// Creates the tables if needed and brings them to the current version.
/// (Runs as a job, so inside the job's transaction: all or nothing.)
fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(SCHEMA)?;
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let done = usize::try_from(version.saturating_sub(1)).unwrap_or(0);
    for (i, step) in MIGRATIONS.iter().enumerate().skip(done) {
        conn.execute_batch(step)?;
        conn.execute_batch(&format!("PRAGMA user_version = {}", i + 2))?;
    }
    Ok(())
}

/// The SQLite [`Store`].
pub struct SqliteStore {
    jobs: mpsc::Sender<Job>,
    path: PathBuf,
}

/// Work for the database thread: runs its queries, says whether they
/// succeeded, and hands back how to answer its caller once the outcome of
/// the transaction it ran in is known.
type Job = Box<dyn FnOnce(&mut Connection, &ContentCipher) -> (bool, Reply) + Send>;

/// Answers a job's caller: with its own result if the transaction was
/// committed, with the commit's error if not.
type Reply = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// Queries that run in one transaction, at most.
const GROUP_COMMIT: usize = 64;

fn other(e: impl std::fmt::Display) -> StoreError {
    StoreError::Other(e.to_string())
}

fn ms(t: Timestamp) -> i64 {
    i64::try_from(t.as_millis()).unwrap_or(i64::MAX)
}

fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millis(u64::try_from(ms).unwrap_or(0))
}

fn n(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn u(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl SqliteStore {
    /// Opens (creating if needed) `chatbox.db` under `dir`. One thread owns
    /// the connection and runs every query, in order: no lock to contend
    /// for, and no task of the async runtime ever blocks on the database.
    pub fn open(dir: &Path, cipher: Arc<ContentCipher>) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Unavailable(format!("cannot create {}: {e}", dir.display())))?;
        let path = dir.join("chatbox.db");
        let mut conn = Connection::open(&path)
            .map_err(|e| StoreError::Unavailable(format!("cannot open {}: {e}", path.display())))?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(other)?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(other)?;
        // Recent conversations stay in memory: 32 MiB of page cache, and
        // the file mapped so a miss costs no read() call.
        conn.pragma_update(None, "cache_size", -32_768).map_err(other)?;
        conn.pragma_update(None, "mmap_size", 256i64 << 20)
            .map_err(other)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(other)?;
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("sqlite-store".into())
            .spawn(move || serve(&mut conn, &cipher, &queue))
            .map_err(|e| StoreError::Other(format!("cannot start the database thread: {e}")))?;
        Ok(SqliteStore { jobs, path })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection, &ContentCipher) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |conn, cipher| {
            let result = f(conn, cipher);
            let ok = result.is_ok();
            let reply: Reply = Box::new(move |committed| {
                let _ = reply.send(committed.and(result));
            });
            (ok, reply)
        });
        self.jobs
            .send(job)
            .map_err(|_| StoreError::Unavailable("the database thread has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Other("the database thread dropped a query".into()))?
    }
}

/// The database thread: runs jobs until the store (every sender) is dropped.
fn serve(conn: &mut Connection, cipher: &ContentCipher, queue: &mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(GROUP_COMMIT);
    let mut replies = Vec::with_capacity(GROUP_COMMIT);
    while let Ok(first) = queue.recv() {
        batch.push(first);
        while batch.len() < GROUP_COMMIT {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        // One job commits on its own (its savepoint is its transaction).
        let grouped = batch.len() > 1
            && exec(conn, "BEGIN IMMEDIATE")
                .inspect_err(|e| {
                    tracing::warn!(
                        queries = batch.len(),
                        "cannot group queries in a transaction: {e}"
                    )
                })
                .is_ok();
        for job in batch.drain(..) {
            replies.push(atomically(conn, cipher, job));
        }
        let committed = if grouped {
            exec(conn, "COMMIT").map_err(|e| {
                let _ = exec(conn, "ROLLBACK");
                tracing::warn!(queries = replies.len(), "cannot commit: {e}");
                StoreError::Unavailable(format!("cannot commit: {e}"))
            })
        } else {
            Ok(())
        };
        for (reply, released) in replies.drain(..) {
            reply(released.and(committed.clone()));
        }
    }
}

/// Runs a job inside a savepoint: everything it wrote stays if it
/// succeeded, nothing if it failed. Returns its reply and how the
/// savepoint was released (committed, for a job outside a transaction).
fn atomically(conn: &mut Connection, cipher: &ContentCipher, job: Job) -> (Reply, Result<(), StoreError>) {
    let began = exec(conn, "SAVEPOINT job");
    let (ok, reply) = job(conn, cipher);
    if began.is_err() {
        return (reply, Ok(()));
    }
    let released = if ok {
        exec(conn, "RELEASE job")
    } else {
        exec(conn, "ROLLBACK TO job").and_then(|()| exec(conn, "RELEASE job"))
    };
    (
        reply,
        released.map_err(|e| StoreError::Unavailable(format!("cannot commit: {e}"))),
    )
}

/// Runs a statement without results, prepared once.
fn exec(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(drop)
}

const SESSION_COLUMNS: &str = "id, user_id, name, name_key_id, model_id, start_time, last_activity, end_time, \
    duration, is_active, help_requested, admin_assisted, assisting_admin_id, assisting_admin_name, total_tokens, \
    message_count, response_count, total_response_ms, avg_response_time, max_response_time, total_first_token_ms, \
    avg_first_token_time, help_requested_at";

fn session_from_row(row: &Row<'_>, cipher: &ContentCipher) -> Result<SessionRecord, StoreError> {
    let get = |e: rusqlite::Error| StoreError::Corrupt(e.to_string());
    let id: String = row.get(0).map_err(get)?;
    let sealed = Sealed {
        text: row.get(2).map_err(get)?,
        key_id: row.get(3).map_err(get)?,
    };
    let name = cipher
        .open(&sealed, &session_context(&id))
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(SessionRecord {
        user_id: row.get(1).map_err(get)?,
        name,
        model_id: row.get(4).map_err(get)?,
        start_time: ts(row.get(5).map_err(get)?),
        last_activity: ts(row.get(6).map_err(get)?),
        end_time: row.get::<_, Option<i64>>(7).map_err(get)?.map(ts),
        duration_s: row.get::<_, Option<i64>>(8).map_err(get)?.map(u),
        is_active: row.get(9).map_err(get)?,
        help_requested: row.get(10).map_err(get)?,
        help_requested_at: row.get::<_, Option<i64>>(22).map_err(get)?.map(ts),
        admin_assisted: row.get(11).map_err(get)?,
        assisting_admin_id: row.get(12).map_err(get)?,
        assisting_admin_name: row.get(13).map_err(get)?,
        counters: SessionCounters {
            total_tokens: u(row.get(14).map_err(get)?),
            message_count: u(row.get(15).map_err(get)?),
            response_count: u(row.get(16).map_err(get)?),
            total_response_ms: u(row.get(17).map_err(get)?),
            avg_response_ms: u(row.get(18).map_err(get)?),
            max_response_ms: u(row.get(19).map_err(get)?),
            total_first_token_ms: u(row.get(20).map_err(get)?),
            avg_first_token_ms: u(row.get(21).map_err(get)?),
        },
        id,
    })
}

const MESSAGE_COLUMNS: &str = "session_id, seq, message_id, client_id, sender, type, content, key_id, file_id, model_id, timestamp, metadata, tokens";

fn message_from_row(row: &Row<'_>, cipher: &ContentCipher) -> Result<MessageRecord, StoreError> {
    let get = |e: rusqlite::Error| StoreError::Corrupt(e.to_string());
    let session_id: String = row.get(0).map_err(get)?;
    let message_id: String = row.get(2).map_err(get)?;
    let sealed = Sealed {
        text: row.get(6).map_err(get)?,
        key_id: row.get(7).map_err(get)?,
    };
    let content = cipher
        .open(&sealed, &message_context(&session_id, &message_id))
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let sender: String = row.get(4).map_err(get)?;
    let kind: String = row.get(5).map_err(get)?;
    let metadata: Option<String> = row.get(11).map_err(get)?;
    Ok(MessageRecord {
        seq: u(row.get(1).map_err(get)?),
        client_id: row.get(3).map_err(get)?,
        sender: serde_json::from_value(serde_json::Value::String(sender))
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        kind: MessageType::from_wire(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown type {kind:?}")))?,
        content,
        file_id: row.get(8).map_err(get)?,
        model_id: row.get(9).map_err(get)?,
        timestamp: ts(row.get(10).map_err(get)?),
        metadata: metadata
            .map(|m| serde_json::from_str::<Metadata>(&m))
            .transpose()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        tokens: row.get::<_, Option<i64>>(12).map_err(get)?.map(u),
        session_id,
        message_id,
    })
}

fn collect<T>(
    stmt: &mut rusqlite::Statement<'_>,
    params: impl rusqlite::Params,
    cipher: &ContentCipher,
    map: fn(&Row<'_>, &ContentCipher) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut rows = stmt.query(params).map_err(other)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(other)? {
        out.push(map(row, cipher)?);
    }
    Ok(out)
}

fn sender_name(sender: Sender) -> &'static str {
    sender.as_str()
}

/// Applies a patch in one statement.
fn apply_patch(
    conn: &Connection,
    cipher: &ContentCipher,
    id: &str,
    patch: &SessionPatch,
) -> Result<(), StoreError> {
    let mut sets: Vec<&str> = Vec::new();
    let mut values: Vec<rusqlite::types::Value> = vec![id.to_owned().into()];
    let mut push = |set: &'static str, value: rusqlite::types::Value| {
        sets.push(set);
        values.push(value);
    };
    if let Some(t) = patch.last_activity {
        push("last_activity", ms(t).into());
    }
    if let Some(name) = &patch.name {
        let sealed = cipher.seal(name, &session_context(id));
        push("name", sealed.text.into());
        push("name_key_id", sealed.key_id.into());
    }
    if let Some(c) = patch.counters {
        push("total_tokens", n(c.total_tokens).into());
        push("message_count", n(c.message_count).into());
        push("response_count", n(c.response_count).into());
        push("total_response_ms", n(c.total_response_ms).into());
        push("avg_response_time", n(c.avg_response_ms).into());
        push("max_response_time", n(c.max_response_ms).into());
        push("total_first_token_ms", n(c.total_first_token_ms).into());
        push("avg_first_token_time", n(c.avg_first_token_ms).into());
    }
    if let Some(model) = &patch.model_id {
        push("model_id", model.clone().into());
    }
    if let Some(active) = patch.is_active {
        push("is_active", i64::from(active).into());
    }
    if let Some(t) = patch.help_requested_at {
        push("help_requested", 1i64.into());
        push("help_requested_at", ms(t).into());
    }
    if let Some(assisted) = patch.admin_assisted {
        push("admin_assisted", i64::from(assisted).into());
    }
    if let Some(admin) = &patch.assisting_admin {
        let (id, name) = admin.as_ref().map(|a| (a.id.clone(), a.name.clone())).unzip();
        push("assisting_admin_id", id.into());
        push("assisting_admin_name", name.into());
    }
    if sets.is_empty() {
        return Ok(());
    }
    let assignments: Vec<String> = sets
        .iter()
        .enumerate()
        .map(|(i, s)| format!("{s} = ?{}", i + 2))
        .collect();
    let sql = format!("UPDATE sessions SET {} WHERE id = ?1", assignments.join(", "));
    conn.prepare_cached(&sql)
        .and_then(|mut stmt| stmt.execute(rusqlite::params_from_iter(values)))
        .map_err(other)?;
    Ok(())
}

/// Inserts a message once.
fn insert_message(
    conn: &Connection,
    cipher: &ContentCipher,
    m: &MessageRecord,
) -> Result<Appended, StoreError> {
    let key = format!("{}/{}", m.session_id, m.message_id);
    let content = cipher.seal(&m.content, &message_context(&m.session_id, &m.message_id));
    let metadata = m
        .metadata
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(other)?;
    let result = conn
        .prepare_cached(&format!(
            "INSERT INTO messages (id, {MESSAGE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
        ))
        .and_then(|mut stmt| {
            stmt.execute(params![
                key,
                m.session_id,
                n(m.seq),
                m.message_id,
                m.client_id,
                sender_name(m.sender),
                m.kind.as_str(),
                content.text,
                content.key_id,
                m.file_id,
                m.model_id,
                ms(m.timestamp),
                metadata,
                m.tokens.map(n)
            ])
        });
    match result {
        Ok(_) => Ok(Appended::Inserted),
        Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::ConstraintViolation => {
            let same_id: bool = conn
                .query_row("SELECT 1 FROM messages WHERE id = ?1", params![key], |_| Ok(true))
                .optional()
                .map_err(other)?
                .unwrap_or(false);
            insert_conflict(m, same_id)
        }
        Err(e) => Err(other(e)),
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn adapter(&self) -> &'static str {
        "sqlite"
    }

    async fn prepare(&self) -> Result<(), StoreError> {
        self.run(|conn, _| migrate(conn).map_err(other)).await?;
        tracing::info!(path = %self.path.display(), "SQLite store ready");
        Ok(())
    }

    async fn check(&self) -> Result<(), StoreError> {
        self.run(|conn, _| {
            conn.query_row("SELECT 1", [], |_| Ok(()))
                .map_err(|e| StoreError::Unavailable(e.to_string()))
        })
        .await
    }

    async fn create_session(&self, s: &SessionRecord) -> Result<(), StoreError> {
        let s = s.clone();
        self.run(move |conn, cipher| {
            let name = cipher.seal(&s.name, &session_context(&s.id));
            let c = s.counters;
            conn.execute(
                &format!("INSERT INTO sessions ({SESSION_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23)"),
                params![
                    s.id, s.user_id, name.text, name.key_id, s.model_id, ms(s.start_time), ms(s.last_activity),
                    s.end_time.map(ms), s.duration_s.map(n), s.is_active, s.help_requested, s.admin_assisted,
                    s.assisting_admin_id, s.assisting_admin_name, n(c.total_tokens), n(c.message_count),
                    n(c.response_count), n(c.total_response_ms), n(c.avg_response_ms), n(c.max_response_ms),
                    n(c.total_first_token_ms), n(c.avg_first_token_ms), s.help_requested_at.map(ms)
                ],
            )
            .map_err(other)?;
            Ok(())
        })
        .await
    }

    async fn session(&self, id: &str) -> Result<Option<SessionRecord>, StoreError> {
        let id = id.to_owned();
        self.run(move |conn, cipher| select_session(conn, cipher, &id))
            .await
    }

    async fn update_session(&self, id: &str, patch: &SessionPatch) -> Result<(), StoreError> {
        let (id, patch) = (id.to_owned(), patch.clone());
        self.run(move |conn, cipher| apply_patch(conn, cipher, &id, &patch))
            .await
    }

    async fn end_session(&self, id: &str, at: Timestamp) -> Result<Option<SessionRecord>, StoreError> {
        let id = id.to_owned();
        self.run(move |conn, cipher| {
            let start: Option<i64> = conn
                .query_row(
                    "SELECT start_time FROM sessions WHERE id = ?1 AND is_active = 1",
                    params![id],
                    |r| r.get(0),
                )
                .optional()
                .map_err(other)?;
            if let Some(start) = start {
                conn.execute(
                    "UPDATE sessions SET is_active = 0, end_time = ?2, duration = ?3 WHERE id = ?1 AND is_active = 1",
                    params![id, ms(at), n(duration_s(ts(start), at))],
                )
                .map_err(other)?;
            }
            select_session(conn, cipher, &id)
        })
        .await
    }

    async fn user_sessions(
        &self,
        user_id: &str,
        limit: usize,
        after: Option<&SessionCursor>,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        let (user_id, after) = (user_id.to_owned(), after.cloned());
        self.run(move |conn, cipher| {
            let limit = n(limit as u64);
            match after {
                None => {
                    let mut stmt = conn
                        .prepare_cached(&format!(
                            "SELECT {SESSION_COLUMNS} FROM sessions WHERE user_id = ?1 \
                             ORDER BY last_activity DESC, id DESC LIMIT ?2"
                        ))
                        .map_err(other)?;
                    collect(&mut stmt, params![user_id, limit], cipher, session_from_row)
                }
                Some(c) => {
                    let mut stmt = conn
                        .prepare_cached(&format!(
                            "SELECT {SESSION_COLUMNS} FROM sessions WHERE user_id = ?1 \
                             AND (last_activity < ?2 OR (last_activity = ?2 AND id < ?3)) \
                             ORDER BY last_activity DESC, id DESC LIMIT ?4"
                        ))
                        .map_err(other)?;
                    collect(
                        &mut stmt,
                        params![user_id, ms(c.last_activity), c.id, limit],
                        cipher,
                        session_from_row,
                    )
                }
            }
        })
        .await
    }

    async fn stale_sessions(
        &self,
        before: Timestamp,
        limit: usize,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        self.run(move |conn, cipher| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {SESSION_COLUMNS} FROM sessions WHERE is_active = 1 AND last_activity < ?1 \
                     ORDER BY last_activity LIMIT ?2"
                ))
                .map_err(other)?;
            collect(
                &mut stmt,
                params![ms(before), n(limit as u64)],
                cipher,
                session_from_row,
            )
        })
        .await
    }

    async fn append_message(&self, m: &MessageRecord) -> Result<Appended, StoreError> {
        let m = m.clone();
        self.run(move |conn, cipher| insert_message(conn, cipher, &m))
            .await
    }

    async fn record_message(&self, m: &MessageRecord, patch: &SessionPatch) -> Result<Appended, StoreError> {
        let (m, patch) = (m.clone(), patch.clone());
        self.run(move |conn, cipher| {
            // Every job runs in a savepoint: both writes land, or neither.
            let appended = insert_message(conn, cipher, &m)?;
            apply_patch(conn, cipher, &m.session_id, &patch)?;
            Ok(appended)
        })
        .await
    }

    async fn turn_view(
        &self,
        session_id: &str,
        message_id: &str,
        answer_id: &str,
        context: usize,
    ) -> Result<Option<TurnView>, StoreError> {
        let (sid, mid, aid) = (session_id.to_owned(), message_id.to_owned(), answer_id.to_owned());
        self.run(move |conn, cipher| {
            let Some(session) = select_session(conn, cipher, &sid)? else {
                return Ok(None);
            };
            let user_message = select_message(conn, cipher, &sid, &mid)?;
            let answer = select_message(conn, cipher, &sid, &aid)?;
            let last_seq = select_last_seq(conn, &sid)?;
            let before = user_message.as_ref().map_or(last_seq + 1, |m| m.seq);
            let earlier = select_messages(conn, cipher, &sid, Around::Before(before), context)?;
            Ok(Some(TurnView {
                session,
                user_message,
                answer,
                last_seq,
                earlier,
            }))
        })
        .await
    }

    async fn message(&self, session_id: &str, message_id: &str) -> Result<Option<MessageRecord>, StoreError> {
        let (sid, mid) = (session_id.to_owned(), message_id.to_owned());
        self.run(move |conn, cipher| select_message(conn, cipher, &sid, &mid))
            .await
    }

    async fn last_seq(&self, session_id: &str) -> Result<u64, StoreError> {
        let sid = session_id.to_owned();
        self.run(move |conn, _| select_last_seq(conn, &sid)).await
    }

    async fn messages_after(
        &self,
        session_id: &str,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<MessageRecord>, StoreError> {
        let sid = session_id.to_owned();
        self.run(move |conn, cipher| select_messages(conn, cipher, &sid, Around::After(after_seq), limit))
            .await
    }

    async fn messages_before(
        &self,
        session_id: &str,
        before_seq: u64,
        limit: usize,
    ) -> Result<Vec<MessageRecord>, StoreError> {
        let sid = session_id.to_owned();
        self.run(move |conn, cipher| select_messages(conn, cipher, &sid, Around::Before(before_seq), limit))
            .await
    }

    async fn admin_sessions(&self, query: &AdminSessionQuery) -> Result<AdminSessionPage, StoreError> {
        let query = query.clone();
        self.run(move |conn, cipher| {
            let (filter, mut values) = admin_filter(&query);
            let total: i64 = conn
                .prepare_cached(&format!("SELECT COUNT(*) FROM sessions{filter}"))
                .and_then(|mut stmt| stmt.query_row(rusqlite::params_from_iter(values.clone()), |r| r.get(0)))
                .map_err(other)?;
            if query.limit == 0 {
                return Ok(AdminSessionPage {
                    sessions: Vec::new(),
                    total: u(total),
                });
            }
            // A column name from the enum, never from the caller.
            let column = query.sort.field();
            let direction = if query.descending { "DESC" } else { "ASC" };
            values.push(n(query.limit as u64).into());
            values.push(n(query.offset as u64).into());
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {SESSION_COLUMNS} FROM sessions{filter} \
                     ORDER BY {column} {direction}, id {direction} LIMIT ?{} OFFSET ?{}",
                    values.len() - 1,
                    values.len()
                ))
                .map_err(other)?;
            let sessions = collect(
                &mut stmt,
                rusqlite::params_from_iter(values),
                cipher,
                session_from_row,
            )?;
            Ok(AdminSessionPage {
                sessions,
                total: u(total),
            })
        })
        .await
    }

    async fn session_aggregates(
        &self,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<SessionAggregates, StoreError> {
        self.run(move |conn, _| {
            conn.prepare_cached(
                "SELECT COUNT(*), COALESCE(SUM(total_tokens), 0), COALESCE(SUM(response_count), 0), \
                 COALESCE(SUM(total_response_ms), 0), COALESCE(MAX(max_response_time), 0), \
                 COALESCE(SUM(admin_assisted), 0), COALESCE(SUM(help_requested), 0) \
                 FROM sessions WHERE start_time >= ?1 AND start_time < ?2",
            )
            .and_then(|mut stmt| {
                stmt.query_row(params![ms(from), ms(to)], |r| {
                    Ok(SessionAggregates {
                        total_sessions: u(r.get(0)?),
                        total_tokens: u(r.get(1)?),
                        response_count: u(r.get(2)?),
                        total_response_ms: u(r.get(3)?),
                        max_response_ms: u(r.get(4)?),
                        admin_assisted: u(r.get(5)?),
                        help_requests: u(r.get(6)?),
                    })
                })
            })
            .map_err(other)
        })
        .await
    }

    async fn active_session_count(&self) -> Result<u64, StoreError> {
        self.run(|conn, _| {
            conn.prepare_cached("SELECT COUNT(*) FROM sessions WHERE is_active = 1")
                .and_then(|mut stmt| stmt.query_row([], |r| r.get(0)))
                .map(u)
                .map_err(other)
        })
        .await
    }

    async fn start_takeover(&self, t: &TakeoverRecord) -> Result<(), StoreError> {
        let t = t.clone();
        self.run(move |conn, _| {
            conn.prepare_cached(&format!(
                "INSERT OR IGNORE INTO takeovers ({TAKEOVER_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
            ))
            .and_then(|mut stmt| {
                stmt.execute(params![
                    t.id,
                    t.session_id,
                    t.user_id,
                    t.admin.id,
                    t.admin.name,
                    ms(t.started_at),
                    t.ended_at.map(ms),
                    t.end_reason
                ])
            })
            .map(drop)
            .map_err(other)
        })
        .await
    }

    async fn end_takeover(
        &self,
        id: &str,
        ended_at: Timestamp,
        reason: &str,
    ) -> Result<Option<TakeoverRecord>, StoreError> {
        let (id, reason) = (id.to_owned(), reason.to_owned());
        self.run(move |conn, cipher| {
            let ended = conn
                .prepare_cached(
                    "UPDATE takeovers SET ended_at = ?2, end_reason = ?3 WHERE id = ?1 AND ended_at IS NULL",
                )
                .and_then(|mut stmt| stmt.execute(params![id, ms(ended_at), reason]))
                .map_err(other)?;
            if ended == 0 {
                return Ok(None);
            }
            let mut stmt = conn
                .prepare_cached(&format!("SELECT {TAKEOVER_COLUMNS} FROM takeovers WHERE id = ?1"))
                .map_err(other)?;
            Ok(collect(&mut stmt, params![id], cipher, takeover_from_row)?.pop())
        })
        .await
    }

    async fn takeovers(&self, session_id: &str) -> Result<Vec<TakeoverRecord>, StoreError> {
        let sid = session_id.to_owned();
        self.run(move |conn, cipher| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {TAKEOVER_COLUMNS} FROM takeovers WHERE session_id = ?1 ORDER BY started_at, id"
                ))
                .map_err(other)?;
            collect(&mut stmt, params![sid], cipher, takeover_from_row)
        })
        .await
    }

    async fn open_takeovers(&self, limit: usize) -> Result<Vec<TakeoverRecord>, StoreError> {
        self.run(move |conn, cipher| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {TAKEOVER_COLUMNS} FROM takeovers WHERE ended_at IS NULL \
                     ORDER BY started_at, id LIMIT ?1"
                ))
                .map_err(other)?;
            collect(&mut stmt, params![n(limit as u64)], cipher, takeover_from_row)
        })
        .await
    }

    async fn add_sample(&self, sample: &ConcurrencySample) -> Result<(), StoreError> {
        let sample = *sample;
        self.run(move |conn, _| {
            conn.prepare_cached(
                "INSERT INTO concurrency_samples (at, concurrent) VALUES (?1, ?2) \
                 ON CONFLICT (at) DO UPDATE SET concurrent = excluded.concurrent",
            )
            .and_then(|mut stmt| stmt.execute(params![ms(sample.at), n(sample.concurrent)]))
            .map(drop)
            .map_err(other)
        })
        .await
    }

    async fn samples(&self, from: Timestamp, to: Timestamp) -> Result<Vec<ConcurrencySample>, StoreError> {
        self.run(move |conn, cipher| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT at, concurrent FROM concurrency_samples WHERE at >= ?1 AND at < ?2 ORDER BY at",
                )
                .map_err(other)?;
            collect(&mut stmt, params![ms(from), ms(to)], cipher, sample_from_row)
        })
        .await
    }

    async fn create_file(&self, file: &FileRecord) -> Result<(), StoreError> {
        let f = file.clone();
        self.run(move |conn, cipher| {
            let name = cipher.seal(&f.name, &file_context(&f.id));
            let transcript = f
                .transcript
                .as_ref()
                .map(|t| cipher.seal(t, &transcript_context(&f.id)));
            let (transcript, transcript_key_id) = transcript.map(|t| (t.text, t.key_id)).unzip();
            conn.prepare_cached(&format!(
                "INSERT OR IGNORE INTO files ({FILE_COLUMNS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)"
            ))
            .and_then(|mut stmt| {
                stmt.execute(params![
                    f.id,
                    f.user_id,
                    f.session_id,
                    f.kind.as_str(),
                    f.status.as_str(),
                    name.text,
                    name.key_id,
                    f.declared_type,
                    f.media_type,
                    n(f.declared_size),
                    f.size.map(n),
                    f.key,
                    ms(f.created_at),
                    ms(f.expires_at),
                    f.reason,
                    transcript,
                    transcript_key_id.flatten(),
                    f.sha256
                ])
            })
            .map(drop)
            .map_err(other)
        })
        .await
    }

    async fn file(&self, id: &str) -> Result<Option<FileRecord>, StoreError> {
        let id = id.to_owned();
        self.run(move |conn, cipher| {
            let mut stmt = conn
                .prepare_cached(&format!("SELECT {FILE_COLUMNS} FROM files WHERE id = ?1"))
                .map_err(other)?;
            Ok(collect(&mut stmt, params![id], cipher, file_from_row)?.pop())
        })
        .await
    }

    async fn files(&self, ids: &[String]) -> Result<Vec<FileRecord>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        // The ids travel as one JSON array: one statement, prepared once,
        // whatever their number.
        let ids = serde_json::to_string(ids).map_err(other)?;
        self.run(move |conn, cipher| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {FILE_COLUMNS} FROM files WHERE id IN (SELECT value FROM json_each(?1))"
                ))
                .map_err(other)?;
            collect(&mut stmt, params![ids], cipher, file_from_row)
        })
        .await
    }

    async fn update_file(
        &self,
        id: &str,
        expected: FileStatus,
        patch: &FilePatch,
    ) -> Result<bool, StoreError> {
        let (id, patch) = (id.to_owned(), patch.clone());
        self.run(move |conn, cipher| {
            let mut sets: Vec<&str> = Vec::new();
            let mut values: Vec<rusqlite::types::Value> =
                vec![id.clone().into(), expected.as_str().to_owned().into()];
            let mut push = |set: &'static str, value: rusqlite::types::Value| {
                sets.push(set);
                values.push(value);
            };
            push("status", patch.status.as_str().to_owned().into());
            if let Some(media_type) = patch.media_type {
                push("media_type", media_type.into());
            }
            if let Some(size) = patch.size {
                push("size", n(size).into());
            }
            if let Some(key) = patch.key {
                push("object_key", key.into());
            }
            if let Some(reason) = patch.reason {
                push("reason", reason.into());
            }
            if let Some(transcript) = &patch.transcript {
                let sealed = cipher.seal(transcript, &transcript_context(&id));
                push("transcript", sealed.text.into());
                push("transcript_key_id", sealed.key_id.into());
            }
            if let Some(sha256) = patch.sha256 {
                push("sha256", sha256.into());
            }
            let assignments: Vec<String> = sets
                .iter()
                .enumerate()
                .map(|(i, s)| format!("{s} = ?{}", i + 3))
                .collect();
            let sql = format!(
                "UPDATE files SET {} WHERE id = ?1 AND status = ?2",
                assignments.join(", ")
            );
            let changed = conn
                .prepare_cached(&sql)
                .and_then(|mut stmt| stmt.execute(rusqlite::params_from_iter(values)))
                .map_err(other)?;
            Ok(changed > 0)
        })
        .await
    }

    async fn expired_slots(&self, before: Timestamp, limit: usize) -> Result<Vec<FileRecord>, StoreError> {
        self.run(move |conn, cipher| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {FILE_COLUMNS} FROM files WHERE status = ?1 AND expires_at < ?2 \
                     ORDER BY expires_at, id LIMIT ?3"
                ))
                .map_err(other)?;
            collect(
                &mut stmt,
                params![FileStatus::Pending.as_str(), ms(before), n(limit as u64)],
                cipher,
                file_from_row,
            )
        })
        .await
    }
}

/// The `WHERE` clause of an admin session query (empty if it filters
/// nothing) and the values bound to its placeholders, in order: user input
/// only ever reaches the database as a bound value.
fn admin_filter(q: &AdminSessionQuery) -> (String, Vec<rusqlite::types::Value>) {
    let mut conditions: Vec<String> = Vec::new();
    let mut values: Vec<rusqlite::types::Value> = Vec::new();
    let mut push = |condition: &str, value: rusqlite::types::Value| {
        values.push(value);
        conditions.push(format!("{condition} ?{}", values.len()));
    };
    if let Some(user) = &q.user_id {
        push("user_id =", user.clone().into());
    }
    if let Some(active) = q.active {
        push("is_active =", i64::from(active).into());
    }
    if let Some(help) = q.help_requested {
        push("help_requested =", i64::from(help).into());
    }
    if let Some(assisted) = q.admin_assisted {
        push("admin_assisted =", i64::from(assisted).into());
    }
    if let Some(from) = q.started_from {
        push("start_time >=", ms(from).into());
    }
    if let Some(to) = q.started_to {
        push("start_time <", ms(to).into());
    }
    if conditions.is_empty() {
        (String::new(), values)
    } else {
        (format!(" WHERE {}", conditions.join(" AND ")), values)
    }
}

const TAKEOVER_COLUMNS: &str =
    "id, session_id, user_id, admin_id, admin_name, started_at, ended_at, end_reason";

fn takeover_from_row(row: &Row<'_>, _: &ContentCipher) -> Result<TakeoverRecord, StoreError> {
    let get = |e: rusqlite::Error| StoreError::Corrupt(e.to_string());
    Ok(TakeoverRecord {
        id: row.get(0).map_err(get)?,
        session_id: row.get(1).map_err(get)?,
        user_id: row.get(2).map_err(get)?,
        admin: AdminRef {
            id: row.get(3).map_err(get)?,
            name: row.get(4).map_err(get)?,
        },
        started_at: ts(row.get(5).map_err(get)?),
        ended_at: row.get::<_, Option<i64>>(6).map_err(get)?.map(ts),
        end_reason: row.get(7).map_err(get)?,
    })
}

const FILE_COLUMNS: &str = "id, user_id, session_id, kind, status, name, name_key_id, declared_type, \
    media_type, declared_size, size, object_key, created_at, expires_at, reason, transcript, transcript_key_id, sha256";

fn file_from_row(row: &Row<'_>, cipher: &ContentCipher) -> Result<FileRecord, StoreError> {
    let get = |e: rusqlite::Error| StoreError::Corrupt(e.to_string());
    let id: String = row.get(0).map_err(get)?;
    let name = Sealed {
        text: row.get(5).map_err(get)?,
        key_id: row.get(6).map_err(get)?,
    };
    let name = cipher
        .open(&name, &file_context(&id))
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let transcript = match row.get::<_, Option<String>>(15).map_err(get)? {
        Some(text) => {
            let sealed = Sealed {
                text,
                key_id: row.get(16).map_err(get)?,
            };
            Some(
                cipher
                    .open(&sealed, &transcript_context(&id))
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            )
        }
        None => None,
    };
    let kind: String = row.get(3).map_err(get)?;
    let status: String = row.get(4).map_err(get)?;
    Ok(FileRecord {
        user_id: row.get(1).map_err(get)?,
        session_id: row.get(2).map_err(get)?,
        kind: FileKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown file kind {kind:?}")))?,
        status: FileStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown file status {status:?}")))?,
        name,
        declared_type: row.get(7).map_err(get)?,
        media_type: row.get(8).map_err(get)?,
        declared_size: u(row.get(9).map_err(get)?),
        size: row.get::<_, Option<i64>>(10).map_err(get)?.map(u),
        key: row.get(11).map_err(get)?,
        created_at: ts(row.get(12).map_err(get)?),
        expires_at: ts(row.get(13).map_err(get)?),
        reason: row.get(14).map_err(get)?,
        transcript,
        sha256: row.get(17).map_err(get)?,
        id,
    })
}

fn sample_from_row(row: &Row<'_>, _: &ContentCipher) -> Result<ConcurrencySample, StoreError> {
    let get = |e: rusqlite::Error| StoreError::Corrupt(e.to_string());
    Ok(ConcurrencySample {
        at: ts(row.get(0).map_err(get)?),
        concurrent: u(row.get(1).map_err(get)?),
    })
}

fn select_session(
    conn: &Connection,
    cipher: &ContentCipher,
    id: &str,
) -> Result<Option<SessionRecord>, StoreError> {
    let mut stmt = conn
        .prepare_cached(&format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = ?1"))
        .map_err(other)?;
    Ok(collect(&mut stmt, params![id], cipher, session_from_row)?.pop())
}

fn select_message(
    conn: &Connection,
    cipher: &ContentCipher,
    session_id: &str,
    message_id: &str,
) -> Result<Option<MessageRecord>, StoreError> {
    let mut stmt = conn
        .prepare_cached(&format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?1"))
        .map_err(other)?;
    let key = format!("{session_id}/{message_id}");
    Ok(collect(&mut stmt, params![key], cipher, message_from_row)?.pop())
}

fn select_last_seq(conn: &Connection, session_id: &str) -> Result<u64, StoreError> {
    let seq: Option<i64> = conn
        .prepare_cached("SELECT MAX(seq) FROM messages WHERE session_id = ?1")
        .and_then(|mut stmt| stmt.query_row(params![session_id], |r| r.get(0)))
        .map_err(other)?;
    Ok(seq.map(u).unwrap_or(0))
}

/// Which messages of a session, relative to a sequence number.
enum Around {
    /// Those after it, oldest first.
    After(u64),
    /// Those before it, newest first.
    Before(u64),
}

fn select_messages(
    conn: &Connection,
    cipher: &ContentCipher,
    session_id: &str,
    around: Around,
    limit: usize,
) -> Result<Vec<MessageRecord>, StoreError> {
    let (sql, seq) = match around {
        Around::After(seq) => ("seq > ?2 ORDER BY seq", seq),
        Around::Before(seq) => ("seq < ?2 ORDER BY seq DESC", seq),
    };
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE session_id = ?1 AND {sql} LIMIT ?3"
        ))
        .map_err(other)?;
    collect(
        &mut stmt,
        params![session_id, n(seq), n(limit as u64)],
        cipher,
        message_from_row,
    )
}

impl SqliteStore {
    /// The stored content of a message, exactly as the file holds it
    /// (tests check that it is not plaintext).
    pub async fn raw_content(
        &self,
        session_id: &str,
        message_id: &str,
    ) -> Result<Option<String>, StoreError> {
        let key = format!("{session_id}/{message_id}");
        self.run(move |conn, _| {
            conn.query_row("SELECT content FROM messages WHERE id = ?1", params![key], |r| {
                r.get(0)
            })
            .optional()
            .map_err(other)
        })
        .await
    }

    /// A file's stored row, every column rendered as text, exactly as the
    /// file holds it (tests check that no plaintext is in it).
    pub async fn raw_file(&self, id: &str) -> Result<Option<String>, StoreError> {
        let id = id.to_owned();
        self.run(move |conn, _| {
            conn.query_row(
                &format!("SELECT {FILE_COLUMNS} FROM files WHERE id = ?1"),
                params![id],
                |r| {
                    let mut columns = Vec::new();
                    for i in 0..r.as_ref().column_count() {
                        columns.push(format!("{:?}", r.get::<_, rusqlite::types::Value>(i)?));
                    }
                    Ok(columns.join(", "))
                },
            )
            .optional()
            .map_err(other)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SessionSort;

    /// A database as `version` of the schema left it, holding what
    /// `insert` wrote.
    fn database_at_version(version: usize, insert: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("chatbox-migrate-{:016x}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let conn = Connection::open(dir.join("chatbox.db")).unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        for step in &MIGRATIONS[..version - 1] {
            conn.execute_batch(step).unwrap();
        }
        conn.execute_batch(&format!("PRAGMA user_version = {version}"))
            .unwrap();
        conn.execute(insert, []).unwrap();
        dir
    }

    fn user_version(dir: &Path) -> usize {
        let version: i64 = Connection::open(dir.join("chatbox.db"))
            .unwrap()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        usize::try_from(version).unwrap()
    }

    #[tokio::test]
    async fn a_version_1_database_is_migrated_and_keeps_its_sessions() {
        let dir = database_at_version(
            1,
            "INSERT INTO sessions (id, user_id, name, start_time, last_activity, is_active, response_count, \
             total_response_ms, avg_response_time) VALUES ('s1', 'u1', 'old', 1, 2, 1, 2, 900, 450)",
        );
        let cipher = Arc::new(ContentCipher::plaintext());
        let store = SqliteStore::open(&dir, Arc::clone(&cipher)).unwrap();
        store.prepare().await.unwrap();
        store.prepare().await.unwrap();
        let mut old = store.session("s1").await.unwrap().expect("kept");
        assert_eq!((old.name.as_str(), old.counters.avg_response_ms), ("old", 450));
        assert_eq!(old.counters.avg_first_token_ms, 0);
        old.counters.add_answer(10, 300, 120);
        let patch = SessionPatch {
            counters: Some(old.counters),
            model_id: Some("claude".into()),
            ..SessionPatch::default()
        };
        store.update_session("s1", &patch).await.unwrap();
        let new = store.session("s1").await.unwrap().unwrap();
        assert_eq!(new.counters.avg_first_token_ms, 40, "120 ms over three answers");
        assert_eq!(new.model_id.as_deref(), Some("claude"));
        assert_eq!(user_version(&dir), MIGRATIONS.len() + 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_version_2_database_is_migrated_and_keeps_its_sessions() {
        let dir = database_at_version(
            2,
            "INSERT INTO sessions (id, user_id, name, start_time, last_activity, is_active, help_requested, \
             admin_assisted, total_tokens, response_count, total_response_ms, avg_response_time, \
             max_response_time, total_first_token_ms, avg_first_token_time) \
             VALUES ('s2', 'u2', 'kept', 10, 20, 1, 1, 1, 70, 2, 900, 450, 600, 300, 150)",
        );
        let store = SqliteStore::open(&dir, Arc::new(ContentCipher::plaintext())).unwrap();
        store.prepare().await.unwrap();
        store.prepare().await.unwrap();
        let old = store.session("s2").await.unwrap().expect("kept");
        assert_eq!(old.name, "kept");
        assert!(old.help_requested && old.admin_assisted);
        assert_eq!(old.help_requested_at, None, "not known before version 3");
        assert_eq!(
            (old.counters.avg_first_token_ms, old.counters.max_response_ms),
            (150, 600)
        );

        // What version 3 added works on the old rows.
        let patch = SessionPatch {
            help_requested_at: Some(Timestamp::from_millis(30)),
            assisting_admin: Some(Some(AdminRef {
                id: "a1".into(),
                name: "Ada".into(),
            })),
            ..SessionPatch::default()
        };
        store.update_session("s2", &patch).await.unwrap();
        let new = store.session("s2").await.unwrap().unwrap();
        assert_eq!(new.help_requested_at, Some(Timestamp::from_millis(30)));
        assert_eq!(new.assisting_admin_name.as_deref(), Some("Ada"));
        let query = AdminSessionQuery {
            help_requested: Some(true),
            sort: SessionSort::Tokens,
            limit: 10,
            ..AdminSessionQuery::default()
        };
        let page = store.admin_sessions(&query).await.unwrap();
        assert_eq!((page.total, page.sessions), (1, vec![new]));
        let totals = store
            .session_aggregates(Timestamp::from_millis(0), Timestamp::from_millis(100))
            .await
            .unwrap();
        assert_eq!((totals.total_sessions, totals.total_tokens), (1, 70));
        let sample = ConcurrencySample {
            at: Timestamp::from_millis(40),
            concurrent: 1,
        };
        store.add_sample(&sample).await.unwrap();
        assert_eq!(
            store
                .samples(Timestamp::from_millis(0), Timestamp::from_millis(100))
                .await
                .unwrap(),
            [sample]
        );
        assert_eq!(store.open_takeovers(10).await.unwrap(), []);
        assert_eq!(user_version(&dir), MIGRATIONS.len() + 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_version_3_database_is_migrated_and_stores_files() {
        let dir = database_at_version(
            3,
            "INSERT INTO takeovers (id, session_id, user_id, admin_id, admin_name, started_at) \
             VALUES ('t1', 's3', 'u3', 'a1', 'Ada', 10)",
        );
        let store = SqliteStore::open(&dir, Arc::new(ContentCipher::new(Some([3u8; 32]), &[]))).unwrap();
        store.prepare().await.unwrap();
        store.prepare().await.unwrap();
        assert_eq!(store.open_takeovers(10).await.unwrap().len(), 1, "kept");

        // What version 4 added works.
        let file = FileRecord {
            id: "f1".into(),
            user_id: "u3".into(),
            session_id: "s3".into(),
            kind: FileKind::Voice,
            status: FileStatus::Pending,
            name: "note.ogg".into(),
            declared_type: "audio/ogg".into(),
            media_type: None,
            declared_size: 2048,
            size: None,
            key: "u3/f1".into(),
            created_at: Timestamp::from_millis(20),
            expires_at: Timestamp::from_millis(30),
            reason: None,
            transcript: None,
            sha256: None,
        };
        store.create_file(&file).await.unwrap();
        assert_eq!(store.file("f1").await.unwrap(), Some(file.clone()));
        assert_eq!(
            store.expired_slots(Timestamp::from_millis(31), 10).await.unwrap(),
            [file]
        );
        assert_eq!(user_version(&dir), MIGRATIONS.len() + 1);
        assert_eq!(user_version(&dir), 4);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
