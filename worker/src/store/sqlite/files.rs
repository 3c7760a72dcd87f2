//! The `files` table: one row per uploaded or generated file, its name
//! and transcript sealed. A status change is a compare and set on
//! `status`, so an upload being accepted and the sweep of its expired
//! slot cannot both win.

use chatbox_shared::protocol::Timestamp;
use rusqlite::{OptionalExtension, Row, params};

use super::{SqliteStore, collect, ms, n, other, ts, u};
use crate::store::cipher::{ContentCipher, Sealed};
use crate::store::{
    FileKind, FilePatch, FileRecord, FileStatus, StoreError, file_context, transcript_context,
};

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

pub(super) async fn create_file(store: &SqliteStore, file: &FileRecord) -> Result<(), StoreError> {
    let f = file.clone();
    store
        .run(move |conn, cipher| {
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

pub(super) async fn file(store: &SqliteStore, id: &str) -> Result<Option<FileRecord>, StoreError> {
    let id = id.to_owned();
    store
        .run(move |conn, cipher| {
            let mut stmt = conn
                .prepare_cached(&format!("SELECT {FILE_COLUMNS} FROM files WHERE id = ?1"))
                .map_err(other)?;
            Ok(collect(&mut stmt, params![id], cipher, file_from_row)?.pop())
        })
        .await
}

pub(super) async fn files(store: &SqliteStore, ids: &[String]) -> Result<Vec<FileRecord>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    // The ids travel as one JSON array: one statement, prepared once,
    // whatever their number.
    let ids = serde_json::to_string(ids).map_err(other)?;
    store
        .run(move |conn, cipher| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {FILE_COLUMNS} FROM files WHERE id IN (SELECT value FROM json_each(?1))"
                ))
                .map_err(other)?;
            collect(&mut stmt, params![ids], cipher, file_from_row)
        })
        .await
}

pub(super) async fn update_file(
    store: &SqliteStore,
    id: &str,
    expected: FileStatus,
    patch: &FilePatch,
) -> Result<bool, StoreError> {
    let (id, patch) = (id.to_owned(), patch.clone());
    store
        .run(move |conn, cipher| {
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

pub(super) async fn expired_slots(
    store: &SqliteStore,
    before: Timestamp,
    limit: usize,
) -> Result<Vec<FileRecord>, StoreError> {
    store
        .run(move |conn, cipher| {
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

impl SqliteStore {
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
