//! `mock-llm`: a language-model server for chatbox's tests, benchmarks and
//! local development, speaking the providers' real wire formats. It is a
//! development tool of its own (this crate, `chatbox-mock-llm`); the
//! production `chatbox` binary does not contain it. Run it with
//!
//! ```sh
//! cargo run -p chatbox-mock-llm -- --listen 127.0.0.1:8090
//! ```
//!
//! or start the built binary, `target/debug/mock-llm` (or
//! `target/release/mock-llm`): the system tests, the browser tests and the
//! load benchmark start it from there, next to the `chatbox` binary they
//! test.
//!
//! - OpenAI Chat Completions (`openai.rs`): `POST /v1/chat/completions`,
//!   spoken answers too (`speech.rs`)
//! - Anthropic Messages (`anthropic.rs`): `POST /v1/messages`
//! - Dify chat apps (`dify.rs`): `POST /v1/chat-messages`, and
//!   `POST /v1/chat-messages/{task_id}/stop`
//! - OpenAI audio transcription (`transcription.rs`):
//!   `POST /v1/audio/transcriptions`
//! - Azure OpenAI (`azure.rs`): `POST /openai/deployments/{d}/chat/completions`
//!   and `POST /openai/v1/chat/completions`
//!
//! Every route also answers without the `/v1` prefix. Answers are
//! deterministic ("You said: …" followed by filler words) so tests can
//! check what arrived. Behaviour is set per server (flags, `args.rs`), per
//! request (`x-mock-*` headers) and per message (`[[mock k=v]]`
//! directives), see `script.rs`: latency, chunking, HTTP failures (also
//! "the first N requests of a key"), a disconnect, a malformed event or an
//! in-stream error in the middle of a stream, no usage, and what the
//! references describe beyond that (`wire.rs`: finish reasons, retry
//! headers, error codes, a refused `stream_options`). `GET /mock/stats`
//! tells what was served (`stats.rs`), `GET /mock/requests` what was
//! received (`capture.rs`), `POST /mock/reset` forgets both. This
//! file keeps the router and the pieces shared by the formats: the paced
//! event stream, failures, answers and ids. `docs/MOCK-LLM.md` documents
//! it all.

mod anthropic;
mod args;
mod azure;
mod capture;
mod dify;
mod openai;
mod script;
mod speech;
mod stats;
mod transcription;
mod wire;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use tokio_util::sync::CancellationToken;

pub use args::Args;
use script::{Behaviour, Failure};
use stats::{Outcome, Stats, StreamGuard};

/// Largest transcription upload (the OpenAI limit).
const MAX_AUDIO_BYTES: usize = 25 * 1024 * 1024;

/// Shared state of the mock server.
pub(crate) struct MockState {
    defaults: Args,
    stats: Arc<Stats>,
    dify: dify::DifyState,
    /// The requests received (`GET /mock/requests`).
    captured: capture::Captured,
}

impl MockState {
    /// Whether `Authorization: Bearer` matches `--api-key` (always, when unset).
    fn authorized(&self, headers: &HeaderMap) -> bool {
        match &self.defaults.api_key {
            None => true,
            Some(key) => headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .is_some_and(|given| given == key),
        }
    }
}

/// Which key a request counts under, and whether it was counted yet: a
/// request is counted once, under the key of its final behaviour, or under
/// its `x-mock-key` header when it fails before that is known.
pub(crate) struct Tracked {
    key: String,
    counted: bool,
}

impl Tracked {
    fn new(headers: &HeaderMap) -> Self {
        Tracked {
            key: script::header_key(headers),
            counted: false,
        }
    }

    /// Counts the request under `key`; returns how many came before it.
    fn count(&mut self, stats: &Stats, key: &str) -> u64 {
        self.key = key.to_owned();
        self.counted = true;
        stats.request(key)
    }

    /// The response to send: a handler's answer, or its HTTP error,
    /// counted as a failure.
    fn settle(&self, stats: &Stats, result: Result<Response, Response>) -> Response {
        result.unwrap_or_else(|error| {
            if !self.counted {
                stats.request(&self.key);
            }
            stats.outcome(&self.key, Outcome::Failed);
            error
        })
    }
}

