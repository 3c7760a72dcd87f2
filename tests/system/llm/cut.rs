//! Answers the provider cut — at its token limit, or by its content filter
//! — through the all-in-one: the final `ai_response` says so in
//! `finish_reason`, the history keeps it, and
//! `chatbox_worker_answers_total{finish_reason}` counts it. One test per
//! row of docs/PROTOCOL.md's finish reasons that a provider decides.

use std::time::Duration;

use serde_json::Value;

use crate::support::*;

/// Asks a one-provider all-in-one (`kind` on the mock) a question ending
/// with `finish` (`[[mock finish=…]]`); checks the answer ends `expected`
/// in the final frame, the history and the metrics.
async fn cut_answer(kind: &str, finish: &str, expected: &str) {
    let dir = log_dir(&unique("cut"));
    let mock = start_mock(&dir, "mock", &["--chunks", "4"]).await;
    let path = dir.join("cut.toml");
    std::fs::write(
        &path,
        format!(
            "[[chatbox.llm.providers]]\nid = \"m\"\ntype = \"{kind}\"\nendpoint = \"http://{}/v1\"\napiKey = \"k\"\n",
            mock.addr
        ),
    )
    .unwrap();
    let env = vec![
        ("JWT_SECRET".to_owned(), SECRET.to_owned()),
        ("CHATBOX_CONFIG".to_owned(), path.display().to_string()),
    ];
    let server = start_all_in_one(&dir, &env, "all-in-one").await;
    let mut client = Client::connect(&server.addr, &token("cut", &[]), None).await;
    client.status().await;

    client
        .say("q1", &format!("tell me all [[mock finish={finish}]]"))
        .await;
    let done = client.answer(Duration::from_secs(20)).await;
    assert_eq!(done["metadata"]["finish_reason"], expected, "{done}");
    assert!(
        done["content"]
            .as_str()
            .unwrap()
            .starts_with("You said: tell me all"),
        "the part written is kept: {done}"
    );

    let stored = client.history().await;
    let answer = stored
        .iter()
        .find(|m| m["sender"] == "ai")
        .expect("the answer is stored");
    assert_eq!(answer["metadata"]["finish_reason"], expected, "{answer}");
    assert_eq!(answer["content"], done["content"]);

    let metrics = get(&format!("http://{}/metrics", server.addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let counted = |line: &&str| {
        line.starts_with("chatbox_worker_answers_total{")
            && line.contains("provider=\"m\"")
            && line.contains(&format!("finish_reason=\"{expected}\""))
            && line.ends_with(" 1")
    };
    assert!(metrics.lines().any(|l| counted(&l)), "{metrics}");
    assert!(
        metrics.contains("chatbox_worker_turns_total{outcome=\"cut\"} 1"),
        "{metrics}"
    );
    let seen: Value = mock_stats(&mock).await;
    assert_eq!(seen["completions"], 1, "asked once: a cut answer is not retried");
}

#[tokio::test]
async fn an_openai_answer_cut_at_the_token_limit_ends_length() {
    cut_answer("openai", "length", "length").await;
}

#[tokio::test]
async fn an_openai_answer_cut_by_the_content_filter_ends_content_filter() {
    cut_answer("openai", "content_filter", "content_filter").await;
}

#[tokio::test]
async fn an_anthropic_answer_cut_at_max_tokens_ends_length() {
    cut_answer("anthropic", "max_tokens", "length").await;
}

#[tokio::test]
async fn an_anthropic_refusal_ends_content_filter() {
    cut_answer("anthropic", "refusal", "content_filter").await;
}
