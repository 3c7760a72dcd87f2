//! The security review's rows (issue 23), each against the real binary: a
//! socket lives no longer than its token unless a `reauth` brings a fresh
//! one, tokens are bounded (size, lifetime, look-alike user ids),
//! connections that have not sent a request yet are bounded (header time
//! and size, how many wait at once), and `/metrics` can live on an ops
//! listener of its own.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// A token for `sub` expiring at `exp`.
fn expiring(sub: &str, roles: &[&str], exp: u64) -> String {
    let claims = json!({ "sub": sub, "roles": roles, "iat": now(), "exp": exp });
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

async fn server(name: &str, extra: &[(&str, &str)]) -> Proc {
    let dir = log_dir(&unique(name));
    let mut env = vec![
        ("JWT_SECRET".to_owned(), SECRET.to_owned()),
        ("CHATBOX_LLM_DEMO_CHUNK_DELAY".to_owned(), "0ms".to_owned()),
    ];
    env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    start_all_in_one(&dir, &env, "all-in-one").await
}

/// Waits until the Unix clock has passed `exp` by `margin` seconds.
async fn wait_past(exp: u64, margin: u64) {
    while now() <= exp + margin {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn user_and_admin_sockets_close_when_their_token_expires() {
    let server = server("expiry", &[("CHATBOX_AUTH_LEEWAY", "0s")]).await;
    let exp = now() + 4;
    let mut user = Client::connect(&server.addr, &expiring("expiring-user", &[], exp), None).await;
    user.status().await;
    let mut admin = Client::connect_admin(&server.addr, &expiring("expiring-admin", &["admin"], exp)).await;

    for (who, client) in [("user", &mut user), ("admin", &mut admin)] {
        let closed = client.until_closed(Duration::from_secs(30)).await;
        assert_eq!(closed.code, 4401, "{who}: {closed:?}");
        assert_eq!(closed.reason, "token expired", "{who}");
        let status = client
            .frames
            .iter()
            .rev()
            .find(|f| f["type"] == "connection_status")
            .unwrap_or_else(|| panic!("{who}: no last connection_status: {:?}", client.frames));
        assert_eq!(status["metadata"]["reason"], "token_expired", "{who}: {status}");
        assert_eq!(status["metadata"]["status"], "closed", "{who}: {status}");
    }
    // The token itself is refused over HTTP by now, as it was before.
    let answer = http()
        .get(format!("http://{}/chat/sessions", server.addr))
        .bearer_auth(expiring("expiring-user", &[], exp))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 401);
}

/// Sends `reauth` with `token` and returns the answer.
async fn reauth(client: &mut Client, id: &str, token: &str) -> Value {
    client
        .send(json!({ "type": "reauth", "id": id, "token": token }))
        .await;
    client.until(Duration::from_secs(10), |f| f["id"] == id).await
}

#[tokio::test]
async fn a_fresh_token_over_the_socket_keeps_it_open_past_the_first_ones_expiry() {
    let server = server("reauth", &[("CHATBOX_AUTH_LEEWAY", "0s")]).await;
    let exp = now() + 4;
    let mut user = Client::connect(&server.addr, &expiring("renewing", &[], exp), None).await;
    user.status().await;
    let mut admin = Client::connect_admin(&server.addr, &expiring("renewing-admin", &["admin"], exp)).await;

    // Refused: another user, an expired token, an admin without the role.
    let other = reauth(&mut user, "r-other", &token("someone-else", &[])).await;
    assert!(is_error(&other, "FORBIDDEN"), "{other}");
    let stale = reauth(&mut user, "r-stale", &expiring("renewing", &[], now() - 120)).await;
    assert!(is_error(&stale, "TOKEN_EXPIRED"), "{stale}");
    let junk = reauth(&mut user, "r-junk", "not.a.token").await;
    assert!(is_error(&junk, "INVALID_TOKEN"), "{junk}");
    let demoted = reauth(&mut admin, "a-demoted", &token("renewing-admin", &[])).await;
    assert!(is_error(&demoted, "FORBIDDEN"), "{demoted}");

    // Accepted: the same user (and admin) with a later expiry.
    let fresh = reauth(&mut user, "r-fresh", &token("renewing", &[])).await;
    assert_eq!(fresh["type"], "reauthenticated", "{fresh}");
    assert!(fresh["data"]["expires_at"].as_u64().unwrap() > exp, "{fresh}");
    let fresh = reauth(&mut admin, "a-fresh", &token("renewing-admin", &["admin"])).await;
    assert_eq!(fresh["type"], "reauthenticated", "{fresh}");

    // Past the first token's expiry, both sockets still answer.
    wait_past(exp, 2).await;
    for client in [&mut user, &mut admin] {
        client.send(json!({ "type": "ping" })).await;
        client
            .until(Duration::from_secs(10), |f| f["type"] == "pong")
            .await;
    }
    user.say("after-expiry", "still here?").await;
    let answer = user.answer(Duration::from_secs(20)).await;
    assert_eq!(answer["type"], "ai_response", "{answer}");
}

#[tokio::test]
async fn oversized_long_lived_and_look_alike_tokens_are_refused() {
    let server = server("tokens", &[("CHATBOX_AUTH_MAX_TOKEN_LIFETIME", "1h")]).await;
    let refusal = |token: String| {
        let addr = server.addr.clone();
        async move {
            match Client::try_connect(&addr, Some(&token), None, TokenVia::Query, None).await {
                Ok(_) => panic!("accepted"),
                Err(refusal) => refusal,
            }
        }
    };
    // Meant to live 10¹² s.
    let forever = refusal(expiring("forever", &[], now() + 1_000_000_000_000)).await;
    assert_eq!(forever.status, 401, "{forever:?}");
    assert_eq!(forever.body["error"]["code"], "INVALID_TOKEN");
    assert!(
        forever.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("longer"),
        "{forever:?}"
    );
    // Within the lifetime: accepted.
    let mut ok = Client::connect(&server.addr, &expiring("hour", &[], now() + 1800), None).await;
    ok.status().await;

    // Larger than max_token_bytes (8 KiB) but within the header limit.
    let padded = expiring(&"p".repeat(12 * 1024), &[], now() + 600);
    let large = refusal(padded).await;
    assert_eq!(large.status, 401, "{large:?}");
    assert!(
        large.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("larger"),
        "{large:?}"
    );

    // Bidirectional overrides and zero-width characters in `sub`.
    for sub in ["admin\u{202e}nimda", "ann\u{200b}", "\u{2066}bob\u{2069}"] {
        let refused = refusal(expiring(sub, &[], now() + 600)).await;
        assert_eq!(refused.status, 401, "{sub:?}: {refused:?}");
        assert_eq!(refused.body["error"]["code"], "INVALID_TOKEN", "{sub:?}");
        assert!(
            refused.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("direction"),
            "{refused:?}"
        );
    }

    // A 133 KB token in a header does not even reach the token check.
    let huge = "h".repeat(133 * 1024);
    let answer = http()
        .get(format!("http://{}/chat/sessions", server.addr))
        .bearer_auth(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 431);
}

/// Reads until the server closes the connection (or resets it); returns
/// what it sent first.
async fn until_server_closes(tcp: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(30), tcp.read(&mut buf)).await {
            Err(_) => panic!(
                "the server kept the connection open: {:?}",
                String::from_utf8_lossy(&received)
            ),
            Ok(Ok(0) | Err(_)) => return String::from_utf8_lossy(&received).into_owned(),
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
        }
    }
}

