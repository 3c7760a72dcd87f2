//! Graceful shutdown: SIGTERM drains a role and exits 0.

use std::time::Duration;

use crate::support::*;

#[tokio::test]
async fn sigterm_on_a_gateway_closes_sockets_with_1001_and_releases_locks() {
    let ns = TestNamespace::new();
    let dir = log_dir(&ns.name);
    let env = scaled_env(&ns);
    let mock = start_mock(&dir, "mock", &[]).await;
    let config = provider_config(&dir, "worker", &mock.addr);
    let _worker = start_worker(&dir, &env, "worker", Some(&config)).await;
    let mut gateway = start_gateway(&dir, &env, "gateway").await;

    let mut client = Client::connect(&gateway.addr, &token("ann", &[]), None).await;
    let session = client.status().await["session_id"].as_str().unwrap().to_owned();
    let owner_key = ns.key(&format!("chat:{{s:{session}}}:owner"));
    assert!(redis_get(&owner_key).await.is_some());

    gateway.sigterm();
    let told = client
        .until(Duration::from_secs(10), |f| f["type"] == "connection_status")
        .await;
    assert_eq!(told["metadata"]["reason"], "server_shutdown");
    let closed = client.until_closed(Duration::from_secs(10)).await;
    assert_eq!(closed.code, 1001, "{closed:?}");
    assert!(closed.reason.contains("reconnect"), "{closed:?}");
    let status = gateway.wait_exit(Duration::from_secs(15));
    assert!(status.success(), "gateway exited with {status}");
    assert_eq!(
        redis_get(&owner_key).await,
        None,
        "the lock is released at once, not left to expire"
    );
    let active = redis_get(&ns.key("chat:{u:ann}:active")).await;
    assert_eq!(
        active.as_deref(),
        Some(session.as_str()),
        "the session stays resumable"
    );
}

#[tokio::test]
async fn sigterm_on_a_worker_lets_the_turn_in_flight_finish() {
    let ns = TestNamespace::new();
    let dir = log_dir(&ns.name);
    let env = scaled_env(&ns);
    let mock = start_mock(&dir, "mock", &["--chunk-delay", "100"]).await;
    let config = provider_config(&dir, "worker", &mock.addr);
    let mut worker = start_worker(&dir, &env, "worker", Some(&config)).await;
    let gateway = start_gateway(&dir, &env, "gateway").await;

    let mut client = Client::connect(&gateway.addr, &token("ann", &[]), None).await;
    client.status().await;
    client.say("1", "finish this").await;
    client
        .until(Duration::from_secs(20), |f| {
            f["type"] == "ai_response" && f["done"] == false
        })
        .await;
    worker.sigterm();
    let done = client.answer(Duration::from_secs(20)).await;
    assert!(
        done["content"]
            .as_str()
            .unwrap()
            .starts_with("You said: finish this")
    );
    let status = worker.wait_exit(Duration::from_secs(15));
    assert!(status.success(), "worker exited with {status}");
    assert_eq!(mock_completions(&mock).await, 1, "the turn ran once");
}

#[tokio::test]
async fn sigterm_on_the_all_in_one_exits_cleanly() {
    let dir = log_dir(&unique("aio"));
    let env = vec![("JWT_SECRET".to_owned(), SECRET.to_owned())];
    let mut server = start_all_in_one(&dir, &env, "all-in-one").await;
    let mut client = Client::connect(&server.addr, &token("ann", &[]), None).await;
    client.status().await;
    server.sigterm();
    let closed = client.until_closed(Duration::from_secs(10)).await;
    assert_eq!(closed.code, 1001);
    assert!(server.wait_exit(Duration::from_secs(15)).success());
}
