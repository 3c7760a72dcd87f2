//! One conformance suite for the `Store` port, run against both adapters:
//! SQLite (always) and MongoDB at `CHATBOX_TEST_MONGO_URI` — the nx-27017
//! stand-in that `scripts/test.sh` starts, or any real server — each test
//! in a database of its own.

// A test harness: a failed unwrap is a failed test, with its place.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, unreachable_pub)]

use std::sync::Arc;
use std::time::Duration;

use chatbox_shared::protocol::{MessageType, Metadata, Sender, Timestamp};
use chatbox_worker::store::{
    AdminRef, AdminSessionQuery, Appended, ConcurrencySample, ContentCipher, FileKind, FilePatch, FileRecord,
    FileStatus, MessageRecord, MongoOptions, MongoStore, SessionAggregates, SessionCounters, SessionCursor,
    SessionPatch, SessionRecord, SessionSort, SqliteStore, Store, StoreError, TakeoverRecord, TurnQuery,
};

const KEY: [u8; 32] = [42u8; 32];

fn mongo_uri() -> String {
    std::env::var("CHATBOX_TEST_MONGO_URI").unwrap_or_else(|_| {
        panic!("CHATBOX_TEST_MONGO_URI is not set: start the MongoDB stand-in (scripts/test.sh does) or point it at a server")
    })
}

enum Fixture {
    Sqlite(Arc<SqliteStore>, std::path::PathBuf),
    Mongo(Arc<MongoStore>),
}

impl Fixture {
    async fn sqlite(cipher: ContentCipher) -> Self {
        let dir = std::env::temp_dir().join(format!("chatbox-store-{:016x}", rand::random::<u64>()));
        Self::sqlite_at(dir, cipher).await
    }

    async fn sqlite_at(dir: std::path::PathBuf, cipher: ContentCipher) -> Self {
        let store = SqliteStore::open(&dir, Arc::new(cipher)).expect("open sqlite");
        store.prepare().await.expect("schema");
        store.prepare().await.expect("schema again (idempotent)");
        Fixture::Sqlite(Arc::new(store), dir)
    }

    async fn mongo(database: &str, cipher: ContentCipher) -> Self {
        let store = MongoStore::connect(
            MongoOptions {
                uri: mongo_uri(),
                database: database.to_owned(),
                app_name: "store-conformance".into(),
                server_timeout: Duration::from_secs(5),
                index_timeout: Duration::from_secs(10),
            },
            Arc::new(cipher),
        )
        .await
        .expect("mongo");
        store.prepare().await.expect("indexes");
        store.prepare().await.expect("indexes again (idempotent)");
        Fixture::Mongo(Arc::new(store))
    }

    fn store(&self) -> &dyn Store {
        match self {
            Fixture::Sqlite(s, _) => s.as_ref(),
            Fixture::Mongo(s) => s.as_ref(),
        }
    }

    async fn raw_content(&self, session_id: &str, message_id: &str) -> String {
        match self {
            Fixture::Sqlite(s, _) => s.raw_content(session_id, message_id).await.unwrap().unwrap(),
            Fixture::Mongo(s) => {
                let doc = s.raw_message(session_id, message_id).await.unwrap().unwrap();
                // The whole document, so plaintext anywhere in it is caught.
                doc.to_string()
            }
        }
    }

    /// A file's stored record, whole, exactly as the database holds it.
    async fn raw_file(&self, id: &str) -> String {
        match self {
            Fixture::Sqlite(s, _) => s.raw_file(id).await.unwrap().unwrap(),
            Fixture::Mongo(s) => s.raw_file(id).await.unwrap().unwrap().to_string(),
        }
    }

    async fn cleanup(self) {
        match self {
            Fixture::Sqlite(_, dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Fixture::Mongo(s) => s.drop_database().await.expect("drop database"),
        }
    }
}

fn database() -> String {
    format!("chatbox_test_{:08x}", rand::random::<u32>())
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let f = super::Fixture::sqlite(super::ContentCipher::new(Some(super::KEY), &[])).await;
                    super::$name(&f).await;
                    f.cleanup().await;
                }
            )*
        }
        mod mongo {
            $(
                #[tokio::test]
                async fn $name() {
                    let f = super::Fixture::mongo(&super::database(), super::ContentCipher::new(Some(super::KEY), &[])).await;
                    super::$name(&f).await;
                    f.cleanup().await;
                }
            )*
        }
    };
}

conformance!(
    sessions_round_trip_update_and_end_once,
    user_sessions_page_by_last_activity,
    stale_sessions_are_the_active_ones_left_alone,
    messages_are_stored_once_in_sequence,
    content_and_names_are_encrypted_at_rest,
    a_turn_reads_its_view_and_records_with_its_session,
    a_turn_reads_only_the_context_it_does_not_hold_and_records_in_one_call,
    concurrent_writes_each_land_or_fail_alone,
    admin_sessions_filter_by_each_field,
    admin_sessions_sort_each_way_with_ties_by_id,
    admin_sessions_pages_visit_every_session_once,
    session_aggregates_cover_the_sessions_started_in_the_period,
    active_sessions_are_counted_until_they_end,
    patches_set_and_clear_help_and_assistance,
    takeovers_are_recorded_once_and_ended_once,
    samples_are_replaced_at_the_same_time_and_read_by_range,
    files_are_stored_once_and_read_back,
    file_updates_apply_only_from_the_expected_status,
    file_names_and_transcripts_are_encrypted_at_rest,
    files_are_looked_up_together,
    expired_slots_are_the_pending_files_oldest_first,
);

fn at(ms: u64) -> Timestamp {
    Timestamp::from_millis(1_700_000_000_000 + ms)
}

