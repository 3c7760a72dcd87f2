//! Tests of the mock server over real HTTP: the router on 127.0.0.1:0.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};

use super::answer_pieces;
use crate::Args;

/// The reference behaviours of `wire.rs`, `azure.rs` and `capture.rs`.
mod wire;

fn args() -> Args {
    Args {
        listen: "127.0.0.1:0".to_owned(),
        latency: 0,
        chunks: 5,
        chunk_bytes: 0,
        chunk_delay: 0,
        fail_rate: 0.0,
        fail_status: 500,
        api_key: None,
    }
}

/// Starts a mock server; returns its base URL (`http://addr`).
async fn start(args: Args) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, super::router(args)).await });
    format!("http://{addr}")
}

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

async fn stats(base: &str) -> Value {
    client()
        .get(format!("{base}/mock/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The `data:` payloads of an SSE body, and the `event:` names (or "").
fn sse(body: &str) -> Vec<(String, String)> {
    body.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let mut name = String::new();
            let mut data = String::new();
            for line in e.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = n.to_owned();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = d.to_owned();
                }
            }
            (name, data)
        })
        .collect()
}

/// Reads a body until it ends or breaks: the text received, and whether it broke.
async fn read_all(response: reqwest::Response) -> (String, bool) {
    let mut body = response.bytes_stream();
    let mut text = String::new();
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(bytes) => text.push_str(&String::from_utf8_lossy(&bytes)),
            Err(_) => return (text, true),
        }
    }
    (text, false)
}

#[test]
fn answers_come_in_the_asked_number_of_pieces_and_keep_the_question() {
    for chunks in [1, 3, 20, 50] {
        let pieces = answer_pieces("hello world", chunks, 0);
        assert_eq!(pieces.len(), chunks);
        assert!(pieces.iter().all(|p| !p.is_empty()));
        assert!(pieces.concat().starts_with("You said: hello world"));
    }
    assert_eq!(
        answer_pieces("a b c d e f g h i j k l m n o p q r s t", 20, 0).len(),
        20
    );
    let fixed = answer_pieces("hi", 20, 16);
    assert_eq!(fixed.len(), 20);
    assert!(fixed.iter().all(|p| p.len() == 16));
    assert!(fixed.concat().starts_with("You said: hi. "));
}

// ---- OpenAI ----

async fn openai(base: &str, body: Value, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = client().post(format!("{base}/v1/chat/completions")).json(&body);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    request.send().await.unwrap()
}

fn openai_deltas(body: &str) -> Vec<Value> {
    sse(body)
        .into_iter()
        .filter(|(_, d)| d != "[DONE]")
        .map(|(_, d)| serde_json::from_str(&d).unwrap())
        .collect()
}

