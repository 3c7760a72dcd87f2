//! The provider adapters, retries, breakers and fallbacks against the
//! `mock-llm` tool speaking each provider's wire format, over real HTTP.

use std::time::{Duration, Instant};

use chatbox_shared::config::{BreakerConfig, LlmConfig, ProviderConfig, RetryConfig};
use chatbox_worker::llm::{
    AnthropicProvider, Attachment, Audio, BreakerState, ChatMessage, ChatRole, DifyProvider, LlmError,
    LlmEvent, LlmProvider, LlmRequest, OpenAiProvider, Providers, Refusal, Transcriber, dispatch,
};
use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::support::*;

/// Answers cut by the provider, through the all-in-one.
mod cut;
/// Provider errors: rate-limit hints, refusals, slow first tokens.
mod refusals;
/// The settings real models need, as the mock received them.
mod settings;

/// A provider entry for the mock at `addr`; `extra` adds or overrides keys.
fn config(id: &str, kind: &str, addr: &str, extra: Value) -> ProviderConfig {
    let mut c = json!({
        "id": id, "name": id, "type": kind, "endpoint": format!("http://{addr}/v1"),
        "model": format!("{id}-model"), "connect_timeout": "2s", "first_token_timeout": "10s", "idle_timeout": "10s",
    });
    for (k, v) in extra.as_object().into_iter().flatten() {
        c[k] = v.clone();
    }
    serde_json::from_value(c).expect("provider config")
}

fn headers(pairs: &[(&str, &str)]) -> Value {
    json!({ "headers": pairs.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect::<serde_json::Map<_, _>>() })
}

fn ask(text: &str) -> LlmRequest {
    LlmRequest {
        messages: vec![ChatMessage::text(ChatRole::User, text)],
        user: Some("user-hash".into()),
        ..LlmRequest::default()
    }
}

async fn collect(p: &dyn LlmProvider, request: LlmRequest) -> Vec<Result<LlmEvent, LlmError>> {
    p.stream(&request).await.expect("stream starts").collect().await
}

fn text_of(events: &[Result<LlmEvent, LlmError>]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            Ok(LlmEvent::Delta(d)) => Some(d.as_str()),
            _ => None,
        })
        .collect()
}

fn deltas(events: &[Result<LlmEvent, LlmError>]) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, Ok(LlmEvent::Delta(_))))
        .count()
}

fn usage(events: &[Result<LlmEvent, LlmError>]) -> Option<(u64, u64)> {
    events.iter().find_map(|e| match e {
        Ok(LlmEvent::Usage {
            prompt_tokens,
            completion_tokens,
        }) => Some((*prompt_tokens, *completion_tokens)),
        _ => None,
    })
}

async fn key_stats(mock: &Proc, key: &str) -> Value {
    mock_stats(mock).await["by_key"][key].clone()
}

#[tokio::test]
async fn openai_streams_text_and_usage_then_ends_and_sends_the_request_as_configured() {
    let dir = log_dir(&unique("llm"));
    let mock = start_mock(&dir, "mock", &["--chunks", "7", "--api-key", "sk-test"]).await;
    let p = OpenAiProvider::new(config(
        "gpt",
        "openai",
        &mock.addr,
        json!({ "apiKey": "sk-test", "system_prompt": "be brief", "max_tokens": 100, "temperature": 0.5,
                "headers": { "x-mock-key": "openai-shape" } }),
    ))
    .unwrap();
    let events = collect(&p, ask("ping pong")).await;
    assert_eq!(deltas(&events), 7);
    assert!(text_of(&events).starts_with("You said: ping pong"));
    let (prompt, completion) = usage(&events).expect("usage with stream_options.include_usage");
    assert!(prompt > 0 && completion > 0);
    assert!(events.iter().all(Result::is_ok), "{events:?}");
    let seen = &key_stats(&mock, "openai-shape").await["last_request"];
    assert_eq!(seen["format"], "openai");
    assert_eq!(seen["model"], "gpt-model");
    assert_eq!(
        seen["messages"][0],
        json!({ "role": "system", "content": "be brief" })
    );
    assert_eq!(seen["max_tokens"], 100);
    assert_eq!(seen["user"], "user-hash");

    // Non-streaming mode returns the whole answer and its usage.
    let whole = OpenAiProvider::new(config(
        "gpt",
        "openai",
        &mock.addr,
        json!({ "apiKey": "sk-test", "stream": false }),
    ))
    .unwrap();
    let events = collect(&whole, ask("all at once")).await;
    assert_eq!(deltas(&events), 1);
    assert!(text_of(&events).starts_with("You said: all at once"));
    assert!(usage(&events).is_some());

    // A wrong key is an HTTP error, not an empty answer.
    let wrong = OpenAiProvider::new(config(
        "gpt",
        "openai",
        &mock.addr,
        json!({ "apiKey": "sk-wrong" }),
    ))
    .unwrap();
    match wrong.stream(&ask("x")).await {
        Err(e @ LlmError::Status { status: 401, .. }) => {
            // A refused key: not retried, and not an outage of the provider.
            assert!(!e.is_transient() && !e.counts_against_provider());
            assert_eq!(e.refusal(), Some(Refusal::Auth));
        }
        other => panic!("expected 401, got {:?}", other.map(|_| "a stream")),
    }
}