fn message(session: &str, seq: u64, id: &str, content: &str) -> MessageRecord {
    MessageRecord {
        session_id: session.into(),
        seq,
        message_id: id.into(),
        client_id: Some(format!("client-{id}")),
        sender: if seq % 2 == 1 { Sender::User } else { Sender::Ai },
        kind: if seq % 2 == 1 {
            MessageType::UserMessage
        } else {
            MessageType::AiResponse
        },
        content: content.into(),
        file_id: None,
        model_id: seq.is_multiple_of(2).then(|| "demo".to_owned()),
        timestamp: at(seq * 1000),
        metadata: seq
            .is_multiple_of(2)
            .then(|| Metadata::from([("completion_tokens".to_owned(), "12".to_owned())])),
        tokens: seq.is_multiple_of(2).then_some(20),
    }
}

async fn sessions_round_trip_update_and_end_once(f: &Fixture) {
    let store = f.store();
    let mut s = SessionRecord::new("s-1", "ann", at(0));
    s.name = "Trip to Lisbon".into();
    store.create_session(&s).await.unwrap();
    assert_eq!(store.session("s-1").await.unwrap(), Some(s.clone()));
    assert_eq!(store.session("nope").await.unwrap(), None);

    let counters = SessionCounters {
        message_count: 2,
        total_tokens: 30,
        response_count: 1,
        total_response_ms: 800,
        avg_response_ms: 800,
        max_response_ms: 800,
        total_first_token_ms: 300,
        avg_first_token_ms: 300,
    };
    store
        .update_session(
            "s-1",
            &SessionPatch {
                last_activity: Some(at(5_000)),
                name: Some("Lisbon, renamed".into()),
                counters: Some(counters),
                model_id: Some("claude".into()),
                ..SessionPatch::default()
            },
        )
        .await
        .unwrap();
    let got = store.session("s-1").await.unwrap().unwrap();
    assert_eq!(got.name, "Lisbon, renamed");
    assert_eq!(got.model_id.as_deref(), Some("claude"));
    assert_eq!(got.last_activity, at(5_000));
    assert_eq!(got.counters, counters);
    assert!(got.is_active);

    let ended = store.end_session("s-1", at(65_000)).await.unwrap().unwrap();
    assert!(!ended.is_active);
    assert_eq!(ended.end_time, Some(at(65_000)));
    assert_eq!(ended.duration_s, Some(65));
    let again = store.end_session("s-1", at(99_000)).await.unwrap().unwrap();
    assert_eq!(
        again.end_time,
        Some(at(65_000)),
        "ending twice keeps the first end"
    );
    assert_eq!(store.end_session("nope", at(1)).await.unwrap(), None);
}

async fn user_sessions_page_by_last_activity(f: &Fixture) {
    let store = f.store();
    for (id, last) in [("a", 10), ("b", 40), ("c", 20), ("d", 40), ("e", 30)] {
        let mut s = SessionRecord::new(id, "ann", at(0));
        s.last_activity = at(last);
        store.create_session(&s).await.unwrap();
    }
    store
        .create_session(&SessionRecord::new("other", "bob", at(50)))
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut cursor: Option<SessionCursor> = None;
    loop {
        let page = store.user_sessions("ann", 2, cursor.as_ref()).await.unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 2);
        let last = page.last().unwrap();
        cursor = Some(SessionCursor {
            last_activity: last.last_activity,
            id: last.id.clone(),
        });
        let encoded = cursor.as_ref().unwrap().encode();
        assert_eq!(
            SessionCursor::decode(&encoded),
            cursor,
            "cursors survive a round trip"
        );
        seen.extend(page.into_iter().map(|s| s.id));
    }
    assert_eq!(seen, ["d", "b", "e", "c", "a"], "most recent first, ties by id");
}

async fn stale_sessions_are_the_active_ones_left_alone(f: &Fixture) {
    let store = f.store();
    let mut old = SessionRecord::new("old", "ann", at(0));
    old.last_activity = at(1_000);
    let mut recent = SessionRecord::new("recent", "bob", at(0));
    recent.last_activity = at(900_000);
    let mut ended = SessionRecord::new("ended", "cid", at(0));
    ended.last_activity = at(1_000);
    for s in [&old, &recent, &ended] {
        store.create_session(s).await.unwrap();
    }
    store.end_session("ended", at(2_000)).await.unwrap();
    let stale = store.stale_sessions(at(600_000), 10).await.unwrap();
    assert_eq!(stale.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["old"]);
}

async fn messages_are_stored_once_in_sequence(f: &Fixture) {
    let store = f.store();
    assert_eq!(store.last_seq("s").await.unwrap(), 0);
    for seq in 1..=5 {
        let m = message("s", seq, &format!("m{seq}"), &format!("text {seq}"));
        assert_eq!(store.append_message(&m).await.unwrap(), Appended::Inserted);
    }
    // The same message again (a redelivered turn) is not stored twice …
    let again = message("s", 6, "m3", "text 3");
    assert_eq!(
        store.append_message(&again).await.unwrap(),
        Appended::AlreadyStored
    );
    // … and another message cannot take a used position.
    let clash = message("s", 4, "other", "clash");
    assert!(matches!(
        store.append_message(&clash).await,
        Err(StoreError::SeqTaken { seq: 4, .. })
    ));
    // Message ids are per session.
    assert_eq!(
        store.append_message(&message("t", 1, "m1", "x")).await.unwrap(),
        Appended::Inserted
    );

    assert_eq!(store.last_seq("s").await.unwrap(), 5);
    let after: Vec<u64> = store
        .messages_after("s", 2, 10)
        .await
        .unwrap()
        .iter()
        .map(|m| m.seq)
        .collect();
    assert_eq!(after, [3, 4, 5]);
    let before: Vec<u64> = store
        .messages_before("s", 4, 2)
        .await
        .unwrap()
        .iter()
        .map(|m| m.seq)
        .collect();
    assert_eq!(before, [3, 2], "newest first");
    assert_eq!(store.messages_after("s", 0, 2).await.unwrap().len(), 2, "limit");
    let m2 = store.message("s", "m2").await.unwrap().unwrap();
    assert_eq!(m2, message("s", 2, "m2", "text 2"), "every field round-trips");
    assert_eq!(store.message("s", "missing").await.unwrap(), None);
}