#[tokio::test]
async fn openai_streams_text_then_usage_then_done() {
    let base = start(args()).await;
    let body = json!({
        "model": "gpt-mock", "stream": true, "stream_options": { "include_usage": true },
        "messages": [
            { "role": "system", "content": "be brief" },
            { "role": "user", "content": [{ "type": "text", "text": "look" }, { "type": "image_url", "image_url": { "url": "data:," } }, { "type": "text", "text": "here" }] }
        ],
    });
    let response = openai(&base, body, &[("x-mock-key", "oa")]).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let text = response.text().await.unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"));
    let events = openai_deltas(&text);
    assert_eq!(events.len(), 7, "5 text, finish, usage");
    let answer: String = events[..5]
        .iter()
        .map(|e| e["choices"][0]["delta"]["content"].as_str().unwrap())
        .collect();
    assert!(answer.starts_with("You said: look here. lorem"), "{answer}");
    assert_eq!(events[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(events[5]["choices"][0]["finish_reason"], "stop");
    assert!(events[6]["usage"]["completion_tokens"].as_u64().unwrap() > 0);
    assert_eq!(events[6]["choices"], json!([]));

    let s = stats(&base).await;
    assert_eq!(s["completions"], 1);
    assert_eq!(s["last_request_messages"], 2);
    let oa = &s["by_key"]["oa"];
    assert_eq!(
        (oa["requests"].as_u64(), oa["completed"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(oa["last_request"]["format"], "openai");
    assert_eq!(oa["last_request"]["model"], "gpt-mock");
    assert_eq!(oa["last_request"]["system"], "be brief");
    assert_eq!(oa["last_request"]["messages"][1]["content"], "look here");
    assert_eq!(oa["last_request"]["stream"], true);
}

#[tokio::test]
async fn openai_usage_can_be_scripted_absent_and_non_stream_has_one_object() {
    let base = start(args()).await;
    let ask = |stream: bool| {
        json!({ "model": "m", "stream": stream, "stream_options": { "include_usage": true },
                "messages": [{ "role": "user", "content": "hi" }] })
    };
    let text = openai(&base, ask(true), &[("x-mock-usage", "absent")])
        .await
        .text()
        .await
        .unwrap();
    let events = openai_deltas(&text);
    assert_eq!(events.len(), 6);
    assert!(events.iter().all(|e| e.get("usage").is_none()));

    let whole: Value = openai(&base, ask(false), &[]).await.json().await.unwrap();
    assert_eq!(whole["object"], "chat.completion");
    assert!(
        whole["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .starts_with("You said: hi. ")
    );
    assert!(whole["usage"]["total_tokens"].as_u64().unwrap() > 0);
    let bare: Value = openai(&base, ask(false), &[("x-mock-usage", "absent")])
        .await
        .json()
        .await
        .unwrap();
    assert!(bare.get("usage").is_none());
}

#[tokio::test]
async fn openai_directives_override_headers_and_are_not_echoed() {
    let base = start(args()).await;
    let body = json!({ "model": "m", "stream": true,
        "messages": [{ "role": "user", "content": "tell me [[mock chunks=9 chunk-bytes=4]] now" }] });
    let text = openai(&base, body, &[("x-mock-chunks", "2")])
        .await
        .text()
        .await
        .unwrap();
    let events = openai_deltas(&text);
    let pieces: Vec<&str> = events
        .iter()
        .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(pieces.len(), 9);
    assert!(pieces.iter().all(|p| p.chars().count() == 4));
    assert_eq!(pieces.concat(), "You said: tell me now. lorem ipsum d");

    let bad = json!({ "model": "m", "messages": [{ "role": "user", "content": "[[mock bogus=1]]" }] });
    let response = openai(&base, bad, &[]).await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown key \"bogus\"")
    );
    let bad = json!({ "model": "m", "messages": [{ "role": "user", "content": "[[mock chunks=many]]" }] });
    assert_eq!(openai(&base, bad, &[]).await.status(), 400);
}

#[tokio::test]
async fn openai_fail_first_per_key_then_success_and_429_retry_after() {
    let base = start(args()).await;
    let body = json!({ "model": "m", "messages": [{ "role": "user", "content": "retry me" }] });
    let h = [("x-mock-key", "flaky"), ("x-mock-fail-first", "2")];
    for _ in 0..2 {
        let response = openai(&base, body.clone(), &h).await;
        assert_eq!(response.status(), 503);
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["message"], "mock failure");
    }
    let ok = openai(&base, body.clone(), &h).await;
    assert_eq!(ok.status(), 200);
    // Another key has its own count.
    let other = openai(
        &base,
        body.clone(),
        &[
            ("x-mock-key", "other"),
            ("x-mock-fail-first", "1"),
            ("x-mock-fail-status", "500"),
        ],
    )
    .await;
    assert_eq!(other.status(), 500);

    let limited = openai(&base, body.clone(), &[("x-mock-fail-status", "429")]).await;
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["retry-after"], "1");
    let limited = openai(
        &base,
        body,
        &[("x-mock-fail-status", "429"), ("x-mock-retry-after", "7")],
    )
    .await;
    assert_eq!(limited.headers()["retry-after"], "7");

    let s = stats(&base).await;
    let flaky = &s["by_key"]["flaky"];
    assert_eq!(flaky["requests"], 3);
    assert_eq!(flaky["failed"], 2);
    assert_eq!(flaky["completed"], 1);
    assert_eq!(s["by_key"][""]["failed"], 2);
    assert_eq!(s["completions"], 1);
}

#[tokio::test]
async fn openai_stream_breaks_as_scripted() {
    let base = start(args()).await;
    let body = json!({ "model": "m", "stream": true, "messages": [{ "role": "user", "content": "x" }] });

    let response = openai(&base, body.clone(), &[("x-mock-disconnect-after", "2")]).await;
    let (text, broke) = read_all(response).await;
    assert!(broke, "the body must end with an error: {text}");
    assert_eq!(openai_deltas(&text).len(), 2);

    let response = openai(&base, body.clone(), &[("x-mock-malformed-after", "3")]).await;
    let (text, broke) = read_all(response).await;
    assert!(!broke);
    let events = sse(&text);
    assert_eq!(events.len(), 4);
    assert!(
        serde_json::from_str::<Value>(&events[3].1).is_err(),
        "{}",
        events[3].1
    );
    assert!(!text.contains("[DONE]"));

    let response = openai(
        &base,
        body,
        &[("x-mock-error-event-after", "1"), ("x-mock-key", "err")],
    )
    .await;
    let (text, _) = read_all(response).await;
    let events = openai_deltas(&text);
    assert_eq!(events.len(), 2);
    assert_eq!(
        events[1],
        json!({ "error": { "message": "mock stream error", "type": "server_error" } })
    );
    assert_eq!(stats(&base).await["by_key"]["err"]["failed"], 1);
}

#[tokio::test]
async fn a_stream_dropped_by_the_client_counts_as_cancelled() {
    let base = start(args()).await;
    let body = json!({ "model": "m", "stream": true, "messages": [{ "role": "user", "content": "slow" }] });
    let response = openai(
        &base,
        body,
        &[
            ("x-mock-chunks", "50"),
            ("x-mock-chunk-delay-ms", "40"),
            ("x-mock-key", "gone"),
        ],
    )
    .await;
    let mut stream = response.bytes_stream();
    let first = stream.next().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).starts_with("data: {"));
    assert!(String::from_utf8_lossy(&first).contains("\"content\":\"You "));
    drop(stream);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let s = stats(&base).await;
        if s["cancelled"] == 1 {
            assert_eq!(s["by_key"]["gone"]["cancelled"], 1);
            assert_eq!(s["by_key"]["gone"]["completed"], 0);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "not cancelled: {s}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let reset = client().post(format!("{base}/mock/reset")).send().await.unwrap();
    assert!(reset.status().is_success());
    let s = stats(&base).await;
    assert_eq!(
        (s["cancelled"].as_u64(), s["completions"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(s["by_key"], json!({}));
}

#[tokio::test]
async fn openai_requires_the_api_key_when_set() {
    let mut a = args();
    a.api_key = Some("sk-right".to_owned());
    let base = start(a).await;
    let body = json!({ "model": "m", "messages": [{ "role": "user", "content": "x" }] });
    let response = openai(&base, body.clone(), &[("authorization", "Bearer sk-wrong")]).await;
    assert_eq!(response.status(), 401);
    let response = openai(&base, body, &[("authorization", "Bearer sk-right")]).await;
    assert_eq!(response.status(), 200);
}

// ---- Anthropic ----

async fn anthropic(base: &str, body: Value, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = client().post(format!("{base}/v1/messages")).json(&body);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    request.send().await.unwrap()
}

const ANTHROPIC: [(&str, &str); 2] = [("x-api-key", "sk-ant"), ("anthropic-version", "2023-06-01")];

fn with<'a>(base: &[(&'a str, &'a str)], more: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    base.iter().chain(more).copied().collect()
}

#[tokio::test]
async fn anthropic_streams_the_real_event_sequence() {
    let base = start(args()).await;
    let body = json!({
        "model": "claude-mock", "max_tokens": 256, "stream": true, "temperature": 0.5,
        "system": [{ "type": "text", "text": "be kind" }],
        "metadata": { "user_id": "u-1" },
        "messages": [
            { "role": "user", "content": "first" },
            { "role": "assistant", "content": "ok" },
            { "role": "user", "content": [{ "type": "image", "source": { "type": "base64", "media_type": "image/png", "data": "" } }, { "type": "text", "text": "second" }] }
        ],
    });
    let response = anthropic(&base, body, &with(&ANTHROPIC, &[("x-mock-key", "an")])).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let events = sse(&response.text().await.unwrap());
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let data: Vec<Value> = events
        .iter()
        .map(|(_, d)| serde_json::from_str(d).unwrap())
        .collect();
    for (name, d) in names.iter().zip(&data) {
        assert_eq!(d["type"], *name);
    }
    let message = &data[0]["message"];
    assert_eq!(message["model"], "claude-mock");
    assert_eq!(message["role"], "assistant");
    assert_eq!(message["content"], json!([]));
    assert!(message["id"].as_str().unwrap().starts_with("msg_mock"));
    assert!(message["usage"]["input_tokens"].as_u64().unwrap() > 0);
    assert_eq!(message["usage"]["output_tokens"], 1);
    assert_eq!(data[1]["content_block"], json!({ "type": "text", "text": "" }));
    let text: String = data[3..8]
        .iter()
        .map(|d| {
            assert_eq!(d["delta"]["type"], "text_delta");
            d["delta"]["text"].as_str().unwrap()
        })
        .collect();
    assert!(text.starts_with("You said: second. lorem"), "{text}");
    assert_eq!(
        data[9]["delta"],
        json!({ "stop_reason": "end_turn", "stop_sequence": null })
    );
    assert!(data[9]["usage"]["output_tokens"].as_u64().unwrap() > 1);

    let s = stats(&base).await;
    let last = &s["by_key"]["an"]["last_request"];
    assert_eq!(last["format"], "anthropic");
    assert_eq!(last["system"], "be kind");
    assert_eq!(last["max_tokens"], 256);
    assert_eq!(last["temperature"], 0.5);
    assert_eq!(last["user"], "u-1");
    assert_eq!(
        last["messages"][2],
        json!({ "role": "user", "content": "second" })
    );
    assert_eq!(s["last_request_messages"], 3);
    assert_eq!(s["by_key"]["an"]["completed"], 1);
}

#[tokio::test]
async fn anthropic_without_usage_and_non_streaming() {
    let base = start(args()).await;
    let ask = |stream: bool| {
        json!({ "model": "c", "max_tokens": 10, "stream": stream, "system": "sys",
                "messages": [{ "role": "user", "content": "hey" }] })
    };
    let text = anthropic(&base, ask(true), &with(&ANTHROPIC, &[("x-mock-usage", "absent")]))
        .await
        .text()
        .await
        .unwrap();
    let events = sse(&text);
    assert_eq!(events.len(), 11);
    for (_, d) in &events {
        assert!(!d.contains("usage"), "{d}");
    }
    let message: Value = anthropic(&base, ask(false), &ANTHROPIC)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(message["type"], "message");
    assert_eq!(message["stop_reason"], "end_turn");
    assert_eq!(message["content"][0]["type"], "text");
    assert!(
        message["content"][0]["text"]
            .as_str()
            .unwrap()
            .starts_with("You said: hey. ")
    );
    assert!(message["usage"]["input_tokens"].as_u64().unwrap() > 0);
    assert!(message["usage"]["output_tokens"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn anthropic_refuses_what_the_real_api_refuses() {
    let mut a = args();
    a.api_key = Some("sk-ant".to_owned());
    let base = start(a).await;
    let good = json!({ "model": "c", "max_tokens": 10, "messages": [{ "role": "user", "content": "x" }] });
    let expect = |status: u16, kind: &'static str| {
        move |r: (u16, Value)| {
            assert_eq!(r.0, status, "{}", r.1);
            assert_eq!(r.1["type"], "error");
            assert_eq!(r.1["error"]["type"], kind, "{}", r.1);
            r.1["error"]["message"].as_str().unwrap().to_owned()
        }
    };
    async fn call(base: &str, body: Value, headers: &[(&str, &str)]) -> (u16, Value) {
        let r = anthropic(base, body, headers).await;
        (r.status().as_u16(), r.json().await.unwrap())
    }
    let m = expect(401, "authentication_error")(
        call(&base, good.clone(), &[("anthropic-version", "2023-06-01")]).await,
    );
    assert_eq!(m, "invalid x-api-key");
    expect(401, "authentication_error")(
        call(
            &base,
            good.clone(),
            &[("x-api-key", "nope"), ("anthropic-version", "2023-06-01")],
        )
        .await,
    );
    let m = expect(400, "invalid_request_error")(call(&base, good.clone(), &[("x-api-key", "sk-ant")]).await);
    assert!(m.contains("anthropic-version"));
    let no_max = json!({ "model": "c", "messages": [{ "role": "user", "content": "x" }] });
    let m = expect(400, "invalid_request_error")(call(&base, no_max, &ANTHROPIC).await);
    assert!(m.contains("max_tokens"));
    let twice = json!({ "model": "c", "max_tokens": 5, "messages": [{ "role": "user", "content": "x" }, { "role": "user", "content": "y" }] });
    let m = expect(400, "invalid_request_error")(call(&base, twice, &ANTHROPIC).await);
    assert!(m.contains("alternate"), "{m}");
    let starts_wrong =
        json!({ "model": "c", "max_tokens": 5, "messages": [{ "role": "assistant", "content": "x" }] });
    expect(400, "invalid_request_error")(call(&base, starts_wrong, &ANTHROPIC).await);
    let m = expect(400, "invalid_request_error")(call(&base, json!({ "model": "c", "max_tokens": 5, "messages": [{ "role": "user", "content": "[[mock chunks=0x]]" }] }), &ANTHROPIC).await);
    assert!(m.contains("chunks"));

    expect(529, "overloaded_error")(
        call(
            &base,
            good.clone(),
            &with(&ANTHROPIC, &[("x-mock-fail-status", "529")]),
        )
        .await,
    );
    expect(500, "api_error")(
        call(
            &base,
            good.clone(),
            &with(&ANTHROPIC, &[("x-mock-fail-status", "500")]),
        )
        .await,
    );
    let limited = anthropic(
        &base,
        good.clone(),
        &with(&ANTHROPIC, &[("x-mock-fail-status", "429")]),
    )
    .await;
    assert_eq!(limited.headers()["retry-after"], "1");
    expect(429, "rate_limit_error")((429, limited.json().await.unwrap()));
    // Fail first, then succeed.
    let h = with(
        &ANTHROPIC,
        &[
            ("x-mock-key", "ff"),
            ("x-mock-fail-first", "1"),
            ("x-mock-fail-status", "529"),
        ],
    );
    expect(529, "overloaded_error")(call(&base, good.clone(), &h).await);
    assert_eq!(anthropic(&base, good, &h).await.status(), 200);
}

#[tokio::test]
async fn anthropic_stream_breaks_as_scripted() {
    let base = start(args()).await;
    let body = json!({ "model": "c", "max_tokens": 10, "stream": true, "messages": [{ "role": "user", "content": "x" }] });
    let text = anthropic(
        &base,
        body.clone(),
        &with(&ANTHROPIC, &[("x-mock-error-event-after", "2")]),
    )
    .await
    .text()
    .await
    .unwrap();
    let events = sse(&text);
    assert_eq!(events.len(), 6, "3 head, 2 deltas, the error");
    assert_eq!(events[5].0, "error");
    assert_eq!(
        serde_json::from_str::<Value>(&events[5].1).unwrap(),
        json!({ "type": "error", "error": { "type": "overloaded_error", "message": "Overloaded" } })
    );

    let (text, broke) = read_all(
        anthropic(
            &base,
            body.clone(),
            &with(&ANTHROPIC, &[("x-mock-disconnect-after", "1")]),
        )
        .await,
    )
    .await;
    assert!(broke);
    assert_eq!(sse(&text).len(), 4);

    let (text, broke) =
        read_all(anthropic(&base, body, &with(&ANTHROPIC, &[("x-mock-malformed-after", "0")])).await).await;
    assert!(!broke);
    let events = sse(&text);
    assert_eq!(events.len(), 4);
    assert_eq!(events[3].0, "content_block_delta");
    assert!(serde_json::from_str::<Value>(&events[3].1).is_err());
}

// ---- Dify ----

async fn dify(base: &str, body: Value, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = client()
        .post(format!("{base}/v1/chat-messages"))
        .bearer_auth("app-key")
        .json(&body);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    request.send().await.unwrap()
}

fn dify_events(body: &str) -> Vec<Value> {
    sse(body)
        .into_iter()
        .map(|(_, d)| serde_json::from_str(&d).unwrap())
        .collect()
}

#[tokio::test]
async fn dify_streams_and_keeps_the_conversation() {
    let mut a = args();
    a.api_key = Some("app-key".to_owned());
    let base = start(a).await;
    let body = json!({ "inputs": {}, "query": "remember me", "response_mode": "streaming", "user": "ann", "conversation_id": "" });
    let response = dify(&base, body, &[]).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let events = dify_events(&response.text().await.unwrap());
    assert_eq!(events.len(), 6);
    let conversation = events[0]["conversation_id"].as_str().unwrap().to_owned();
    assert!(conversation.starts_with("conv-"));
    let task = events[0]["task_id"].as_str().unwrap();
    let answer: String = events[..5]
        .iter()
        .map(|e| {
            assert_eq!(e["event"], "message");
            assert_eq!(e["task_id"], task);
            assert_eq!(e["conversation_id"], conversation.as_str());
            assert!(e["created_at"].as_u64().unwrap() > 0);
            e["answer"].as_str().unwrap()
        })
        .collect();
    assert_eq!(answer, "You said: remember me. (turn 1) ");
    assert_eq!(events[5]["event"], "message_end");
    assert_eq!(events[5]["message_id"], events[0]["message_id"]);
    let usage = &events[5]["metadata"]["usage"];
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
    );

    // Turn 2, blocking, in the same conversation.
    let again = json!({ "inputs": {}, "query": "still me", "response_mode": "blocking", "user": "ann", "conversation_id": conversation });
    let answer: Value = dify(&base, again, &[("x-mock-key", "d")])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(answer["event"], "message");
    assert_eq!(answer["mode"], "chat");
    assert_eq!(answer["conversation_id"], conversation.as_str());
    assert!(
        answer["answer"]
            .as_str()
            .unwrap()
            .starts_with("You said: still me. (turn 2) ")
    );
    assert!(answer["metadata"]["usage"]["completion_tokens"].as_u64().unwrap() > 0);
    assert!(answer["task_id"].is_string() && answer["message_id"].is_string());

    let unknown = json!({ "inputs": {}, "query": "q", "user": "ann", "conversation_id": "conv-nope" });
    let response = dify(&base, unknown, &[]).await;
    assert_eq!(response.status(), 404);
    let error: Value = response.json().await.unwrap();
    assert_eq!(
        error,
        json!({ "code": "not_found", "message": "Conversation Not Exists.", "status": 404 })
    );

    let s = stats(&base).await;
    assert_eq!(s["conversations"], 1);
    assert_eq!(s["completions"], 2);
    let last = &s["by_key"]["d"]["last_request"];
    assert_eq!(last["format"], "dify");
    assert_eq!(last["query"], "still me");
    assert_eq!(last["user"], "ann");
    assert_eq!(last["conversation_id"], conversation.as_str());
    assert_eq!(last["stream"], false);
    assert_eq!(last["model"], Value::Null);
}

#[tokio::test]
async fn dify_agent_events_no_usage_and_refusals() {
    let mut a = args();
    a.api_key = Some("app-key".to_owned());
    let base = start(a).await;
    let body =
        json!({ "inputs": { "agent": true }, "query": "go", "response_mode": "streaming", "user": "u" });
    let events = dify_events(
        &dify(&base, body, &[("x-mock-usage", "absent")])
            .await
            .text()
            .await
            .unwrap(),
    );
    assert!(events[..5].iter().all(|e| e["event"] == "agent_message"));
    assert_eq!(events[5]["event"], "message_end");
    assert_eq!(events[5]["metadata"], json!({}));

    let response = dify(&base, json!({ "inputs": {}, "user": "u" }), &[]).await;
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({ "code": "invalid_param", "message": "query is required", "status": 400 })
    );
    let response = dify(&base, json!({ "inputs": {}, "query": "" , "user": "u" }), &[]).await;
    assert_eq!(response.status(), 400);
    let response = dify(&base, json!({ "inputs": {}, "query": "q" }), &[]).await;
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.json::<Value>().await.unwrap()["message"],
        "user is required"
    );
    let response = client()
        .post(format!("{base}/chat-messages"))
        .bearer_auth("wrong")
        .json(&json!({ "inputs": {}, "query": "q", "user": "u" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let error: Value = response.json().await.unwrap();
    assert_eq!(
        (error["code"].as_str(), error["status"].as_u64()),
        (Some("unauthorized"), Some(401))
    );

    let body = json!({ "inputs": {}, "query": "q", "response_mode": "streaming", "user": "u" });
    let events = dify_events(
        &dify(&base, body, &[("x-mock-error-event-after", "1")])
            .await
            .text()
            .await
            .unwrap(),
    );
    assert_eq!(events.len(), 2);
    assert_eq!(events[1]["event"], "error");
    assert_eq!(events[1]["status"], 500);
    assert_eq!(events[1]["code"], "mock_error");
    assert_eq!(events[1]["message"], "mock stream error");
    assert_eq!(events[1]["task_id"], events[0]["task_id"]);
}

#[tokio::test]
async fn dify_stop_ends_the_stream_early() {
    let base = start(args()).await;
    let body = json!({ "inputs": {}, "query": "long", "response_mode": "streaming", "user": "u" });
    let response = dify(
        &base,
        body,
        &[("x-mock-chunks", "100"), ("x-mock-chunk-delay-ms", "50")],
    )
    .await;
    let mut stream = response.bytes_stream();
    let first = String::from_utf8(stream.next().await.unwrap().unwrap().to_vec()).unwrap();
    let task = dify_events(&first)[0]["task_id"].as_str().unwrap().to_owned();
    let started = tokio::time::Instant::now();
    let stopped: Value = client()
        .post(format!("{base}/v1/chat-messages/{task}/stop"))
        .json(&json!({ "user": "u" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stopped, json!({ "result": "success" }));
    let mut rest = String::new();
    while let Some(chunk) = stream.next().await {
        rest.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "stream did not stop early"
    );
    let events = dify_events(&rest);
    assert_eq!(events.last().unwrap()["event"], "message_end");
    assert!(events.len() < 20, "{} events after the stop", events.len());
    // Unknown tasks succeed too.
    let unknown = client()
        .post(format!("{base}/v1/chat-messages/no-such-task/stop"))
        .json(&json!({ "user": "u" }))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 200);
    let s = stats(&base).await;
    assert_eq!(s["stopped"], 2);
    assert_eq!(s["cancelled"], 0);
    assert_eq!(s["by_key"][""]["completed"], 1);
}

/// The events of a Dify stream in order: `(name, data)`, `data` null for
/// an event without data (`event: ping`).
fn dify_stream(body: &str) -> Vec<(String, Value)> {
    sse(body)
        .into_iter()
        .map(|(name, data)| match serde_json::from_str::<Value>(&data) {
            Ok(v) => (v["event"].as_str().unwrap_or_default().to_owned(), v),
            Err(_) => (name, Value::Null),
        })
        .collect()
}

#[tokio::test]
async fn dify_moderation_replaces_the_answer_after_the_scripted_chunks() {
    let base = start(args()).await;
    let body = json!({ "inputs": {}, "query": "say it [[mock replace-after=2]]", "response_mode": "streaming", "user": "u" });
    let events = dify_stream(&dify(&base, body, &[]).await.text().await.unwrap());
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["message", "message", "message_replace", "message_end"]);
    let replace = &events[2].1;
    assert_eq!(replace["answer"], crate::dify::MODERATED);
    assert_eq!(replace["task_id"], events[0].1["task_id"]);
    assert_eq!(replace["conversation_id"], events[0].1["conversation_id"]);
    assert!(replace["message_id"].is_string() && replace["created_at"].is_u64());
}

#[tokio::test]
async fn dify_pings_through_a_pause_and_an_agent_names_its_tool() {
    let base = start(args()).await;
    let body = json!({ "inputs": {}, "query": "look it up", "response_mode": "streaming", "user": "u" });
    let script = [
        ("x-mock-chunks", "3"),
        ("x-mock-pause-after", "1"),
        ("x-mock-ping-gap-ms", "500"),
        ("x-mock-ping-every-ms", "200"),
        ("x-mock-agent-tool", "web_search"),
    ];
    let started = tokio::time::Instant::now();
    let response = dify(&base, body, &script).await;
    let text = response.text().await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "the pause lasts its gap"
    );
    assert!(
        text.contains("event: ping\n\n"),
        "pings come without data, as Dify sends them"
    );
    let events = dify_stream(&text);
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "agent_message",
            "agent_thought",
            "ping",
            "ping",
            "ping",
            "agent_thought",
            "agent_message",
            "agent_message",
            "message_end"
        ]
    );
    let before = &events[1].1;
    assert_eq!(before["tool"], "web_search");
    assert!(before["thought"].as_str().unwrap().contains("web_search"));
    assert_eq!(
        serde_json::from_str::<Value>(before["tool_input"].as_str().unwrap()).unwrap(),
        json!({ "web_search": { "query": "look it up" } })
    );
    assert!(events[5].1["observation"].as_str().unwrap().contains("found"));
}

#[tokio::test]
async fn dify_chatflows_report_their_workflow_and_nodes() {
    let base = start(args()).await;
    let body = json!({ "inputs": {}, "query": "flow [[mock workflow=true chunks=2]]", "response_mode": "streaming", "user": "u" });
    let events = dify_stream(&dify(&base, body, &[]).await.text().await.unwrap());
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "workflow_started",
            "node_started",
            "node_finished",
            "node_started",
            "message",
            "message",
            "node_finished",
            "workflow_finished",
            "message_end"
        ]
    );
    let run = &events[0].1["workflow_run_id"];
    assert!(events[..4].iter().all(|(_, v)| &v["workflow_run_id"] == run));
    assert_eq!(events[0].1["data"]["sequence_number"], 1);
    assert_eq!(events[2].1["data"]["status"], "succeeded");
    assert_eq!(events[7].1["data"]["status"], "succeeded");
}

