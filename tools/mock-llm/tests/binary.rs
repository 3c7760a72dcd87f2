//! The `mock-llm` binary as other tools start it: its flags, it prints
//! where it listens, serves, and exits cleanly on SIGTERM; a bad address
//! fails it.
//! (Having this test also makes `cargo test --workspace` build the binary
//! that chatbox's system tests start.)

// A test harness: a failed unwrap is a failed test, with its place.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_mock-llm");

#[tokio::test]
async fn serves_until_sigterm() {
    let mut child = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--chunks", "3"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mock-llm");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("first line");
    let base = line
        .trim()
        .strip_prefix("mock-llm listening on ")
        .and_then(|url| url.strip_suffix("/v1"))
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();

    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::new();
    let answer: serde_json::Value = client
        .post(format!("{base}/v1/chat/completions"))
        .json(&serde_json::json!({
            "model": "mock",
            "messages": [{ "role": "user", "content": "hello" }],
        }))
        .send()
        .await
        .expect("completion")
        .json()
        .await
        .expect("completion json");
    let text = answer["choices"][0]["message"]["content"]
        .as_str()
        .expect("content");
    assert!(text.starts_with("You said: hello. "), "{answer}");
    let stats: serde_json::Value = client
        .get(format!("{base}/mock/stats"))
        .send()
        .await
        .expect("stats")
        .json()
        .await
        .expect("stats json");
    assert_eq!(stats["completions"], 1, "{stats}");

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(exit) = child.try_wait().expect("try_wait") {
            break exit;
        }
        assert!(Instant::now() < deadline, "mock-llm did not exit on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "exit status {exit}");
}

#[test]
fn help_names_every_flag() {
    let out = Command::new(BIN).arg("--help").output().expect("run mock-llm");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("Usage: mock-llm [OPTIONS]"), "{help}");
    for flag in [
        "--listen <ADDR>",
        "--latency <MS>",
        "--chunks <N>",
        "--chunk-bytes <N>",
        "--chunk-delay <MS>",
        "--fail-rate <RATE>",
        "--fail-status <STATUS>",
        "--api-key <KEY>",
    ] {
        assert!(help.contains(flag), "{flag}: {help}");
    }
}

#[test]
fn an_address_it_cannot_listen_on_fails_it() {
    let out = Command::new(BIN)
        .args(["--listen", "not-an-address"])
        .output()
        .expect("run mock-llm");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot listen on not-an-address"), "{stderr}");
}
