//! A user whose turn waits for a worker is told at once: the gateway says
//! the message is accepted and its answer on its way (`loading` with
//! `status: "queued"`) as soon as the queue has it, and the wait shows in
//! `chatbox_worker_queue_wait_seconds` (docs/PROTOCOL.md, `loading`).

use std::time::{Duration, Instant};

use crate::support::*;

#[tokio::test]
async fn a_message_waiting_for_a_turn_slot_is_acknowledged_at_once_and_its_wait_counted() {
    let ns = TestNamespace::new();
    let dir = log_dir(&ns.name);
    let mut env = scaled_env(&ns);
    // One worker that runs one turn at a time: the second user waits.
    env.push(("CHATBOX_WORKER_MAX_CONCURRENT_TURNS".into(), "1".into()));
    // 20 chunks, 100 ms apart: each answer streams for two seconds.
    let mock = start_mock(&dir, "mock", &["--chunks", "20", "--chunk-delay", "100"]).await;
    let config = provider_config(&dir, "worker", &mock.addr);
    let worker = start_worker(&dir, &env, "worker", Some(&config)).await;
    let gateway = start_gateway(&dir, &env, "gateway").await;

    let mut first = Client::connect(&gateway.addr, &token("first", &[]), None).await;
    first.status().await;
    first.say("f-1", "I was here first").await;
    first
        .until(Duration::from_secs(20), |f| {
            f["type"] == "ai_response" && f["done"] == false
        })
        .await;

    let mut second = Client::connect(&gateway.addr, &token("second", &[]), None).await;
    second.status().await;
    let sent = Instant::now();
    second.say("s-1", "and I am waiting").await;
    let queued = second
        .until(Duration::from_secs(10), |f| f["type"] == "loading")
        .await;
    let acknowledged = sent.elapsed();
    assert_eq!(queued["metadata"]["status"], "queued", "{queued}");
    assert_eq!(queued["metadata"]["active"], "true");
    assert_eq!(queued["id"], "s-1", "it names the message it accepted");
    let answer_id = queued["message_id"].as_str().expect("the answer's id").to_owned();
    assert!(
        !second.frames.iter().any(|f| f["type"] == "user_message"),
        "no worker has taken the turn yet: the acknowledgement came from the gateway"
    );

    // The worker takes it once the first answer is done: echo, then the
    // answer under the id the acknowledgement named.
    first.answer(Duration::from_secs(30)).await;
    let done = second.answer(Duration::from_secs(30)).await;
    assert_eq!(done["message_id"], answer_id.as_str());
    let echoes = second
        .frames
        .iter()
        .filter(|f| f["type"] == "user_message" && f["id"] == "s-1")
        .count();
    assert_eq!(echoes, 1);
    let waited = metric_sum(&worker, "chatbox_worker_queue_wait_seconds_sum").await;
    let counted = metric_sum(&worker, "chatbox_worker_queue_wait_seconds_count").await;
    assert!(counted >= 2.0, "both turns' waits are counted: {counted}");
    assert!(
        waited >= 0.5,
        "the second message's wait for the slot shows: {waited} s over {counted} turns"
    );
    println!(
        "acknowledged {acknowledged:?} after sending; queue wait summed over the two turns: {waited:.2} s"
    );
}