#[tokio::test]
async fn openai_reports_cut_malformed_and_error_streams_and_missing_usage() {
    let dir = log_dir(&unique("llm"));
    let mock = start_mock(&dir, "mock", &["--chunks", "10", "--chunk-delay", "10"]).await;
    let scripted = |pairs: &[(&str, &str)]| {
        OpenAiProvider::new(config("gpt", "openai", &mock.addr, headers(pairs))).unwrap()
    };

    let events = collect(&scripted(&[("x-mock-disconnect-after", "3")]), ask("cut")).await;
    assert_eq!(deltas(&events), 3, "{events:?}");
    assert!(
        matches!(
            events.last(),
            Some(Err(LlmError::Connect(_) | LlmError::Protocol(_)))
        ),
        "{events:?}"
    );

    let events = collect(&scripted(&[("x-mock-malformed-after", "2")]), ask("bad")).await;
    assert_eq!(deltas(&events), 2, "{events:?}");
    assert!(
        matches!(events.last(), Some(Err(LlmError::Protocol(_)))),
        "{events:?}"
    );

    let events = collect(&scripted(&[("x-mock-error-event-after", "4")]), ask("err")).await;
    assert_eq!(deltas(&events), 4, "{events:?}");
    match events.last() {
        Some(Err(e @ LlmError::Upstream { kind, message })) => {
            assert_eq!(
                (kind.as_str(), message.as_str()),
                ("server_error", "mock stream error")
            );
            assert!(e.is_transient());
        }
        other => panic!("expected the stream's error event, got {other:?}"),
    }

    let events = collect(&scripted(&[("x-mock-usage", "absent")]), ask("no usage")).await;
    assert_eq!(deltas(&events), 10);
    assert!(
        usage(&events).is_none() && events.iter().all(Result::is_ok),
        "{events:?}"
    );
}

#[tokio::test]
async fn anthropic_streams_messages_events_with_usage_and_its_error_events() {
    let dir = log_dir(&unique("llm"));
    let mock = start_mock(&dir, "mock", &["--chunks", "5", "--api-key", "sk-ant"]).await;
    let p = |extra: Value| {
        let mut base = json!({ "apiKey": "sk-ant", "system_prompt": "Be brief.", "headers": { "x-mock-key": "claude" } });
        for (k, v) in extra.as_object().into_iter().flatten() {
            base[k] = v.clone();
        }
        AnthropicProvider::new(config("claude", "anthropic", &mock.addr, base)).unwrap()
    };
    let request = LlmRequest {
        messages: vec![
            ChatMessage::text(ChatRole::Assistant, "Hi! How can I help?"),
            ChatMessage::text(ChatRole::User, "first"),
            ChatMessage::text(ChatRole::User, "second"),
        ],
        ..ask("")
    };
    let events = collect(&p(json!({})), request).await;
    assert_eq!(deltas(&events), 5, "{events:?}");
    let text = text_of(&events);
    assert!(
        text.starts_with("You said: first") && text.contains("second"),
        "{events:?}"
    );
    let (input, output) = usage(&events).expect("message_start and message_delta usage");
    assert!(input > 0 && output > 0);
    let seen = &key_stats(&mock, "claude").await["last_request"];
    assert_eq!(seen["format"], "anthropic");
    assert_eq!(seen["system"], "Be brief.");
    assert_eq!(
        seen["max_tokens"], 4096,
        "the API requires max_tokens; enough not to cut ordinary answers"
    );
    assert_eq!(seen["messages"].as_array().map(Vec::len), Some(1), "{seen}");

    let events = collect(&p(json!({ "stream": false })), ask("whole")).await;
    assert!(
        text_of(&events).starts_with("You said: whole") && usage(&events).is_some(),
        "{events:?}"
    );

    let events = collect(&p(headers(&[("x-mock-usage", "absent")])), ask("no usage")).await;
    assert!(usage(&events).is_none() && deltas(&events) == 5, "{events:?}");

    let events = collect(&p(headers(&[("x-mock-error-event-after", "2")])), ask("overload")).await;
    assert_eq!(deltas(&events), 2);
    assert!(
        matches!(events.last(), Some(Err(LlmError::Upstream { kind, .. })) if kind == "overloaded_error"),
        "{events:?}"
    );

    match p(json!({ "apiKey": "sk-wrong" })).stream(&ask("x")).await {
        Err(LlmError::Status {
            status: 401, message, ..
        }) => assert_eq!(message, "invalid x-api-key"),
        other => panic!("expected 401, got {:?}", other.map(|_| "a stream")),
    }
}

