//! The `sessions` collection: one document per session (`_id` = the
//! session id), its name sealed. Updates `$set` what the patch names;
//! a user's sessions page by a range on `last_activity` without `$or`, and
//! the admin console's list and totals are a filtered, sorted page and an
//! aggregation.

use chatbox_shared::protocol::Timestamp;
use futures_util::TryStreamExt;
use mongodb::bson::{Bson, Document, doc};

use super::fields::Fields;
use super::{MongoStore, classify, date, find, find_page, n};
use crate::store::cipher::Sealed;
use crate::store::{
    AdminSessionPage, AdminSessionQuery, SessionAggregates, SessionCounters, SessionCursor, SessionPatch,
    SessionRecord, Store, StoreError, duration_s, session_context,
};

/// Sessions of one user that may share the cursor's millisecond.
const TIE_ALLOWANCE: usize = 64;

impl MongoStore {
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

    async fn find_sessions(
        &self,
        filter: Document,
        sort: Document,
        limit: usize,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        let docs = find(&self.sessions, filter, sort, limit).await?;
        docs.iter().map(|d| self.session_from(d)).collect()
    }
}

pub(super) async fn create_session(store: &MongoStore, session: &SessionRecord) -> Result<(), StoreError> {
    store
        .sessions
        .insert_one(store.session_doc(session))
        .await
        .map(|_| ())
        .map_err(classify)
}

pub(super) async fn session(store: &MongoStore, id: &str) -> Result<Option<SessionRecord>, StoreError> {
    let found = store
        .sessions
        .find_one(doc! { "_id": id })
        .await
        .map_err(classify)?;
    found.as_ref().map(|d| store.session_from(d)).transpose()
}

pub(super) async fn update_session(
    store: &MongoStore,
    id: &str,
    patch: &SessionPatch,
) -> Result<(), StoreError> {
    let mut set = Document::new();
    if let Some(t) = patch.last_activity {
        set.insert("last_activity", date(t));
    }
    if let Some(name) = &patch.name {
        let sealed = store.cipher.seal(name, &session_context(id));
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
    store
        .sessions
        .update_one(doc! { "_id": id }, doc! { "$set": set })
        .await
        .map(|_| ())
        .map_err(classify)
}

pub(super) async fn end_session(
    store: &MongoStore,
    id: &str,
    at: Timestamp,
) -> Result<Option<SessionRecord>, StoreError> {
    let Some(session) = store.session(id).await? else {
        return Ok(None);
    };
    if !session.is_active {
        return Ok(Some(session));
    }
    store
        .sessions
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
    store.session(id).await
}

pub(super) async fn user_sessions(
    store: &MongoStore,
    user_id: &str,
    limit: usize,
    after: Option<&SessionCursor>,
) -> Result<Vec<SessionRecord>, StoreError> {
    // Sessions up to the cursor's time, then those not after the cursor
    // dropped here: one range condition, no `$or`, and exact paging even
    // when several sessions share a millisecond.
    let Some(c) = after else {
        return store
            .find_sessions(
                doc! { "user_id": user_id },
                doc! { "last_activity": -1, "_id": -1 },
                limit,
            )
            .await;
    };
    let filter = doc! { "user_id": user_id, "last_activity": { "$lte": date(c.last_activity) } };
    let candidates = store
        .find_sessions(
            filter,
            doc! { "last_activity": -1, "_id": -1 },
            limit + TIE_ALLOWANCE,
        )
        .await?;
    Ok(candidates
        .into_iter()
        .filter(|s| s.last_activity < c.last_activity || (s.last_activity == c.last_activity && s.id < c.id))
        .take(limit)
        .collect())
}

pub(super) async fn stale_sessions(
    store: &MongoStore,
    before: Timestamp,
    limit: usize,
) -> Result<Vec<SessionRecord>, StoreError> {
    store
        .find_sessions(
            doc! { "is_active": true, "last_activity": { "$lt": date(before) } },
            doc! { "last_activity": 1 },
            limit,
        )
        .await
}

pub(super) async fn admin_sessions(
    store: &MongoStore,
    query: &AdminSessionQuery,
) -> Result<AdminSessionPage, StoreError> {
    let filter = admin_filter(query);
    let direction = if query.descending { -1 } else { 1 };
    let mut sort = Document::new();
    sort.insert(query.sort.field(), direction);
    sort.insert("_id", direction);
    let (total, docs) = futures_util::try_join!(
        async {
            store
                .sessions
                .count_documents(filter.clone())
                .await
                .map_err(classify)
        },
        find_page(&store.sessions, filter.clone(), sort, query.offset, query.limit),
    )?;
    let sessions = docs
        .iter()
        .map(|d| store.session_from(d))
        .collect::<Result<_, _>>()?;
    Ok(AdminSessionPage { sessions, total })
}

pub(super) async fn session_aggregates(
    store: &MongoStore,
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
    let totals = store
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

pub(super) async fn active_session_count(store: &MongoStore) -> Result<u64, StoreError> {
    store
        .sessions
        .count_documents(doc! { "is_active": true })
        .await
        .map_err(classify)
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
