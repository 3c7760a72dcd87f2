//! The SQLite schema: the tables as version 1 created them, and the
//! migrations since, in order. The database's `user_version` says how many
//! it has, so opening an older file brings it up to date, all or nothing,
//! and keeps its rows.

use rusqlite::Connection;

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
pub(super) fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(SCHEMA)?;
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let done = usize::try_from(version.saturating_sub(1)).unwrap_or(0);
    for (i, step) in MIGRATIONS.iter().enumerate().skip(done) {
        conn.execute_batch(step)?;
        conn.execute_batch(&format!("PRAGMA user_version = {}", i + 2))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};
    use std::sync::Arc;

    use chatbox_shared::protocol::Timestamp;
    use rusqlite::Connection;

    use super::*;
    use crate::store::sqlite::SqliteStore;
    use crate::store::{
        AdminRef, AdminSessionQuery, ConcurrencySample, ContentCipher, FileKind, FileRecord, FileStatus,
        SessionPatch, SessionSort, Store,
    };

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
        // A temporary folder left behind is harmless.
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
        // A temporary folder left behind is harmless.
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
        // A temporary folder left behind is harmless.
        let _ = std::fs::remove_dir_all(&dir);
    }
}
