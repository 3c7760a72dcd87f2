//! Refusals before the upgrade (tokens, origins, limits) and protocol
//! errors after it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::support::*;

const PUBLIC_KEY: &str = include_str!("../fixtures/jwt_rs256_public.pem");
const PRIVATE_KEY: &str = include_str!("../fixtures/jwt_rs256_private.pem");
const OTHER_PRIVATE_KEY: &str = include_str!("../fixtures/other_rs256_private.pem");

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn hs256(claims: Value, secret: &[u8]) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )
    .unwrap()
}

fn rs256(claims: Value, pem: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::RS256),
        &claims,
        &EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
    )
    .unwrap()
}

fn unsigned(claims: Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{header}.{payload}.")
}

fn tampered(token: &str) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    claims["sub"] = json!("mallory");
    claims["roles"] = json!(["admin"]);
    format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        parts[2]
    )
}

async fn server(extra: &[(&str, &str)]) -> Proc {
    let dir = log_dir(&unique("auth"));
    let key_file = dir.join("public.pem");
    std::fs::write(&key_file, PUBLIC_KEY).unwrap();
    let mut env = vec![
        ("JWT_SECRET".to_owned(), SECRET.to_owned()),
        (
            "CHATBOX_AUTH_JWT_PUBLIC_KEY_FILE".to_owned(),
            key_file.display().to_string(),
        ),
        ("CHATBOX_LLM_DEMO_CHUNK_DELAY".to_owned(), "0ms".to_owned()),
    ];
    env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    start_all_in_one(&dir, &env, "all-in-one").await
}

async fn refused(addr: &str, token: Option<&str>) -> Refusal {
    match Client::try_connect(addr, token, None, TokenVia::Query, None).await {
        Ok(_) => panic!("token {token:?} was accepted"),
        Err(r) => r,
    }
}

#[tokio::test]
async fn bad_tokens_are_refused_before_the_upgrade() {
    let server = server(&[]).await;
    let valid = json!({ "sub": "ann", "exp": now() + 600 });
    let cases: Vec<(&str, Option<String>, &str)> = vec![
        ("no token", None, "INVALID_TOKEN"),
        ("garbage", Some("not-a-jwt".into()), "INVALID_TOKEN"),
        (
            "expired",
            Some(hs256(
                json!({ "sub": "ann", "exp": now() - 3600 }),
                SECRET.as_bytes(),
            )),
            "TOKEN_EXPIRED",
        ),
        (
            "not yet valid",
            Some(hs256(
                json!({ "sub": "ann", "exp": now() + 7200, "nbf": now() + 3600 }),
                SECRET.as_bytes(),
            )),
            "INVALID_TOKEN",
        ),
        (
            "wrong HS256 key",
            Some(hs256(valid.clone(), b"another-secret-another-secret-another")),
            "INVALID_TOKEN",
        ),
        (
            "wrong RS256 key",
            Some(rs256(valid.clone(), OTHER_PRIVATE_KEY)),
            "INVALID_TOKEN",
        ),
        ("alg none", Some(unsigned(valid.clone())), "INVALID_TOKEN"),
        (
            "HS256 signed with the RSA public key",
            Some(hs256(valid.clone(), PUBLIC_KEY.as_bytes())),
            "INVALID_TOKEN",
        ),
        (
            "missing sub",
            Some(hs256(json!({ "exp": now() + 600 }), SECRET.as_bytes())),
            "INVALID_TOKEN",
        ),
        (
            "missing exp",
            Some(hs256(json!({ "sub": "ann" }), SECRET.as_bytes())),
            "INVALID_TOKEN",
        ),
        (
            "tampered payload",
            Some(tampered(&hs256(valid.clone(), SECRET.as_bytes()))),
            "INVALID_TOKEN",
        ),
        (
            "sub with braces",
            Some(hs256(
                json!({ "sub": "a}b", "exp": now() + 600 }),
                SECRET.as_bytes(),
            )),
            "INVALID_TOKEN",
        ),
        (
            "sub that reads as another (a right-to-left override)",
            Some(hs256(
                json!({ "sub": "admin\u{202E}nimda", "exp": now() + 600 }),
                SECRET.as_bytes(),
            )),
            "INVALID_TOKEN",
        ),
        (
            "sub with a zero-width space",
            Some(hs256(
                json!({ "sub": "ann\u{200B}", "exp": now() + 600 }),
                SECRET.as_bytes(),
            )),
            "INVALID_TOKEN",
        ),
    ];
    for (name, token, code) in cases {
        let r = refused(&server.addr, token.as_deref()).await;
        assert_eq!(r.status, 401, "{name}: {r:?}");
        assert_eq!(r.body["type"], "error", "{name}: {r:?}");
        assert_eq!(r.body["error"]["code"], code, "{name}: {r:?}");
        assert_eq!(r.body["error"]["recoverable"], false, "{name}");
        assert!(
            r.body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{name}"
        );
    }

    // The same claims, correctly signed, are accepted — by each algorithm
    // and through each way of passing the token.
    let rs = rs256(
        json!({ "sub": "rs-user", "name": "R S", "exp": now() + 600 }),
        PRIVATE_KEY,
    );
    let mut c = Client::try_connect(&server.addr, Some(&rs), None, TokenVia::Header, None)
        .await
        .unwrap();
    c.status().await;
    let hs = hs256(
        json!({ "sub": "hs-user", "exp": now() + 600, "nbf": now() - 10 }),
        SECRET.as_bytes(),
    );
    let mut c = Client::try_connect(&server.addr, Some(&hs), None, TokenVia::Subprotocol, None)
        .await
        .unwrap();
    assert_eq!(
        c.protocol.as_deref(),
        Some("chatbox.v1"),
        "the server answers with the chatbox subprotocol"
    );
    c.status().await;
    let mut c = Client::try_connect(&server.addr, Some(&hs), None, TokenVia::Query, None)
        .await
        .unwrap();
    c.status().await;
}