#[tokio::test]
async fn dify_keeps_its_conversation_and_is_stopped_when_dropped() {
    let dir = log_dir(&unique("llm"));
    let mock = start_mock(&dir, "mock", &["--chunks", "4", "--api-key", "app-key"]).await;
    let p = |extra: Value| {
        let mut base = json!({ "apiKey": "app-key" });
        for (k, v) in extra.as_object().into_iter().flatten() {
            base[k] = v.clone();
        }
        DifyProvider::new(config("dify", "dify", &mock.addr, base)).unwrap()
    };
    let conversation = |events: &[Result<LlmEvent, LlmError>]| {
        events.iter().find_map(|e| match e {
            Ok(LlmEvent::Conversation(id)) => Some(id.clone()),
            _ => None,
        })
    };
    let first = collect(&p(json!({})), ask("hello")).await;
    let id = conversation(&first).expect("a conversation id");
    assert!(
        text_of(&first).contains("(turn 1)") && usage(&first).is_some(),
        "{first:?}"
    );

    let second = collect(
        &p(json!({})),
        LlmRequest {
            conversation_id: Some(id.clone()),
            ..ask("again")
        },
    )
    .await;
    assert!(
        text_of(&second).starts_with("You said: again. (turn 2)"),
        "{second:?}"
    );
    assert_eq!(conversation(&second), Some(id));

    // A conversation Dify forgot starts afresh instead of failing.
    let lost = collect(
        &p(json!({})),
        LlmRequest {
            conversation_id: Some("conv-gone".into()),
            ..ask("lost")
        },
    )
    .await;
    assert!(text_of(&lost).contains("(turn 1)"), "{lost:?}");
    assert!(conversation(&lost).is_some_and(|c| c != "conv-gone"));

    let blocking = collect(&p(json!({ "stream": false })), ask("blocking")).await;
    assert!(text_of(&blocking).starts_with("You said: blocking") && conversation(&blocking).is_some());

    // Dropped midway: the task is stopped upstream.
    let slow = p(headers(&[
        ("x-mock-chunks", "50"),
        ("x-mock-chunk-delay-ms", "50"),
    ]));
    let mut stream = slow.stream(&ask("slow")).await.unwrap();
    let mut got = 0;
    while got < 2 {
        if let Some(Ok(LlmEvent::Delta(_))) = stream.next().await {
            got += 1;
        }
    }
    drop(stream);
    let deadline = Instant::now() + Duration::from_secs(5);
    while mock_stats(&mock).await["stopped"] != 1 {
        assert!(
            Instant::now() < deadline,
            "no stop call: {}",
            mock_stats(&mock).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let events = collect(&p(headers(&[("x-mock-error-event-after", "1")])), ask("err")).await;
    assert!(
        matches!(events.last(), Some(Err(LlmError::Upstream { kind, .. })) if kind == "mock_error"),
        "{events:?}"
    );
}

/// The user's question with one PNG attached (and its download URL).
fn ask_with_image(text: &str, url: Option<&str>) -> LlmRequest {
    let mut request = ask(text);
    request.messages[0].attachments.push(Attachment::Image {
        media_type: "image/png".into(),
        data: bytes::Bytes::from_static(b"\x89PNG\r\n\x1a\n"),
        url: url.map(str::to_owned),
    });
    request
}

#[tokio::test]
async fn images_reach_openai_and_anthropic_models_inline() {
    let dir = log_dir(&unique("llm"));
    let mock = start_mock(&dir, "mock", &["--chunks", "3"]).await;
    let gpt = OpenAiProvider::new(config(
        "gpt",
        "openai",
        &mock.addr,
        json!({ "vision": true, "headers": { "x-mock-key": "gpt-eyes" } }),
    ))
    .unwrap();
    assert!(gpt.accepts_images());
    let events = collect(&gpt, ask_with_image("what is this?", None)).await;
    assert!(
        text_of(&events).starts_with("You said: what is this?"),
        "{events:?}"
    );
    let seen = &key_stats(&mock, "gpt-eyes").await["last_request"];
    assert_eq!(seen["images"], json!(["image/png"]));
    assert_eq!(seen["messages"][0]["content"], "what is this?");

    let claude = AnthropicProvider::new(config(
        "claude",
        "anthropic",
        &mock.addr,
        json!({ "apiKey": "sk-ant", "headers": { "x-mock-key": "claude-eyes" } }),
    ))
    .unwrap();
    assert!(!claude.accepts_images(), "vision is off unless configured");
    let events = collect(&claude, ask_with_image("and this?", None)).await;
    assert!(text_of(&events).starts_with("You said: and this?"), "{events:?}");
    let seen = &key_stats(&mock, "claude-eyes").await["last_request"];
    assert_eq!(seen["images"], json!(["image/png"]));
    assert_eq!(seen["messages"][0]["content"], "and this?");
}

#[tokio::test]
async fn dify_gets_image_urls_and_returns_the_files_it_makes() {
    let dir = log_dir(&unique("llm"));
    let mock = start_mock(&dir, "mock", &["--chunks", "3"]).await;
    let p = || {
        DifyProvider::new(config(
            "dify",
            "dify",
            &mock.addr,
            headers(&[("x-mock-key", "dify-files")]),
        ))
        .unwrap()
    };
    let signed = "https://blobs.example/u/1.png?X-Amz-Signature=abc";
    let events = collect(
        &p(),
        ask_with_image(
            "chart this [[mock file-url=https://files.example/chart.png]]",
            Some(signed),
        ),
    )
    .await;
    assert!(events.iter().all(Result::is_ok), "{events:?}");
    assert!(
        text_of(&events).starts_with("You said: chart this."),
        "{events:?}"
    );
    let files: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Ok(LlmEvent::File { url, media_type }) => Some((url.as_str(), media_type.as_deref())),
            _ => None,
        })
        .collect();
    assert_eq!(files, [("https://files.example/chart.png", Some("image/png"))]);
    let seen = &key_stats(&mock, "dify-files").await["last_request"];
    assert_eq!(
        seen["files"],
        json!([{ "type": "image", "transfer_method": "remote_url", "url": signed }])
    );

    // Dify's own /files/… URLs are made absolute; an image without a URL
    // cannot go to Dify.
    let events = collect(
        &p(),
        ask_with_image("[[mock file-url=/files/tools/x.png?sign=1]] again", None),
    )
    .await;
    let relative = format!("http://{}/files/tools/x.png?sign=1", mock.addr);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Ok(LlmEvent::File { url, .. }) if *url == relative)),
        "{events:?}"
    );
    assert_eq!(
        key_stats(&mock, "dify-files").await["last_request"]["files"],
        json!([])
    );
}

