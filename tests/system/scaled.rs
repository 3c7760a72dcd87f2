//! The scaled roles: gateways and workers as separate processes on real
//! Redis and NATS, with the mock LLM.

use std::time::Duration;

use crate::support::*;

/// Two gateways, two workers and a mock LLM in one namespace. (Fields drop
/// in order: the processes stop before the namespace is deleted.)
struct Cluster {
    gateways: Vec<Proc>,
    workers: Vec<Proc>,
    mocks: Vec<Proc>,
    ns: TestNamespace,
}

impl Cluster {
    /// `mock_args` shape the mock LLMs; with `mock_per_worker`, each worker
    /// gets its own mock so a test can tell which worker ran a turn.
    async fn start(mock_args: &[&str], mock_per_worker: bool) -> Cluster {
        let ns = TestNamespace::new();
        let dir = log_dir(&ns.name);
        let env = scaled_env(&ns);
        let mut mocks = vec![start_mock(&dir, "mock-a", mock_args).await];
        if mock_per_worker {
            mocks.push(start_mock(&dir, "mock-b", mock_args).await);
        }
        let config_a = provider_config(&dir, "worker-a", &mocks[0].addr);
        let config_b = provider_config(&dir, "worker-b", &mocks[mocks.len() - 1].addr);
        let workers = vec![
            start_worker(&dir, &env, "worker-a", Some(&config_a)).await,
            start_worker(&dir, &env, "worker-b", Some(&config_b)).await,
        ];
        let gateways = vec![
            start_gateway(&dir, &env, "gateway-a").await,
            start_gateway(&dir, &env, "gateway-b").await,
        ];
        Cluster {
            ns,
            gateways,
            workers,
            mocks,
        }
    }
}

