//! The `messages` table: one row per message, keyed by
//! `<session id>/<message id>` so that a redelivered message is stored
//! once, unique on `(session_id, seq)`, its content sealed. A turn's
//! reads run as one job (only the messages its caller does not hold are
//! read), and a turn's messages are stored together with its session's new
//! counters in one savepoint.

use chatbox_shared::protocol::{MessageType, Metadata, Sender};
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::sessions::{apply_patch, select_session};
use super::{SqliteStore, collect, ms, n, other, ts, u};
use crate::store::cipher::{ContentCipher, Sealed};
use crate::store::{
    Appended, MessageRecord, SessionPatch, StoreError, TurnQuery, TurnView, insert_conflict, message_context,
};

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

pub(super) async fn append_message(store: &SqliteStore, m: &MessageRecord) -> Result<Appended, StoreError> {
    let m = m.clone();
    store
        .run(move |conn, cipher| insert_message(conn, cipher, &m))
        .await
}

pub(super) async fn record_message(
    store: &SqliteStore,
    m: &MessageRecord,
    patch: &SessionPatch,
) -> Result<Appended, StoreError> {
    let (m, patch) = (m.clone(), patch.clone());
    store
        .run(move |conn, cipher| {
            // Every job runs in a savepoint: both writes land, or neither.
            let appended = insert_message(conn, cipher, &m)?;
            apply_patch(conn, cipher, &m.session_id, &patch)?;
            Ok(appended)
        })
        .await
}

/// A turn's writes as one job, so one commit: the user's message (once),
/// its answer (once) and the session's new totals.
pub(super) async fn record_turn(
    store: &SqliteStore,
    question: Option<&MessageRecord>,
    answer: &MessageRecord,
    patch: &SessionPatch,
) -> Result<Appended, StoreError> {
    let (question, answer, patch) = (question.cloned(), answer.clone(), patch.clone());
    store
        .run(move |conn, cipher| {
            if let Some(question) = &question {
                insert_message(conn, cipher, question)?;
            }
            let appended = insert_message(conn, cipher, &answer)?;
            apply_patch(conn, cipher, &answer.session_id, &patch)?;
            Ok(appended)
        })
        .await
}

/// A turn's reads as one job: only the messages after `known_upto` are
/// read and decrypted.
pub(super) async fn turn_view(
    store: &SqliteStore,
    q: &TurnQuery<'_>,
) -> Result<Option<TurnView>, StoreError> {
    let (sid, mid, aid) = (
        q.session_id.to_owned(),
        q.message_id.to_owned(),
        q.answer_id.to_owned(),
    );
    let (context, known_upto) = (q.context, q.known_upto);
    store
        .run(move |conn, cipher| {
            let Some(session) = select_session(conn, cipher, &sid)? else {
                return Ok(None);
            };
            let user_message = select_message(conn, cipher, &sid, &mid)?;
            let answer = select_message(conn, cipher, &sid, &aid)?;
            let last_seq = select_last_seq(conn, &sid)?;
            let newer = select_messages(conn, cipher, &sid, Around::Newest { after: known_upto }, context)?;
            Ok(Some(TurnView {
                session,
                user_message,
                answer,
                last_seq,
                newer,
            }))
        })
        .await
}

pub(super) async fn message(
    store: &SqliteStore,
    session_id: &str,
    message_id: &str,
) -> Result<Option<MessageRecord>, StoreError> {
    let (sid, mid) = (session_id.to_owned(), message_id.to_owned());
    store
        .run(move |conn, cipher| select_message(conn, cipher, &sid, &mid))
        .await
}

pub(super) async fn last_seq(store: &SqliteStore, session_id: &str) -> Result<u64, StoreError> {
    let sid = session_id.to_owned();
    store.run(move |conn, _| select_last_seq(conn, &sid)).await
}

pub(super) async fn messages_after(
    store: &SqliteStore,
    session_id: &str,
    after_seq: u64,
    limit: usize,
) -> Result<Vec<MessageRecord>, StoreError> {
    let sid = session_id.to_owned();
    store
        .run(move |conn, cipher| select_messages(conn, cipher, &sid, Around::After(after_seq), limit))
        .await
}

pub(super) async fn messages_before(
    store: &SqliteStore,
    session_id: &str,
    before_seq: u64,
    limit: usize,
) -> Result<Vec<MessageRecord>, StoreError> {
    let sid = session_id.to_owned();
    store
        .run(move |conn, cipher| select_messages(conn, cipher, &sid, Around::Before(before_seq), limit))
        .await
}

fn sender_name(sender: Sender) -> &'static str {
    sender.as_str()
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
    /// The newest of those after it, newest first.
    Newest { after: u64 },
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
        Around::Newest { after } => ("seq > ?2 ORDER BY seq DESC", after),
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
}
