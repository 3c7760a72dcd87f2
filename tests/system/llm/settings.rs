//! The settings real models need, each checked in the request the mock
//! received (`GET /mock/requests`): the token limit's field, no
//! `temperature` unless set, `stream_options` off for servers that refuse
//! it, Azure OpenAI's two routes, the key's header, Anthropic's default
//! `max_tokens`, and a proxy from the environment.

use std::time::Duration;

use chatbox_worker::llm::{AnthropicProvider, LlmError, LlmProvider, OpenAiProvider};
use serde_json::{Value, json};

use super::{ask, collect, config, mock_requests, text_of, usage};
use crate::support::*;

/// The body of the last request the mock received under `key`.
async fn last_body(mock: &Proc, key: &str) -> Value {
    let requests = mock_requests(mock, key).await;
    requests.last().expect("a request")["body"].clone()
}

fn with_key(key: &str, extra: Value) -> Value {
    let mut all = json!({ "headers": { "x-mock-key": key } });
    for (k, v) in extra.as_object().into_iter().flatten() {
        all[k] = v.clone();
    }
    all
}

#[tokio::test]
async fn the_token_limit_goes_in_the_configured_field_and_no_temperature_goes_unless_set() {
    let dir = log_dir(&unique("settings"));
    let mock = start_mock(&dir, "mock", &["--chunks", "3"]).await;
    let p = |key: &str, extra: Value| {
        OpenAiProvider::new(config("gpt", "openai", &mock.addr, with_key(key, extra))).unwrap()
    };

    collect(&p("classic", json!({ "max_tokens": 300 })), ask("hi")).await;
    let body = last_body(&mock, "classic").await;
    assert_eq!(body["max_tokens"], 300);
    assert!(body.get("max_completion_tokens").is_none(), "{body}");
    assert!(
        body.get("temperature").is_none(),
        "none unless configured: {body}"
    );

    let reasoning = p(
        "reasoning",
        json!({ "max_tokens": 300, "max_tokens_field": "max_completion_tokens" }),
    );
    let events = collect(&reasoning, ask("think")).await;
    assert!(text_of(&events).starts_with("You said: think"), "{events:?}");
    let body = last_body(&mock, "reasoning").await;
    assert_eq!(body["max_completion_tokens"], 300);
    assert!(
        body.get("max_tokens").is_none() && body.get("temperature").is_none(),
        "{body}"
    );

    collect(&p("warm", json!({ "temperature": 0.2 })), ask("hi")).await;
    let body = last_body(&mock, "warm").await;
    assert!(
        (body["temperature"].as_f64().unwrap() - 0.2).abs() < 1e-6,
        "{body}"
    );
}

#[tokio::test]
async fn stream_usage_off_leaves_out_the_stream_options_a_server_refuses() {
    let dir = log_dir(&unique("settings"));
    let mock = start_mock(&dir, "mock", &["--chunks", "3"]).await;
    for status in ["400", "422"] {
        let key = format!("strict-{status}");
        let strict = |extra: Value| {
            let mut all = with_key(&key, extra);
            all["headers"]["x-mock-reject-stream-options"] = json!(status);
            OpenAiProvider::new(config("gpt", "openai", &mock.addr, all)).unwrap()
        };
        match strict(json!({})).stream(&ask("hi")).await {
            Err(LlmError::Status { status: got, .. }) => assert_eq!(got.to_string(), status),
            other => panic!(
                "expected a refusal of stream_options, got {:?}",
                other.map(|_| "a stream")
            ),
        }
        assert!(last_body(&mock, &key).await["stream_options"]["include_usage"] == true);

        let events = collect(&strict(json!({ "stream_usage": false })), ask("hi")).await;
        assert!(events.iter().all(Result::is_ok), "{events:?}");
        assert!(text_of(&events).starts_with("You said: hi"));
        assert!(usage(&events).is_none(), "no usage asked, none reported");
        let body = last_body(&mock, &key).await;
        assert!(
            body.get("stream_options").is_none() && body["stream"] == true,
            "{body}"
        );
    }
}

#[tokio::test]
async fn azure_classic_route_carries_the_deployment_api_version_and_api_key() {
    let dir = log_dir(&unique("settings"));
    let mock = start_mock(&dir, "mock", &["--chunks", "3", "--api-key", "az-key"]).await;
    let mut azure = config(
        "azure",
        "openai",
        &mock.addr,
        with_key(
            "azure",
            json!({ "apiKey": "az-key", "azure_deployment": "gpt-4o-prod", "api_version": "2024-10-21" }),
        ),
    );
    azure.endpoint = format!("http://{}", mock.addr);
    let events = collect(&OpenAiProvider::new(azure).unwrap(), ask("hello azure")).await;
    assert!(
        text_of(&events).starts_with("You said: hello azure") && usage(&events).is_some(),
        "{events:?}"
    );
    let requests = mock_requests(&mock, "azure").await;
    let seen = requests.last().unwrap();
    assert_eq!(seen["path"], "/openai/deployments/gpt-4o-prod/chat/completions");
    assert_eq!(seen["query"], "api-version=2024-10-21");
    assert_eq!(seen["headers"]["api-key"], "az-key");
    assert!(seen["headers"].get("authorization").is_none(), "{seen}");
    assert_eq!(seen["status"], 200);
}