#[tokio::test]
async fn dify_records_inputs_and_refuses_a_request_without_a_required_one() {
    let base = start(args()).await;
    let body = json!({ "inputs": { "plan": "gold", "n": 2 }, "query": "q", "user": "u" });
    let h = [("x-mock-key", "in"), ("x-mock-require-inputs", "plan,locale")];
    let response = dify(&base, body, &h).await;
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({ "code": "invalid_param", "message": "locale is required in input form", "status": 400 })
    );
    assert_eq!(
        stats(&base).await["by_key"]["in"]["last_request"]["inputs"],
        json!({ "plan": "gold", "n": 2 })
    );
    let empty = json!({ "inputs": { "plan": "", "locale": "fr" }, "query": "q", "user": "u" });
    let response = dify(&base, empty, &h).await;
    assert_eq!(
        response.json::<Value>().await.unwrap()["message"],
        "plan is required in input form"
    );
    let whole = json!({ "inputs": { "plan": "gold", "locale": "fr" }, "query": "q", "user": "u" });
    assert_eq!(dify(&base, whole, &h).await.status(), 200);
}

// ---- Images, spoken answers and files ----

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn unb64(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(text).unwrap()
}

#[tokio::test]
async fn openai_counts_the_images_it_is_shown_and_refuses_bad_ones() {
    let base = start(args()).await;
    let png = format!("data:image/png;base64,{}", b64(b"\x89PNG\r\n"));
    let body = json!({ "model": "m", "messages": [{ "role": "user", "content": [
        { "type": "text", "text": "compare" },
        { "type": "image_url", "image_url": { "url": png } },
        { "type": "image_url", "image_url": { "url": "https://img.example/b.jpg", "detail": "low" } },
    ] }] });
    let response = openai(&base, body, &[("x-mock-key", "eyes")]).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert!(
        answer["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .starts_with("You said: compare. ")
    );
    let last = &stats(&base).await["by_key"]["eyes"]["last_request"];
    assert_eq!(last["images"], json!(["image/png", "https://img.example/b.jpg"]));
    assert_eq!(last["audio"], Value::Null);

    let bad = json!({ "model": "m", "messages": [{ "role": "user", "content": [
        { "type": "image_url", "image_url": { "url": "data:image/png;base64,@@@" } },
    ] }] });
    let response = openai(&base, bad, &[]).await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["type"], "invalid_request_error");
}