async fn content_and_names_are_encrypted_at_rest(f: &Fixture) {
    let store = f.store();
    let mut s = SessionRecord::new("enc", "ann", at(0));
    s.name = "my medical question".into();
    store.create_session(&s).await.unwrap();
    let m = message("enc", 1, "m1", "the plaintext secret 12345");
    store.append_message(&m).await.unwrap();
    let raw = f.raw_content("enc", "m1").await;
    assert!(!raw.contains("plaintext secret"), "stored: {raw}");
    assert!(!raw.contains("12345"), "stored: {raw}");
    assert_eq!(
        store.message("enc", "m1").await.unwrap().unwrap().content,
        m.content
    );
    assert_eq!(
        store.session("enc").await.unwrap().unwrap().name,
        "my medical question"
    );
}

/// Keys rotate: a store opened with a new key and the old one reads what
/// the old key wrote; without the old key it refuses, loudly.
#[tokio::test]
async fn sqlite_reads_old_keys_after_rotation() {
    let dir = std::env::temp_dir().join(format!("chatbox-rotate-{:016x}", rand::random::<u64>()));
    let first = Fixture::sqlite_at(dir.clone(), ContentCipher::new(Some([1u8; 32]), &[])).await;
    first
        .store()
        .append_message(&message("r", 1, "m1", "before rotation"))
        .await
        .unwrap();
    drop(first);
    let rotated = Fixture::sqlite_at(dir.clone(), ContentCipher::new(Some([2u8; 32]), &[[1u8; 32]])).await;
    rotated
        .store()
        .append_message(&message("r", 2, "m2", "after rotation"))
        .await
        .unwrap();
    let texts: Vec<String> = rotated
        .store()
        .messages_after("r", 0, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.content)
        .collect();
    assert_eq!(texts, ["before rotation", "after rotation"]);
    drop(rotated);
    let forgot = Fixture::sqlite_at(dir.clone(), ContentCipher::new(Some([2u8; 32]), &[])).await;
    let err = forgot.store().messages_after("r", 0, 10).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Corrupt(ref m) if m.contains("not configured")),
        "{err}"
    );
    forgot.cleanup().await;
}

#[tokio::test]
async fn mongo_reads_old_keys_after_rotation() {
    let db = database();
    let first = Fixture::mongo(&db, ContentCipher::new(Some([1u8; 32]), &[])).await;
    first
        .store()
        .append_message(&message("r", 1, "m1", "before rotation"))
        .await
        .unwrap();
    let rotated = Fixture::mongo(&db, ContentCipher::new(Some([2u8; 32]), &[[1u8; 32]])).await;
    let got = rotated.store().message("r", "m1").await.unwrap().unwrap();
    assert_eq!(got.content, "before rotation");
    rotated.cleanup().await;
}

/// A turn's query: message `m`, answer `a`, `context` newest messages
/// after `known_upto`.
fn turn<'a>(session_id: &'a str, m: &'a str, a: &'a str, context: usize, known_upto: u64) -> TurnQuery<'a> {
    TurnQuery {
        session_id,
        message_id: m,
        answer_id: a,
        context,
        known_upto,
    }
}

async fn a_turn_reads_its_view_and_records_with_its_session(f: &Fixture) {
    let store = f.store();
    assert_eq!(
        store.turn_view(&turn("none", "m", "a", 10, 0)).await.unwrap(),
        None
    );
    store
        .create_session(&SessionRecord::new("s", "ann", at(0)))
        .await
        .unwrap();
    for seq in 1..=4 {
        store
            .append_message(&message("s", seq, &format!("m{seq}"), &format!("text {seq}")))
            .await
            .unwrap();
    }

    // A first attempt: nothing of this turn is stored yet.
    let view = store
        .turn_view(&turn("s", "m5", "a5", 3, 0))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(view.session.id, "s");
    assert_eq!((view.user_message, view.answer, view.last_seq), (None, None, 4));
    let seqs: Vec<u64> = view.newer.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, [4, 3, 2], "newest first, within the limit");

    // The message and the session's new totals, together.
    let mut counters = view.session.counters;
    counters.message_count = 5;
    let patch = SessionPatch {
        last_activity: Some(at(9_000)),
        name: Some("Named by the first message".into()),
        counters: Some(counters),
        ..SessionPatch::default()
    };
    let user = message("s", 5, "m5", "text 5");
    assert_eq!(
        store.record_message(&user, &patch).await.unwrap(),
        Appended::Inserted
    );
    let session = store.session("s").await.unwrap().unwrap();
    assert_eq!(
        (
            session.name.as_str(),
            session.counters.message_count,
            session.last_activity
        ),
        ("Named by the first message", 5, at(9_000))
    );
    // Recorded again (a redelivery): stored once, the patch applied again.
    assert_eq!(
        store.record_message(&user, &patch).await.unwrap(),
        Appended::AlreadyStored
    );
    assert_eq!(store.last_seq("s").await.unwrap(), 5);

    // A redelivered turn sees its stored message and answer among the
    // newest.
    let mut answer = message("s", 6, "a5", "answer 5");
    answer.client_id = None;
    store.append_message(&answer).await.unwrap();
    let view = store
        .turn_view(&turn("s", "m5", "a5", 10, 0))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(view.user_message, Some(user));
    assert_eq!(view.answer, Some(answer));
    assert_eq!(view.last_seq, 6);
    let seqs: Vec<u64> = view.newer.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, [6, 5, 4, 3, 2, 1]);

    // A failed write leaves the session as it was.
    let clash = message("s", 6, "other", "clash");
    let untouched = SessionPatch {
        name: Some("must not land".into()),
        ..SessionPatch::default()
    };
    assert!(matches!(
        store.record_message(&clash, &untouched).await,
        Err(StoreError::SeqTaken { seq: 6, .. })
    ));
    assert_eq!(
        store.session("s").await.unwrap().unwrap().name,
        "Named by the first message"
    );
}

