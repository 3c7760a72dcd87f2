//! The `takeovers` collection: the audit log of admins taking sessions
//! over, `_id` = the takeover id so that one is recorded once; ending
//! matches `ended_at: null`, so of many calls one ends it.

use chatbox_shared::protocol::Timestamp;
use mongodb::bson::{Bson, Document, doc};

use super::fields::Fields;
use super::{MongoStore, classify, date, find, is_duplicate_key};
use crate::store::{AdminRef, StoreError, TakeoverRecord};

pub(super) async fn start_takeover(store: &MongoStore, t: &TakeoverRecord) -> Result<(), StoreError> {
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
    match store.takeovers.insert_one(document).await {
        Ok(_) => Ok(()),
        Err(e) if is_duplicate_key(&e) => Ok(()),
        Err(e) => Err(classify(e)),
    }
}

pub(super) async fn end_takeover(
    store: &MongoStore,
    id: &str,
    ended_at: Timestamp,
    reason: &str,
) -> Result<Option<TakeoverRecord>, StoreError> {
    // `ended_at: null` matches only a takeover not ended yet, so one
    // call of many ends it; the read comes after (no find_one_and_update).
    let ended = store
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
    let found = store
        .takeovers
        .find_one(doc! { "_id": id })
        .await
        .map_err(classify)?;
    found.as_ref().map(takeover_from).transpose()
}

pub(super) async fn takeovers(
    store: &MongoStore,
    session_id: &str,
) -> Result<Vec<TakeoverRecord>, StoreError> {
    let docs = find(
        &store.takeovers,
        doc! { "session_id": session_id },
        doc! { "started_at": 1, "_id": 1 },
        usize::MAX,
    )
    .await?;
    docs.iter().map(takeover_from).collect()
}

pub(super) async fn open_takeovers(
    store: &MongoStore,
    limit: usize,
) -> Result<Vec<TakeoverRecord>, StoreError> {
    let docs = find(
        &store.takeovers,
        doc! { "ended_at": Bson::Null },
        doc! { "started_at": 1, "_id": 1 },
        limit,
    )
    .await?;
    docs.iter().map(takeover_from).collect()
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