#[tokio::test]
async fn openai_speaks_when_asked_streaming_pcm16_only() {
    let base = start(args()).await;
    let ask = |stream: bool, format: &str| {
        json!({ "model": "gpt-4o-audio-preview", "stream": stream, "modalities": ["text", "audio"],
                "audio": { "voice": "alloy", "format": format },
                "messages": [{ "role": "user", "content": "say hi" }] })
    };
    // Streamed: transcript pieces and pcm16 pieces.
    let text = openai(&base, ask(true, "pcm16"), &[("x-mock-key", "voice")])
        .await
        .text()
        .await
        .unwrap();
    let events = openai_deltas(&text);
    let transcript: String = events
        .iter()
        .filter_map(|e| e["choices"][0]["delta"]["audio"]["transcript"].as_str())
        .collect();
    assert!(transcript.starts_with("You said: say hi. "), "{transcript}");
    assert!(
        events
            .iter()
            .all(|e| e["choices"][0]["delta"]["content"].as_str().is_none())
    );
    let pieces: Vec<Vec<u8>> = events
        .iter()
        .filter_map(|e| e["choices"][0]["delta"]["audio"]["data"].as_str())
        .map(unb64)
        .collect();
    assert_eq!(pieces.len(), 5, "one audio piece per text piece");
    assert_eq!(pieces.concat(), super::speech::pcm16());
    assert_eq!(pieces.concat().len(), 24_000 / 5 * 2, "0.2 s at 24 kHz");
    let last = &stats(&base).await["by_key"]["voice"]["last_request"];
    assert_eq!(last["audio"], json!({ "voice": "alloy", "format": "pcm16" }));

    // As OpenAI, a streamed answer cannot be wav.
    let response = openai(&base, ask(true, "wav"), &[]).await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("does not support 'wav' when stream=true"),
        "{error}"
    );

    // Whole: one WAV file and its transcript.
    let whole: Value = openai(&base, ask(false, "wav"), &[]).await.json().await.unwrap();
    let message = &whole["choices"][0]["message"];
    assert_eq!(message["content"], Value::Null);
    assert!(
        message["audio"]["transcript"]
            .as_str()
            .unwrap()
            .starts_with("You said: say hi. ")
    );
    let wav = unb64(message["audio"]["data"].as_str().unwrap());
    assert_eq!((&wav[..4], &wav[8..12]), (&b"RIFF"[..], &b"WAVE"[..]));
    assert_eq!(
        u32::from_le_bytes([wav[4], wav[5], wav[6], wav[7]]) as usize,
        wav.len() - 8
    );
    assert_eq!(
        u32::from_le_bytes([wav[40], wav[41], wav[42], wav[43]]) as usize,
        wav.len() - 44
    );

    let missing = json!({ "model": "m", "modalities": ["text", "audio"], "messages": [{ "role": "user", "content": "x" }] });
    assert_eq!(openai(&base, missing, &[]).await.status(), 400);
    assert_eq!(openai(&base, ask(false, "ogg"), &[]).await.status(), 400);
}