#[tokio::test]
async fn openai_speaks_its_answer_as_a_wav_when_audio_output_is_configured() {
    let dir = log_dir(&unique("llm"));
    let mock = start_mock(&dir, "mock", &["--chunks", "4"]).await;
    let spoken = |extra: Value| {
        let mut base = json!({ "audio_output": {}, "headers": { "x-mock-key": "voice" } });
        for (k, v) in extra.as_object().into_iter().flatten() {
            base[k] = v.clone();
        }
        OpenAiProvider::new(config("gpt-audio", "openai", &mock.addr, base)).unwrap()
    };
    let audio_of = |events: &[Result<LlmEvent, LlmError>]| -> (Vec<u8>, Vec<String>) {
        let mut bytes = Vec::new();
        let mut formats = Vec::new();
        for e in events {
            if let Ok(LlmEvent::Audio { data, format }) = e {
                bytes.extend_from_slice(data);
                formats.push(format.clone());
            }
        }
        (bytes, formats)
    };
    let is_wav = |wav: &[u8]| {
        wav.len() > 44
            && &wav[..4] == b"RIFF"
            && &wav[8..12] == b"WAVE"
            && u32::from_le_bytes([wav[4], wav[5], wav[6], wav[7]]) as usize == wav.len() - 8
            && u32::from_le_bytes([wav[40], wav[41], wav[42], wav[43]]) as usize == wav.len() - 44
    };

    // Streamed (the default): the transcript streams as text, the sound
    // comes as one WAV at the end.
    let events = collect(&spoken(json!({})), ask("say something")).await;
    assert!(events.iter().all(Result::is_ok), "{events:?}");
    assert_eq!(deltas(&events), 4);
    assert!(text_of(&events).starts_with("You said: say something."));
    let (wav, formats) = audio_of(&events);
    assert_eq!(formats, ["wav"]);
    assert!(is_wav(&wav), "{:?}", &wav[..wav.len().min(64)]);
    assert!(usage(&events).is_some());
    let seen = &key_stats(&mock, "voice").await["last_request"];
    assert_eq!(seen["audio"], json!({ "voice": "alloy", "format": "pcm16" }));

    // Whole: the provider's own WAV.
    let events = collect(&spoken(json!({ "stream": false })), ask("whole")).await;
    let (wav, formats) = audio_of(&events);
    assert_eq!(formats, ["wav"]);
    assert!(
        is_wav(&wav) && text_of(&events).starts_with("You said: whole."),
        "{events:?}"
    );

    // pcm16 passes piece by piece.
    let events = collect(
        &spoken(json!({ "audio_output": { "voice": "echo", "format": "pcm16" } })),
        ask("raw"),
    )
    .await;
    let (pcm, formats) = audio_of(&events);
    assert_eq!(formats, ["pcm16"; 4]);
    assert_eq!(pcm.len(), 24_000 / 5 * 2, "0.2 s of 24 kHz samples");
    let seen = &key_stats(&mock, "voice").await["last_request"];
    assert_eq!(seen["audio"], json!({ "voice": "echo", "format": "pcm16" }));

    // The answer starts with its first text, not its sound.
    let config = llm_config(
        vec![config(
            "gpt-audio",
            "openai",
            &mock.addr,
            json!({ "audio_output": {} }),
        )],
        1,
        5,
    );
    let providers = Providers::from_config(&config).unwrap();
    let started = dispatch(
        &providers,
        providers.select(None).unwrap(),
        &ask("hi"),
        &config.retry,
    )
    .await
    .unwrap();
    assert!(
        matches!(started.head.last(), Some(LlmEvent::Delta(_))),
        "{:?}",
        started.head
    );
}