#[tokio::test]
async fn origins_limits_and_rates_are_enforced() {
    let server = server(&[
        ("WS_ALLOWED_ORIGINS", "https://chat.example.com"),
        ("MAX_CONNECTIONS", "2"),
        ("RATE_LIMIT", "3"),
    ])
    .await;
    let user = token("ann", &[]);

    let r = Client::try_connect(
        &server.addr,
        Some(&user),
        None,
        TokenVia::Query,
        Some("https://evil.example.com"),
    )
    .await
    .err()
    .expect("foreign origin refused");
    assert_eq!(r.status, 403);
    assert_eq!(r.body["error"]["code"], "ORIGIN_NOT_ALLOWED");

    let mut first = Client::try_connect(
        &server.addr,
        Some(&user),
        None,
        TokenVia::Query,
        Some("https://chat.example.com"),
    )
    .await
    .expect("listed origin accepted");
    first.status().await;
    let mut second = Client::connect(&server.addr, &token("bob", &[]), None).await;
    second.status().await;
    let r = Client::try_connect(
        &server.addr,
        Some(&token("cid", &[])),
        None,
        TokenVia::Query,
        None,
    )
    .await
    .err()
    .expect("over the connection limit");
    assert_eq!(r.status, 503);
    assert_eq!(r.body["error"]["code"], "CONNECTION_LIMIT");
    assert!(r.body["error"]["retry_after"].as_u64().is_some());
    assert!(r.retry_after.is_some(), "a Retry-After header");

    for i in 0..4 {
        first.say(&format!("m{i}"), "quick").await;
    }
    let limited = first
        .until(Duration::from_secs(10), |f| is_error(f, "RATE_LIMITED"))
        .await;
    assert_eq!(limited["error"]["recoverable"], true);
    assert!(limited["error"]["retry_after"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn malformed_frames_get_errors_and_the_socket_stays_open() {
    let server = server(&[
        ("CHATBOX_WEBSOCKET_MAX_MESSAGE_SIZE", "4096"),
        ("CHATBOX_WEBSOCKET_MAX_FRAME_SIZE", "4096"),
        ("CHATBOX_WEBSOCKET_MAX_CONTENT_BYTES", "1024"),
    ])
    .await;
    let mut c = Client::connect(&server.addr, &token("ann", &[]), None).await;
    c.status().await;
    let cases: Vec<(Message, &str)> = vec![
        (Message::text("{not json"), "INVALID_MESSAGE"),
        (Message::text("[1,2,3]"), "INVALID_MESSAGE"),
        (Message::text(r#"{"content":"no type"}"#), "MISSING_FIELD"),
        (Message::text(r#"{"type":"dance"}"#), "UNKNOWN_MESSAGE_TYPE"),
        (Message::text(r#"{"type":"user_message"}"#), "MISSING_FIELD"),
        (
            Message::text(r#"{"type":"user_message","content":42}"#),
            "INVALID_FIELD",
        ),
        (
            Message::text(r#"{"type":"ai_response","content":"spoof"}"#),
            "NOT_ALLOWED",
        ),
        (
            Message::text(r#"{"type":"user_message","content":"x","session_id":"someone-else"}"#),
            "INVALID_FIELD",
        ),
        (
            Message::text(format!(
                r#"{{"type":"user_message","content":"{}"}}"#,
                "x".repeat(2000)
            )),
            "MESSAGE_TOO_LARGE",
        ),
        (Message::binary(vec![1u8, 2, 3]), "INVALID_MESSAGE"),
    ];
    for (frame, code) in cases {
        c.send_raw(frame).await;
        let error = c.until(Duration::from_secs(5), |f| f["type"] == "error").await;
        assert_eq!(error["error"]["code"], code, "{error}");
        assert_eq!(error["error"]["recoverable"], true, "{error}");
        c.send(json!({ "type": "ping" })).await;
        c.until(Duration::from_secs(5), |f| f["type"] == "pong").await;
    }

    // A frame over the size limit is fatal: an error, then close 1009.
    c.send_raw(Message::text("y".repeat(8192))).await;
    let error = c.until(Duration::from_secs(5), |f| f["type"] == "error").await;
    assert_eq!(error["error"]["code"], "MESSAGE_TOO_LARGE");
    assert_eq!(error["error"]["recoverable"], false);
    let closed = c.until_closed(Duration::from_secs(5)).await;
    assert_eq!(closed.code, 1009, "{closed:?}");
}

#[tokio::test]
async fn the_servers_own_pages_open_sockets_whatever_origins_are_listed() {
    let server = server(&[("WS_ALLOWED_ORIGINS", "https://app.example.com")]).await;
    let user = token("own-origin", &[]);
    // The chat page served by this server: its origin is the host the
    // socket is opened on.
    let own = format!("http://{}", server.addr);
    let mut client = Client::try_connect(&server.addr, Some(&user), None, TokenVia::Query, Some(&own))
        .await
        .expect("the server's own page is allowed");
    client.status().await;
    let refused = Client::try_connect(
        &server.addr,
        Some(&user),
        None,
        TokenVia::Query,
        Some("https://evil.example.com"),
    )
    .await
    .err()
    .expect("another site is still refused");
    assert_eq!(refused.status, 403);
}
