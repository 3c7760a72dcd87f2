//! Dify apps as they behave, through the whole service (the all-in-one,
//! and a gateway with a worker for the claims that travel between them),
//! with the `mock-llm` tool speaking Dify's chat-messages stream: output
//! moderation replacing the answer, an agent's tool call of long ping
//! gaps, its working status, and the app's inputs — fixed, and from the
//! user's token.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chatbox_shared::auth::Claims;
use serde_json::{Value, json};

use crate::support::*;

const WAIT: Duration = Duration::from_secs(20);

/// The mock's moderation preset (tools/mock-llm/src/dify.rs `MODERATED`).
const MODERATED: &str = "Sorry, this answer was withheld by the app's content moderation.";

/// One Dify app that falls silent for at most a second between events,
/// with a fixed input and one from the token's `tier` claim.
fn dify_config(dir: &Path, mock: &str) -> PathBuf {
    let path = dir.join("dify.toml");
    let text = format!(
        r#"
[chatbox.llm.retry]
attempts = 1

[[chatbox.llm.providers]]
id = "app"
name = "Dify app (mock)"
type = "dify"
endpoint = "http://{mock}/v1"
apiKey = "app-key"
idle_timeout = "1s"
first_token_timeout = "2s"
headers = {{ "x-mock-key" = "app" }}
inputs = {{ locale = "en" }}
inputs_from_claims = {{ plan = "tier" }}
"#
    );
    std::fs::write(&path, text).expect("config file");
    path
}

/// A user token with claims besides the usual ones.
fn token_with(sub: &str, other: Value) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = Claims {
        sub: Some(sub.to_owned()),
        name: Some(sub.to_owned()),
        exp: Some(now + 3600),
        iat: Some(now),
        other: serde_json::from_value(other).unwrap(),
        ..Claims::default()
    };
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

struct Setup {
    server: Proc,
    mock: Proc,
}

async fn setup(name: &str) -> Setup {
    let dir = log_dir(&unique(name));
    let mock = start_mock(&dir, "mock", &["--chunks", "6"]).await;
    let config = dify_config(&dir, &mock.addr);
    let env = vec![
        ("JWT_SECRET".to_owned(), SECRET.to_owned()),
        ("CHATBOX_CONFIG".to_owned(), config.display().to_string()),
    ];
    let server = start_all_in_one(&dir, &env, "all-in-one").await;
    Setup { server, mock }
}

impl Setup {
    async fn user(&self, name: &str) -> Client {
        let mut client = Client::connect(&self.server.addr, &token(name, &[]), None).await;
        client.status().await;
        client
    }
}

/// The text a client shows for answer `message_id`, assembled by the
/// protocol's rules from the frames it read: chunks append, a chunk with
/// `metadata.replace` replaces.
fn assembled(frames: &[Value], message_id: &str) -> String {
    let mut text = String::new();
    for f in frames {
        if f["type"] != "ai_response" || f["done"] != false || f["message_id"] != message_id {
            continue;
        }
        let content = f["content"].as_str().unwrap_or_default();
        if f["metadata"]["replace"] == "true" {
            text = content.to_owned();
        } else {
            text.push_str(content);
        }
    }
    text
}

#[tokio::test]
async fn moderation_replaces_the_answer_shown_and_kept() {
    let s = setup("dify-moderation").await;
    let mut client = s.user("mo").await;
    client
        .say(
            "m1",
            "tell me something [[mock replace-after=3 chunk-delay-ms=60]]",
        )
        .await;
    let done = client.answer(WAIT).await;
    let id = done["message_id"].as_str().unwrap();
    assert_eq!(done["content"], MODERATED);
    assert_eq!(done["metadata"]["finish_reason"], "content_filter");

    let chunks: Vec<&Value> = client
        .frames
        .iter()
        .filter(|f| f["type"] == "ai_response" && f["done"] == false)
        .collect();
    let replace = chunks
        .iter()
        .position(|f| f["metadata"]["replace"] == "true")
        .expect("a replacing chunk");
    assert!(replace > 0, "the moderated text was shown first: {chunks:?}");
    let shown: String = chunks[..replace]
        .iter()
        .map(|f| f["content"].as_str().unwrap())
        .collect();
    assert!(shown.starts_with("You said:"), "{shown}");
    assert_eq!(chunks[replace]["content"], MODERATED);
    assert_eq!(
        assembled(&client.frames, id),
        MODERATED,
        "the client's text by the protocol's rules"
    );

    let stored = client.history().await;
    let answer = stored.iter().find(|m| m["sender"] == "ai").expect("stored");
    assert_eq!(answer["content"], MODERATED, "the moderated text is not kept");
    assert_eq!(answer["metadata"]["finish_reason"], "content_filter");
}

