//! Answers through the whole service (the all-in-one, with the
//! `mock-llm` tool speaking each provider's format): the models users see and
//! pick, stop, a user leaving, fallbacks, failures and broken-off answers.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::*;

/// Four models on one mock: OpenAI (default), Anthropic, Dify, and one
/// that always fails and falls back to the first.
fn models_config(dir: &Path, mock: &str) -> PathBuf {
    let path = dir.join("models.toml");
    let text = format!(
        r#"
[chatbox.llm.retry]
attempts = 2
base_delay = "10ms"

[[chatbox.llm.providers]]
id = "gpt"
name = "GPT (mock)"
type = "openai"
endpoint = "http://{mock}/v1"
headers = {{ "x-mock-key" = "gpt" }}

[[chatbox.llm.providers]]
id = "claude"
name = "Claude (mock)"
type = "anthropic"
endpoint = "http://{mock}/v1"
apiKey = "sk-ant"
headers = {{ "x-mock-key" = "claude" }}

[[chatbox.llm.providers]]
id = "dify"
name = "Dify app (mock)"
type = "dify"
endpoint = "http://{mock}/v1"
apiKey = "app-key"

[[chatbox.llm.providers]]
id = "broken"
name = "Always down"
type = "openai"
endpoint = "http://{mock}/v1"
fallback = "gpt"
headers = {{ "x-mock-key" = "broken", "x-mock-fail-status" = "503" }}

[[chatbox.llm.providers]]
id = "limited"
name = "Rate limited"
type = "openai"
endpoint = "http://{mock}/v1"
headers = {{ "x-mock-fail-status" = "429", "x-mock-retry-after" = "30" }}
"#
    );
    std::fs::write(&path, text).expect("config file");
    path
}

struct Setup {
    server: Proc,
    mock: Proc,
}

async fn setup(name: &str) -> Setup {
    let dir = log_dir(&unique(name));
    let mock = start_mock(&dir, "mock", &["--chunks", "6"]).await;
    let config = models_config(&dir, &mock.addr);
    let env = vec![
        ("JWT_SECRET".to_owned(), SECRET.to_owned()),
        ("CHATBOX_CONFIG".to_owned(), config.display().to_string()),
    ];
    let server = start_all_in_one(&dir, &env, "all-in-one").await;
    Setup { server, mock }
}

async fn select(client: &mut Client, model: &str) -> Value {
    client
        .send(json!({ "type": "model_select", "id": format!("pick-{model}"), "model_id": model }))
        .await;
    client
        .until(Duration::from_secs(10), |f| {
            (f["type"] == "model_select" || f["type"] == "error")
                && f["id"] == format!("pick-{model}").as_str()
        })
        .await
}

#[tokio::test]
async fn users_see_the_models_and_a_selection_sticks_to_every_later_turn() {
    let s = setup("models").await;
    let user = token("ann", &[]);
    let mut client = Client::connect(&s.server.addr, &user, None).await;
    let status = client.status().await;
    assert_eq!(status["model_id"], "gpt", "the default model");
    let ids: Vec<&str> = status["data"]["models"]
        .as_array()
        .expect("models in connection_status")
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["gpt", "claude", "dify", "broken", "limited"]);
    assert_eq!(status["data"]["models"][1]["provider"], "anthropic");

    let listed: Value = http()
        .get(format!("http://{}/chat/models", s.server.addr))
        .bearer_auth(&user)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["models"], status["data"]["models"]);
    let anonymous = http()
        .get(format!("http://{}/chat/models", s.server.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);

    let refused = select(&mut client, "gpt-7").await;
    assert!(is_error(&refused, "INVALID_FIELD"), "{refused}");
    assert!(refused["error"]["message"].as_str().unwrap().contains("claude"));

    let confirmed = select(&mut client, "claude").await;
    assert_eq!(confirmed["type"], "model_select");
    assert_eq!(confirmed["model_id"], "claude");
    assert_eq!(confirmed["content"], "Claude (mock)");
    for i in 1..=2 {
        client.say(&format!("q{i}"), &format!("question {i}")).await;
        let done = client.answer(Duration::from_secs(20)).await;
        assert_eq!(done["model_id"], "claude");
        assert!(
            done["content"]
                .as_str()
                .unwrap()
                .starts_with(&format!("You said: question {i}"))
        );
    }
    let claude = &mock_stats(&s.mock).await["by_key"]["claude"];
    assert_eq!(claude["completed"], 2);
    assert_eq!(claude["last_request"]["format"], "anthropic");
    assert_eq!(
        claude["last_request"]["messages"].as_array().map(Vec::len),
        Some(3),
        "the second turn carries the first as context"
    );

    // The choice survives a reconnect.
    let session = status["session_id"].as_str().unwrap().to_owned();
    drop(client);
    let mut again = Client::connect(&s.server.addr, &user, Some(&session)).await;
    assert_eq!(again.status().await["model_id"], "claude");
}

#[tokio::test]
async fn dify_continues_its_conversation_across_turns() {
    let s = setup("dify").await;
    let mut client = Client::connect(&s.server.addr, &token("bo", &[]), None).await;
    client.status().await;
    assert_eq!(select(&mut client, "dify").await["model_id"], "dify");
    client.say("d1", "hello dify").await;
    let first = client.answer(Duration::from_secs(20)).await;
    assert!(first["content"].as_str().unwrap().contains("(turn 1)"), "{first}");
    client.say("d2", "and again").await;
    let second = client.answer(Duration::from_secs(20)).await;
    assert!(
        second["content"].as_str().unwrap().contains("(turn 2)"),
        "{second}"
    );
    assert_eq!(mock_stats(&s.mock).await["conversations"], 1);
    assert!(
        client
            .history()
            .await
            .iter()
            .all(|m| m["metadata"].get("provider_conversation_id").is_none()),
        "the provider's conversation id stays on the server"
    );
}

