//! The worker's context cache (issue 17): a turn reads from the store only
//! the messages its worker does not hold, and yet never answers from a
//! history another worker has moved on; a turn whose context is held costs
//! the MongoDB store at most two round trips.

use std::time::Duration;

use serde_json::Value;

use crate::support::*;

/// The contents of the messages of the last completion request `mock` saw.
async fn last_prompt(mock: &Proc) -> Vec<String> {
    let requests: Value = get(&format!("http://{}/mock/requests", mock.addr))
        .await
        .expect("requests")
        .json()
        .await
        .expect("requests json");
    let last = requests["requests"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|r| r["body"]["messages"].is_array())
        .expect("a completion request");
    last["body"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Asks `question` and waits for its whole answer (the mock repeats the
/// question; a turn a paused worker resumes sends its stored answer
/// again, which is not this one).
async fn ask(client: &mut Client, id: &str, question: &str) -> String {
    client.say(id, question).await;
    let done = client
        .until(Duration::from_secs(60), |f| {
            f["type"] == "ai_response"
                && f["done"] == true
                && f["content"].as_str().is_some_and(|c| c.contains(question))
        })
        .await;
    done["content"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_context_cache_never_answers_from_a_stale_history_after_another_worker_handled_the_previous_turn() {
    let ns = TestNamespace::new();
    let dir = log_dir(&ns.name);
    let mut env = scaled_env(&ns);
    // A turn a paused worker pulled goes to the other one soon.
    env.push(("CHATBOX_WORKER_ACK_WAIT".into(), "2s".into()));
    let mock_a = start_mock(&dir, "mock-a", &[]).await;
    let mock_b = start_mock(&dir, "mock-b", &[]).await;
    let config_a = provider_config(&dir, "worker-a", &mock_a.addr);
    let config_b = provider_config(&dir, "worker-b", &mock_b.addr);
    let worker_a = start_worker(&dir, &env, "worker-a", Some(&config_a)).await;
    let gateway = start_gateway(&dir, &env, "gateway-a").await;
    let mut client = Client::connect(&gateway.addr, &token("ann", &[]), None).await;
    client.status().await;

    // Turn 1 on worker A: A now holds the session's context.
    ask(&mut client, "q1", "alpha question").await;
    assert_eq!(mock_completions(&mock_a).await, 1);

    // Turn 2 on worker B, while A is paused.
    let worker_b = start_worker(&dir, &env, "worker-b", Some(&config_b)).await;
    worker_a.signal(libc::SIGSTOP);
    let second = ask(&mut client, "q2", "bravo question").await;
    assert_eq!(mock_completions(&mock_b).await, 1, "worker B answered turn 2");
    worker_a.signal(libc::SIGCONT);

    // Turn 3 on worker A again, while B is paused: its prompt has turn 2.
    worker_b.signal(libc::SIGSTOP);
    ask(&mut client, "q3", "charlie question").await;
    worker_b.signal(libc::SIGCONT);
    assert_eq!(mock_completions(&mock_a).await, 2, "worker A answered turn 3");
    let prompt = last_prompt(&mock_a).await;
    let has = |text: &str| prompt.iter().any(|m| m.contains(text));
    assert!(
        has("alpha question") && has("bravo question") && has(&second) && has("charlie question"),
        "worker A's prompt must hold turn 2, which worker B handled: {prompt:?}"
    );
    let order: Vec<&String> = prompt.iter().filter(|m| m.contains("question")).collect();
    assert!(
        order.len() >= 3
            && order[order.len() - 1].contains("charlie")
            && order[order.len() - 2].contains("bravo"),
        "in order: {prompt:?}"
    );
    drop((worker_a, worker_b, gateway, mock_a, mock_b, ns));
}

/// The store calls of the worker, by operation, from its metrics.
async fn store_calls(worker: &Proc) -> Vec<(String, u64)> {
    metrics_text(worker)
        .await
        .lines()
        .filter(|l| l.starts_with("chatbox_store_operation_seconds_count{"))
        .filter_map(|l| {
            let op = l.split("op=\"").nth(1)?.split('"').next()?.to_owned();
            let count = l.rsplit(' ').next()?.parse::<f64>().ok()? as u64;
            Some((op, count))
        })
        .collect()
}

/// Calls a turn could make (the worker's timers make others: samples,
/// sweeps, readiness).
fn turn_calls(calls: &[(String, u64)], op: Option<&str>) -> u64 {
    const BACKGROUND: [&str; 6] = [
        "add_sample",
        "stale_sessions",
        "expired_slots",
        "open_takeovers",
        "active_session_count",
        "check",
    ];
    calls
        .iter()
        .filter(|(o, _)| !BACKGROUND.contains(&o.as_str()))
        .filter(|(o, _)| op.is_none_or(|op| o == op))
        .map(|(_, n)| n)
        .sum()
}

#[tokio::test]
async fn on_mongodb_a_turn_whose_context_is_cached_needs_at_most_two_store_round_trips() {
    let ns = TestNamespace::new();
    let dir = log_dir(&ns.name);
    let env = scaled_env(&ns);
    let mock = start_mock(&dir, "mock", &[]).await;
    let config = provider_config(&dir, "worker", &mock.addr);
    let worker = start_worker(&dir, &env, "worker", Some(&config)).await;
    let gateway = start_gateway(&dir, &env, "gateway").await;
    let mut client = Client::connect(&gateway.addr, &token("bo", &[]), None).await;
    client.status().await;
    ask(&mut client, "q1", "first question").await;

    let before = store_calls(&worker).await;
    ask(&mut client, "q2", "second question").await;
    let after = store_calls(&worker).await;
    let spent = |op| turn_calls(&after, op) - turn_calls(&before, op);
    assert_eq!(
        spent(Some("turn_view")),
        1,
        "the cached context needs no second read"
    );
    assert!(
        spent(None) <= 2,
        "a turn with its context cached made {} store calls: {before:?} → {after:?}",
        spent(None)
    );
    assert!(
        last_prompt(&mock)
            .await
            .iter()
            .any(|m| m.contains("first question")),
        "the cached context is in the prompt"
    );
    drop((worker, gateway, mock, ns));
}