#[tokio::test]
async fn pings_through_a_pause_longer_than_the_idle_timeout_keep_the_answer() {
    let s = setup("dify-pings").await;
    let mut client = s.user("pi").await;
    // Three seconds of pings (every half second) after the first chunk;
    // the provider's idle timeout is one second.
    client
        .say(
            "p1",
            "wait for it [[mock chunks=3 ping-gap-ms=3000 ping-every-ms=500]]",
        )
        .await;
    let done = client.answer(WAIT).await;
    assert_eq!(done["metadata"]["finish_reason"], "complete", "{done}");
    let text = done["content"].as_str().unwrap();
    assert!(text.starts_with("You said: wait for it. (turn 1)"), "{text}");
    assert!(!client.frames.iter().any(|f| f["type"] == "error"));

    // Pings before any text hold the first-token deadline (two seconds) too.
    client
        .say(
            "p2",
            "first [[mock pause-after=0 ping-gap-ms=3000 ping-every-ms=500]]",
        )
        .await;
    let done = client.answer(WAIT).await;
    assert_eq!(done["metadata"]["finish_reason"], "complete", "{done}");
    assert!(done["content"].as_str().unwrap().starts_with("You said: first."));

    // The same silence without pings is cut: the idle timer is real.
    client
        .say("p3", "silent [[mock chunks=3 chunk-delay-ms=3000]]")
        .await;
    let cut = client.answer(WAIT).await;
    assert_eq!(cut["metadata"]["finish_reason"], "interrupted", "{cut}");
    assert!(
        !cut["content"].as_str().unwrap().contains("silent"),
        "cut before the end"
    );
}

#[tokio::test]
async fn an_agent_at_work_shows_a_working_status_naming_its_tool() {
    let s = setup("dify-agent").await;
    let mut client = s.user("ag").await;
    client
        .say(
            "a1",
            "search it [[mock agent-tool=web_search ping-gap-ms=1500 ping-every-ms=500]]",
        )
        .await;
    let done = client.answer(WAIT).await;
    assert_eq!(done["metadata"]["finish_reason"], "complete", "{done}");
    let id = done["message_id"].as_str().unwrap();
    let working = client
        .frames
        .iter()
        .find(|f| f["type"] == "loading" && f["metadata"]["status"] == "working")
        .expect("a working status");
    assert_eq!(working["message_id"], id);
    assert_eq!(working["metadata"]["active"], "true");
    assert_eq!(working["metadata"]["tool"], "web_search");
    let at = |pred: &dyn Fn(&Value) -> bool| client.frames.iter().position(pred).unwrap();
    assert!(
        at(&|f| f["type"] == "loading" && f["metadata"]["status"] == "working")
            < at(&|f| f["type"] == "ai_response" && f["done"] == true)
    );
    // The text around the tool call is the whole answer.
    assert_eq!(assembled(&client.frames, id), done["content"].as_str().unwrap());
    assert!(
        done["content"]
            .as_str()
            .unwrap()
            .starts_with("You said: search it.")
    );
}

#[tokio::test]
async fn inputs_fixed_and_from_the_token_reach_the_app_and_no_other_claim() {
    let s = setup("dify-inputs").await;
    let gold = token_with("in", json!({ "tier": "gold", "salary": 123_456 }));
    let mut client = Client::connect(&s.server.addr, &gold, None).await;
    client.status().await;
    client.say("i1", "hello").await;
    client.answer(WAIT).await;
    let seen = &mock_stats(&s.mock).await["by_key"]["app"]["last_request"];
    assert_eq!(seen["inputs"], json!({ "locale": "en", "plan": "gold" }));

    // A token without the claim sends the fixed inputs alone; an app that
    // requires the missing one refuses, and the user is told.
    let mut plain = s.user("pl").await;
    plain.say("i2", "hello").await;
    plain.answer(WAIT).await;
    let seen = &mock_stats(&s.mock).await["by_key"]["app"]["last_request"];
    assert_eq!(seen["inputs"], json!({ "locale": "en" }));
    plain.say("i3", "again [[mock require-inputs=plan]]").await;
    let refused = plain
        .until(WAIT, |f| f["type"] == "error" && f["id"] == "i3")
        .await;
    assert!(is_error(&refused, "LLM_UNAVAILABLE"), "{refused}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_gateway_forwards_the_claims_the_configuration_names_to_the_worker() {
    let ns = TestNamespace::new();
    let dir = log_dir(&ns.name);
    let mock = start_mock(&dir, "mock", &[]).await;
    let config = dify_config(&dir, &mock.addr);
    let mut env = scaled_env(&ns);
    // The gateway reads the same providers: it keeps the claims they name.
    env.push(("CHATBOX_CONFIG".to_owned(), config.display().to_string()));
    let _worker = start_worker(&dir, &env, "worker", Some(&config)).await;
    let gateway = start_gateway(&dir, &env, "gateway").await;
    let token = token_with("sc", json!({ "tier": "silver", "email": "sc@example.com" }));
    let mut client = Client::connect(&gateway.addr, &token, None).await;
    client.status().await;
    client.say("s1", "over the backplane").await;
    let done = client.answer(WAIT).await;
    assert_eq!(done["metadata"]["finish_reason"], "complete");
    let seen = &mock_stats(&mock).await["by_key"]["app"]["last_request"];
    assert_eq!(seen["inputs"], json!({ "locale": "en", "plan": "silver" }));
}
