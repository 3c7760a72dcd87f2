//! Provider errors as providers send them: how long to wait
//! (`retry-after-ms`, `Retry-After` as a date) measured between the
//! requests the mock received, `x-should-retry` either way, errors waiting
//! cannot fix (a spent quota, a refused key, a missing model: not retried,
//! the fallback at once, counted apart, the breaker left closed), and a
//! slow first token asked once.

use std::time::Duration;

use chatbox_shared::config::ProviderConfig;
use chatbox_worker::llm::{BreakerState, LlmError, Providers, Refusal, dispatch};
use serde_json::Value;

use super::{ask, config_with_key, llm_config, mock_requests};
use crate::support::*;

/// Milliseconds between the arrivals of the mock's requests `a` and `b`.
fn gap_ms(requests: &[Value], a: usize, b: usize) -> u64 {
    let at = |i: usize| requests[i]["at_ms"].as_u64().expect("at_ms");
    at(b) - at(a)
}

/// Starts an answer from the only provider of `providers`.
async fn start(providers: Vec<ProviderConfig>, attempts: u32) -> (Providers, Result<String, LlmError>) {
    let config = llm_config(providers, attempts, 1);
    let built = Providers::from_config(&config).unwrap();
    let result = dispatch(&built, built.select(None).unwrap(), &ask("q"), &config.retry)
        .await
        .map(|started| started.provider.id().to_owned());
    (built, result)
}

#[tokio::test]
async fn a_429_asking_retry_after_ms_is_tried_again_no_sooner() {
    let dir = log_dir(&unique("refusals"));
    let mock = start_mock(&dir, "mock", &["--chunks", "3"]).await;
    let limited = config_with_key(
        &mock.addr,
        "ms",
        &[
            ("x-mock-fail-first", "1"),
            ("x-mock-fail-status", "429"),
            ("x-mock-retry-after-ms", "3000"),
        ],
    );
    let (_, answered) = start(vec![limited], 3).await;
    assert_eq!(answered.unwrap(), "ms");
    let requests = mock_requests(&mock, "ms").await;
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(
        (requests[0]["status"].as_u64(), requests[1]["status"].as_u64()),
        (Some(429), Some(200))
    );
    // The mock also says `Retry-After: 1`; the milliseconds win.
    let gap = gap_ms(&requests, 0, 1);
    assert!(gap >= 3000, "tried again after {gap} ms");
}

#[tokio::test]
async fn a_retry_after_date_is_waited_for() {
    let dir = log_dir(&unique("refusals"));
    let mock = start_mock(&dir, "mock", &["--chunks", "3"]).await;
    let busy = config_with_key(
        &mock.addr,
        "date",
        &[
            ("x-mock-fail-first", "1"),
            ("x-mock-fail-status", "503"),
            ("x-mock-retry-after-date", "2"),
        ],
    );
    let (_, answered) = start(vec![busy], 3).await;
    assert_eq!(answered.unwrap(), "date");
    let requests = mock_requests(&mock, "date").await;
    assert_eq!(requests.len(), 2, "{requests:?}");
    // The date is at least 2 s after the mock answered (whole seconds,
    // rounded up); the first request came before that.
    let gap = gap_ms(&requests, 0, 1);
    assert!(gap >= 1990, "tried again after {gap} ms");
}

#[tokio::test]
async fn x_should_retry_overrides_the_status_either_way() {
    let dir = log_dir(&unique("refusals"));
    let mock = start_mock(&dir, "mock", &["--chunks", "3"]).await;
    // 503 would be retried; the provider says not to.
    let stop = config_with_key(
        &mock.addr,
        "no",
        &[("x-mock-fail-status", "503"), ("x-mock-should-retry", "false")],
    );
    let (_, answered) = start(vec![stop], 3).await;
    assert!(
        matches!(answered, Err(LlmError::Status { status: 503, .. })),
        "{answered:?}"
    );
    assert_eq!(mock_requests(&mock, "no").await.len(), 1);
    // 400 would not be; the provider says to.
    let again = config_with_key(
        &mock.addr,
        "yes",
        &[
            ("x-mock-fail-first", "1"),
            ("x-mock-fail-status", "400"),
            ("x-mock-should-retry", "true"),
        ],
    );
    let (_, answered) = start(vec![again], 3).await;
    assert_eq!(answered.unwrap(), "yes");
    assert_eq!(mock_requests(&mock, "yes").await.len(), 2);
}