#[tokio::test]
async fn anthropic_counts_image_blocks_and_refuses_unknown_media_types() {
    let base = start(args()).await;
    let image = |media_type: &str| json!({ "type": "image", "source": { "type": "base64", "media_type": media_type, "data": b64(b"img") } });
    let body = json!({ "model": "c", "max_tokens": 10, "messages": [{ "role": "user", "content": [
        image("image/png"),
        { "type": "image", "source": { "type": "url", "url": "https://img.example/c.gif" } },
        { "type": "text", "text": "what is it" },
    ] }] });
    let response = anthropic(&base, body, &with(&ANTHROPIC, &[("x-mock-key", "see")])).await;
    assert_eq!(response.status(), 200);
    let last = &stats(&base).await["by_key"]["see"]["last_request"];
    assert_eq!(last["images"], json!(["image/png", "https://img.example/c.gif"]));
    assert_eq!(last["messages"][0]["content"], "what is it");

    let bmp = json!({ "model": "c", "max_tokens": 10, "messages": [{ "role": "user", "content": [image("image/bmp")] }] });
    let response = anthropic(&base, bmp, &ANTHROPIC).await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert!(
        error["error"]["message"].as_str().unwrap().contains("media_type"),
        "{error}"
    );
}

#[tokio::test]
async fn dify_records_files_and_sends_the_scripted_message_file() {
    let base = start(args()).await;
    let body = json!({ "inputs": {}, "response_mode": "streaming", "user": "u",
        "query": "draw it [[mock file-url=https://files.example/chart.png]]",
        "files": [{ "type": "image", "transfer_method": "remote_url", "url": "https://s3.example/in.png?sig=1" }] });
    let response = dify(&base, body, &[("x-mock-key", "files")]).await;
    assert_eq!(response.status(), 200);
    let events = dify_events(&response.text().await.unwrap());
    let names: Vec<&str> = events.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "message",
            "message",
            "message",
            "message",
            "message",
            "message_file",
            "message_end"
        ]
    );
    let file = &events[5];
    assert_eq!(file["url"], "https://files.example/chart.png");
    assert_eq!(
        (file["type"].as_str(), file["belongs_to"].as_str()),
        (Some("image"), Some("assistant"))
    );
    assert_eq!(file["conversation_id"], events[0]["conversation_id"]);
    assert!(file["id"].is_string());
    let answer: String = events[..5]
        .iter()
        .map(|e| e["answer"].as_str().unwrap())
        .collect();
    assert_eq!(answer, "You said: draw it. (turn 1) ");
    let last = &stats(&base).await["by_key"]["files"]["last_request"];
    assert_eq!(
        last["files"],
        json!([{ "type": "image", "transfer_method": "remote_url", "url": "https://s3.example/in.png?sig=1" }])
    );

    // The header works as well as the directive.
    let body = json!({ "inputs": {}, "response_mode": "streaming", "user": "u", "query": "again" });
    let events = dify_events(
        &dify(&base, body, &[("x-mock-file-url", "/files/abc.png")])
            .await
            .text()
            .await
            .unwrap(),
    );
    assert_eq!(events[events.len() - 2]["url"], "/files/abc.png");

    for bad in [
        json!([{ "type": "image", "transfer_method": "remote_url" }]),
        json!([{ "type": "picture", "transfer_method": "remote_url", "url": "https://x" }]),
        json!([{ "type": "image", "transfer_method": "carrier_pigeon", "url": "https://x" }]),
        json!("https://x"),
    ] {
        let body = json!({ "inputs": {}, "query": "q", "user": "u", "files": bad });
        let response = dify(&base, body, &[]).await;
        assert_eq!(response.status(), 400, "{bad}");
        assert_eq!(response.json::<Value>().await.unwrap()["code"], "invalid_param");
    }
}

