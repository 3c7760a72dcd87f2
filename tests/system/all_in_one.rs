//! The all-in-one: one process, embedded adapters, the demo model.

use std::time::Duration;

use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn all_in_one_streams_the_demo_answer() {
    let dir = log_dir(&unique("aio"));
    let env = vec![
        ("JWT_SECRET".to_owned(), SECRET.to_owned()),
        ("CHATBOX_LLM_DEMO_CHUNK_DELAY".to_owned(), "1ms".to_owned()),
    ];
    let server = start_all_in_one(&dir, &env, "all-in-one").await;
    let mut client = Client::connect(&server.addr, &token("ann", &[]), None).await;

    let status = client.status().await;
    assert_eq!(status["metadata"]["status"], "connected");
    assert_eq!(status["metadata"]["reason"], "new_session");
    assert_eq!(status["metadata"]["restored"], "false");
    let session = status["session_id"].as_str().expect("session id").to_owned();

    client.send(json!({ "type": "ping" })).await;
    client
        .until(Duration::from_secs(5), |f| f["type"] == "pong")
        .await;

    client.say("c-1", "What is chatbox?").await;
    let echo = client
        .until(Duration::from_secs(5), |f| f["type"] == "user_message")
        .await;
    assert_eq!(echo["id"], "c-1");
    assert_eq!(echo["content"], "What is chatbox?");
    assert_eq!(echo["sender"], "user");
    assert_eq!(echo["session_id"], session.as_str());
    assert_eq!(echo["seq"], 1);

    let loading = client
        .until(Duration::from_secs(5), |f| f["type"] == "loading")
        .await;
    assert_eq!(loading["metadata"]["active"], "true");
    let answer_id = loading["message_id"].as_str().expect("answer id").to_owned();

    let done = client.answer(Duration::from_secs(30)).await;
    let chunks: Vec<_> = client
        .frames
        .iter()
        .filter(|f| f["type"] == "ai_response" && f["done"] == false)
        .collect();
    assert!(
        chunks.len() > 5,
        "the answer streams in chunks, got {}",
        chunks.len()
    );
    assert!(chunks.iter().all(|c| c["message_id"] == answer_id.as_str()));
    let streamed: String = chunks.iter().map(|c| c["content"].as_str().unwrap()).collect();
    assert_eq!(done["message_id"], answer_id.as_str());
    assert_eq!(
        done["content"].as_str().unwrap(),
        streamed,
        "the final frame carries the whole answer"
    );
    assert!(streamed.contains("What is chatbox?"), "{streamed}");
    assert!(
        streamed.contains("[[chatbox.llm.providers]]"),
        "the demo explains configuration"
    );
    assert_eq!(done["seq"], 2);
    assert_eq!(done["model_id"], "demo");
    assert!(
        done["metadata"]["completion_tokens"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > 0
    );

    let off = client
        .until(Duration::from_secs(5), |f| {
            f["type"] == "loading" && f["metadata"]["active"] == "false"
        })
        .await;
    assert_eq!(off["message_id"], answer_id.as_str());

    let metrics = get(&format!("http://{}/metrics", server.addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("chatbox_gateway_connections 1"), "{metrics}");
    assert!(
        metrics.contains("chatbox_worker_turns_total{outcome=\"ok\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("chatbox_gateway_messages_in_total{type=\"user_message\"} 1"));
    assert!(
        metrics.lines().any(
            |l| l.starts_with("chatbox_worker_tokens_total{provider=\"demo\",model=")
                && l.contains("kind=\"completion\"")
        ),
        "tokens by provider and model: {metrics}"
    );
    for timed in [
        "chatbox_store_operation_seconds_count{adapter=\"sqlite\",op=\"record_turn\",outcome=\"ok\"}",
        "chatbox_bus_operation_seconds_count{adapter=\"memory\",op=\"enqueue\",outcome=\"ok\"} 1",
        "chatbox_coordinator_operation_seconds_count{adapter=\"memory\",op=\"admit_message\",outcome=\"ok\"} 1",
    ] {
        assert!(metrics.contains(timed), "{timed}: {metrics}");
    }
    for process in [
        "process_cpu_seconds_total ",
        "process_resident_memory_bytes ",
        "process_open_fds ",
    ] {
        assert!(metrics.contains(process), "{process}: {metrics}");
    }
}

#[tokio::test]
async fn all_in_one_restores_the_session_on_reconnect() {
    let dir = log_dir(&unique("aio"));
    let env = vec![
        ("JWT_SECRET".to_owned(), SECRET.to_owned()),
        ("CHATBOX_LLM_DEMO_CHUNK_DELAY".to_owned(), "0ms".to_owned()),
    ];
    let server = start_all_in_one(&dir, &env, "all-in-one").await;
    let user = token("bob", &[]);
    let mut first = Client::connect(&server.addr, &user, None).await;
    let session = first.status().await["session_id"].as_str().unwrap().to_owned();
    first.say("a", "hello").await;
    first.answer(Duration::from_secs(10)).await;
    drop(first);

    let mut again = Client::connect(&server.addr, &user, Some(&session)).await;
    let status = again.status().await;
    assert_eq!(status["session_id"], session.as_str());
    assert_eq!(status["metadata"]["reason"], "restored");
    again.say("b", "again").await;
    let echo = again
        .until(Duration::from_secs(5), |f| f["type"] == "user_message")
        .await;
    assert_eq!(
        echo["seq"], 3,
        "sequence numbers continue in the restored session"
    );
}

#[tokio::test]
async fn the_all_in_one_keeps_conversations_across_restarts() {
    let dir = log_dir(&unique("aio"));
    let env = vec![
        ("JWT_SECRET".to_owned(), SECRET.to_owned()),
        ("CHATBOX_LLM_DEMO_CHUNK_DELAY".to_owned(), "0ms".to_owned()),
        ("ENCRYPTION_KEY".to_owned(), ENCRYPTION_KEY.to_owned()),
    ];
    let addr = format!("127.0.0.1:{}", free_port());
    let mut server = start_all_in_one_at(&dir, &env, "all-in-one", &addr).await;
    let user = token("ann", &[]);
    let mut client = Client::connect(&addr, &user, None).await;
    let session = client.status().await["session_id"].as_str().unwrap().to_owned();
    client.say("q1", "remember me").await;
    client.answer(Duration::from_secs(20)).await;
    drop(client);
    server.sigterm();
    assert!(server.wait_exit(Duration::from_secs(15)).success());

    let _again = start_all_in_one_at(&dir, &env, "all-in-one-restarted", &addr).await;
    let mut client = Client::connect(&addr, &user, Some(&session)).await;
    let status = client.status().await;
    assert_eq!(status["session_id"], session.as_str());
    assert_eq!(status["metadata"]["reason"], "restored");
    client
        .send(json!({ "type": "get_history", "id": "h", "session_id": session }))
        .await;
    let history = client
        .until(Duration::from_secs(10), |f| f["type"] == "history")
        .await;
    let messages = history["data"]["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0]["content"], "remember me");
    assert_eq!(messages[1]["type"], "ai_response");
    // SQLite holds it encrypted, in the database and in its journal.
    for file in ["chatbox.db", "chatbox.db-wal"] {
        let raw = std::fs::read(dir.join("data").join(file)).unwrap_or_default();
        assert!(!String::from_utf8_lossy(&raw).contains("remember me"), "{file}");
    }
}

#[tokio::test]
async fn with_a_configured_secret_the_banner_prints_no_token() {
    let dir = log_dir(&unique("banner"));
    let env = vec![("JWT_SECRET".to_owned(), SECRET.to_owned())];
    let server = start_all_in_one(&dir, &env, "all-in-one").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut log = server.log_text();
    while !log.contains("chatbox is running") && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        log = server.log_text();
    }
    assert!(log.contains("none is printed"), "the banner says why:\n{log}");
    assert!(
        !log.contains("eyJ"),
        "a token signed with the operator's secret reached the log:\n{log}"
    );
}
