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