// ---- Transcription ----

/// A multipart body with text fields and an optional file.
fn form(fields: &[(&str, &str)], file: Option<(&str, &[u8])>) -> (String, Vec<u8>) {
    let boundary = "mockboundary7MA4YWxk";
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                .as_bytes(),
        );
    }
    if let Some((file_name, bytes)) = file {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\nContent-Type: audio/wav\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn transcribe(
    base: &str,
    (content_type, body): (String, Vec<u8>),
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut request = client()
        .post(format!("{base}/v1/audio/transcriptions"))
        .header("content-type", content_type)
        .body(body);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn transcription_formats_and_errors() {
    let base = start(args()).await;
    let audio = vec![7u8; 64_000];
    let response = transcribe(
        &base,
        form(&[("model", "whisper-1")], Some(("hello.wav", &audio))),
        &[],
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({ "text": "transcript of hello.wav: 64000 bytes" })
    );

    let response = transcribe(
        &base,
        form(
            &[("model", "whisper-1"), ("response_format", "text")],
            Some(("a.mp3", b"abc")),
        ),
        &[("x-mock-transcript", "bonjour tout le monde")],
    )
    .await;
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert_eq!(response.text().await.unwrap(), "bonjour tout le monde");

    let verbose: Value = transcribe(
        &base,
        form(
            &[("model", "whisper-1"), ("response_format", "verbose_json")],
            Some(("b.wav", &audio)),
        ),
        &[],
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(verbose["language"], "en");
    assert_eq!(verbose["duration"], 2.0);
    assert_eq!(verbose["text"], "transcript of b.wav: 64000 bytes");

    let response = transcribe(&base, form(&[("model", "whisper-1")], None), &[]).await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert!(
        error["error"]["message"].as_str().unwrap().contains("file"),
        "{error}"
    );
    let response = transcribe(&base, form(&[], Some(("c.wav", b"x"))), &[]).await;
    assert_eq!(response.status(), 400);

    let h = [
        ("x-mock-key", "stt"),
        ("x-mock-fail-first", "1"),
        ("x-mock-fail-status", "429"),
        ("x-mock-retry-after", "3"),
    ];
    let response = transcribe(&base, form(&[("model", "whisper-1")], Some(("d.wav", b"x"))), &h).await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "3");
    let response = transcribe(&base, form(&[("model", "whisper-1")], Some(("d.wav", b"x"))), &h).await;
    assert_eq!(response.status(), 200);

    let s = stats(&base).await;
    assert_eq!(s["transcriptions"], 4);
    assert_eq!(s["by_key"]["stt"]["failed"], 1);
    assert_eq!(s["by_key"]["stt"]["completed"], 1);
    assert_eq!(s["completions"], 0);
}

#[tokio::test]
async fn transcription_reads_the_formats_openai_lists_and_refuses_others() {
    let base = start(args()).await;
    for name in [
        "a.flac", "b.M4A", "c.mp3", "d.mp4", "e.mpeg", "f.mpga", "g.oga", "h.ogg", "i.wav", "j.webm",
    ] {
        let response = transcribe(&base, form(&[("model", "whisper-1")], Some((name, b"x"))), &[]).await;
        assert_eq!(response.status(), 200, "{name}");
    }
    for name in ["voice.aac", "voice", "memo.opus", "x.bin"] {
        let response = transcribe(&base, form(&[("model", "whisper-1")], Some((name, b"x"))), &[]).await;
        assert_eq!(response.status(), 400, "{name}");
        assert_eq!(
            response.json::<Value>().await.unwrap(),
            json!({ "error": {
                "message": "Invalid file format. Supported formats: ['flac', 'm4a', 'mp3', 'mp4', 'mpeg', 'mpga', 'oga', 'ogg', 'wav', 'webm']",
                "type": "invalid_request_error", "param": null, "code": null,
            }})
        );
    }
    assert_eq!(
        stats(&base).await["last_transcription"],
        json!({ "file_name": "x.bin", "content_type": "audio/wav" })
    );
}

#[tokio::test]
async fn transcription_uploads_are_limited_to_25_mib() {
    let base = start(args()).await;
    let big = vec![0u8; 25 * 1024 * 1024 + 1024];
    let (content_type, body) = form(&[("model", "whisper-1")], Some(("big.wav", &big)));
    let response = client()
        .post(format!("{base}/v1/audio/transcriptions"))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await;
    let response = response.expect("a 413 answer");
    assert_eq!(response.status(), 413);
    let error: Value = response.json().await.unwrap();
    assert!(
        error["error"]["message"].as_str().unwrap().contains("25 MiB"),
        "{error}"
    );
    assert_eq!(stats(&base).await["transcriptions"], 0);
}
