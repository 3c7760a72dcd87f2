//! Finish reasons, retry headers, error codes, a refused `stream_options`,
//! Azure's routes and the request capture, over real HTTP.

use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use super::{ANTHROPIC, anthropic, args, client, openai, openai_deltas, sse, start};

fn ask(text: &str, stream: bool) -> Value {
    json!({ "model": "m", "stream": stream, "messages": [{ "role": "user", "content": text }] })
}

#[tokio::test]
async fn openai_ends_with_the_scripted_finish_reason_streamed_or_whole() {
    let base = start(args()).await;
    let body = openai(&base, ask("cut [[mock finish=length]]", true), &[]).await;
    let chunks = openai_deltas(&body.text().await.unwrap());
    let reasons: Vec<&Value> = chunks.iter().map(|c| &c["choices"][0]["finish_reason"]).collect();
    assert!(
        reasons[..reasons.len() - 1].iter().all(|r| r.is_null()),
        "{reasons:?}"
    );
    assert_eq!(reasons.last().copied(), Some(&json!("length")));

    let whole = openai(&base, ask("x", false), &[("x-mock-finish", "content_filter")]).await;
    let whole: Value = whole.json().await.unwrap();
    assert_eq!(whole["choices"][0]["finish_reason"], "content_filter");
    let plain: Value = openai(&base, ask("x", false), &[]).await.json().await.unwrap();
    assert_eq!(plain["choices"][0]["finish_reason"], "stop");

    let wrong = openai(&base, ask("x [[mock finish=max_tokens]]", true), &[]).await;
    assert_eq!(wrong.status(), 400, "max_tokens is Anthropic's name");
}

#[tokio::test]
async fn anthropic_ends_with_the_scripted_stop_reason_streamed_or_whole() {
    let base = start(args()).await;
    let body = json!({
        "model": "c", "max_tokens": 64, "stream": true,
        "messages": [{ "role": "user", "content": "long [[mock finish=max_tokens]]" }],
    });
    let text = anthropic(&base, body, &ANTHROPIC).await.text().await.unwrap();
    let delta = sse(&text)
        .into_iter()
        .find(|(name, _)| name == "message_delta")
        .map(|(_, data)| serde_json::from_str::<Value>(&data).unwrap())
        .unwrap();
    assert_eq!(delta["delta"]["stop_reason"], "max_tokens");
    let whole = json!({
        "model": "c", "max_tokens": 64,
        "messages": [{ "role": "user", "content": "no [[mock finish=refusal]]" }],
    });
    let message: Value = anthropic(&base, whole, &ANTHROPIC).await.json().await.unwrap();
    assert_eq!(message["stop_reason"], "refusal");
    let wrong = json!({
        "model": "c", "max_tokens": 64,
        "messages": [{ "role": "user", "content": "[[mock finish=length]]" }],
    });
    assert_eq!(anthropic(&base, wrong, &ANTHROPIC).await.status(), 400);
}

#[tokio::test]
async fn failures_carry_each_retry_header_and_error_code() {
    let base = start(args()).await;
    let limited = openai(
        &base,
        ask("x", true),
        &[
            ("x-mock-fail-status", "429"),
            ("x-mock-retry-after-ms", "3000"),
            ("x-mock-should-retry", "true"),
        ],
    )
    .await;
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["retry-after-ms"], "3000");
    assert_eq!(
        limited.headers()["retry-after"],
        "1",
        "a 429 still says Retry-After"
    );
    assert_eq!(limited.headers()["x-should-retry"], "true");

    let before = SystemTime::now();
    let dated = openai(
        &base,
        ask("x [[mock fail-status=503 retry-after-date=2]]", true),
        &[],
    )
    .await;
    let date = httpdate::parse_http_date(dated.headers()["retry-after"].to_str().unwrap()).unwrap();
    assert!(date.duration_since(before).unwrap() >= Duration::from_secs(2));

    let quota = openai(
        &base,
        ask(
            "x [[mock fail-status=429 error-code=insufficient_quota should-retry=false]]",
            true,
        ),
        &[],
    )
    .await;
    assert_eq!(quota.headers()["x-should-retry"], "false");
    let body: Value = quota.json().await.unwrap();
    assert_eq!(body["error"]["type"], "insufficient_quota");
    assert_eq!(body["error"]["code"], "insufficient_quota");
    let missing = openai(
        &base,
        ask("x [[mock fail-status=404 error-code=model_not_found]]", true),
        &[],
    )
    .await;
    let body: Value = missing.json().await.unwrap();
    assert_eq!(
        (body["error"]["type"].as_str(), body["error"]["code"].as_str()),
        (Some("invalid_request_error"), Some("model_not_found"))
    );

    let billing = json!({
        "model": "c", "max_tokens": 64,
        "messages": [{ "role": "user", "content": "x [[mock fail-status=402]]" }],
    });
    let response = anthropic(&base, billing, &ANTHROPIC).await;
    assert_eq!(response.status(), 402);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "billing_error");
}

