//! Faults: the backplane going away and coming back, and silent clients.

use std::time::Duration;

use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn readiness_names_the_dependency_that_is_down_and_messages_survive_a_nats_restart() {
    let dir = log_dir(&unique("fault"));
    let mut redis = OwnServer::redis(&dir);
    let mut nats = OwnServer::nats(&dir);
    let ns = TestNamespace::new();
    let mut env = scaled_env(&ns);
    for (key, value) in [
        ("REDIS_URL", format!("redis://127.0.0.1:{}", redis.port)),
        ("NATS_URL", format!("nats://127.0.0.1:{}", nats.port)),
    ] {
        env.retain(|(k, _)| k != key);
        env.push((key.to_owned(), value));
    }
    let mock = start_mock(&dir, "mock", &[]).await;
    let config = provider_config(&dir, "worker", &mock.addr);
    let worker = start_worker(&dir, &env, "worker", Some(&config)).await;
    let gateway = start_gateway(&dir, &env, "gateway").await;
    assert_eq!(readiness(&gateway.addr).await.0, 200);

    let mut client = Client::connect(&gateway.addr, &token("ann", &[]), None).await;
    client.status().await;

    // NATS goes away: readiness says so, and a message is refused with an
    // error the client can act on rather than silently lost.
    nats.stop();
    let (status, body) = wait_readiness(&gateway.addr, 503).await;
    assert_eq!(status, 503);
    assert!(body["failing"]["nats"].is_string(), "{body}");
    assert!(readiness(&worker.addr).await.1["failing"]["nats"].is_string());
    client.say("m1", "are you there?").await;
    let error = client
        .until(Duration::from_secs(20), |f| f["type"] == "error")
        .await;
    assert_eq!(error["error"]["code"], "SERVICE_UNAVAILABLE");
    assert_eq!(error["error"]["recoverable"], true);

    // NATS is back (same store): the same message, sent again, is answered.
    nats.start();
    wait_readiness(&gateway.addr, 200).await;
    wait_readiness(&worker.addr, 200).await;
    client.say("m1", "are you there?").await;
    let done = client.answer(Duration::from_secs(30)).await;
    assert!(
        done["content"]
            .as_str()
            .unwrap()
            .starts_with("You said: are you there?"),
        "{done}"
    );

    // Redis goes away: readiness names it.
    redis.stop();
    let (_, body) = wait_readiness(&gateway.addr, 503).await;
    assert!(body["failing"]["redis"].is_string(), "{body}");
    redis.start();
    wait_readiness(&gateway.addr, 200).await;
}

async fn wait_readiness(addr: &str, want: u16) -> (u16, serde_json::Value) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = readiness(addr).await;
        if status == want {
            return (status, body);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "readyz stayed {status}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_silent_client_is_closed_after_pong_wait() {
    let dir = log_dir(&unique("idle"));
    let env: Vec<(String, String)> = [
        ("JWT_SECRET", SECRET),
        ("CHATBOX_WEBSOCKET_PING_PERIOD", "500ms"),
        ("CHATBOX_WEBSOCKET_PONG_WAIT", "2s"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let server = start_all_in_one(&dir, &env, "all-in-one").await;

    // A client that reads nothing answers no ping: closed after pong_wait,
    // while a client that pings keeps its socket.
    let silent = Client::connect(&server.addr, &token("bob", &[]), None).await;
    let mut talker = Client::connect(&server.addr, &token("ann", &[]), None).await;
    talker.status().await;
    let metric = "chatbox_gateway_disconnects_total{reason=\"idle_timeout\"} 1";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        talker.send(json!({ "type": "ping" })).await;
        talker
            .until(Duration::from_secs(2), |f| f["type"] == "pong")
            .await;
        let metrics = get(&format!("http://{}/metrics", server.addr))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if metrics.contains(metric) {
            assert!(
                metrics.contains("chatbox_gateway_connections 1"),
                "only the talker is left:\n{metrics}"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the silent socket was never closed:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    drop(silent);
}