/// A turn that holds the session's messages up to `known_upto` reads only
/// those after it; its question, its answer and the session's totals are
/// stored in one call, each message once.
async fn a_turn_reads_only_the_context_it_does_not_hold_and_records_in_one_call(f: &Fixture) {
    let store = f.store();
    store
        .create_session(&SessionRecord::new("s", "ann", at(0)))
        .await
        .unwrap();
    for seq in 1..=4 {
        store
            .append_message(&message("s", seq, &format!("m{seq}"), &format!("text {seq}")))
            .await
            .unwrap();
    }
    let view = store
        .turn_view(&turn("s", "m5", "a5", 10, 2))
        .await
        .unwrap()
        .unwrap();
    let seqs: Vec<u64> = view.newer.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, [4, 3], "only what the caller does not hold, newest first");
    assert_eq!(view.last_seq, 4);
    let held = store
        .turn_view(&turn("s", "m5", "a5", 10, 4))
        .await
        .unwrap()
        .unwrap();
    assert!(held.newer.is_empty(), "the caller holds everything");

    // The question and its answer with the session's totals, in one call.
    let question = message("s", 5, "m5", "question 5");
    let mut answer = message("s", 6, "a5", "answer 5");
    answer.client_id = None;
    answer.sender = Sender::Ai;
    answer.kind = MessageType::AiResponse;
    let mut counters = view.session.counters;
    counters.message_count = 6;
    let patch = SessionPatch {
        last_activity: Some(at(9_000)),
        name: Some("Named by the question".into()),
        counters: Some(counters),
        ..SessionPatch::default()
    };
    assert_eq!(
        store.record_turn(Some(&question), &answer, &patch).await.unwrap(),
        Appended::Inserted
    );
    let view = store
        .turn_view(&turn("s", "m5", "a5", 10, 4))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(view.user_message.as_ref(), Some(&question));
    assert_eq!(view.answer.as_ref(), Some(&answer));
    assert_eq!(view.newer, [answer.clone(), question.clone()]);
    let session = store.session("s").await.unwrap().unwrap();
    assert_eq!(
        (session.name.as_str(), session.counters.message_count),
        ("Named by the question", 6)
    );

    // Recorded again (a redelivery): nothing is stored twice.
    assert_eq!(
        store.record_turn(Some(&question), &answer, &patch).await.unwrap(),
        Appended::AlreadyStored
    );
    assert_eq!(store.last_seq("s").await.unwrap(), 6);
    // The question stored before (alone), the answer now.
    let next = message("s", 7, "m7", "question 7");
    store
        .record_message(&next, &SessionPatch::default())
        .await
        .unwrap();
    let mut next_answer = message("s", 8, "a7", "answer 7");
    next_answer.client_id = None;
    assert_eq!(
        store.record_turn(None, &next_answer, &patch).await.unwrap(),
        Appended::Inserted
    );
    // A message whose place is taken is refused, with the turn's other
    // writes.
    let clash = message("s", 8, "other", "clash");
    let clash_answer = message("s", 9, "a-other", "clash answer");
    let untouched = SessionPatch {
        name: Some("must not land".into()),
        ..SessionPatch::default()
    };
    assert!(matches!(
        store.record_turn(Some(&clash), &clash_answer, &untouched).await,
        Err(StoreError::SeqTaken { seq: 8, .. })
    ));
    assert_eq!(store.message("s", "a-other").await.unwrap(), None);
    assert_eq!(
        store.session("s").await.unwrap().unwrap().name,
        "Named by the question"
    );
}

/// Many writes at once (which the SQLite adapter commits in groups): each
/// one that succeeds is stored, each one that fails leaves nothing.
async fn concurrent_writes_each_land_or_fail_alone(f: &Fixture) {
    let store = f.store();
    let sessions = 40u64;
    for i in 0..sessions {
        store
            .create_session(&SessionRecord::new(&format!("s{i}"), "ann", at(0)))
            .await
            .unwrap();
        store
            .append_message(&message(&format!("s{i}"), 1, "first", "x"))
            .await
            .unwrap();
    }
    let writes = (0..sessions).map(|i| async move {
        let sid = format!("s{i}");
        // Every fourth write clashes with the stored message's position.
        let seq = if i % 4 == 0 { 1 } else { 2 };
        let patch = SessionPatch {
            name: Some(format!("name {i}")),
            ..SessionPatch::default()
        };
        let result = store
            .record_message(&message(&sid, seq, "second", "y"), &patch)
            .await;
        (i, result)
    });
    for (i, result) in futures_util::future::join_all(writes).await {
        let sid = format!("s{i}");
        let session = store.session(&sid).await.unwrap().unwrap();
        if i % 4 == 0 {
            assert!(
                matches!(result, Err(StoreError::SeqTaken { seq: 1, .. })),
                "{i}: {result:?}"
            );
            assert_eq!(session.name, "", "{i}: a failed write changed its session");
            assert_eq!(store.message(&sid, "second").await.unwrap(), None);
        } else {
            assert_eq!(result.unwrap(), Appended::Inserted, "{i}");
            assert_eq!(session.name, format!("name {i}"));
            assert_eq!(store.last_seq(&sid).await.unwrap(), 2);
        }
    }
}

