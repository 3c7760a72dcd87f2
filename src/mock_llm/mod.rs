//! `chatbox mock-llm`: a language-model server for tests, benchmarks and
//! local development, speaking the providers' real wire formats.
//!
//! Answers are deterministic ("You said: …" followed by filler words) so
//! tests can check what arrived. Behaviour is set per server (flags) and
//! per request (headers): latency to the first chunk, chunk count, delay
//! between chunks, HTTP failures, a disconnect in the middle of a stream.
//! `GET /mock/stats` counts the completions served and says how many
//! messages the last request carried.

mod openai;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::cli::MockLlmArgs;
use crate::{ops, shutdown};

/// Shared state of the mock server.
pub struct MockState {
    defaults: MockLlmArgs,
    completions: AtomicU64,
    /// Messages in the last completion request (context checks).
    last_messages: AtomicU64,
}

/// How one request should behave: server defaults, overridden by headers.
#[derive(Debug, Clone)]
pub struct Behaviour {
    /// Wait before the first chunk.
    pub latency: Duration,
    /// Chunks in the answer.
    pub chunks: usize,
    /// Characters per chunk (0: split at words).
    pub chunk_bytes: usize,
    /// Wait between chunks.
    pub chunk_delay: Duration,
    /// Answer with this HTTP status instead.
    pub fail_status: Option<u16>,
    /// Drop the connection after this many chunks.
    pub disconnect_after: Option<usize>,
}

fn header_num<T: std::str::FromStr>(headers: &HeaderMap, name: &str) -> Option<T> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

impl MockState {
    fn behaviour(&self, headers: &HeaderMap) -> Behaviour {
        let d = &self.defaults;
        let fail_status = header_num::<u16>(headers, "x-mock-fail-status")
            .or_else(|| (d.fail_rate > 0.0 && rand::random::<f64>() < d.fail_rate).then_some(d.fail_status));
        Behaviour {
            latency: Duration::from_millis(header_num(headers, "x-mock-latency-ms").unwrap_or(d.latency)),
            chunks: header_num(headers, "x-mock-chunks")
                .unwrap_or(d.chunks)
                .clamp(1, 10_000),
            chunk_bytes: header_num(headers, "x-mock-chunk-bytes")
                .unwrap_or(d.chunk_bytes)
                .min(65_536),
            chunk_delay: Duration::from_millis(
                header_num(headers, "x-mock-chunk-delay-ms").unwrap_or(d.chunk_delay),
            ),
            fail_status,
            disconnect_after: header_num(headers, "x-mock-disconnect-after"),
        }
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        match &self.defaults.api_key {
            None => true,
            Some(key) => headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .is_some_and(|given| given == key),
        }
    }
}

/// The deterministic answer to `question`, in `chunks` pieces: split at
/// words, or of exactly `chunk_bytes` characters each when that is not 0.
pub fn answer_pieces(question: &str, chunks: usize, chunk_bytes: usize) -> Vec<String> {
    const FILLER: [&str; 5] = ["lorem ", "ipsum ", "dolor ", "sit ", "amet "];
    let mut text = format!("You said: {question}. ");
    if chunk_bytes > 0 {
        let want = chunks * chunk_bytes;
        let mut filler = FILLER.iter().cycle();
        while text.chars().count() < want {
            text.push_str(filler.next().copied().unwrap_or("lorem "));
        }
        let chars: Vec<char> = text.chars().take(want).collect();
        return chars.chunks(chunk_bytes).map(|c| c.iter().collect()).collect();
    }
    let mut words: Vec<String> = text.split_inclusive(' ').map(str::to_owned).collect();
    let mut filler = FILLER.iter().cycle();
    while words.len() < chunks {
        words.push(filler.next().copied().unwrap_or("lorem ").to_owned());
    }
    // Spread the words over exactly `chunks` pieces, in order.
    let n = words.len();
    (0..chunks)
        .map(|k| words[k * n / chunks..(k + 1) * n / chunks].concat())
        .collect()
}

/// The mock server's routes.
pub fn router(defaults: MockLlmArgs) -> Router {
    let state = Arc::new(MockState {
        defaults,
        completions: AtomicU64::new(0),
        last_messages: AtomicU64::new(0),
    });
    Router::new()
        .route("/v1/chat/completions", post(openai::chat_completions))
        .route("/chat/completions", post(openai::chat_completions))
        .route("/v1/models", get(openai::models))
        .route("/mock/stats", get(stats))
        .with_state(state)
}

async fn stats(State(state): State<Arc<MockState>>) -> axum::Json<serde_json::Value> {
    axum::Json(json!({
        "completions": state.completions.load(Ordering::Relaxed),
        "last_request_messages": state.last_messages.load(Ordering::Relaxed),
    }))
}

/// Runs the mock server until a shutdown signal.
pub async fn run(args: MockLlmArgs) -> anyhow::Result<()> {
    let signal = shutdown::on_signal();
    let stop = CancellationToken::new();
    let listen = args.listen.clone();
    let (addr, server) = ops::serve(&listen, router(args), stop.clone()).await?;
    println!("chatbox mock-llm listening on http://{addr}/v1");
    signal.cancelled().await;
    stop.cancel();
    let _ = server.await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::answer_pieces;

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
}
