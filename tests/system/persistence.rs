//! Sessions that survive reconnects, pods and restarts: the MongoDB store
//! (the stand-in, or a real server), history, restore and session ends.

use std::collections::HashSet;
use std::time::Duration;

use chatbox_shared::protocol::{MessageType, Sender};
use chatbox_worker::store::Store;
use serde_json::{Value, json};

use crate::support::*;

/// Two gateways and two workers on one namespace (the processes stop before
/// the namespace is deleted).
struct Cluster {
    gateways: Vec<Proc>,
    workers: Vec<Proc>,
    mock: Proc,
    env: Vec<(String, String)>,
    config: std::path::PathBuf,
    dir: std::path::PathBuf,
    ns: TestNamespace,
}

impl Cluster {
    async fn start(extra: &[(&str, &str)]) -> Cluster {
        let ns = TestNamespace::new();
        let dir = log_dir(&ns.name);
        let mut env = scaled_env(&ns);
        env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        let mock = start_mock(&dir, "mock", &["--chunks", "4"]).await;
        let config = provider_config(&dir, "worker", &mock.addr);
        let workers = vec![
            start_worker(&dir, &env, "worker-a", Some(&config)).await,
            start_worker(&dir, &env, "worker-b", Some(&config)).await,
        ];
        let gateways = vec![
            start_gateway(&dir, &env, "gateway-a").await,
            start_gateway(&dir, &env, "gateway-b").await,
        ];
        Cluster {
            gateways,
            workers,
            mock,
            env,
            config,
            dir,
            ns,
        }
    }
}

/// Asks for a session's history over the socket; returns the messages.
async fn history(client: &mut Client, session: &str) -> Vec<Value> {
    let mut messages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut metadata = json!({ "limit": "7" });
        if let Some(c) = &cursor {
            metadata["cursor"] = json!(c);
        }
        let id = format!("h{}", messages.len());
        client
            .send(json!({ "type": "get_history", "id": id, "session_id": session, "metadata": metadata }))
            .await;
        let page = client
            .until(Duration::from_secs(10), |f| {
                f["type"] == "history" && f["id"] == id.as_str()
            })
            .await;
        messages.extend(page["data"]["messages"].as_array().unwrap().iter().cloned());
        match page["data"]["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return messages,
        }
    }
}