/// The ids of a page of `admin_sessions` and its total.
async fn admin_ids(store: &dyn Store, query: AdminSessionQuery) -> (Vec<String>, u64) {
    let page = store.admin_sessions(&query).await.unwrap();
    (page.sessions.into_iter().map(|s| s.id).collect(), page.total)
}

fn all(sort: SessionSort, descending: bool) -> AdminSessionQuery {
    AdminSessionQuery {
        sort,
        descending,
        limit: 100,
        ..AdminSessionQuery::default()
    }
}

async fn admin_sessions_filter_by_each_field(f: &Fixture) {
    let store = f.store();
    // id, user, start, asked for help, assisted, ended
    let rows = [
        ("a", "ann", 0, false, false, false),
        ("b", "bob", 100, true, true, true),
        ("c", "ann", 200, true, false, false),
        ("d", "cid", 300, false, true, true),
        ("e", "ann", 400, false, false, true),
    ];
    let mut created = Vec::new();
    for (id, user, start, help, assisted, ended) in rows {
        let mut s = SessionRecord::new(id, user, at(start));
        s.name = format!("secret name {id}");
        if help {
            s.help_requested = true;
            s.help_requested_at = Some(at(start + 5));
        }
        s.admin_assisted = assisted;
        store.create_session(&s).await.unwrap();
        if ended {
            s = store.end_session(id, at(start + 50)).await.unwrap().unwrap();
        }
        created.push(s);
    }
    let base = all(SessionSort::StartTime, false);
    let ann = || Some("ann".to_owned());
    let cases: Vec<(AdminSessionQuery, &[&str])> = vec![
        (base.clone(), &["a", "b", "c", "d", "e"]),
        (
            AdminSessionQuery {
                user_id: ann(),
                ..base.clone()
            },
            &["a", "c", "e"],
        ),
        (
            AdminSessionQuery {
                user_id: Some("nobody".into()),
                ..base.clone()
            },
            &[],
        ),
        (
            AdminSessionQuery {
                active: Some(true),
                ..base.clone()
            },
            &["a", "c"],
        ),
        (
            AdminSessionQuery {
                active: Some(false),
                ..base.clone()
            },
            &["b", "d", "e"],
        ),
        (
            AdminSessionQuery {
                help_requested: Some(true),
                ..base.clone()
            },
            &["b", "c"],
        ),
        (
            AdminSessionQuery {
                help_requested: Some(false),
                ..base.clone()
            },
            &["a", "d", "e"],
        ),
        (
            AdminSessionQuery {
                admin_assisted: Some(true),
                ..base.clone()
            },
            &["b", "d"],
        ),
        (
            AdminSessionQuery {
                admin_assisted: Some(false),
                ..base.clone()
            },
            &["a", "c", "e"],
        ),
        (
            AdminSessionQuery {
                started_from: Some(at(100)),
                ..base.clone()
            },
            &["b", "c", "d", "e"],
        ),
        (
            AdminSessionQuery {
                started_from: Some(at(100)),
                started_to: Some(at(300)),
                ..base.clone()
            },
            &["b", "c"],
        ),
        (
            AdminSessionQuery {
                user_id: ann(),
                active: Some(true),
                help_requested: Some(true),
                started_to: Some(at(201)),
                ..base.clone()
            },
            &["c"],
        ),
    ];
    for (i, (query, expected)) in cases.into_iter().enumerate() {
        let (ids, total) = admin_ids(store, query).await;
        assert_eq!(ids, expected, "case {i}");
        assert_eq!(total, expected.len() as u64, "case {i}");
    }
    // Whole records, names decrypted, as they were stored.
    let page = store
        .admin_sessions(&all(SessionSort::StartTime, false))
        .await
        .unwrap();
    assert_eq!(page.sessions, created);
}

async fn admin_sessions_sort_each_way_with_ties_by_id(f: &Fixture) {
    let store = f.store();
    // id, start, last activity, tokens, average response; not in id order,
    // with ties in every column.
    let rows = [
        ("s3", 30, 500, 10, 200),
        ("s1", 10, 700, 50, 100),
        ("s5", 30, 100, 10, 300),
        ("s0", 20, 700, 30, 100),
        ("s4", 10, 300, 50, 0),
        ("s2", 40, 700, 10, 100),
    ];
    for (id, start, last, tokens, avg) in rows {
        let mut s = SessionRecord::new(id, "ann", at(start));
        s.last_activity = at(last);
        s.counters.total_tokens = tokens;
        s.counters.avg_response_ms = avg;
        store.create_session(&s).await.unwrap();
    }
    let ascending = [
        (SessionSort::StartTime, ["s1", "s4", "s0", "s3", "s5", "s2"]),
        (SessionSort::LastActivity, ["s5", "s4", "s3", "s0", "s1", "s2"]),
        (SessionSort::Tokens, ["s2", "s3", "s5", "s0", "s1", "s4"]),
        (SessionSort::ResponseTime, ["s4", "s0", "s1", "s2", "s3", "s5"]),
    ];
    for (sort, expected) in ascending {
        let (ids, total) = admin_ids(store, all(sort, false)).await;
        assert_eq!(ids, expected, "{sort:?} ascending");
        assert_eq!(total, 6);
        let (ids, _) = admin_ids(store, all(sort, true)).await;
        let reversed: Vec<&str> = expected.iter().rev().copied().collect();
        assert_eq!(ids, reversed, "{sort:?} descending, ties by id descending");
    }
    assert_eq!(
        AdminSessionQuery::default().sort,
        SessionSort::StartTime,
        "start time by default"
    );
}

