//! What the mock server has seen, for tests: `GET /mock/stats` and
//! `POST /mock/reset`.
//!
//! Global counters (`completions`, `cancelled`, `transcriptions`,
//! `stopped`, `conversations`, `last_request_messages`) and, per
//! `x-mock-key`, the requests, their outcomes and the last request seen.
//! A [`StreamGuard`] lives inside every streamed body: dropped before the
//! stream reached its end, it counts the stream as cancelled.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};

/// All counters.
#[derive(Default)]
pub(crate) struct Stats {
    /// Requests answered with a text completion (counted when the answer
    /// starts, all formats).
    completions: AtomicU64,
    /// Messages in the last completion request.
    last_messages: AtomicU64,
    /// Streams dropped by the client before their end.
    cancelled: AtomicU64,
    transcriptions: AtomicU64,
    /// Dify stop calls.
    stopped: AtomicU64,
    /// Dify conversations created.
    conversations: AtomicU64,
    keys: Mutex<HashMap<String, KeyStats>>,
    /// The file of the last transcription request: `{"file_name","content_type"}`.
    last_transcription: Mutex<Option<Value>>,
}

#[derive(Default)]
struct KeyStats {
    requests: u64,
    completed: u64,
    cancelled: u64,
    failed: u64,
    last_request: Option<Value>,
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The whole answer was delivered.
    Completed,
    /// An HTTP error, or a scripted broken stream.
    Failed,
    /// The client dropped the stream before its end.
    Cancelled,
}

impl Stats {
    fn key<R>(&self, key: &str, f: impl FnOnce(&mut KeyStats) -> R) -> R {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        f(keys.entry(key.to_owned()).or_default())
    }

    /// Counts a request under `key`; returns how many came before it.
    pub(crate) fn request(&self, key: &str) -> u64 {
        self.key(key, |k| {
            k.requests += 1;
            k.requests - 1
        })
    }

    /// Records the last request seen under `key` (see the docs for its shape).
    pub(crate) fn last_request(&self, key: &str, request: Value) {
        self.key(key, |k| k.last_request = Some(request));
    }

    /// Counts how a request under `key` ended.
    pub(crate) fn outcome(&self, key: &str, outcome: Outcome) {
        if outcome == Outcome::Cancelled {
            self.cancelled.fetch_add(1, Ordering::Relaxed);
        }
        self.key(key, |k| match outcome {
            Outcome::Completed => k.completed += 1,
            Outcome::Failed => k.failed += 1,
            Outcome::Cancelled => k.cancelled += 1,
        });
    }

    /// A completion starts being answered; it carried `messages` messages.
    pub(crate) fn completion(&self, messages: usize) {
        self.completions.fetch_add(1, Ordering::Relaxed);
        self.last_messages.store(messages as u64, Ordering::Relaxed);
    }

    pub(crate) fn transcription(&self) {
        self.transcriptions.fetch_add(1, Ordering::Relaxed);
    }

    /// The file name and content type of a transcription request's file.
    pub(crate) fn last_transcription(&self, file_name: &str, content_type: &str) {
        let file = json!({ "file_name": file_name, "content_type": content_type });
        *self.last_transcription.lock().unwrap_or_else(|e| e.into_inner()) = Some(file);
    }

    pub(crate) fn stopped(&self) {
        self.stopped.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn conversation(&self) {
        self.conversations.fetch_add(1, Ordering::Relaxed);
    }

    /// Back to zero.
    pub(crate) fn reset(&self) {
        for counter in [
            &self.completions,
            &self.last_messages,
            &self.cancelled,
            &self.transcriptions,
            &self.stopped,
            &self.conversations,
        ] {
            counter.store(0, Ordering::Relaxed);
        }
        self.keys.lock().unwrap_or_else(|e| e.into_inner()).clear();
        *self.last_transcription.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// The `GET /mock/stats` document.
    pub(crate) fn to_json(&self) -> Value {
        let keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        let by_key: serde_json::Map<String, Value> = keys
            .iter()
            .map(|(key, k)| {
                (
                    key.clone(),
                    json!({
                        "requests": k.requests,
                        "completed": k.completed,
                        "cancelled": k.cancelled,
                        "failed": k.failed,
                        "last_request": k.last_request,
                    }),
                )
            })
            .collect();
        json!({
            "completions": self.completions.load(Ordering::Relaxed),
            "last_request_messages": self.last_messages.load(Ordering::Relaxed),
            "cancelled": self.cancelled.load(Ordering::Relaxed),
            "transcriptions": self.transcriptions.load(Ordering::Relaxed),
            "stopped": self.stopped.load(Ordering::Relaxed),
            "conversations": self.conversations.load(Ordering::Relaxed),
            "last_transcription": *self.last_transcription.lock().unwrap_or_else(|e| e.into_inner()),
            "by_key": by_key,
        })
    }
}

/// The `last_request` entry: every field, null where the format has none.
#[derive(Default)]
pub(crate) struct LastRequest {
    pub format: &'static str,
    pub model: Option<String>,
    /// `(role, text)` pairs.
    pub messages: Vec<(String, String)>,
    pub system: Option<String>,
    pub max_tokens: Option<u64>,
    pub temperature: Option<f64>,
    pub user: Option<String>,
    pub conversation_id: Option<String>,
    pub query: Option<String>,
    pub stream: bool,
    /// Each image of the request: its media type (inline data) or its URL.
    pub images: Vec<String>,
    /// The spoken answer asked for (`{"voice","format"}`), if any.
    pub audio: Option<Value>,
    /// Dify's `files`, as sent.
    pub files: Vec<Value>,
    /// Dify's `inputs`, as sent.
    pub inputs: Option<Value>,
}

impl LastRequest {
    pub(crate) fn to_json(&self) -> Value {
        let messages: Vec<Value> = self
            .messages
            .iter()
            .map(|(role, content)| json!({ "role": role, "content": content }))
            .collect();
        json!({
            "format": self.format,
            "model": self.model,
            "messages": messages,
            "system": self.system,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "user": self.user,
            "conversation_id": self.conversation_id,
            "query": self.query,
            "stream": self.stream,
            "images": self.images,
            "audio": self.audio,
            "files": self.files,
            "inputs": self.inputs,
        })
    }
}

/// Lives inside a streamed body; records the stream's outcome, or
/// `cancelled` when dropped before one was set.
pub(crate) struct StreamGuard {
    stats: Arc<Stats>,
    key: String,
    outcome: Option<Outcome>,
    /// Runs on drop (e.g. forgetting a Dify task).
    on_drop: Option<Box<dyn FnOnce() + Send + Sync>>,
}

impl StreamGuard {
    pub(crate) fn new(stats: Arc<Stats>, key: String) -> Self {
        StreamGuard {
            stats,
            key,
            outcome: None,
            on_drop: None,
        }
    }

    pub(crate) fn on_drop(mut self, f: impl FnOnce() + Send + Sync + 'static) -> Self {
        self.on_drop = Some(Box::new(f));
        self
    }

    /// The stream ended (first call wins).
    pub(crate) fn finish(&mut self, outcome: Outcome) {
        if self.outcome.is_none() {
            self.outcome = Some(outcome);
            self.stats.outcome(&self.key, outcome);
        }
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.finish(Outcome::Cancelled);
        if let Some(f) = self.on_drop.take() {
            f();
        }
    }
}