fn contents(messages: &[Value]) -> Vec<(String, String)> {
    messages
        .iter()
        .map(|m| {
            (
                m["type"].as_str().unwrap().to_owned(),
                m["content"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_session_survives_its_gateway_and_its_history_comes_back_in_order() {
    let mut cluster = Cluster::start(&[]).await;
    let user = token("ann", &[]);
    let mut on_a = Client::connect(&cluster.gateways[0].addr, &user, None).await;
    let session = on_a.status().await["session_id"].as_str().unwrap().to_owned();
    for i in 1..=3 {
        on_a.say(&format!("m{i}"), &format!("question {i}")).await;
        on_a.answer(Duration::from_secs(20)).await;
    }
    // The model was given the earlier turns as context.
    assert_eq!(mock_stats(&cluster.mock).await["last_request_messages"], 5);

    cluster.gateways[0].sigkill();
    on_a.until_closed(Duration::from_secs(5)).await;
    let mut on_b = Client::connect(&cluster.gateways[1].addr, &user, Some(&session)).await;
    let status = on_b.status().await;
    assert_eq!(status["session_id"], session.as_str());
    assert_eq!(status["metadata"]["reason"], "restored");

    let messages = history(&mut on_b, &session).await;
    let seqs: Vec<u64> = messages.iter().map(|m| m["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=6).collect::<Vec<_>>());
    let got = contents(&messages);
    for i in 0..3 {
        assert_eq!(
            got[2 * i],
            ("user_message".to_owned(), format!("question {}", i + 1))
        );
        assert_eq!(got[2 * i + 1].0, "ai_response");
        assert!(
            got[2 * i + 1]
                .1
                .starts_with(&format!("You said: question {}.", i + 1)),
            "{:?}",
            got[2 * i + 1]
        );
    }
    assert_eq!(messages[0]["id"], "m1", "the client's ids come back");
    assert_eq!(messages[1]["done"], true);
    assert!(messages[1]["metadata"]["completion_tokens"].is_string());

    // The session carries on where it was.
    on_b.say("m4", "question 4").await;
    let done = on_b.answer(Duration::from_secs(20)).await;
    assert_eq!(done["seq"], 8);

    // Stored encrypted: the raw document holds no plaintext.
    let store = cluster.ns.store().await;
    let raw = store
        .raw_message(&session, "m1")
        .await
        .unwrap()
        .unwrap()
        .to_string();
    assert!(!raw.contains("question 1"), "{raw}");
    let stored = store.session(&session).await.unwrap().unwrap();
    assert_eq!(stored.name, "question 1");
    assert_eq!(stored.counters.message_count, 8);
    assert!(
        stored.counters.total_tokens > 0
            && stored.counters.max_response_ms >= stored.counters.avg_response_ms
    );
}

#[tokio::test]
async fn after_the_reconnect_timeout_a_new_session_starts_and_the_old_one_has_ended() {
    let cluster = Cluster::start(&[("RECONNECT_TIMEOUT", "2s")]).await;
    let user = token("ann", &[]);
    let mut first = Client::connect(&cluster.gateways[0].addr, &user, None).await;
    let old = first.status().await["session_id"].as_str().unwrap().to_owned();
    first.say("a", "hello").await;
    first.answer(Duration::from_secs(20)).await;
    drop(first);
    tokio::time::sleep(Duration::from_secs(3)).await;

    let mut again = Client::connect(&cluster.gateways[1].addr, &user, Some(&old)).await;
    let status = again.status().await;
    let new = status["session_id"].as_str().unwrap();
    assert_ne!(new, old);
    assert_eq!(status["metadata"]["reason"], "new_session");
    let ended = cluster.ns.store().await.session(&old).await.unwrap().unwrap();
    assert!(!ended.is_active);
    assert!(ended.end_time.is_some(), "{ended:?}");
    assert!(ended.duration_s.is_some());
    assert_eq!(history(&mut again, new).await.len(), 0, "a fresh session");
    assert_eq!(
        history(&mut again, &old).await.len(),
        2,
        "the old one is still readable"
    );
}

#[tokio::test]
async fn someone_elses_session_is_refused_without_saying_whose() {
    let cluster = Cluster::start(&[]).await;
    let mut ann = Client::connect(&cluster.gateways[0].addr, &token("ann", &[]), None).await;
    let anns = ann.status().await["session_id"].as_str().unwrap().to_owned();
    for (session, what) in [
        (anns.as_str(), "someone else's"),
        ("01a2-no-such-session", "unknown"),
    ] {
        let mut bob = Client::connect(&cluster.gateways[1].addr, &token("bob", &[]), Some(session)).await;
        let error = bob.until(Duration::from_secs(10), |f| f["type"] == "error").await;
        assert_eq!(error["error"]["code"], "SESSION_NOT_FOUND", "{what}");
        assert!(
            !error["error"]["message"].as_str().unwrap().contains("ann"),
            "{what}"
        );
        let closed = bob.until_closed(Duration::from_secs(5)).await;
        assert_eq!(closed.code, 4004, "{what}");
    }
    // Nor can bob read it.
    let mut bob = Client::connect(&cluster.gateways[1].addr, &token("bob", &[]), None).await;
    bob.status().await;
    bob.send(json!({ "type": "get_history", "id": "peek", "session_id": anns }))
        .await;
    let error = bob.until(Duration::from_secs(10), |f| f["type"] == "error").await;
    assert_eq!(error["error"]["code"], "SESSION_NOT_FOUND");
    assert_eq!(error["id"], "peek");
}

#[tokio::test]
async fn every_worker_restarted_and_the_history_is_intact() {
    let mut cluster = Cluster::start(&[]).await;
    let user = token("ann", &[]);
    let mut client = Client::connect(&cluster.gateways[0].addr, &user, None).await;
    let session = client.status().await["session_id"].as_str().unwrap().to_owned();
    client.say("1", "before the restart").await;
    client.answer(Duration::from_secs(20)).await;
    for worker in &mut cluster.workers {
        worker.sigterm();
        assert!(worker.wait_exit(Duration::from_secs(15)).success());
    }
    cluster.workers = vec![
        start_worker(&cluster.dir, &cluster.env, "worker-c", Some(&cluster.config)).await,
        start_worker(&cluster.dir, &cluster.env, "worker-d", Some(&cluster.config)).await,
    ];
    client.say("2", "after the restart").await;
    let done = client.answer(Duration::from_secs(20)).await;
    assert_eq!(done["seq"], 4);
    let got = contents(&history(&mut client, &session).await);
    assert_eq!(got[0].1, "before the restart");
    assert_eq!(got[2].1, "after the restart");
    assert_eq!(got.len(), 4);
}

#[tokio::test]
async fn ten_users_twenty_messages_each_are_stored_exactly_once_in_order_through_a_worker_kill() {
    let mut cluster = Cluster::start(&[]).await;
    let gateways: Vec<String> = cluster.gateways.iter().map(|g| g.addr.clone()).collect();
    let mut users = Vec::new();
    for u in 0..10 {
        let addr = gateways[u % 2].clone();
        users.push(tokio::spawn(async move {
            let mut client = Client::connect(&addr, &token(&format!("user-{u}"), &[]), None).await;
            let session = client.status().await["session_id"].as_str().unwrap().to_owned();
            for i in 1..=20 {
                client
                    .say(&format!("u{u}-m{i}"), &format!("user {u} message {i}"))
                    .await;
                if i % 5 == 0 {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            let mut answered = HashSet::new();
            while answered.len() < 20 {
                let done = client.answer(Duration::from_secs(60)).await;
                answered.insert(done["message_id"].as_str().unwrap().to_owned());
            }
            session
        }));
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    cluster.workers[0].sigkill();
    let mut sessions = Vec::new();
    for user in users {
        sessions.push(user.await.expect("a user's run"));
    }

    let store = cluster.ns.store().await;
    let (mut user_messages, mut answers) = (0, 0);
    for (u, session) in sessions.iter().enumerate() {
        let stored = store.messages_after(session, 0, 100).await.unwrap();
        assert_eq!(stored.len(), 40, "user {u}: every message and answer once");
        for (k, m) in stored.iter().enumerate() {
            assert_eq!(m.seq, k as u64 + 1, "user {u}: contiguous sequence");
            let i = k / 2 + 1;
            if k % 2 == 0 {
                assert_eq!((m.sender, m.kind), (Sender::User, MessageType::UserMessage));
                assert_eq!(m.content, format!("user {u} message {i}"), "user {u}: in order");
                user_messages += 1;
            } else {
                assert_eq!((m.sender, m.kind), (Sender::Ai, MessageType::AiResponse));
                assert!(
                    m.content.starts_with(&format!("You said: user {u} message {i}.")),
                    "{}",
                    m.content
                );
                answers += 1;
            }
        }
    }
    assert_eq!((user_messages, answers), (200, 200));
}

/// Sends a request and reads its JSON body.
async fn json_of(request: reqwest::RequestBuilder) -> Value {
    request.send().await.unwrap().json().await.unwrap()
}

#[tokio::test]
async fn sessions_are_listed_renamed_and_ended_over_http_and_the_socket() {
    let cluster = Cluster::start(&[]).await;
    let addr = cluster.gateways[0].addr.clone();
    let user = token("ann", &[]);
    let http = http();
    let mut names = Vec::new();
    for topic in ["Lisbon trip plans", "Tax questions"] {
        // `new_session` ends the active session and starts another.
        let url = format!("ws://{addr}/chat/ws?token={user}&new_session=true");
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        use futures_util::{SinkExt, StreamExt};
        ws.send(tokio_tungstenite::tungstenite::Message::text(
            json!({ "type": "user_message", "id": "x", "content": topic }).to_string(),
        ))
        .await
        .unwrap();
        while let Some(Ok(m)) = ws.next().await {
            if m.to_text().unwrap_or("").contains("\"done\":true") {
                break;
            }
        }
        names.push(topic);
    }

    let list = json_of(
        http.get(format!("http://{addr}/chat/sessions?limit=1"))
            .bearer_auth(&user),
    )
    .await;
    assert_eq!(
        list["sessions"][0]["name"], "Tax questions",
        "most recent first: {list}"
    );
    assert_eq!(list["sessions"][0]["message_count"], 2);
    assert_eq!(list["sessions"][0]["admin_assisted"], false);
    let cursor = list["next_cursor"].as_str().expect("a second page").to_owned();
    let page2 = json_of(http.get(format!(
        "http://{addr}/chat/sessions?limit=1&cursor={cursor}&token={user}"
    )))
    .await;
    let first = &page2["sessions"][0];
    assert_eq!(first["name"], "Lisbon trip plans");
    assert_eq!(first["is_active"], false, "starting a new session ended it");
    assert!(first["end_time"].is_string());
    assert!(page2["next_cursor"].is_null());
    let first_id = first["session_id"].as_str().unwrap().to_owned();

    let messages = json_of(
        http.get(format!("http://{addr}/chat/sessions/{first_id}/messages"))
            .bearer_auth(&user),
    )
    .await;
    assert_eq!(messages["messages"][0]["content"], "Lisbon trip plans");
    assert_eq!(messages["messages"].as_array().unwrap().len(), 2);

    let renamed = json_of(
        http.patch(format!("http://{addr}/chat/sessions/{first_id}"))
            .bearer_auth(&user)
            .json(&json!({ "name": "  Lisbon,\tspring 2027 " })),
    )
    .await;
    assert_eq!(renamed["name"], "Lisbon, spring 2027");

    let forbidden = http
        .get(format!("http://{addr}/chat/sessions/{first_id}/messages"))
        .bearer_auth(token("mallory", &[]))
        .send()
        .await
        .unwrap();
    assert_eq!(forbidden.status(), 404);
    let body: Value = forbidden.json().await.unwrap();
    assert_eq!(body["error"]["code"], "SESSION_NOT_FOUND");
    assert_eq!(
        http.get(format!("http://{addr}/chat/sessions"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );

    // Over the socket: list, rename, end.
    let mut client = Client::connect(&addr, &user, None).await;
    let active = client.status().await["session_id"].as_str().unwrap().to_owned();
    client
        .send(json!({ "type": "list_sessions", "id": "l1", "metadata": { "limit": "10" } }))
        .await;
    let list = client
        .until(Duration::from_secs(10), |f| f["type"] == "session_list")
        .await;
    assert_eq!(list["id"], "l1");
    let listed: Vec<&str> = list["data"]["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["Tax questions", "Lisbon, spring 2027"]);
    client
        .send(json!({ "type": "rename_session", "id": "r1", "content": "Taxes 2026" }))
        .await;
    let renamed = client
        .until(Duration::from_secs(10), |f| f["type"] == "session_renamed")
        .await;
    assert_eq!(
        (renamed["id"].as_str(), renamed["content"].as_str()),
        (Some("r1"), Some("Taxes 2026"))
    );
    client.send(json!({ "type": "end_session", "id": "e1" })).await;
    let told = client
        .until(Duration::from_secs(10), |f| f["type"] == "connection_status")
        .await;
    assert_eq!(told["metadata"]["reason"], "session_ended");
    assert_eq!(client.until_closed(Duration::from_secs(5)).await.code, 4003);
    let ended = cluster.ns.store().await.session(&active).await.unwrap().unwrap();
    assert!(!ended.is_active && ended.end_time.is_some());
    let mut next = Client::connect(&addr, &user, None).await;
    assert_ne!(
        next.status().await["session_id"].as_str().unwrap(),
        active,
        "a new session after the end"
    );
}

#[tokio::test]
async fn while_the_database_is_down_messages_wait_and_are_answered_once_it_is_back() {
    let ns = TestNamespace::new();
    let dir = log_dir(&ns.name);
    let mut mongo = OwnServer::mongo(&dir);
    let mut env = scaled_env(&ns);
    env.retain(|(k, _)| k != "MONGO_URI");
    env.push(("MONGO_URI".into(), format!("mongodb://127.0.0.1:{}", mongo.port)));
    let mock = start_mock(&dir, "mock", &[]).await;
    let config = provider_config(&dir, "worker", &mock.addr);
    let worker = start_worker(&dir, &env, "worker", Some(&config)).await;
    let gateway = start_gateway(&dir, &env, "gateway").await;
    let mut client = Client::connect(&gateway.addr, &token("ann", &[]), None).await;
    client.status().await;
    client.say("1", "first").await;
    client.answer(Duration::from_secs(20)).await;

    mongo.stop();
    client.say("2", "while the database is away").await;
    let error = client
        .until(Duration::from_secs(30), |f| f["type"] == "error")
        .await;
    assert_eq!(error["error"]["code"], "DATABASE_ERROR");
    assert_eq!(error["error"]["recoverable"], true);
    assert_eq!(error["id"], "2");
    let (status, body) = readiness(&worker.addr).await;
    assert_eq!(status, 503);
    assert!(body["failing"]["store"].is_string(), "{body}");

    mongo.start();
    let done = client.answer(Duration::from_secs(60)).await;
    assert!(
        done["content"]
            .as_str()
            .unwrap()
            .starts_with("You said: while the database is away.")
    );
    assert_eq!(done["seq"], 4, "nothing lost, nothing twice");
    drop(mock);
}

#[tokio::test]
async fn sessions_left_alone_past_the_reconnect_timeout_are_swept_closed() {
    let cluster = Cluster::start(&[
        ("RECONNECT_TIMEOUT", "1s"),
        ("CHATBOX_STORE_SWEEP_INTERVAL", "300ms"),
    ])
    .await;
    let mut client = Client::connect(&cluster.gateways[0].addr, &token("ann", &[]), None).await;
    let session = client.status().await["session_id"].as_str().unwrap().to_owned();
    client.say("1", "then I leave").await;
    client.answer(Duration::from_secs(20)).await;
    drop(client);
    let store = cluster.ns.store().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let ended = loop {
        let s = store.session(&session).await.unwrap().unwrap();
        if !s.is_active {
            break s;
        }
        assert!(tokio::time::Instant::now() < deadline, "never swept: {s:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        ended.end_time,
        Some(ended.last_activity),
        "it ended when it was last used"
    );
    assert!(ended.duration_s.is_some());
}

#[tokio::test]
async fn a_session_renamed_while_its_first_answer_streams_keeps_the_new_name() {
    let cluster = Cluster::start(&[]).await;
    let addr = cluster.gateways[0].addr.clone();
    let user = token("rita", &[]);
    let mut client = Client::connect(&addr, &user, None).await;
    let sid = client.status().await["session_id"].as_str().unwrap().to_owned();
    // 20 chunks, 100 ms apart: the first answer streams for two seconds.
    client
        .say(
            "first",
            "Where to eat in Porto [[mock chunks=20 chunk-delay-ms=100]]",
        )
        .await;
    client
        .until(Duration::from_secs(20), |f| {
            f["type"] == "ai_response" && f["done"] == false
        })
        .await;
    client
        .send(json!({ "type": "rename_session", "id": "r1", "content": "Porto food" }))
        .await;
    client
        .until(Duration::from_secs(10), |f| f["type"] == "session_renamed")
        .await;
    client.answer(Duration::from_secs(30)).await;
    let stored = cluster.ns.store().await.session(&sid).await.unwrap().unwrap();
    assert_eq!(
        stored.name, "Porto food",
        "the name the first message gave is not written over the rename"
    );
}