#[tokio::test]
async fn transcription_uploads_the_audio_and_returns_its_text() {
    let dir = log_dir(&unique("llm"));
    let mock = start_mock(&dir, "mock", &["--api-key", "sk-t"]).await;
    let t = Transcriber::new(config(
        "whisper",
        "openai",
        &mock.addr,
        json!({ "apiKey": "sk-t", "transcription_model": "whisper-1" }),
    ))
    .unwrap();
    let audio = Audio {
        bytes: vec![7u8; 3210].into(),
        filename: "voice.webm".into(),
        content_type: "audio/webm".into(),
    };
    let text = t.transcribe(audio.clone(), Some("en")).await.unwrap();
    assert_eq!(text, "transcript of voice.webm: 3210 bytes");
    assert_eq!(mock_stats(&mock).await["transcriptions"], 1);

    let wrong = Transcriber::new(config(
        "w",
        "openai",
        &mock.addr,
        json!({ "apiKey": "nope", "transcription_model": "whisper-1" }),
    ))
    .unwrap();
    assert!(matches!(
        wrong.transcribe(audio, None).await,
        Err(LlmError::Status { status: 401, .. })
    ));
}

fn llm_config(providers: Vec<ProviderConfig>, attempts: u32, threshold: u32) -> LlmConfig {
    LlmConfig {
        providers,
        retry: RetryConfig {
            attempts,
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(100),
            max_retry_after: Duration::from_secs(5),
            slow_first_token: false,
        },
        breaker: BreakerConfig {
            failure_threshold: threshold,
            open_for: Duration::from_millis(700),
            half_open_probes: 1,
        },
        ..LlmConfig::default()
    }
}

