//! The `messages` collection: one document per message, `_id` =
//! `<session id>/<message id>` so that a redelivered message is stored
//! once, unique on `(session_id, seq)`, its content sealed. A turn reads
//! in one round trip (its finds in flight together) and writes in two (its
//! messages in one ordered insert, then its session).

use chatbox_shared::protocol::{MessageType, Metadata, Sender};
use mongodb::bson::{Document, doc};

use mongodb::error::ErrorKind;

use super::fields::Fields;
use super::sessions::update_session;
use super::{MongoStore, classify, date, find, is_duplicate_key, n};
use crate::store::cipher::Sealed;
use crate::store::{
    Appended, MessageRecord, SessionPatch, Store, StoreError, TurnQuery, TurnView, insert_conflict,
    message_context,
};

impl MongoStore {
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

pub(super) async fn append_message(
    store: &MongoStore,
    message: &MessageRecord,
) -> Result<Appended, StoreError> {
    match store.messages.insert_one(store.message_doc(message)?).await {
        Ok(_) => Ok(Appended::Inserted),
        Err(e) if is_duplicate_key(&e) => {
            let stored = store.message(&message.session_id, &message.message_id).await?;
            insert_conflict(message, stored.is_some())
        }
        Err(e) => Err(classify(e)),
    }
}

/// A turn's messages in one ordered insert, then its session's totals. A
/// message stored before (a redelivered turn) is left as it is: the
/// messages are then stored one by one, each once.
pub(super) async fn record_turn(
    store: &MongoStore,
    question: Option<&MessageRecord>,
    answer: &MessageRecord,
    patch: &SessionPatch,
) -> Result<Appended, StoreError> {
    let docs = match question {
        Some(q) => vec![store.message_doc(q)?, store.message_doc(answer)?],
        None => vec![store.message_doc(answer)?],
    };
    let appended = match store.messages.insert_many(docs).ordered(true).await {
        Ok(_) => Appended::Inserted,
        Err(e) if is_duplicate_insert(&e) => {
            if let Some(q) = question {
                append_message(store, q).await?;
            }
            append_message(store, answer).await?
        }
        Err(e) => return Err(classify(e)),
    };
    update_session(store, &answer.session_id, patch).await?;
    Ok(appended)
}

/// Whether an insert of several documents was refused because one of
/// them is taken (its `_id`, or its `(session_id, seq)`).
fn is_duplicate_insert(e: &mongodb::error::Error) -> bool {
    match e.kind.as_ref() {
        ErrorKind::InsertMany(failure) => failure.write_errors.iter().flatten().any(|w| w.code == 11000),
        _ => is_duplicate_key(e),
    }
}

/// A turn's reads, in flight together: the session, its message and
/// answer (one find), the last sequence number and the newest messages
/// after those the caller holds.
pub(super) async fn turn_view(store: &MongoStore, q: &TurnQuery<'_>) -> Result<Option<TurnView>, StoreError> {
    let sid = q.session_id;
    let ids = [
        format!("{sid}/{}", q.message_id),
        format!("{sid}/{}", q.answer_id),
    ];
    let (session, own, last_seq, newer) = futures_util::try_join!(
        store.session(sid),
        find(
            &store.messages,
            doc! { "_id": { "$in": ids.to_vec() } },
            doc! {},
            2
        ),
        last_seq(store, sid),
        store.find_messages(
            doc! { "session_id": sid, "seq": { "$gt": n(q.known_upto) } },
            doc! { "seq": -1 },
            q.context,
        ),
    )?;
    let Some(session) = session else {
        return Ok(None);
    };
    let (mut user_message, mut answer) = (None, None);
    for d in &own {
        let m = store.message_from(d)?;
        if m.message_id == q.message_id {
            user_message = Some(m);
        } else {
            answer = Some(m);
        }
    }
    Ok(Some(TurnView {
        session,
        user_message,
        answer,
        last_seq,
        newer,
    }))
}

pub(super) async fn message(
    store: &MongoStore,
    session_id: &str,
    message_id: &str,
) -> Result<Option<MessageRecord>, StoreError> {
    let found = store.raw_message(session_id, message_id).await?;
    found.as_ref().map(|d| store.message_from(d)).transpose()
}

pub(super) async fn last_seq(store: &MongoStore, session_id: &str) -> Result<u64, StoreError> {
    let last = store
        .messages
        .find_one(doc! { "session_id": session_id })
        .sort(doc! { "seq": -1 })
        .await
        .map_err(classify)?;
    Ok(last.map(|d| Fields(&d).uint("seq")).unwrap_or(0))
}

pub(super) async fn messages_after(
    store: &MongoStore,
    session_id: &str,
    after_seq: u64,
    limit: usize,
) -> Result<Vec<MessageRecord>, StoreError> {
    store
        .find_messages(
            doc! { "session_id": session_id, "seq": { "$gt": n(after_seq) } },
            doc! { "seq": 1 },
            limit,
        )
        .await
}

pub(super) async fn messages_before(
    store: &MongoStore,
    session_id: &str,
    before_seq: u64,
    limit: usize,
) -> Result<Vec<MessageRecord>, StoreError> {
    store
        .find_messages(
            doc! { "session_id": session_id, "seq": { "$lt": n(before_seq) } },
            doc! { "seq": -1 },
            limit,
        )
        .await
}