#[tokio::test]
async fn stream_options_are_refused_when_scripted() {
    let base = start(args()).await;
    let mut streamed = ask("x", true);
    streamed["stream_options"] = json!({ "include_usage": true });
    let azure_old = openai(
        &base,
        streamed.clone(),
        &[("x-mock-reject-stream-options", "400")],
    )
    .await;
    assert_eq!(azure_old.status(), 400);
    let body: Value = azure_old.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("stream_options"),
        "{body}"
    );
    let strict = openai(
        &base,
        streamed.clone(),
        &[("x-mock-reject-stream-options", "422")],
    )
    .await;
    assert_eq!(strict.status(), 422);
    let body: Value = strict.json().await.unwrap();
    assert_eq!(body["detail"][0]["loc"], json!(["body", "stream_options"]));
    // Without stream_options the same server answers.
    let plain = openai(&base, ask("x", true), &[("x-mock-reject-stream-options", "400")]).await;
    assert_eq!(plain.status(), 200);
}

#[tokio::test]
async fn azure_routes_check_the_api_version_and_the_api_key() {
    let mut a = args();
    a.api_key = Some("az-key".to_owned());
    let base = start(a).await;
    let post = |path: &str, key: (&'static str, &'static str)| {
        client()
            .post(format!("{base}{path}"))
            .header(key.0, key.1)
            .json(&json!({ "messages": [{ "role": "user", "content": "hi" }] }))
    };
    let classic = "/openai/deployments/gpt-4o-prod/chat/completions";
    let ok = post(
        &format!("{classic}?api-version=2024-10-21"),
        ("api-key", "az-key"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(ok.status(), 200);
    let answer: Value = ok.json().await.unwrap();
    assert_eq!(answer["model"], "gpt-4o-prod", "the deployment answers");
    let no_version = post(classic, ("api-key", "az-key")).send().await.unwrap();
    assert_eq!(no_version.status(), 404);
    let bearer = post(
        &format!("{classic}?api-version=2024-10-21"),
        ("authorization", "Bearer az-key"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(bearer.status(), 401, "the classic route reads api-key");
    let body: Value = bearer.json().await.unwrap();
    assert_eq!(body["error"]["code"], "401");
    for key in [("api-key", "az-key"), ("authorization", "Bearer az-key")] {
        let v1 = post("/openai/v1/chat/completions", key).send().await.unwrap();
        assert_eq!(v1.status(), 200, "{key:?}");
    }
    let wrong = post("/openai/v1/chat/completions", ("api-key", "nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
}

#[tokio::test]
async fn requests_are_captured_as_received_with_their_status() {
    let base = start(args()).await;
    openai(
        &base,
        ask("one", true),
        &[("x-mock-key", "a"), ("x-mock-fail-status", "503")],
    )
    .await;
    openai(&base, ask("two", false), &[("x-mock-key", "a")]).await;
    openai(&base, ask("other", false), &[("x-mock-key", "b")]).await;
    let listed: Value = client()
        .get(format!("{base}/mock/requests?key=a"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let requests = listed["requests"].as_array().unwrap();
    assert_eq!(requests.len(), 2, "{listed}");
    assert_eq!(requests[0]["path"], "/v1/chat/completions");
    assert_eq!(requests[0]["method"], "POST");
    assert_eq!(requests[0]["status"], 503);
    assert_eq!(requests[1]["status"], 200);
    assert_eq!(requests[0]["body"]["messages"][0]["content"], "one");
    assert_eq!(requests[1]["headers"]["x-mock-key"], "a");
    assert!(requests[0]["at_ms"].as_u64().unwrap() <= requests[1]["at_ms"].as_u64().unwrap());
    client().post(format!("{base}/mock/reset")).send().await.unwrap();
    let listed: Value = client()
        .get(format!("{base}/mock/requests"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["requests"], json!([]));
}