/// A scripted failure, after the scripted latency, built by the format's
/// `error`, with `Retry-After` when set and the scripted retry headers
/// (`retry-after-ms`, `Retry-After` as a date, `x-should-retry`).
async fn failure_response(
    behaviour: &Behaviour,
    failure: Failure,
    error: impl Fn(StatusCode, &str) -> Response,
) -> Response {
    if !behaviour.latency.is_zero() {
        tokio::time::sleep(behaviour.latency).await;
    }
    let status = StatusCode::from_u16(failure.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = error(status, "mock failure");
    if let Some(seconds) = failure.retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    behaviour.wire.add_retry_headers(&mut response);
    response
}

/// A streamed answer in a provider's format: events before the text, one
/// event per text chunk, events after it, and the events that scripted
/// failures send.
pub(crate) struct StreamPlan {
    pub head: Vec<String>,
    pub texts: Vec<String>,
    pub tail: Vec<String>,
    /// An event whose data is not valid JSON.
    pub malformed: String,
    /// The provider's in-stream error event.
    pub error_event: String,
    /// Ends the stream early when cancelled, with these events (Dify stop).
    pub stop: Option<(CancellationToken, Vec<String>)>,
}

/// Events sent at one point of a streamed answer, each after its own
/// wait: an app at work between its text chunks (Dify's pings, an agent's
/// tool call).
pub(crate) struct Interlude {
    /// After this many text chunks (the chunk count or more: after the
    /// last, before the closing events).
    pub after: usize,
    /// Each event, after the wait before it.
    pub events: Vec<(Duration, String)>,
}

enum Step {
    Event(String),
    Text(String),
    /// An event after a wait of its own (an interlude's).
    Later(Duration, String),
    /// Drop the connection.
    Disconnect,
    /// A broken event (malformed or error), then the end after a pause.
    Broken(String, Duration),
    Linger(Duration),
}

struct Run {
    steps: VecDeque<Step>,
    latency: Duration,
    delay: Duration,
    started: bool,
    texts_sent: usize,
    guard: StreamGuard,
    stop: Option<(CancellationToken, Vec<String>)>,
}

impl Run {
    /// Waits `d`; true when the stop token fired (before or during it).
    async fn wait(&self, d: Duration) -> bool {
        let token = self.stop.as_ref().map(|(t, _)| t);
        match token {
            Some(t) if t.is_cancelled() => true,
            Some(t) if !d.is_zero() => tokio::select! {
                () = tokio::time::sleep(d) => false,
                () = t.cancelled() => true,
            },
            _ => {
                if !d.is_zero() {
                    tokio::time::sleep(d).await;
                }
                false
            }
        }
    }
}

/// The plan's events, paced and scripted: `latency` before the first one,
/// `chunk_delay` between text chunks, a disconnect, malformed event or
/// error event after N text chunks. The guard records the outcome.
pub(crate) fn paced(
    plan: StreamPlan,
    behaviour: &Behaviour,
    guard: StreamGuard,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + use<> {
    paced_with(plan, Vec::new(), behaviour, guard)
}

/// [`paced`], with `interludes` between the text chunks (a stop cuts one
/// short, as it cuts the text).
pub(crate) fn paced_with(
    plan: StreamPlan,
    interludes: Vec<Interlude>,
    behaviour: &Behaviour,
    guard: StreamGuard,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + use<> {
    let count = plan.texts.len();
    let at = |n: Option<usize>, i: usize| n.is_some_and(|n| n.min(count) == i);
    let mut steps: VecDeque<Step> = plan.head.into_iter().map(Step::Event).collect();
    let mut texts = plan.texts.into_iter();
    let mut interludes: Vec<Interlude> = interludes;
    let mut broken = false;
    for i in 0..=count {
        for interlude in interludes.iter_mut().filter(|x| x.after.min(count) == i) {
            let events = std::mem::take(&mut interlude.events);
            steps.extend(events.into_iter().map(|(wait, event)| Step::Later(wait, event)));
        }
        if at(behaviour.disconnect_after, i) {
            steps.push_back(Step::Disconnect);
        } else if at(behaviour.malformed_after, i) {
            steps.push_back(Step::Broken(plan.malformed.clone(), Duration::from_millis(300)));
        } else if at(behaviour.error_event_after, i) {
            steps.push_back(Step::Broken(plan.error_event.clone(), Duration::ZERO));
        } else if let Some(text) = texts.next() {
            steps.push_back(Step::Text(text));
            continue;
        } else {
            break;
        }
        broken = true;
        break;
    }
    if !broken {
        steps.extend(plan.tail.into_iter().map(Step::Event));
    }
    let run = Run {
        steps,
        latency: behaviour.latency,
        delay: behaviour.chunk_delay,
        started: false,
        texts_sent: 0,
        guard,
        stop: plan.stop,
    };
    futures_util::stream::unfold(run, |mut run| async move {
        loop {
            let Some(step) = run.steps.pop_front() else {
                run.guard.finish(Outcome::Completed);
                return None;
            };
            let mut wait = if !run.started {
                run.latency
            } else if matches!(step, Step::Text(_)) && run.texts_sent > 0 {
                run.delay
            } else {
                Duration::ZERO
            };
            if let Step::Later(own, _) = &step {
                wait += *own;
            }
            run.started = true;
            let stoppable = matches!(step, Step::Text(_) | Step::Later(..));
            if stoppable && run.wait(wait).await {
                // Stopped: the rest of the answer is replaced by the end.
                let (_, tail) = run.stop.take().unwrap_or_default();
                run.steps = tail.into_iter().map(Step::Event).collect();
                continue;
            } else if !stoppable && !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            match step {
                Step::Event(event) | Step::Later(_, event) => return Some((Ok(Bytes::from(event)), run)),
                Step::Text(event) => {
                    run.texts_sent += 1;
                    return Some((Ok(Bytes::from(event)), run));
                }
                Step::Disconnect => {
                    // Let what was sent reach the client before the cut.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    run.guard.finish(Outcome::Failed);
                    run.steps.clear();
                    return Some((Err(std::io::Error::other("mock disconnect")), run));
                }
                Step::Broken(event, linger) => {
                    run.guard.finish(Outcome::Failed);
                    run.steps = VecDeque::from([Step::Linger(linger)]);
                    return Some((Ok(Bytes::from(event)), run));
                }
                Step::Linger(d) => {
                    if !d.is_zero() {
                        tokio::time::sleep(d).await;
                    }
                }
            }
        }
    })
}

/// A `text/event-stream` response with `body`.
pub(crate) fn sse_response(body: Body) -> Response {
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// A rough token count: a token per four characters.
pub(crate) fn tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

/// A random id shaped like a UUID.
pub(crate) fn uuidish() -> String {
    let h = format!("{:032x}", rand::random::<u128>());
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The deterministic answer to `question`, in `chunks` pieces: split at
/// words, or of exactly `chunk_bytes` characters each when that is not 0.
pub(crate) fn answer_pieces(question: &str, chunks: usize, chunk_bytes: usize) -> Vec<String> {
    pieces_of(format!("You said: {question}. "), chunks, chunk_bytes)
}

/// `text` followed by filler words, in `chunks` pieces (see [`answer_pieces`]).
pub(crate) fn pieces_of(mut text: String, chunks: usize, chunk_bytes: usize) -> Vec<String> {
    const FILLER: [&str; 5] = ["lorem ", "ipsum ", "dolor ", "sit ", "amet "];
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
pub fn router(defaults: Args) -> Router {
    let state = Arc::new(MockState {
        defaults,
        stats: Arc::new(Stats::default()),
        dify: dify::DifyState::default(),
        captured: capture::Captured::default(),
    });
    let audio = post(transcription::transcriptions).layer(DefaultBodyLimit::max(MAX_AUDIO_BYTES));
    Router::new()
        .route("/v1/chat/completions", post(openai::chat_completions))
        .route("/chat/completions", post(openai::chat_completions))
        .route("/v1/models", get(openai::models))
        .route("/v1/messages", post(anthropic::messages))
        .route("/messages", post(anthropic::messages))
        .route("/v1/chat-messages", post(dify::chat_messages))
        .route("/chat-messages", post(dify::chat_messages))
        .route("/v1/chat-messages/{task_id}/stop", post(dify::stop))
        .route("/chat-messages/{task_id}/stop", post(dify::stop))
        .route("/v1/audio/transcriptions", audio.clone())
        .route("/audio/transcriptions", audio)
        .route(
            "/openai/deployments/{deployment}/chat/completions",
            post(azure::deployment_chat),
        )
        .route("/openai/v1/chat/completions", post(azure::v1_chat))
        .route("/mock/stats", get(stats))
        .route("/mock/requests", get(capture::requests))
        .route("/mock/reset", post(reset))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            capture::record,
        ))
        .with_state(state)
}

async fn stats(State(state): State<Arc<MockState>>) -> axum::Json<serde_json::Value> {
    axum::Json(state.stats.to_json())
}

async fn reset(State(state): State<Arc<MockState>>) -> impl IntoResponse {
    state.stats.reset();
    state.dify.reset();
    state.captured.reset();
    StatusCode::NO_CONTENT
}

/// Why the server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: String, source: std::io::Error },
    #[error("serving: {0}")]
    Serve(#[from] std::io::Error),
}

/// Serves the mock on `args.listen` until `shutdown` completes, then lets
/// the answers in flight finish.
pub async fn run(args: Args, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), ServeError> {
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|source| ServeError::Listen {
            addr: args.listen.clone(),
            source,
        })?;
    let addr = listener.local_addr()?;
    let listener = listener.tap_io(|tcp| {
        // Small frames (streamed chunks) must not wait for Nagle.
        // Failing only costs latency.
        let _ = tcp.set_nodelay(true);
    });
    println!("mock-llm listening on http://{addr}/v1");
    axum::serve(listener, router(args))
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests;