#[tokio::test]
async fn azure_v1_route_and_a_custom_key_header() {
    let dir = log_dir(&unique("settings"));
    let mock = start_mock(&dir, "mock", &["--chunks", "3", "--api-key", "az-key"]).await;
    let v1 = |extra: Value| {
        let mut c = config("azure-v1", "openai", &mock.addr, with_key("v1", extra));
        c.endpoint = format!("http://{}/openai/v1", mock.addr);
        c.model = "gpt-4o-prod".into();
        OpenAiProvider::new(c).unwrap()
    };
    for (extra, header) in [
        (json!({ "apiKey": "az-key" }), "authorization"),
        (
            json!({ "apiKey": "az-key", "api_key_header": "api-key" }),
            "api-key",
        ),
    ] {
        let events = collect(&v1(extra), ask("v1")).await;
        assert!(text_of(&events).starts_with("You said: v1"), "{events:?}");
        let requests = mock_requests(&mock, "v1").await;
        let seen = requests.last().unwrap();
        assert_eq!(seen["path"], "/openai/v1/chat/completions");
        assert_eq!(seen["body"]["model"], "gpt-4o-prod");
        let expected = if header == "authorization" {
            "Bearer az-key"
        } else {
            "az-key"
        };
        assert_eq!(seen["headers"][header], expected, "{seen}");
    }

    // A gateway that wants the key in its own header gets it there, as it is.
    let gateway = OpenAiProvider::new(config(
        "gw",
        "openai",
        &mock.addr,
        with_key(
            "gw",
            json!({ "apiKey": "gw-key", "api_key_header": "x-gateway-key" }),
        ),
    ))
    .unwrap();
    // The mock's own route wants a bearer key: the refusal shows none went.
    assert!(matches!(
        gateway.stream(&ask("x")).await,
        Err(LlmError::Status { status: 401, .. })
    ));
    let requests = mock_requests(&mock, "gw").await;
    let seen = requests.last().unwrap();
    assert_eq!(seen["headers"]["x-gateway-key"], "gw-key");
    assert!(seen["headers"].get("authorization").is_none(), "{seen}");
}

#[tokio::test]
async fn anthropic_asks_for_4096_tokens_when_none_are_configured() {
    let dir = log_dir(&unique("settings"));
    let mock = start_mock(&dir, "mock", &["--chunks", "3"]).await;
    let claude = |extra: Value| {
        AnthropicProvider::new(config(
            "claude",
            "anthropic",
            &mock.addr,
            with_key("claude", extra),
        ))
        .unwrap()
    };
    collect(&claude(json!({ "apiKey": "k" })), ask("hi")).await;
    let body = last_body(&mock, "claude").await;
    assert_eq!(body["max_tokens"], 4096);
    assert!(body.get("temperature").is_none(), "{body}");
    collect(&claude(json!({ "apiKey": "k", "max_tokens": 8192 })), ask("hi")).await;
    assert_eq!(last_body(&mock, "claude").await["max_tokens"], 8192);
}

/// A one-line configuration file with the given providers.
fn providers_file(dir: &std::path::Path, text: &str) -> String {
    let path = dir.join("providers.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[tokio::test]
async fn providers_are_reached_through_the_proxy_the_environment_names_except_no_proxy_hosts() {
    let dir = log_dir(&unique("proxy"));
    // The mock is the proxy as well: a proxied request comes with its
    // whole URL as the request target, a direct one with its path only.
    let mock = start_mock(&dir, "mock", &["--chunks", "3"]).await;
    let port = mock.addr.rsplit(':').next().unwrap();
    let config = providers_file(
        &dir,
        &format!(
            r#"
[[chatbox.llm.providers]]
id = "far"
type = "openai"
endpoint = "http://llm.example.invalid/v1"
headers = {{ "x-mock-key" = "far" }}

[[chatbox.llm.providers]]
id = "near"
type = "openai"
endpoint = "http://127.0.0.1:{port}/v1"
headers = {{ "x-mock-key" = "near" }}
"#
        ),
    );
    let env = vec![
        ("JWT_SECRET".to_owned(), SECRET.to_owned()),
        ("CHATBOX_CONFIG".to_owned(), config),
        ("HTTP_PROXY".to_owned(), format!("http://{}", mock.addr)),
        ("NO_PROXY".to_owned(), "127.0.0.1".to_owned()),
    ];
    let server = start_all_in_one(&dir, &env, "all-in-one").await;
    let mut client = Client::connect(&server.addr, &token("px", &[]), None).await;
    client.status().await;

    client.say("q1", "through the proxy").await;
    let done = client.answer(Duration::from_secs(20)).await;
    assert!(
        done["content"]
            .as_str()
            .unwrap()
            .starts_with("You said: through the proxy"),
        "{done}"
    );
    let far = mock_requests(&mock, "far").await;
    assert_eq!(far.len(), 1, "{far:?}");
    assert_eq!(far[0]["target"], "http://llm.example.invalid/v1/chat/completions");
    assert_eq!(far[0]["headers"]["host"], "llm.example.invalid");

    client
        .send(json!({ "type": "model_select", "id": "pick", "model_id": "near" }))
        .await;
    client
        .until(Duration::from_secs(10), |f| f["type"] == "model_select")
        .await;
    client.say("q2", "straight there").await;
    let done = client.answer(Duration::from_secs(20)).await;
    assert_eq!(done["model_id"], "near");
    let near = mock_requests(&mock, "near").await;
    assert_eq!(near.len(), 1, "{near:?}");
    assert_eq!(near[0]["target"], "/v1/chat/completions", "NO_PROXY: not proxied");
}