/// The value of a metric line starting with `series` on `/metrics`.
async fn metric(ops_addr: &str, series: &str) -> f64 {
    let text = get(&format!("http://{ops_addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn slow_or_oversized_request_heads_are_cut_off() {
    let ops = format!("127.0.0.1:{}", free_port());
    let server = server(
        "slowloris",
        &[
            ("CHATBOX_APP_HEADER_READ_TIMEOUT", "1s"),
            ("CHATBOX_APP_OPS_LISTEN", &ops),
        ],
    )
    .await;

    // Upgrade headers one byte at a time, never finished.
    let mut slow = TcpStream::connect(&server.addr).await.unwrap();
    let head = b"GET /chat/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nX-Pad: ";
    slow.write_all(head).await.unwrap();
    let dripping = async {
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if slow.write_all(b"a").await.is_err() {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(30), dripping).await;
    let mut slow = slow;
    until_server_closes(&mut slow).await;
    let timeouts = r#"chatbox_http_connections_closed_early_total{reason="header_timeout"}"#;
    assert!(metric(&ops, timeouts).await >= 1.0);

    // A 300 KB header: 431, and closed.
    let mut big = TcpStream::connect(&server.addr).await.unwrap();
    let request = format!(
        "GET /chat/ws HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n",
        "b".repeat(300 * 1024)
    );
    let _ = big.write_all(request.as_bytes()).await;
    let answer = until_server_closes(&mut big).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:?}");
    let too_large = r#"chatbox_http_connections_closed_early_total{reason="header_too_large"}"#;
    assert!(metric(&ops, too_large).await >= 1.0);

    // The server still serves.
    let (status, _) = readiness(&server.addr).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn connections_waiting_for_their_first_request_are_capped() {
    let ops = format!("127.0.0.1:{}", free_port());
    let server = server(
        "handshakes",
        &[
            ("CHATBOX_APP_MAX_HANDSHAKES", "4"),
            ("CHATBOX_APP_HEADER_READ_TIMEOUT", "60s"),
            ("CHATBOX_APP_OPS_LISTEN", &ops),
        ],
    )
    .await;
    let mut silent = Vec::new();
    for _ in 0..4 {
        silent.push(TcpStream::connect(&server.addr).await.unwrap());
    }
    // The server has accepted all four (the kernel completes a connect
    // before the server takes it).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while metric(&ops, "chatbox_http_handshakes ").await < 4.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the four connections were never accepted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The fifth is closed at once, without an answer.
    let mut fifth = TcpStream::connect(&server.addr).await.unwrap();
    let _ = fifth
        .write_all(b"GET /chat/readyz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    assert_eq!(until_server_closes(&mut fifth).await, "");
    let refused = r#"chatbox_http_connections_closed_early_total{reason="handshake_limit"}"#;
    assert!(metric(&ops, refused).await >= 1.0);

    // Once they go, others come in.
    drop(silent);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(answer) = get(&format!("http://{}/chat/readyz", server.addr)).await
            && answer.status() == 200
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the server never took connections again"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn metrics_are_served_only_on_the_ops_listener_when_one_is_set() {
    let ops = format!("127.0.0.1:{}", free_port());
    let server = server("ops", &[("CHATBOX_APP_OPS_LISTEN", &ops)]).await;
    let public = get(&format!("http://{}/metrics", server.addr)).await.unwrap();
    assert_eq!(public.status(), 404);
    let private = get(&format!("http://{ops}/metrics")).await.unwrap();
    assert_eq!(private.status(), 200);
    assert!(private.text().await.unwrap().contains("chatbox_"));
    // Health checks answer on both.
    for addr in [&server.addr, &ops] {
        let (status, _) = readiness(addr).await;
        assert_eq!(status, 200, "{addr}");
    }

    // Without it, the role's own listener serves /metrics as before.
    let plain = self::server("no-ops", &[]).await;
    let metrics = get(&format!("http://{}/metrics", plain.addr)).await.unwrap();
    assert_eq!(metrics.status(), 200);
}