async fn admin_sessions_pages_visit_every_session_once(f: &Fixture) {
    let store = f.store();
    for i in 0..23u64 {
        // Three start times only: pages split runs of ties.
        let mut s = SessionRecord::new(
            &format!("p{i:02}"),
            if i % 2 == 0 { "ann" } else { "bob" },
            at(i % 3),
        );
        s.counters.total_tokens = i % 4;
        store.create_session(&s).await.unwrap();
    }
    for (sort, descending) in [(SessionSort::StartTime, true), (SessionSort::Tokens, false)] {
        let (whole, total) = admin_ids(store, all(sort, descending)).await;
        assert_eq!((whole.len(), total), (23, 23));
        let mut paged = Vec::new();
        let mut sizes = Vec::new();
        for offset in (0..30).step_by(5) {
            let query = AdminSessionQuery {
                offset,
                limit: 5,
                ..all(sort, descending)
            };
            let (ids, total) = admin_ids(store, query).await;
            assert_eq!(total, 23, "the total counts every match, not the page");
            sizes.push(ids.len());
            paged.extend(ids);
        }
        assert_eq!(sizes, [5, 5, 5, 5, 3, 0]);
        assert_eq!(paged, whole, "{sort:?}: pages in order, each session once");
    }
    let filtered = AdminSessionQuery {
        user_id: Some("ann".into()),
        offset: 10,
        limit: 5,
        ..all(SessionSort::StartTime, false)
    };
    let (ids, total) = admin_ids(store, filtered).await;
    assert_eq!((ids.len(), total), (2, 12), "ann has 12 sessions");
    let count_only = AdminSessionQuery {
        limit: 0,
        ..all(SessionSort::StartTime, false)
    };
    assert_eq!(admin_ids(store, count_only).await, (vec![], 23));
}

async fn session_aggregates_cover_the_sessions_started_in_the_period(f: &Fixture) {
    let store = f.store();
    // id, start, tokens, answers, their ms, longest, assisted, help
    let rows = [
        ("before", 99, 1_000, 9, 9_000, 9_000, true, true),
        ("first", 100, 10, 2, 300, 200, true, false),
        ("second", 200, 20, 3, 600, 400, false, true),
        ("third", 299, 5, 1, 50, 50, true, true),
        ("at-end", 300, 1_000, 9, 9_000, 9_000, true, true),
    ];
    for (id, start, tokens, answers, ms, longest, assisted, help) in rows {
        let mut s = SessionRecord::new(id, "ann", at(start));
        s.counters = SessionCounters {
            total_tokens: tokens,
            response_count: answers,
            total_response_ms: ms,
            avg_response_ms: ms / answers,
            max_response_ms: longest,
            ..SessionCounters::default()
        };
        s.admin_assisted = assisted;
        s.help_requested = help;
        store.create_session(&s).await.unwrap();
    }
    store.end_session("second", at(500)).await.unwrap();
    assert_eq!(
        store.session_aggregates(at(100), at(300)).await.unwrap(),
        SessionAggregates {
            total_sessions: 3,
            total_tokens: 35,
            response_count: 6,
            total_response_ms: 950,
            max_response_ms: 400,
            admin_assisted: 2,
            help_requests: 2,
        }
    );
    assert_eq!(
        store.session_aggregates(at(1_000), at(2_000)).await.unwrap(),
        SessionAggregates::default(),
        "no session started then"
    );
}

async fn active_sessions_are_counted_until_they_end(f: &Fixture) {
    let store = f.store();
    assert_eq!(store.active_session_count().await.unwrap(), 0);
    for id in ["a", "b", "c", "d"] {
        store
            .create_session(&SessionRecord::new(id, "ann", at(0)))
            .await
            .unwrap();
    }
    assert_eq!(store.active_session_count().await.unwrap(), 4);
    store.end_session("b", at(10)).await.unwrap();
    store.end_session("b", at(20)).await.unwrap();
    assert_eq!(store.active_session_count().await.unwrap(), 3);
    store.end_session("d", at(30)).await.unwrap();
    assert_eq!(store.active_session_count().await.unwrap(), 2);
}

async fn patches_set_and_clear_help_and_assistance(f: &Fixture) {
    let store = f.store();
    let mut s = SessionRecord::new("h", "ann", at(0));
    s.name = "kept".into();
    store.create_session(&s).await.unwrap();
    let patch = |p: SessionPatch| async move {
        store.update_session("h", &p).await.unwrap();
        store.session("h").await.unwrap().unwrap()
    };

    let got = patch(SessionPatch {
        help_requested_at: Some(at(100)),
        ..SessionPatch::default()
    })
    .await;
    assert!(got.help_requested);
    assert_eq!(got.help_requested_at, Some(at(100)));
    assert_eq!(
        (got.admin_assisted, got.assisting_admin_id.as_deref()),
        (false, None)
    );
    let got = patch(SessionPatch {
        help_requested_at: Some(at(200)),
        ..SessionPatch::default()
    })
    .await;
    assert_eq!(got.help_requested_at, Some(at(200)), "the last request counts");

    let ada = AdminRef {
        id: "admin-1".into(),
        name: "Ada".into(),
    };
    let got = patch(SessionPatch {
        admin_assisted: Some(true),
        assisting_admin: Some(Some(ada)),
        ..SessionPatch::default()
    })
    .await;
    assert!(got.admin_assisted);
    assert_eq!(
        (
            got.assisting_admin_id.as_deref(),
            got.assisting_admin_name.as_deref()
        ),
        (Some("admin-1"), Some("Ada"))
    );
    // An empty patch changes nothing.
    assert_eq!(patch(SessionPatch::default()).await, got);

    let got = patch(SessionPatch {
        assisting_admin: Some(None),
        ..SessionPatch::default()
    })
    .await;
    assert_eq!(
        (got.assisting_admin_id, got.assisting_admin_name),
        (None, None),
        "cleared"
    );
    assert!(got.admin_assisted, "an admin took part, still");
    let got = patch(SessionPatch {
        admin_assisted: Some(false),
        ..SessionPatch::default()
    })
    .await;
    assert!(!got.admin_assisted);
    assert_eq!(
        (got.name.as_str(), got.help_requested, got.help_requested_at),
        ("kept", true, Some(at(200)))
    );
}

