//! Traces across pods: one turn, exported over OTLP by a gateway and a
//! worker, forms one trace — the socket's message accepted on the gateway,
//! the turn on the worker (its parent crossed NATS in the message's
//! headers), the model call and the store writes inside it, and the
//! answer's delivery back on the gateway.

use std::time::{Duration, Instant};

use crate::sinks::{OtlpRecorder, ReceivedSpan};
use crate::support::*;

/// `env` plus the OTLP export settings of a process named `service`.
fn traced(env: &[(String, String)], collector: &OtlpRecorder, service: &str) -> Vec<(String, String)> {
    let mut env = env.to_vec();
    env.extend([
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(),
            collector.endpoint().to_owned(),
        ),
        ("OTEL_SERVICE_NAME".to_owned(), service.to_owned()),
        ("OTEL_BSP_SCHEDULE_DELAY".to_owned(), "100".to_owned()),
    ]);
    env
}

#[tokio::test]
async fn one_turn_is_one_trace_from_the_socket_through_nats_to_the_worker_and_back() {
    let ns = TestNamespace::new();
    let dir = log_dir(&ns.name);
    let collector = OtlpRecorder::start().await;
    let env = scaled_env(&ns);
    let mock = start_mock(&dir, "mock", &["--chunks", "4"]).await;
    let config = provider_config(&dir, "worker", &mock.addr);
    let mut worker = start_worker(
        &dir,
        &traced(&env, &collector, "chatbox-worker"),
        "worker",
        Some(&config),
    )
    .await;
    let mut gateway = start_gateway(&dir, &traced(&env, &collector, "chatbox-gateway"), "gateway").await;

    let mut client = Client::connect(&gateway.addr, &token("tia", &[]), None).await;
    client.status().await;
    client.say("traced-1", "follow me").await;
    client.answer(Duration::from_secs(20)).await;
    drop(client);

    // Everything the turn made, exported by both pods.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (accepted, spans) = loop {
        let spans = collector.spans();
        let accepted = spans
            .iter()
            .find(|s| s.service == "chatbox-gateway" && s.name == "accept_message")
            .cloned();
        let trace = accepted.as_ref().map(|a| a.trace_id.clone()).unwrap_or_default();
        let in_trace = |service: &str, name: &str| {
            spans
                .iter()
                .any(|s| s.trace_id == trace && s.service == service && s.name == name)
        };
        let writes = spans
            .iter()
            .filter(|s| s.trace_id == trace && s.name == "store_write")
            .count();
        if let Some(accepted) = accepted
            && writes >= 2
            && in_trace("chatbox-gateway", "deliver")
        {
            break (accepted, spans);
        }
        assert!(
            Instant::now() < deadline,
            "the trace did not come together; spans received:\n{spans:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let trace: Vec<&ReceivedSpan> = spans.iter().filter(|s| s.trace_id == accepted.trace_id).collect();
    let one = |service: &str, name: &str| -> &ReceivedSpan {
        trace
            .iter()
            .find(|s| s.service == service && s.name == name)
            .copied()
            .unwrap_or_else(|| panic!("no {name} span from {service} in the trace: {trace:#?}"))
    };
    let turn = one("chatbox-worker", "turn");
    assert_eq!(
        turn.parent_span_id, accepted.span_id,
        "the worker's turn is a child of the gateway's accept, across NATS"
    );
    let llm = one("chatbox-worker", "llm_call");
    assert_eq!(
        llm.parent_span_id, turn.span_id,
        "the model call is inside the turn"
    );
    let writes: Vec<_> = trace.iter().filter(|s| s.name == "store_write").collect();
    assert!(
        writes.len() >= 2,
        "the question and the answer are stored: {writes:#?}"
    );
    let worker_spans: Vec<&str> = trace
        .iter()
        .filter(|s| s.service == "chatbox-worker")
        .map(|s| s.span_id.as_str())
        .collect();
    let delivered: Vec<_> = trace
        .iter()
        .filter(|s| s.service == "chatbox-gateway" && s.name == "deliver")
        .collect();
    assert!(
        delivered
            .iter()
            .all(|d| worker_spans.contains(&d.parent_span_id.as_str())),
        "each delivery back to the socket is a child of a worker span: {delivered:#?}"
    );

    gateway.sigterm();
    worker.sigterm();
    gateway.wait_exit(Duration::from_secs(15));
    worker.wait_exit(Duration::from_secs(15));
}