#[tokio::test]
async fn refused_keys_forbidden_and_missing_models_are_asked_once_and_leave_the_breaker_closed() {
    let dir = log_dir(&unique("refusals"));
    let mock = start_mock(&dir, "mock", &["--chunks", "3"]).await;
    for (status, code, want) in [
        ("401", "invalid_api_key", Refusal::Auth),
        ("403", "unsupported_country_region_territory", Refusal::Permission),
        ("404", "model_not_found", Refusal::NotFound),
        ("429", "insufficient_quota", Refusal::Quota),
    ] {
        let key = format!("refused-{status}");
        let refused = config_with_key(
            &mock.addr,
            &key,
            &[("x-mock-fail-status", status), ("x-mock-error-code", code)],
        );
        let (providers, answered) = start(vec![refused], 3).await;
        let e = answered.expect_err("refused");
        assert_eq!(e.refusal(), Some(want), "{e:?}");
        assert_eq!(mock_requests(&mock, &key).await.len(), 1, "{status}: not retried");
        assert_eq!(
            providers.select(None).unwrap().breaker.state(),
            BreakerState::Closed { failures: 0 },
            "{status}: a threshold of 1 would have opened it"
        );
    }
}

#[tokio::test]
async fn a_spent_quota_goes_to_the_fallback_at_once_is_counted_and_never_opens_the_breaker() {
    let dir = log_dir(&unique("quota"));
    let mock = start_mock(&dir, "mock", &["--chunks", "3"]).await;
    let path = dir.join("quota.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[chatbox.llm.retry]
attempts = 3
base_delay = "10ms"

[chatbox.llm.breaker]
failure_threshold = 1

[[chatbox.llm.providers]]
id = "spent"
type = "openai"
endpoint = "http://{addr}/v1"
fallback = "backup"
headers = {{ "x-mock-key" = "spent", "x-mock-fail-status" = "429", "x-mock-error-code" = "insufficient_quota" }}

[[chatbox.llm.providers]]
id = "backup"
type = "anthropic"
endpoint = "http://{addr}/v1"
apiKey = "k"
headers = {{ "x-mock-key" = "backup" }}
"#,
            addr = mock.addr
        ),
    )
    .unwrap();
    let env = vec![
        ("JWT_SECRET".to_owned(), SECRET.to_owned()),
        ("CHATBOX_CONFIG".to_owned(), path.display().to_string()),
    ];
    let server = start_all_in_one(&dir, &env, "all-in-one").await;
    let mut client = Client::connect(&server.addr, &token("payer", &[]), None).await;
    client.status().await;
    for turn in 1..=2 {
        client.say(&format!("q{turn}"), "anyone there?").await;
        let done = client.answer(Duration::from_secs(20)).await;
        assert_eq!(done["model_id"], "backup", "{done}");
        assert_eq!(done["metadata"]["fallback_from"], "spent");
        // Asked once per turn, and asked again next turn: one refusal did
        // not open a breaker whose threshold is 1.
        assert_eq!(mock_requests(&mock, "spent").await.len(), turn, "turn {turn}");
    }
    let metrics = get(&format!("http://{}/metrics", server.addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "chatbox_llm_refusals_total{provider=\"spent\",reason=\"quota\"} 2",
        "chatbox_llm_breaker_state{provider=\"spent\"} 0",
        "chatbox_llm_fallbacks_total{from=\"spent\",to=\"backup\"} 2",
    ] {
        assert!(metrics.contains(line), "{line}: {metrics}");
    }
    assert!(
        !metrics.contains("chatbox_llm_retries_total{provider=\"spent\"}"),
        "no retries: {metrics}"
    );
    assert!(
        !metrics.contains("chatbox_llm_breaker_transitions_total{provider=\"spent\""),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_slow_first_token_is_asked_once_and_does_not_open_the_breaker() {
    let dir = log_dir(&unique("refusals"));
    let mock = start_mock(&dir, "mock", &["--chunks", "3"]).await;
    let slow = |key: &str| {
        let mut c = config_with_key(&mock.addr, key, &[("x-mock-latency-ms", "3000")]);
        c.first_token_timeout = Duration::from_secs(1);
        c
    };
    let (providers, answered) = start(vec![slow("thinking")], 3).await;
    let e = answered.expect_err("timed out");
    assert!(e.is_slow_first_token(), "{e:?}");
    assert_eq!(
        mock_requests(&mock, "thinking").await.len(),
        1,
        "one paid request"
    );
    assert_eq!(
        providers.select(None).unwrap().breaker.state(),
        BreakerState::Closed { failures: 0 }
    );

    // Asked again only when configured to.
    let mut config = llm_config(vec![slow("again")], 2, 5);
    config.retry.slow_first_token = true;
    let built = Providers::from_config(&config).unwrap();
    let answered = dispatch(&built, built.select(None).unwrap(), &ask("q"), &config.retry).await;
    assert!(answered.is_err());
    assert_eq!(mock_requests(&mock, "again").await.len(), 2);
}
