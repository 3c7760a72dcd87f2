//! The OpenAI-compatible client against `chatbox mock-llm`, over real HTTP.

use std::time::Duration;

use chatbox_shared::config::{ProviderConfig, ProviderKind, Secret};
use chatbox_worker::llm::openai::OpenAiProvider;
use chatbox_worker::llm::{ChatMessage, ChatRole, LlmError, LlmEvent, LlmProvider, LlmRequest};
use futures_util::StreamExt;

use crate::support::*;

fn provider(addr: &str, stream: bool, key: &str) -> OpenAiProvider {
    provider_with(addr, stream, key, &[])
}

fn provider_with(addr: &str, stream: bool, key: &str, headers: &[(&str, &str)]) -> OpenAiProvider {
    OpenAiProvider::new(ProviderConfig {
        id: "mock".into(),
        name: "Mock".into(),
        kind: ProviderKind::Openai,
        endpoint: format!("http://{addr}/v1"),
        api_key: Secret::new(key),
        model: "mock-model".into(),
        stream,
        max_tokens: Some(100),
        temperature: Some(0.2),
        system_prompt: Some("be brief".into()),
        headers: headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        connect_timeout: Duration::from_secs(2),
        first_token_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(10),
    })
    .unwrap()
}

fn ask(text: &str) -> LlmRequest {
    LlmRequest {
        messages: vec![ChatMessage {
            role: ChatRole::User,
            content: text.into(),
        }],
        user: None,
    }
}

async fn collect(p: &OpenAiProvider, request: LlmRequest) -> Vec<Result<LlmEvent, LlmError>> {
    p.stream(request).await.expect("stream starts").collect().await
}

#[tokio::test]
async fn streams_text_and_usage_then_ends() {
    let dir = log_dir(&unique("llm"));
    let mock = start_mock(&dir, "mock", &["--chunks", "7", "--api-key", "sk-test"]).await;
    let events = collect(&provider(&mock.addr, true, "sk-test"), ask("ping pong")).await;
    let deltas: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            Ok(LlmEvent::Delta(d)) => Some(d.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(deltas.len(), 7);
    assert!(deltas.concat().starts_with("You said: ping pong"));
    assert!(
        matches!(events.last(), Some(Ok(LlmEvent::Usage { prompt_tokens, completion_tokens })) if *prompt_tokens > 0 && *completion_tokens > 0),
        "{events:?}"
    );
    assert!(events.iter().all(Result::is_ok));
}

#[tokio::test]
async fn non_streaming_mode_returns_the_whole_answer() {
    let dir = log_dir(&unique("llm"));
    let mock = start_mock(&dir, "mock", &[]).await;
    let events = collect(&provider(&mock.addr, false, ""), ask("all at once")).await;
    assert!(matches!(&events[0], Ok(LlmEvent::Delta(d)) if d.starts_with("You said: all at once")));
    assert!(matches!(&events[1], Ok(LlmEvent::Usage { .. })));
}

#[tokio::test]
async fn failures_are_reported_not_swallowed() {
    let dir = log_dir(&unique("llm"));
    let mock = start_mock(
        &dir,
        "mock",
        &[
            "--api-key",
            "sk-right",
            "--fail-rate",
            "1.0",
            "--fail-status",
            "503",
        ],
    )
    .await;
    match provider(&mock.addr, true, "sk-wrong").stream(ask("x")).await {
        Err(LlmError::Status { status: 401, .. }) => {}
        other => panic!("expected 401, got {:?}", other.map(|_| "a stream")),
    }
    match provider(&mock.addr, true, "sk-right").stream(ask("x")).await {
        Err(LlmError::Status {
            status: 503, message, ..
        }) => assert_eq!(message, "mock failure"),
        other => panic!("expected 503, got {:?}", other.map(|_| "a stream")),
    }

    // A stream cut off in the middle is an error, never a short answer.
    let mock = start_mock(&dir, "mock-cut", &["--chunks", "10", "--chunk-delay", "20"]).await;
    let cut = provider_with(&mock.addr, true, "", &[("x-mock-disconnect-after", "3")]);
    let events = collect(&cut, ask("cut")).await;
    let deltas = events
        .iter()
        .filter(|e| matches!(e, Ok(LlmEvent::Delta(_))))
        .count();
    assert_eq!(deltas, 3, "{events:?}");
    assert!(
        matches!(
            events.last(),
            Some(Err(LlmError::Connect(_) | LlmError::Protocol(_)))
        ),
        "{events:?}"
    );
    let events = collect(&provider(&mock.addr, true, ""), ask("whole")).await;
    assert!(events.iter().all(Result::is_ok), "{events:?}");
}
