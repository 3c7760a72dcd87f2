//! The `takeovers` table: the audit log of admins taking sessions over,
//! one row per takeover (recorded once by its id), ended at most once.

use chatbox_shared::protocol::Timestamp;
use rusqlite::{Row, params};

use super::{SqliteStore, collect, ms, n, other, ts};
use crate::store::cipher::ContentCipher;
use crate::store::{AdminRef, StoreError, TakeoverRecord};

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

pub(super) async fn start_takeover(store: &SqliteStore, t: &TakeoverRecord) -> Result<(), StoreError> {
    let t = t.clone();
    store
        .run(move |conn, _| {
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

pub(super) async fn end_takeover(
    store: &SqliteStore,
    id: &str,
    ended_at: Timestamp,
    reason: &str,
) -> Result<Option<TakeoverRecord>, StoreError> {
    let (id, reason) = (id.to_owned(), reason.to_owned());
    store
        .run(move |conn, cipher| {
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

pub(super) async fn takeovers(
    store: &SqliteStore,
    session_id: &str,
) -> Result<Vec<TakeoverRecord>, StoreError> {
    let sid = session_id.to_owned();
    store
        .run(move |conn, cipher| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {TAKEOVER_COLUMNS} FROM takeovers WHERE session_id = ?1 ORDER BY started_at, id"
                ))
                .map_err(other)?;
            collect(&mut stmt, params![sid], cipher, takeover_from_row)
        })
        .await
}

pub(super) async fn open_takeovers(
    store: &SqliteStore,
    limit: usize,
) -> Result<Vec<TakeoverRecord>, StoreError> {
    store
        .run(move |conn, cipher| {
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
