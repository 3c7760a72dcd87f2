//! Graceful shutdown: SIGTERM drains a role and exits 0.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
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
async fn sigterm_on_one_of_two_workers_mid_turn_finishes_the_turn_once_and_the_other_carries_on() {
    let ns = TestNamespace::new();
    let dir = log_dir(&ns.name);
    let env = scaled_env(&ns);
    // One mock per worker, so the test knows which worker runs the turn.
    let mocks = [
        start_mock(&dir, "mock-a", &["--chunks", "20", "--chunk-delay", "100"]).await,
        start_mock(&dir, "mock-b", &["--chunks", "20", "--chunk-delay", "100"]).await,
    ];
    let configs = [
        provider_config(&dir, "worker-a", &mocks[0].addr),
        provider_config(&dir, "worker-b", &mocks[1].addr),
    ];
    let mut workers = [
        start_worker(&dir, &env, "worker-a", Some(&configs[0])).await,
        start_worker(&dir, &env, "worker-b", Some(&configs[1])).await,
    ];
    let gateway = start_gateway(&dir, &env, "gateway").await;

    let mut client = Client::connect(&gateway.addr, &token("wes", &[]), None).await;
    client.status().await;
    client.say("long", "a long answer please").await;
    client
        .until(Duration::from_secs(20), |f| {
            f["type"] == "ai_response" && f["done"] == false
        })
        .await;
    let mut running = None;
    for (n, mock) in mocks.iter().enumerate() {
        if mock_completions(mock).await == 1 {
            running = Some(n);
        }
    }
    let running = running.expect("one of the workers runs the turn");
    let other = 1 - running;
    workers[running].sigterm();

    let done = client.answer(Duration::from_secs(30)).await;
    assert_eq!(done["metadata"]["finish_reason"], "complete", "{done}");
    assert!(
        done["content"]
            .as_str()
            .unwrap()
            .starts_with("You said: a long answer please")
    );
    let status = workers[running].wait_exit(Duration::from_secs(20));
    assert!(status.success(), "the drained worker exited with {status}");

    // The other worker takes the next message; the first was run once.
    client.say("next", "and now?").await;
    let next = client.answer(Duration::from_secs(30)).await;
    assert!(
        next["content"]
            .as_str()
            .unwrap()
            .starts_with("You said: and now?")
    );
    assert_eq!(
        mock_completions(&mocks[running]).await,
        1,
        "the drained worker ran its turn once"
    );
    assert_eq!(
        mock_completions(&mocks[other]).await,
        1,
        "the other ran only the next one"
    );
    let stored = client.history().await;
    let answers = stored.iter().filter(|m| m["type"] == "ai_response").count();
    assert_eq!(answers, 2, "one answer per message: {stored:?}");
    let metrics = http()
        .get(format!("http://{}/metrics", workers[other].addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let redelivered: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("chatbox_worker_redeliveries_total "))
        .map_or(0.0, |v| v.parse().unwrap());
    assert_eq!(redelivered, 0.0, "nothing was delivered twice: {metrics}");
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

/// One user of the drain test: sends `MESSAGES` questions one after
/// another on `first`; when the gateway closes the socket (it must be
/// 1001), reconnects to `second` with the session, and sends again — with
/// the same id — only what the stored history lacks, as a client should.
/// Returns the session id and how many times the socket was closed.
async fn steady_user(
    user: String,
    first: String,
    second: String,
    answered: Arc<AtomicUsize>,
) -> (String, usize) {
    let token = token(&user, &[]);
    let mut client = Client::connect(&first, &token, None).await;
    let session = client.status().await["session_id"].as_str().unwrap().to_owned();
    let mut closes = 0;
    for i in 0..MESSAGES {
        let id = format!("{user}-m{i}");
        // Each pass sends the question (again, with the same id) and
        // waits for its answer.
        'answer: loop {
            // A socket already gone shows as the close read next.
            let _ = client
                .try_say(&id, &format!("question {i} [[mock chunks=3 chunk-delay-ms=30]]"))
                .await;
            loop {
                match client.next(Duration::from_secs(30)).await {
                    Ok(frame) if frame["type"] == "ai_response" && frame["done"] == true => break 'answer,
                    Ok(_) => continue,
                    Err(closed) => {
                        assert_eq!(closed.code, 1001, "{user}: closed with {closed:?}");
                        closes += 1;
                        client = Client::connect(&second, &token, Some(&session)).await;
                        let status = client.status().await;
                        assert_eq!(status["metadata"]["reason"], "restored", "{user}: {status}");
                        let stored = client.history().await;
                        let asked = stored.iter().position(|m| m["id"] == id.as_str());
                        match asked {
                            // Answered while we were away: history has it.
                            Some(at) if stored[at + 1..].iter().any(|m| m["type"] == "ai_response") => {
                                break 'answer;
                            }
                            // Accepted: the answer streams on the new socket
                            // (and may have ended while history was read).
                            Some(_)
                                if client
                                    .frames
                                    .iter()
                                    .any(|f| f["type"] == "ai_response" && f["done"] == true) =>
                            {
                                break 'answer;
                            }
                            Some(_) => continue,
                            // Never accepted: send it again.
                            None => continue 'answer,
                        }
                    }
                }
            }
        }
        answered.fetch_add(1, Ordering::SeqCst);
    }
    (session, closes)
}

const USERS: usize = 8;
const MESSAGES: usize = 6;

#[tokio::test]
async fn sigterm_on_a_gateway_under_load_moves_every_user_to_the_other_gateway_without_losing_a_message() {
    let ns = TestNamespace::new();
    let dir = log_dir(&ns.name);
    let env = scaled_env(&ns);
    let mock = start_mock(&dir, "mock", &[]).await;
    let config = provider_config(&dir, "worker", &mock.addr);
    let workers = [
        start_worker(&dir, &env, "worker-a", Some(&config)).await,
        start_worker(&dir, &env, "worker-b", Some(&config)).await,
    ];
    let mut draining = start_gateway(&dir, &env, "gateway-a").await;
    let staying = start_gateway(&dir, &env, "gateway-b").await;

    let answered = Arc::new(AtomicUsize::new(0));
    let users: Vec<_> = (0..USERS)
        .map(|n| {
            tokio::spawn(steady_user(
                format!("drain-{n}"),
                draining.addr.clone(),
                staying.addr.clone(),
                Arc::clone(&answered),
            ))
        })
        .collect();
    // Under load: every user has had an answer and is asking more.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while answered.load(Ordering::SeqCst) < USERS {
        assert!(tokio::time::Instant::now() < deadline, "the users got no answers");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    draining.sigterm();
    let mut sessions = Vec::new();
    for user in users {
        let (session, closes) = user.await.expect("user task");
        assert_eq!(closes, 1, "every user is moved exactly once");
        sessions.push(session);
    }
    let status = draining.wait_exit(Duration::from_secs(15));
    assert!(status.success(), "the drained gateway exited with {status}");

    // Nothing accepted was lost, nothing was taken twice.
    for (n, session) in sessions.iter().enumerate() {
        let user = format!("drain-{n}");
        let mut client = Client::connect(&staying.addr, &token(&user, &[]), Some(session)).await;
        client.status().await;
        let stored = client.history().await;
        let asked: Vec<&str> = stored
            .iter()
            .filter(|m| m["type"] == "user_message")
            .map(|m| m["id"].as_str().unwrap_or_default())
            .collect();
        let expected: Vec<String> = (0..MESSAGES).map(|i| format!("{user}-m{i}")).collect();
        assert_eq!(asked, expected, "{user}: each question stored once, in order");
        let answers = stored.iter().filter(|m| m["type"] == "ai_response").count();
        assert_eq!(answers, MESSAGES, "{user}: each question answered once");
    }
    assert_eq!(
        mock_completions(&mock).await,
        (USERS * MESSAGES) as u64,
        "the model was asked once per question"
    );

    // What an operator sees of it: the JetStream backlog, Redis and NATS
    // timed per operation.
    let scrape = |addr: &str| {
        let url = format!("http://{addr}/metrics");
        async move { http().get(url).send().await.unwrap().text().await.unwrap() }
    };
    // (sampled a second after start, then every 10 s)
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let worker = loop {
        let text = scrape(&workers[0].addr).await;
        if text.contains("chatbox_worker_inbound_pending ") || tokio::time::Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(worker.contains("chatbox_worker_inbound_pending 0\n"), "{worker}");
    assert!(worker.contains("chatbox_worker_inbound_ack_pending "), "{worker}");
    let gateway = scrape(&staying.addr).await;
    for timed in [
        "chatbox_coordinator_operation_seconds_count{adapter=\"redis\",op=\"admit_message\",outcome=\"ok\"}",
        "chatbox_bus_operation_seconds_count{adapter=\"nats\",op=\"enqueue\",outcome=\"ok\"}",
    ] {
        assert!(gateway.contains(timed), "{timed}: {gateway}");
    }
}

#[tokio::test]
async fn a_worker_and_a_gateway_stop_on_sigterm_while_nats_is_gone() {
    let dir = log_dir(&unique("nats-gone"));
    let mut nats = OwnServer::nats(&dir);
    let ns = TestNamespace::new();
    let mut env = scaled_env(&ns);
    env.retain(|(k, _)| k != "NATS_URL");
    env.push(("NATS_URL".to_owned(), format!("nats://127.0.0.1:{}", nats.port)));
    let mut worker = start_worker(&dir, &env, "worker", None).await;
    let mut gateway = start_gateway(&dir, &env, "gateway").await;
    // The whole system stopping at once: NATS first, then the pods.
    nats.stop();
    worker.sigterm();
    gateway.sigterm();
    // Exits on its own (wait_exit fails the test if it is still running
    // after the timeout), having said why its last frames stayed behind.
    assert!(
        worker.wait_exit(Duration::from_secs(30)).success(),
        "{}",
        worker.log_text()
    );
    assert!(
        gateway.wait_exit(Duration::from_secs(30)).success(),
        "{}",
        gateway.log_text()
    );
}
