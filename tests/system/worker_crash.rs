//! A worker killed mid-answer costs its users seconds and shows them
//! nothing twice; a slow model is never asked twice while its worker lives
//! (docs/RELIABILITY.md, docs/PROTOCOL.md "When a worker dies mid-answer").
//!
//! Both run with the default ack wait (`chatbox.worker.ack_wait`).

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::*;

/// The scaled roles' environment with the worker's default ack wait.
fn default_ack_wait_env(ns: &TestNamespace) -> Vec<(String, String)> {
    let mut env = scaled_env(ns);
    env.retain(|(k, _)| k != "CHATBOX_WORKER_ACK_WAIT");
    env
}

/// One user's view of the turn, read by the protocol's rules.
struct Seen {
    echoes: usize,
    /// The answer as a client assembles it: the chunks after the last
    /// `loading` that started the answer (over), then the final frame.
    assembled: String,
    final_text: String,
    /// When the first chunk after the kill arrived (from the new worker).
    resumed: Option<Instant>,
}

fn read_turn(client: &Client, id: &str, killed: Instant) -> Seen {
    let mut echoes = 0;
    let mut assembled = String::new();
    let mut final_text = String::new();
    let mut restarted_after_kill = false;
    let mut resumed = None;
    for (frame, at) in client.frames.iter().zip(&client.arrivals) {
        match frame["type"].as_str() {
            Some("user_message") if frame["id"] == id => echoes += 1,
            Some("loading")
                if frame["metadata"]["active"] == "true" && frame["metadata"]["status"].is_null() =>
            {
                assembled.clear();
                restarted_after_kill |= *at > killed;
            }
            Some("ai_response") if frame["done"] == false => {
                if frame["metadata"]["replace"] == "true" {
                    assembled.clear();
                }
                assembled.push_str(frame["content"].as_str().unwrap_or_default());
                if restarted_after_kill && resumed.is_none() {
                    resumed = Some(*at);
                }
            }
            Some("ai_response") => final_text = frame["content"].as_str().unwrap_or_default().to_owned(),
            _ => {}
        }
    }
    Seen {
        echoes,
        assembled,
        final_text,
        resumed,
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::test]
async fn twenty_answers_on_a_killed_worker_resume_within_seconds_and_repeat_nothing() {
    const USERS: usize = 20;
    let ns = TestNamespace::new();
    let dir = log_dir(&ns.name);
    let env = default_ack_wait_env(&ns);
    // 50 chunks, 150 ms apart: each answer streams for about 7.5 s.
    let mock = start_mock(&dir, "mock", &["--chunks", "50", "--chunk-delay", "150"]).await;
    let config = provider_config(&dir, "worker", &mock.addr);
    let mut doomed = start_worker(&dir, &env, "worker-a", Some(&config)).await;
    let gateways = [
        start_gateway(&dir, &env, "gateway-a").await,
        start_gateway(&dir, &env, "gateway-b").await,
    ];

    // Every user asks while worker A is the only worker: all 20 answers
    // stream from it.
    let mut clients = Vec::new();
    for i in 0..USERS {
        let gateway = &gateways[i % 2];
        let mut client = Client::connect(&gateway.addr, &token(&format!("crash-{i}"), &[]), None).await;
        client.status().await;
        client
            .say(&format!("q-{i}"), &format!("question number {i}"))
            .await;
        clients.push(client);
    }
    for client in &mut clients {
        client
            .until(Duration::from_secs(20), |f| {
                f["type"] == "ai_response" && f["done"] == false
            })
            .await;
    }
    let survivor = start_worker(&dir, &env, "worker-b", Some(&config)).await;
    doomed.sigkill();
    let killed = Instant::now();

    // Every socket is read at once, so a frame's arrival time is when it
    // came, not when the test got round to it.
    let readers: Vec<_> = clients
        .into_iter()
        .map(|mut client| {
            tokio::spawn(async move {
                let done = client.answer(Duration::from_secs(60)).await;
                (client, done)
            })
        })
        .collect();
    let mut resumed = Vec::new();
    for (i, reader) in readers.into_iter().enumerate() {
        let (mut client, done) = reader.await.expect("reader");
        let id = format!("q-{i}");
        let seen = read_turn(&client, &id, killed);
        assert_eq!(seen.echoes, 1, "user {i}: the message is echoed once");
        assert!(
            seen.final_text
                .starts_with(&format!("You said: question number {i}")),
            "user {i}: {done}"
        );
        assert_eq!(
            seen.assembled, seen.final_text,
            "user {i}: the text assembled by the protocol's rules is the final answer"
        );
        let Some(at) = seen.resumed else {
            panic!(
                "user {i}: the answer never streamed again after the kill: {:?}",
                client.frames
            )
        };
        resumed.push(at - killed);

        let history = client.history().await;
        let mine: Vec<&Value> = history
            .iter()
            .filter(|m| m["type"] == "user_message" && m["id"] == id.as_str())
            .collect();
        assert_eq!(
            mine.len(),
            1,
            "user {i}: the question is stored once: {history:?}"
        );
        let answers: Vec<&Value> = history.iter().filter(|m| m["type"] == "ai_response").collect();
        assert_eq!(
            answers.len(),
            1,
            "user {i}: the answer is stored once: {history:?}"
        );
        assert_eq!(
            answers[0]["content"], done["content"],
            "user {i}: stored as shown"
        );
    }
    let redelivered = metric_sum(&survivor, "chatbox_worker_redeliveries_total").await;
    assert!(
        redelivered >= USERS as f64,
        "the survivor counts the turns it took over: {redelivered}"
    );
    let mut repeats = 0.0;
    for gateway in &gateways {
        repeats += metric_sum(gateway, "chatbox_gateway_repeats_dropped_total").await;
    }
    assert!(
        repeats >= USERS as f64,
        "the gateways dropped the echo each redelivered turn sent again: {repeats}"
    );
    let max = resumed.iter().max().copied().unwrap_or_default();
    println!(
        "worker killed with {USERS} answers streaming: streaming again after median {:?}, max {max:?} (default ack wait)",
        median(resumed.clone()),
    );
}

#[tokio::test]
async fn a_slow_model_is_asked_once_while_its_worker_lives() {
    let ns = TestNamespace::new();
    let dir = log_dir(&ns.name);
    let env = default_ack_wait_env(&ns);
    // First token after 20 s, then chunks 5 s apart: many ack waits long.
    let mock = start_mock(
        &dir,
        "mock",
        &["--latency", "20000", "--chunks", "3", "--chunk-delay", "5000"],
    )
    .await;
    let config = provider_config(&dir, "worker", &mock.addr);
    let workers = [
        start_worker(&dir, &env, "worker-a", Some(&config)).await,
        start_worker(&dir, &env, "worker-b", Some(&config)).await,
    ];
    let gateway = start_gateway(&dir, &env, "gateway").await;
    let mut client = Client::connect(&gateway.addr, &token("patient", &[]), None).await;
    client.status().await;
    client.say("slow-1", "take your time").await;
    let done = client.answer(Duration::from_secs(90)).await;
    assert!(
        done["content"]
            .as_str()
            .unwrap()
            .starts_with("You said: take your time"),
        "{done}"
    );
    assert_eq!(mock_completions(&mock).await, 1, "the model was asked once");
    for worker in &workers {
        assert_eq!(
            metric_sum(worker, "chatbox_worker_redeliveries_total").await,
            0.0,
            "{}: the turn was never delivered a second time",
            worker.name
        );
    }
    let echoes = client
        .frames
        .iter()
        .filter(|f| f["type"] == "user_message" && f["id"] == "slow-1")
        .count();
    assert_eq!(echoes, 1);
}