#[tokio::test]
async fn retries_happen_before_the_first_token_with_backoff_and_retry_after() {
    let dir = log_dir(&unique("llm"));
    let mock = start_mock(&dir, "mock", &["--chunks", "3"]).await;
    let flaky = config(
        "flaky",
        "openai",
        &mock.addr,
        headers(&[
            ("x-mock-key", "flaky"),
            ("x-mock-fail-first", "2"),
            ("x-mock-fail-status", "503"),
        ]),
    );
    let config = llm_config(vec![flaky], 3, 10);
    let providers = Providers::from_config(&config).unwrap();
    let model = providers.select(None).unwrap();
    let started = dispatch(&providers, model, &ask("third time lucky"), &config.retry)
        .await
        .expect("the third attempt answers");
    assert!(
        matches!(&started.head[..], [LlmEvent::Delta(d)] if d.starts_with("You")),
        "{:?}",
        started.head
    );
    assert_eq!(key_stats(&mock, "flaky").await["requests"], 3);

    // 429 with Retry-After: the wait is at least what the provider asked.
    let limited = config_with_key(
        &mock.addr,
        "limited",
        &[
            ("x-mock-fail-first", "1"),
            ("x-mock-fail-status", "429"),
            ("x-mock-retry-after", "1"),
        ],
    );
    let config = llm_config(vec![limited], 3, 10);
    let providers = Providers::from_config(&config).unwrap();
    let t = Instant::now();
    dispatch(
        &providers,
        providers.select(None).unwrap(),
        &ask("patience"),
        &config.retry,
    )
    .await
    .expect("answers after the wait");
    assert!(
        t.elapsed() >= Duration::from_secs(1),
        "waited only {:?}",
        t.elapsed()
    );
    assert_eq!(key_stats(&mock, "limited").await["requests"], 2);

    // A request the provider refuses as wrong is not tried again.
    let bad = config_with_key(&mock.addr, "bad", &[("x-mock-fail-status", "400")]);
    let config = llm_config(vec![bad], 3, 10);
    let providers = Providers::from_config(&config).unwrap();
    let e = dispatch(
        &providers,
        providers.select(None).unwrap(),
        &ask("no"),
        &config.retry,
    )
    .await
    .err()
    .expect("fails");
    assert!(matches!(e, LlmError::Status { status: 400, .. }), "{e:?}");
    assert_eq!(key_stats(&mock, "bad").await["requests"], 1);
}

fn config_with_key(addr: &str, key: &str, pairs: &[(&str, &str)]) -> ProviderConfig {
    let mut all = vec![("x-mock-key", key)];
    all.extend_from_slice(pairs);
    config(key, "openai", addr, headers(&all))
}

#[tokio::test]
async fn a_failing_provider_opens_its_breaker_and_its_fallback_answers_until_it_recovers() {
    let dir = log_dir(&unique("llm"));
    let mock = start_mock(&dir, "mock", &["--chunks", "3"]).await;
    // "primary" fails its first 4 requests, then works again.
    let mut primary = config_with_key(
        &mock.addr,
        "primary",
        &[("x-mock-fail-first", "4"), ("x-mock-fail-status", "500")],
    );
    primary.fallback = Some("backup".into());
    let backup = config(
        "backup",
        "anthropic",
        &mock.addr,
        headers(&[("x-mock-key", "backup")]),
    );
    let config = llm_config(vec![primary, backup], 2, 4);
    let providers = Providers::from_config(&config).unwrap();
    let primary = providers.select(Some("primary")).unwrap();

    for round in 1..=2 {
        let started = dispatch(&providers, primary, &ask("help"), &config.retry)
            .await
            .unwrap();
        assert_eq!(started.provider.id(), "backup", "round {round}");
        assert_eq!(started.fell_back_from.as_deref(), Some("primary"));
    }
    assert_eq!(
        key_stats(&mock, "primary").await["requests"],
        4,
        "2 rounds of 2 attempts"
    );
    assert!(matches!(primary.breaker.state(), BreakerState::Open { .. }));

    // Open: the primary is not even asked.
    let started = dispatch(&providers, primary, &ask("help"), &config.retry)
        .await
        .unwrap();
    assert_eq!(started.provider.id(), "backup");
    assert_eq!(key_stats(&mock, "primary").await["requests"], 4);

    // After open_for, one probe goes through; it succeeds and closes the breaker.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let started = dispatch(&providers, primary, &ask("better?"), &config.retry)
        .await
        .unwrap();
    assert_eq!(started.provider.id(), "primary");
    assert!(started.fell_back_from.is_none());
    assert_eq!(primary.breaker.state(), BreakerState::Closed { failures: 0 });
}