fn takeover(id: &str, session: &str, started: u64) -> TakeoverRecord {
    TakeoverRecord {
        id: id.into(),
        session_id: session.into(),
        user_id: format!("user-of-{session}"),
        admin: AdminRef {
            id: "admin-1".into(),
            name: "Ada Lovelace".into(),
        },
        started_at: at(started),
        ended_at: None,
        end_reason: None,
    }
}

async fn takeovers_are_recorded_once_and_ended_once(f: &Fixture) {
    let store = f.store();
    let t1 = takeover("t1", "s", 100);
    let t2 = takeover("t2", "s", 50);
    let t3 = takeover("t3", "other", 75);
    let a4 = takeover("a4", "other", 75);
    for t in [&t1, &t2, &t3, &a4] {
        store.start_takeover(t).await.unwrap();
    }
    let mut renamed = t1.clone();
    renamed.admin.name = "someone else".into();
    renamed.started_at = at(1);
    store.start_takeover(&renamed).await.unwrap();
    assert_eq!(
        store.takeovers("s").await.unwrap(),
        [t2.clone(), t1.clone()],
        "oldest first; the same id again changed nothing"
    );
    assert_eq!(store.takeovers("nobody").await.unwrap(), []);
    let open = |limit| async move {
        store
            .open_takeovers(limit)
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(open(10).await, ["t2", "a4", "t3", "t1"], "ties by id");
    assert_eq!(open(2).await, ["t2", "a4"]);

    let ended = store.end_takeover("t2", at(200), "released").await.unwrap();
    let mut t2_ended = t2.clone();
    t2_ended.ended_at = Some(at(200));
    t2_ended.end_reason = Some("released".into());
    assert_eq!(ended, Some(t2_ended.clone()));
    assert_eq!(
        store.end_takeover("t2", at(300), "disconnected").await.unwrap(),
        None,
        "ended once"
    );
    assert_eq!(
        store.end_takeover("unknown", at(300), "released").await.unwrap(),
        None
    );
    // Starting it again does not reopen it.
    store.start_takeover(&t2).await.unwrap();
    assert_eq!(store.takeovers("s").await.unwrap(), [t2_ended, t1]);
    assert_eq!(open(10).await, ["a4", "t3", "t1"]);
    for (id, reason) in [
        ("a4", "session_ended"),
        ("t3", "disconnected"),
        ("t1", "released"),
    ] {
        assert!(store.end_takeover(id, at(400), reason).await.unwrap().is_some());
    }
    assert_eq!(open(10).await, Vec::<String>::new());
    assert_eq!(
        store.takeovers("other").await.unwrap()[1].end_reason.as_deref(),
        Some("disconnected")
    );
}

async fn samples_are_replaced_at_the_same_time_and_read_by_range(f: &Fixture) {
    let store = f.store();
    let sample = |ms: u64, concurrent: u64| ConcurrencySample {
        at: Timestamp::from_millis(ms),
        concurrent,
    };
    // Times of different lengths: ordered as numbers, not as text.
    for s in [
        sample(10_000, 5),
        sample(900, 3),
        sample(1_700_000_000_000, 7),
        sample(1_000, 4),
        sample(900, 8),
        sample(99, 1),
    ] {
        store.add_sample(&s).await.unwrap();
    }
    let range = |from: u64, to: u64| async move {
        store
            .samples(Timestamp::from_millis(from), Timestamp::from_millis(to))
            .await
            .unwrap()
    };
    assert_eq!(
        range(900, 1_700_000_000_000).await,
        [sample(900, 8), sample(1_000, 4), sample(10_000, 5)],
        "the later sample at 900 replaced the first; the end is excluded"
    );
    assert_eq!(range(0, 1_800_000_000_000).await.len(), 5);
    assert_eq!(range(1_001, 10_000).await, []);
}

fn file(id: &str, expires: u64) -> FileRecord {
    FileRecord {
        id: id.into(),
        user_id: "ann".into(),
        session_id: "s".into(),
        kind: FileKind::Upload,
        status: FileStatus::Pending,
        name: format!("holiday photo {id}.jpg"),
        declared_type: "image/jpeg".into(),
        media_type: None,
        declared_size: 5_000_000_000,
        size: None,
        key: format!("uploads/ann/{id}"),
        created_at: at(0),
        expires_at: at(expires),
        reason: None,
        transcript: None,
        sha256: None,
    }
}

async fn files_are_stored_once_and_read_back(f: &Fixture) {
    let store = f.store();
    let photo = file("f1", 900_000);
    store.create_file(&photo).await.unwrap();
    assert_eq!(store.file("f1").await.unwrap(), Some(photo.clone()));
    assert_eq!(store.file("nope").await.unwrap(), None);

    // The same id again (a retried request) changes nothing.
    let mut other = file("f1", 5);
    other.name = "something else".into();
    other.kind = FileKind::Voice;
    other.status = FileStatus::Ready;
    store.create_file(&other).await.unwrap();
    assert_eq!(store.file("f1").await.unwrap(), Some(photo));

    // Every kind and status round-trips, and so do small numbers.
    let mut made = file("f2", 1);
    made.kind = FileKind::Generated;
    made.status = FileStatus::Ready;
    made.declared_size = 3;
    made.size = Some(0);
    made.media_type = Some("image/png".into());
    made.sha256 = Some("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".into());
    made.transcript = Some(String::new());
    made.name = String::new();
    store.create_file(&made).await.unwrap();
    assert_eq!(store.file("f2").await.unwrap(), Some(made));
}

async fn file_updates_apply_only_from_the_expected_status(f: &Fixture) {
    let store = f.store();
    let pending = file("f1", 900_000);
    store.create_file(&pending).await.unwrap();
    let accept = FilePatch {
        media_type: Some("image/webp".into()),
        size: Some(48_213),
        key: Some("files/ann/f1".into()),
        sha256: Some("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into()),
        ..FilePatch::status(FileStatus::Ready)
    };
    assert!(
        store
            .update_file("f1", FileStatus::Pending, &accept)
            .await
            .unwrap()
    );
    let ready = FileRecord {
        status: FileStatus::Ready,
        media_type: Some("image/webp".into()),
        size: Some(48_213),
        key: "files/ann/f1".into(),
        sha256: accept.sha256.clone(),
        ..pending.clone()
    };
    assert_eq!(store.file("f1").await.unwrap(), Some(ready.clone()));

    // The cleanup of its slot comes too late: the file is no longer pending.
    let expire = FilePatch {
        reason: Some("upload slot expired".into()),
        ..FilePatch::status(FileStatus::Expired)
    };
    assert!(
        !store
            .update_file("f1", FileStatus::Pending, &expire)
            .await
            .unwrap()
    );
    assert!(
        !store
            .update_file("f1", FileStatus::Pending, &accept)
            .await
            .unwrap()
    );
    assert_eq!(
        store.file("f1").await.unwrap(),
        Some(ready.clone()),
        "nothing changed"
    );
    assert!(
        !store
            .update_file("nope", FileStatus::Pending, &accept)
            .await
            .unwrap()
    );

    // Refused after all (say, by a later scan): only status and reason move.
    let refuse = FilePatch {
        reason: Some("malware found".into()),
        ..FilePatch::status(FileStatus::Rejected)
    };
    assert!(store.update_file("f1", FileStatus::Ready, &refuse).await.unwrap());
    assert_eq!(
        store.file("f1").await.unwrap(),
        Some(FileRecord {
            status: FileStatus::Rejected,
            reason: Some("malware found".into()),
            ..ready
        })
    );
}

async fn file_names_and_transcripts_are_encrypted_at_rest(f: &Fixture) {
    let store = f.store();
    let mut voice = file("v1", 900_000);
    voice.kind = FileKind::Voice;
    voice.name = "diagnosis recording 4711.ogg".into();
    voice.declared_type = "audio/ogg".into();
    store.create_file(&voice).await.unwrap();
    assert_eq!(store.file("v1").await.unwrap().unwrap().transcript, None);

    let heard = FilePatch {
        transcript: Some("my confidential symptoms 98765".into()),
        ..FilePatch::status(FileStatus::Ready)
    };
    assert!(
        store
            .update_file("v1", FileStatus::Pending, &heard)
            .await
            .unwrap()
    );
    let got = store.file("v1").await.unwrap().unwrap();
    assert_eq!(got.transcript.as_deref(), Some("my confidential symptoms 98765"));
    assert_eq!(got.name, "diagnosis recording 4711.ogg");

    let raw = f.raw_file("v1").await;
    for plain in ["diagnosis", "4711", "confidential", "98765"] {
        assert!(!raw.contains(plain), "{plain:?} stored in the clear: {raw}");
    }
    // A transcript stored with the record from the start is sealed too.
    let mut told = file("v2", 900_000);
    told.transcript = Some("another secret 24680".into());
    store.create_file(&told).await.unwrap();
    assert!(!f.raw_file("v2").await.contains("24680"));
    assert_eq!(store.file("v2").await.unwrap(), Some(told));
}

async fn files_are_looked_up_together(f: &Fixture) {
    let store = f.store();
    let (a, b, c) = (file("a", 1), file("b", 2), file("c", 3));
    for x in [&a, &b, &c] {
        store.create_file(x).await.unwrap();
    }
    let mut got = store
        .files(&["b".into(), "unknown".into(), "a".into()])
        .await
        .unwrap();
    got.sort_by(|x, y| x.id.cmp(&y.id));
    assert_eq!(got, [a, b]);
    assert_eq!(store.files(&[]).await.unwrap(), []);
    assert_eq!(store.files(&["unknown".into()]).await.unwrap(), []);
}

async fn expired_slots_are_the_pending_files_oldest_first(f: &Fixture) {
    let store = f.store();
    // Created out of order; one already ready, though its slot ended first.
    let (t1, t2, t3) = (1_000, 2_000, 3_000);
    for x in [file("p2", t2), file("p3", t3), file("p1", t1)] {
        store.create_file(&x).await.unwrap();
    }
    let mut ready = file("r0", 500);
    ready.status = FileStatus::Ready;
    store.create_file(&ready).await.unwrap();

    let expired = |limit| async move {
        store
            .expired_slots(at(t2 + 1), limit)
            .await
            .unwrap()
            .into_iter()
            .map(|x| x.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(expired(10).await, ["p1", "p2"]);
    assert_eq!(expired(1).await, ["p1"]);
    assert_eq!(
        store.expired_slots(at(t2), 10).await.unwrap(),
        [file("p1", t1)],
        "a slot ending exactly then has not ended before it"
    );

    assert!(
        store
            .update_file("p1", FileStatus::Pending, &FilePatch::status(FileStatus::Expired))
            .await
            .unwrap()
    );
    assert_eq!(expired(10).await, ["p2"]);
    assert_eq!(
        store.file("p1").await.unwrap().unwrap().status,
        FileStatus::Expired
    );
}