#[tokio::test]
async fn twenty_messages_through_two_gateways_and_two_workers_come_back_in_order() {
    let cluster = Cluster::start(&["--chunks", "5"], false).await;
    let mut client = Client::connect(&cluster.gateways[0].addr, &token("ann", &[]), None).await;
    client.status().await;
    for i in 1..=20 {
        client.say(&format!("m{i}"), &format!("message {i}")).await;
    }
    let mut answers = Vec::new();
    while answers.len() < 20 {
        let done = client.answer(Duration::from_secs(30)).await;
        answers.push(done["content"].as_str().unwrap().to_owned());
    }
    for (i, answer) in answers.iter().enumerate() {
        assert!(
            answer.starts_with(&format!("You said: message {}.", i + 1)),
            "answer {} is {answer:?}",
            i + 1
        );
    }
    let echoes: Vec<u64> = client
        .frames
        .iter()
        .filter(|f| f["type"] == "user_message")
        .map(|f| f["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(echoes.len(), 20);
    assert!(
        echoes.windows(2).all(|w| w[0] < w[1]),
        "sequence follows sending order: {echoes:?}"
    );
    let ids: Vec<&str> = client
        .frames
        .iter()
        .filter(|f| f["type"] == "user_message")
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = (1..=20).map(|i| format!("m{i}")).collect();
    assert_eq!(ids, expected);
    assert_eq!(mock_completions(&cluster.mocks[0]).await, 20);
}

#[tokio::test]
async fn connecting_on_another_gateway_closes_the_first_socket() {
    let cluster = Cluster::start(&[], false).await;
    let user = token("ann", &[]);
    let mut on_a = Client::connect(&cluster.gateways[0].addr, &user, None).await;
    let session = on_a.status().await["session_id"].as_str().unwrap().to_owned();

    let mut on_b = Client::connect(&cluster.gateways[1].addr, &user, None).await;
    let status = on_b.status().await;
    assert_eq!(
        status["session_id"],
        session.as_str(),
        "the user's active session follows them"
    );
    assert_eq!(status["metadata"]["reason"], "restored");

    let told = on_a
        .until(Duration::from_secs(10), |f| f["type"] == "connection_status")
        .await;
    assert_eq!(told["metadata"]["status"], "closed");
    assert_eq!(told["metadata"]["reason"], "connected_elsewhere");
    let closed = on_a.until_closed(Duration::from_secs(10)).await;
    assert_eq!(closed.code, 4001, "{closed:?}");

    on_b.say("x", "still here?").await;
    let done = on_b.answer(Duration::from_secs(20)).await;
    assert!(
        done["content"]
            .as_str()
            .unwrap()
            .starts_with("You said: still here?")
    );

    let owner = redis_get(&cluster.ns.key(&format!("chat:{{s:{session}}}:owner"))).await;
    assert!(
        owner.as_deref().is_some_and(|o| o.starts_with("gateway-b/")),
        "owner is {owner:?}"
    );
}

#[tokio::test]
async fn a_killed_gateways_lock_expires_and_the_user_continues_on_another() {
    let mut cluster = Cluster::start(&[], false).await;
    let user = token("ann", &[]);
    let mut on_a = Client::connect(&cluster.gateways[0].addr, &user, None).await;
    let session = on_a.status().await["session_id"].as_str().unwrap().to_owned();
    on_a.say("1", "first").await;
    on_a.answer(Duration::from_secs(20)).await;
    let owner_key = cluster.ns.key(&format!("chat:{{s:{session}}}:owner"));
    let owner = redis_get(&owner_key).await;
    assert!(
        owner.as_deref().is_some_and(|o| o.starts_with("gateway-a/")),
        "owner is {owner:?}"
    );

    cluster.gateways[0].sigkill();
    let closed = on_a.until_closed(Duration::from_secs(5)).await;
    assert_eq!(closed.code, 1006, "a killed gateway says nothing: {closed:?}");

    // Nobody renews the dead gateway's lock: it expires (TTL 3s here).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while redis_get(&owner_key).await.is_some() {
        assert!(tokio::time::Instant::now() < deadline, "the lock never expired");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let mut on_b = Client::connect(&cluster.gateways[1].addr, &user, Some(&session)).await;
    let status = on_b.status().await;
    assert_eq!(status["session_id"], session.as_str());
    assert_eq!(status["metadata"]["reason"], "restored");
    on_b.say("2", "second").await;
    let done = on_b.answer(Duration::from_secs(20)).await;
    assert!(done["content"].as_str().unwrap().starts_with("You said: second"));
    assert!(
        done["seq"].as_u64().unwrap() >= 4,
        "the session continues: {done}"
    );
}

#[tokio::test]
async fn a_worker_killed_mid_turn_loses_nothing() {
    // 20 chunks, 150 ms apart: a turn takes about three seconds.
    let mut cluster = Cluster::start(&["--chunk-delay", "150"], true).await;
    let mut client = Client::connect(&cluster.gateways[0].addr, &token("ann", &[]), None).await;
    client.status().await;
    client.say("slow-1", "tell me a long story").await;
    let first_chunk = client
        .until(Duration::from_secs(20), |f| {
            f["type"] == "ai_response" && f["done"] == false
        })
        .await;
    let answer_id = first_chunk["message_id"].as_str().unwrap().to_owned();

    // Each worker has its own mock LLM: the one that got the request tells
    // which worker runs the turn.
    let busy = if mock_completions(&cluster.mocks[0]).await == 1 {
        0
    } else {
        1
    };
    let other = 1 - busy;
    assert_eq!(mock_completions(&cluster.mocks[busy]).await, 1);
    cluster.workers[busy].sigkill();

    // The other worker gets the message once the ack wait (2s) passes and
    // streams the whole answer again, under the same message id.
    let done = client.answer(Duration::from_secs(30)).await;
    assert_eq!(done["message_id"], answer_id.as_str());
    assert!(
        done["content"]
            .as_str()
            .unwrap()
            .starts_with("You said: tell me a long story")
    );
    assert_eq!(mock_completions(&cluster.mocks[other]).await, 1);
    let restarts = client
        .frames
        .iter()
        .filter(|f| {
            f["type"] == "loading"
                && f["metadata"]["active"] == "true"
                && f["metadata"]["status"].is_null()
                && f["message_id"] == answer_id.as_str()
        })
        .count();
    assert_eq!(
        restarts, 2,
        "the retried turn announces itself so the client resets the partial answer"
    );

    // And the session carries on.
    client.say("slow-2", "and another").await;
    let done = client.answer(Duration::from_secs(30)).await;
    assert!(
        done["content"]
            .as_str()
            .unwrap()
            .starts_with("You said: and another")
    );
}

#[tokio::test]
async fn stop_on_one_gateway_reaches_the_worker_streaming_the_answer() {
    let cluster = Cluster::start(&["--chunks", "5"], false).await;
    let mut client = Client::connect(&cluster.gateways[1].addr, &token("stopper", &[]), None).await;
    client.status().await;
    client
        .say("long", "go on and on [[mock chunks=300 chunk-delay-ms=30]]")
        .await;
    for _ in 0..2 {
        client
            .until(Duration::from_secs(10), |f| {
                f["type"] == "ai_response" && f["done"] == false
            })
            .await;
    }
    client
        .send(serde_json::json!({ "type": "stop", "id": "s1" }))
        .await;
    let done = client.answer(Duration::from_secs(10)).await;
    assert_eq!(done["metadata"]["finish_reason"], "stopped");
    assert!(done["content"].as_str().unwrap().len() < 1000);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while mock_stats(&cluster.mocks[0]).await["cancelled"] != 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the upstream request was not cancelled"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A user on two gateways at once — messages on a socket of gateway A,
/// upload slots (counted against the same rate) over HTTP on gateway B —
/// sending fast gets the bucket within the stated error
/// (docs/CONFIGURATION.md, next to `rate_limit`): each gateway leases
/// tokens in batches and spends them locally.
#[tokio::test]
async fn a_user_on_two_gateways_is_limited_within_the_stated_error() {
    const CAPACITY: usize = 20;
    const SENT: usize = 30;
    // From gateway/src/rate_limit.rs: batch = min(20 / 4, 8) = 5; over
    // an hour's window a lease of 1 s adds at most ⌈20 / 3600⌉ = 1.
    const BATCH: usize = 5;
    const GATEWAYS: usize = 2;
    let over = (GATEWAYS * (BATCH - 1)).min(1);
    let under = GATEWAYS * (BATCH - 1);

    let ns = TestNamespace::new();
    let dir = log_dir(&ns.name);
    let mut env = scaled_env(&ns);
    // An hour's window: a token comes back every 3 minutes, none while the
    // test runs.
    env.push(("RATE_LIMIT".into(), CAPACITY.to_string()));
    env.push(("CHATBOX_RATE_LIMIT_WINDOW".into(), "1h".into()));
    let mock = start_mock(&dir, "mock", &["--chunks", "1"]).await;
    let config = provider_config(&dir, "worker", &mock.addr);
    let _worker = start_worker(&dir, &env, "worker", Some(&config)).await;
    let a = start_gateway(&dir, &env, "gateway-a").await;
    let b = start_gateway(&dir, &env, "gateway-b").await;

    let user = unique("fast");
    let mut socket = Client::connect(&a.addr, &token(&user, &[]), None).await;
    let sid = socket.status().await["session_id"].as_str().unwrap().to_owned();
    let on_socket = async {
        for i in 0..SENT {
            socket.say(&format!("m{i}"), &format!("message {i}")).await;
        }
        let (mut echoed, mut refused) = (0, 0);
        while echoed + refused < SENT {
            let frame = socket.next(Duration::from_secs(30)).await.expect("socket open");
            if frame["type"] == "user_message" {
                echoed += 1;
            } else if is_error(&frame, "RATE_LIMITED") {
                refused += 1;
            } else {
                assert_ne!(frame["type"], "error", "{frame}");
            }
        }
        echoed
    };
    let over_http = async {
        let mut admitted = 0;
        for i in 0..SENT {
            let response = http()
                .post(format!("http://{}/chat/uploads?session_id={sid}", b.addr))
                .bearer_auth(token(&user, &[]))
                .json(&serde_json::json!({
                    "name": format!("f{i}.png"), "size": 10, "content_type": "image/png"
                }))
                .send()
                .await
                .expect("POST /chat/uploads");
            let status = response.status().as_u16();
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            if status == 429 {
                assert_eq!(body["error"]["code"], "RATE_LIMITED", "{body}");
            } else {
                assert_eq!(status, 201, "{body}");
                admitted += 1;
            }
        }
        admitted
    };
    let (echoed, slots) = tokio::join!(on_socket, over_http);
    let accepted = echoed + slots;
    println!(
        "accepted {accepted} of {}: {echoed} messages on A, {slots} slots on B",
        2 * SENT
    );
    assert!(
        accepted <= CAPACITY + over,
        "{accepted} accepted ({echoed} messages, {slots} slots): more than {CAPACITY} + {over}"
    );
    assert!(
        accepted + under >= CAPACITY,
        "{accepted} accepted ({echoed} messages, {slots} slots): fewer than {CAPACITY} - {under}"
    );
    assert!(
        echoed > 0 && slots > 0,
        "both gateways took tokens: {echoed} + {slots}"
    );
}
