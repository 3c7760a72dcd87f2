//! The SQLite adapter of the store: one file under `data_dir`, for the
//! all-in-one (one process, so one writer).
//!
//! One thread owns the connection (WAL mode) and runs every query in
//! order: no lock to contend for, and no task of the async runtime ever
//! blocks on the database. Each job runs inside its own savepoint, so one
//! that fails leaves nothing behind; jobs that queue up while the thread
//! is busy run together in one transaction (group commit), and their
//! callers hear back once that transaction is committed.
//!
//! The schema and its migrations are in `schema`, the thread in `thread`;
//! each table's queries are in a file named after it (`sessions`,
//! `messages`, `takeovers`, `samples`, `files`), and the [`Store`]
//! implementation here hands every operation to its table's file.

mod files;
mod messages;
mod samples;
mod schema;
mod sessions;
mod takeovers;
mod thread;

use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};

use async_trait::async_trait;
use chatbox_shared::protocol::Timestamp;
use rusqlite::{Connection, Row};

use super::cipher::ContentCipher;
use super::{
    AdminSessionPage, AdminSessionQuery, Appended, ConcurrencySample, FilePatch, FileRecord, FileStatus,
    MessageRecord, SessionAggregates, SessionCursor, SessionPatch, SessionRecord, Store, StoreError,
    TakeoverRecord, TurnQuery, TurnView,
};
use schema::migrate;
use thread::{Job, Reply, serve};

/// The SQLite [`Store`].
pub struct SqliteStore {
    jobs: mpsc::Sender<Job>,
    path: PathBuf,
}

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

/// Makes the database file readable by this user only (0600), before
/// SQLite opens it: SQLite gives its journal and WAL files the mode of the
/// database. A database made by an older version is restricted too.
fn keep_private(path: &Path) -> Result<(), StoreError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let failed = |e: std::io::Error| {
            StoreError::Unavailable(format!(
                "cannot make {} private to this user: {e}",
                path.display()
            ))
        };
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(failed)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(failed)?;
        for suffix in ["-wal", "-shm"] {
            let side = path.with_file_name(format!("chatbox.db{suffix}"));
            match std::fs::set_permissions(&side, std::fs::Permissions::from_mode(0o600)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(failed(e)),
                _ => {}
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

impl SqliteStore {
    /// Opens (creating if needed) `chatbox.db` under `dir`. One thread owns
    /// the connection and runs every query, in order: no lock to contend
    /// for, and no task of the async runtime ever blocks on the database.
    pub fn open(dir: &Path, cipher: Arc<ContentCipher>) -> Result<Self, StoreError> {
        let mut folders = std::fs::DirBuilder::new();
        folders.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut folders, 0o700);
        folders
            .create(dir)
            .map_err(|e| StoreError::Unavailable(format!("cannot create {}: {e}", dir.display())))?;
        let path = dir.join("chatbox.db");
        keep_private(&path)?;
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
                // The caller may have gone (its turn was cancelled); the
                // write stands either way.
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
        sessions::create_session(self, s).await
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

    async fn append_message(&self, m: &MessageRecord) -> Result<Appended, StoreError> {
        messages::append_message(self, m).await
    }

    async fn record_message(&self, m: &MessageRecord, patch: &SessionPatch) -> Result<Appended, StoreError> {
        messages::record_message(self, m, patch).await
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
