//! The `sessions` table: one row per session, its name sealed, its
//! counters in columns of their own so that the admin console can filter,
//! sort and total them in SQL.

use chatbox_shared::protocol::Timestamp;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{SqliteStore, collect, ms, n, other, ts, u};
use crate::store::cipher::{ContentCipher, Sealed};
use crate::store::{
    AdminSessionPage, AdminSessionQuery, SessionAggregates, SessionCounters, SessionCursor, SessionPatch,
    SessionRecord, StoreError, duration_s, session_context,
};

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

pub(super) async fn create_session(store: &SqliteStore, s: &SessionRecord) -> Result<(), StoreError> {
    let s = s.clone();
    store.run(move |conn, cipher| {
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

pub(super) async fn session(store: &SqliteStore, id: &str) -> Result<Option<SessionRecord>, StoreError> {
    let id = id.to_owned();
    store
        .run(move |conn, cipher| select_session(conn, cipher, &id))
        .await
}

pub(super) async fn update_session(
    store: &SqliteStore,
    id: &str,
    patch: &SessionPatch,
) -> Result<(), StoreError> {
    let (id, patch) = (id.to_owned(), patch.clone());
    store
        .run(move |conn, cipher| apply_patch(conn, cipher, &id, &patch))
        .await
}

pub(super) async fn end_session(
    store: &SqliteStore,
    id: &str,
    at: Timestamp,
) -> Result<Option<SessionRecord>, StoreError> {
    let id = id.to_owned();
    store.run(move |conn, cipher| {
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

pub(super) async fn user_sessions(
    store: &SqliteStore,
    user_id: &str,
    limit: usize,
    after: Option<&SessionCursor>,
) -> Result<Vec<SessionRecord>, StoreError> {
    let (user_id, after) = (user_id.to_owned(), after.cloned());
    store
        .run(move |conn, cipher| {
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

pub(super) async fn stale_sessions(
    store: &SqliteStore,
    before: Timestamp,
    limit: usize,
) -> Result<Vec<SessionRecord>, StoreError> {
    store
        .run(move |conn, cipher| {
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

pub(super) async fn admin_sessions(
    store: &SqliteStore,
    query: &AdminSessionQuery,
) -> Result<AdminSessionPage, StoreError> {
    let query = query.clone();
    store
        .run(move |conn, cipher| {
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

pub(super) async fn session_aggregates(
    store: &SqliteStore,
    from: Timestamp,
    to: Timestamp,
) -> Result<SessionAggregates, StoreError> {
    store
        .run(move |conn, _| {
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

pub(super) async fn active_session_count(store: &SqliteStore) -> Result<u64, StoreError> {
    store
        .run(|conn, _| {
            conn.prepare_cached("SELECT COUNT(*) FROM sessions WHERE is_active = 1")
                .and_then(|mut stmt| stmt.query_row([], |r| r.get(0)))
                .map(u)
                .map_err(other)
        })
        .await
}

pub(super) fn select_session(
    conn: &Connection,
    cipher: &ContentCipher,
    id: &str,
) -> Result<Option<SessionRecord>, StoreError> {
    let mut stmt = conn
        .prepare_cached(&format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = ?1"))
        .map_err(other)?;
    Ok(collect(&mut stmt, params![id], cipher, session_from_row)?.pop())
}

/// Applies a patch in one statement.
pub(super) fn apply_patch(
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