#[tokio::test]
async fn stop_cancels_the_upstream_request_and_keeps_what_was_streamed() {
    let s = setup("stop").await;
    let mut client = Client::connect(&s.server.addr, &token("cy", &[]), None).await;
    client.status().await;
    client
        .say("long", "tell me everything [[mock chunks=200 chunk-delay-ms=40]]")
        .await;
    for _ in 0..3 {
        client
            .until(Duration::from_secs(10), |f| {
                f["type"] == "ai_response" && f["done"] == false
            })
            .await;
    }
    client.send(json!({ "type": "stop" })).await;
    let done = client.answer(Duration::from_secs(10)).await;
    assert_eq!(done["metadata"]["finish_reason"], "stopped");
    let kept = done["content"].as_str().unwrap();
    assert!(kept.starts_with("You said:"), "{kept}");
    assert!(kept.len() < 600, "stopped early, kept {} bytes", kept.len());
    let loading = client
        .until(Duration::from_secs(5), |f| f["type"] == "loading")
        .await;
    assert_eq!(loading["metadata"]["active"], "false");

    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while mock_stats(&s.mock).await["cancelled"] != 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the upstream request was not cancelled"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stored = client.history().await;
    let answer = stored
        .iter()
        .find(|m| m["sender"] == "ai")
        .expect("the partial answer is stored");
    assert_eq!(answer["content"], kept);
    assert_eq!(answer["metadata"]["finish_reason"], "stopped");

    // The session goes on: the next message is answered in full.
    client.say("next", "short one").await;
    let next = client.answer(Duration::from_secs(20)).await;
    assert_eq!(next["metadata"]["finish_reason"], "complete");
}

#[tokio::test]
async fn a_user_who_closes_the_chat_stops_the_answer_which_is_kept() {
    let s = setup("leave").await;
    let user = token("di", &[]);
    let mut client = Client::connect(&s.server.addr, &user, None).await;
    let session = client.status().await["session_id"].as_str().unwrap().to_owned();
    client
        .say("long", "a long story [[mock chunks=200 chunk-delay-ms=40]]")
        .await;
    client
        .until(Duration::from_secs(10), |f| {
            f["type"] == "ai_response" && f["done"] == false
        })
        .await;
    client
        .send_raw(tokio_tungstenite::tungstenite::Message::Close(Some(
            tokio_tungstenite::tungstenite::protocol::CloseFrame {
                code: tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode::Normal,
                reason: "bye".into(),
            },
        )))
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while mock_stats(&s.mock).await["cancelled"] != 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the upstream request was not cancelled"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut back = Client::connect(&s.server.addr, &user, Some(&session)).await;
    back.status().await;
    let stored = back.history().await;
    let answer = stored
        .iter()
        .find(|m| m["sender"] == "ai")
        .expect("the partial answer is stored");
    assert_eq!(answer["metadata"]["finish_reason"], "user_left");
    assert!(answer["content"].as_str().unwrap().starts_with("You"), "{answer}");
}

#[tokio::test]
async fn a_failing_model_falls_back_and_failures_are_told_in_the_seeds_words() {
    let s = setup("fallback").await;
    let mut client = Client::connect(&s.server.addr, &token("ed", &[]), None).await;
    client.status().await;

    select(&mut client, "broken").await;
    client.say("f1", "are you there?").await;
    let done = client.answer(Duration::from_secs(20)).await;
    assert_eq!(done["model_id"], "gpt", "the fallback answered");
    assert_eq!(done["metadata"]["fallback_from"], "broken");
    assert_eq!(
        mock_stats(&s.mock).await["by_key"]["broken"]["requests"],
        2,
        "two attempts first"
    );

    // No fallback, and the provider asks for 30 s: the user hears when to
    // try again, and nothing is stored.
    select(&mut client, "limited").await;
    client.say("f2", "hello?").await;
    let error = client
        .until(Duration::from_secs(20), |f| f["type"] == "error")
        .await;
    assert!(is_error(&error, "LLM_UNAVAILABLE"), "{error}");
    assert_eq!(error["error"]["recoverable"], true);
    assert_eq!(error["error"]["retry_after"], 30_000, "milliseconds");
    assert_eq!(error["id"], "f2");

    // An answer that breaks off midway keeps its part and says so.
    select(&mut client, "gpt").await;
    client
        .say(
            "f3",
            "cut me [[mock chunks=10 chunk-delay-ms=20 disconnect-after=4]]",
        )
        .await;
    let done = client.answer(Duration::from_secs(20)).await;
    assert_eq!(done["metadata"]["finish_reason"], "interrupted");
    assert!(done["content"].as_str().unwrap().starts_with("You said: cut me"));
    let error = client
        .until(Duration::from_secs(5), |f| f["type"] == "error")
        .await;
    assert!(
        is_error(&error, "LLM_UNAVAILABLE") && error["error"]["recoverable"] == true,
        "{error}"
    );
    let stored = client.history().await;
    assert_eq!(
        stored.iter().filter(|m| m["sender"] == "ai").count(),
        2,
        "the fallback answer and the broken-off one; nothing for the failure"
    );
}