/// The requests the mock received with `x-mock-key: key`, oldest first
/// (`GET /mock/requests`).
async fn mock_requests(mock: &Proc, key: &str) -> Vec<Value> {
    let listed: Value = get(&format!("http://{}/mock/requests?key={key}", mock.addr))
        .await
        .expect("mock requests")
        .json()
        .await
        .expect("mock requests json");
    listed["requests"].as_array().cloned().unwrap_or_default()
}

/// Dify's stream as its apps send it, read by the adapter over real HTTP:
/// a chatflow's progress and an agent's pause of pings are signs of life,
/// the tool shows as work, moderation replaces the answer and marks it
/// filtered; the inputs are the fixed ones and those from the claims.
#[tokio::test]
async fn dify_reads_what_its_apps_send_and_sends_their_inputs() {
    let dir = log_dir(&unique("llm"));
    let mock = start_mock(&dir, "mock", &["--chunks", "4"]).await;
    let p = DifyProvider::new(config(
        "dify",
        "dify",
        &mock.addr,
        json!({ "inputs": { "locale": "en" }, "inputs_from_claims": { "plan": "tier" },
                "headers": { "x-mock-key": "dify-app" } }),
    ))
    .unwrap();
    let request = |text: &str| LlmRequest {
        claims: [("tier".to_owned(), json!("gold"))].into(),
        ..ask(text)
    };
    let events = collect(
        &p,
        request("work [[mock workflow=true agent-tool=calculator ping-gap-ms=600 ping-every-ms=200]]"),
    )
    .await;
    let events: Vec<LlmEvent> = events.into_iter().map(|e| e.expect("no error")).collect();
    let keep_alives = events.iter().filter(|e| **e == LlmEvent::KeepAlive).count();
    // 4 workflow/node events before the text, 3 pings, the repeated
    // thought, 2 after the text.
    assert_eq!(keep_alives, 10, "{events:?}");
    let working: Vec<&LlmEvent> = events
        .iter()
        .filter(|e| matches!(e, LlmEvent::Working(_)))
        .collect();
    assert_eq!(working, [&LlmEvent::Working(Some("calculator".into()))]);
    assert!(!events.iter().any(|e| matches!(e, LlmEvent::Finish(_))));
    let text: String = events
        .iter()
        .filter_map(|e| match e {
            LlmEvent::Delta(d) => Some(d.as_str()),
            _ => None,
        })
        .collect();
    assert!(text.starts_with("You said: work."), "{text}");
    let seen = &key_stats(&mock, "dify-app").await["last_request"];
    assert_eq!(seen["inputs"], json!({ "locale": "en", "plan": "gold" }));

    let moderated = collect(&p, request("hm [[mock replace-after=1]]")).await;
    let tail: Vec<&LlmEvent> = moderated
        .iter()
        .rev()
        .take(3)
        .map(|e| e.as_ref().unwrap())
        .collect();
    assert!(matches!(tail[0], LlmEvent::Usage { .. }), "{moderated:?}");
    assert_eq!(
        tail[1],
        &LlmEvent::Finish(chatbox_worker::llm::Cut::ContentFilter)
    );
    assert!(
        matches!(tail[2], LlmEvent::Replace(t) if t.contains("withheld")),
        "{moderated:?}"
    );

    // An app that requires an input the request lacks refuses it.
    match p.stream(&ask("no claims [[mock require-inputs=plan]]")).await {
        Err(LlmError::Status {
            status: 400, message, ..
        }) => assert!(message.contains("plan is required in input form"), "{message}"),
        other => panic!("expected a 400, got {:?}", other.map(|_| "a stream")),
    }
}
