//! Per-request scripting: how one request behaves.
//!
//! A [`Behaviour`] starts from the server flags, is overridden by the
//! `x-mock-*` request headers, then by `[[mock k=v …]]` directives in the
//! last user message (each `k` is a header name without `x-mock-`). The
//! directive text is removed from the question before it is echoed.
//! Whether a request fails (`x-mock-fail-status`, `x-mock-fail-first`,
//! `--fail-rate`) is decided by [`Behaviour::failure`]. The keys only a
//! Dify app acts on (moderation, pings, an agent's tool call, a chatflow's
//! progress, required inputs) are a [`DifyScript`] of their own; the keys
//! of each provider's wire format (finish reasons, retry hints, error codes,
//! `stream_options` refusals) are a [`Wire`] (`wire.rs`).

use std::time::Duration;

use axum::http::HeaderMap;

use crate::Args;
use crate::wire::{WIRE_KEYS, Wire};

/// Header prefix of every scripting header.
pub(crate) const PREFIX: &str = "x-mock-";

/// The scripting keys, as header names without [`PREFIX`].
pub(crate) const KEYS: [&str; 13] = [
    "latency-ms",
    "chunks",
    "chunk-bytes",
    "chunk-delay-ms",
    "fail-status",
    "disconnect-after",
    "retry-after",
    "key",
    "fail-first",
    "malformed-after",
    "error-event-after",
    "usage",
    "file-url",
];

/// How one request should behave.
#[derive(Debug, Clone)]
pub(crate) struct Behaviour {
    /// Wait before the first event (or before a failure response).
    pub latency: Duration,
    /// Text chunks in the answer.
    pub chunks: usize,
    /// Characters per chunk (0: split at words).
    pub chunk_bytes: usize,
    /// Wait between text chunks.
    pub chunk_delay: Duration,
    /// Answer with this HTTP status (with `fail_first`: the status of the
    /// first failures, 503 when unset).
    pub fail_status: Option<u16>,
    /// Drop the connection after this many text chunks.
    pub disconnect_after: Option<usize>,
    /// `Retry-After` seconds sent with a failure.
    pub retry_after: Option<u64>,
    /// The stats key (`x-mock-key`); `""` when not given.
    pub key: String,
    /// The first N requests seen for `key` fail.
    pub fail_first: Option<u64>,
    /// After this many text chunks, send an event that is not valid JSON.
    pub malformed_after: Option<usize>,
    /// After this many text chunks, send the provider's in-stream error.
    pub error_event_after: Option<usize>,
    /// No usage anywhere in the answer (`x-mock-usage: absent`).
    pub usage_absent: bool,
    /// Dify: a file the app made, sent as `message_file` before the end.
    pub file_url: Option<String>,
    /// Finish reasons, retry hints, error codes, `stream_options` refusals
    /// (`wire.rs`).
    pub wire: Wire,
    /// Dify: moderation, pings, agents, chatflows, required inputs.
    pub dify: DifyScript,
    /// Server-wide `--fail-rate` and `--fail-status`.
    fail_rate: f64,
    default_fail_status: u16,
}

/// A scripted HTTP failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Failure {
    pub status: u16,
    /// `Retry-After` seconds, if any.
    pub retry_after: Option<u64>,
}

/// The stats key of a request: its `x-mock-key` header, or `""`.
pub(crate) fn header_key(headers: &HeaderMap) -> String {
    headers
        .get("x-mock-key")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_owned())
        .unwrap_or_default()
}

fn num<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, String> {
    value
        .trim()
        .parse()
        .map_err(|_| format!("mock scripting: invalid value {value:?} for {key}"))
}

impl Behaviour {
    /// The server defaults.
    pub(crate) fn defaults(d: &Args) -> Self {
        Behaviour {
            latency: Duration::from_millis(d.latency),
            chunks: d.chunks.clamp(1, 10_000),
            chunk_bytes: d.chunk_bytes.min(65_536),
            chunk_delay: Duration::from_millis(d.chunk_delay),
            fail_status: None,
            disconnect_after: None,
            retry_after: None,
            key: String::new(),
            fail_first: None,
            malformed_after: None,
            error_event_after: None,
            usage_absent: false,
            file_url: None,
            wire: Wire::default(),
            dify: DifyScript::default(),
            fail_rate: d.fail_rate,
            default_fail_status: d.fail_status,
        }
    }

    /// Defaults, then headers, then directives in `question`. Returns the
    /// behaviour and the question without its directives, or a message
    /// for a 400 answer.
    pub(crate) fn resolve(
        d: &Args,
        headers: &HeaderMap,
        question: &str,
    ) -> Result<(Behaviour, String), String> {
        let mut b = Behaviour::defaults(d);
        for key in KEYS.into_iter().chain(WIRE_KEYS).chain(DIFY_KEYS) {
            let name = format!("{PREFIX}{key}");
            if let Some(value) = headers.get(name.as_str()) {
                let value = value
                    .to_str()
                    .map_err(|_| format!("mock scripting: header {name} is not text"))?;
                b.set(key, value).map_err(|e| format!("{e} (header {name})"))?;
            }
        }
        let (directives, question) = split_directives(question)?;
        for (key, value) in directives {
            b.set(&key, &value)?;
        }
        Ok((b, question))
    }

    /// Applies one `key=value` (a header name without `x-mock-`).
    pub(crate) fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        match key {
            "latency-ms" => self.latency = Duration::from_millis(num(key, value)?),
            "chunks" => self.chunks = num::<usize>(key, value)?.clamp(1, 10_000),
            "chunk-bytes" => self.chunk_bytes = num::<usize>(key, value)?.min(65_536),
            "chunk-delay-ms" => self.chunk_delay = Duration::from_millis(num(key, value)?),
            "fail-status" => {
                let status: u16 = num(key, value)?;
                if !(400..=599).contains(&status) {
                    return Err(format!(
                        "mock scripting: fail-status must be 400 to 599, not {status}"
                    ));
                }
                self.fail_status = Some(status);
            }
            "disconnect-after" => self.disconnect_after = Some(num(key, value)?),
            "retry-after" => self.retry_after = Some(num(key, value)?),
            "key" => self.key = value.trim().to_owned(),
            "fail-first" => self.fail_first = Some(num(key, value)?),
            "malformed-after" => self.malformed_after = Some(num(key, value)?),
            "error-event-after" => self.error_event_after = Some(num(key, value)?),
            "usage" => match value.trim() {
                "absent" => self.usage_absent = true,
                "present" => self.usage_absent = false,
                other => {
                    return Err(format!(
                        "mock scripting: usage must be absent or present, not {other:?}"
                    ));
                }
            },
            "file-url" => {
                let url = value.trim();
                if url.is_empty() {
                    return Err("mock scripting: file-url must not be empty".to_owned());
                }
                self.file_url = Some(url.to_owned());
            }
            wire if WIRE_KEYS.contains(&wire) => self.wire.set(wire, value)?,
            dify if DIFY_KEYS.contains(&dify) => self.dify.set(dify, value)?,
            other => {
                return Err(format!(
                    "mock scripting: unknown key {other:?} (known: {}, {}, {})",
                    KEYS.join(", "),
                    WIRE_KEYS.join(", "),
                    DIFY_KEYS.join(", ")
                ));
            }
        }
        Ok(())
    }

    /// Whether this request fails; `seen` is how many requests came before
    /// it under the same key.
    pub(crate) fn failure(&self, seen: u64) -> Option<Failure> {
        let status = match self.fail_first {
            Some(n) => (seen < n).then(|| self.fail_status.unwrap_or(503)),
            None => self.fail_status.or_else(|| {
                (self.fail_rate > 0.0 && rand::random::<f64>() < self.fail_rate)
                    .then_some(self.default_fail_status)
            }),
        }?;
        let retry_after = self.retry_after.or((status == 429).then_some(1));
        Some(Failure { status, retry_after })
    }
}

/// The scripting keys only a Dify app acts on, as header names without
/// [`PREFIX`].
pub(crate) const DIFY_KEYS: [&str; 7] = [
    "replace-after",
    "pause-after",
    "ping-gap-ms",
    "ping-every-ms",
    "agent-tool",
    "workflow",
    "require-inputs",
];

/// How a Dify app behaves besides its text (docs/MOCK-LLM.md cites the
/// Dify API reference for each).
#[derive(Debug, Clone)]
pub(crate) struct DifyScript {
    /// Output moderation flags the answer after this many text chunks:
    /// `message_replace`, then the end.
    pub replace_after: Option<usize>,
    /// Where the pause (a tool call, a ping gap) comes: after this many
    /// text chunks.
    pub pause_after: usize,
    /// A pause this long, with nothing but `event: ping` in it.
    pub ping_gap: Duration,
    /// How often Dify pings while it works (every 10 s, its reference says).
    pub ping_every: Duration,
    /// The pause is an agent calling this tool: `agent_thought` events
    /// around it, and the text comes as `agent_message`.
    pub agent_tool: Option<String>,
    /// A chatflow (advanced chat) app: `workflow_*` and `node_*` events
    /// around the text.
    pub workflow: bool,
    /// Input variables the app requires: a request without them is
    /// refused as Dify refuses it.
    pub require_inputs: Vec<String>,
}

impl Default for DifyScript {
    fn default() -> Self {
        DifyScript {
            replace_after: None,
            pause_after: 1,
            ping_gap: Duration::ZERO,
            ping_every: Duration::from_secs(10),
            agent_tool: None,
            workflow: false,
            require_inputs: Vec::new(),
        }
    }
}

impl DifyScript {
    /// Applies one of [`DIFY_KEYS`].
    fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let value = value.trim();
        match key {
            "replace-after" => self.replace_after = Some(num(key, value)?),
            "pause-after" => self.pause_after = num(key, value)?,
            "ping-gap-ms" => self.ping_gap = Duration::from_millis(num(key, value)?),
            "ping-every-ms" => {
                let every: u64 = num(key, value)?;
                if every == 0 {
                    return Err("mock scripting: ping-every-ms must be at least 1".to_owned());
                }
                self.ping_every = Duration::from_millis(every);
            }
            "agent-tool" if value.is_empty() => {
                return Err("mock scripting: agent-tool must name a tool".to_owned());
            }
            "agent-tool" => self.agent_tool = Some(value.to_owned()),
            "workflow" => {
                self.workflow = match value {
                    "true" => true,
                    "false" => false,
                    other => {
                        return Err(format!(
                            "mock scripting: workflow must be true or false, not {other:?}"
                        ));
                    }
                }
            }
            _ => {
                self.require_inputs = value
                    .split(',')
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .map(str::to_owned)
                    .collect();
            }
        }
        Ok(())
    }
}

/// Splits `[[mock k=v k=v]]` directives out of `text`: the `(key, value)`
/// pairs in order, and the text without them (trimmed).
pub(crate) fn split_directives(text: &str) -> Result<(Vec<(String, String)>, String), String> {
    const OPEN: &str = "[[mock";
    let mut pairs = Vec::new();
    let mut rest = text;
    let mut clean = String::new();
    while let Some(start) = rest.find(OPEN) {
        let after = &rest[start + OPEN.len()..];
        // `[[mockery` is not a directive.
        if !(after.starts_with(char::is_whitespace) || after.starts_with("]]")) {
            clean.push_str(&rest[..start + OPEN.len()]);
            rest = after;
            continue;
        }
        let end = after
            .find("]]")
            .ok_or_else(|| "mock scripting: directive [[mock … without closing ]]".to_owned())?;
        for item in after[..end].split_whitespace() {
            let (k, v) = item
                .split_once('=')
                .ok_or_else(|| format!("mock scripting: directive item {item:?} is not key=value"))?;
            pairs.push((k.to_owned(), v.to_owned()));
        }
        clean.push_str(&rest[..start]);
        rest = &after[end + 2..];
    }
    clean.push_str(rest);
    let clean = clean.split_whitespace().collect::<Vec<_>>().join(" ");
    Ok((pairs, clean))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> Args {
        Args {
            listen: String::new(),
            latency: 0,
            chunks: 20,
            chunk_bytes: 0,
            chunk_delay: 0,
            fail_rate: 0.0,
            fail_status: 500,
            api_key: None,
        }
    }

    #[test]
    fn directives_override_headers_and_leave_the_question() {
        let mut headers = HeaderMap::new();
        headers.insert("x-mock-chunks", "5".parse().unwrap());
        headers.insert("x-mock-chunk-delay-ms", "7".parse().unwrap());
        let (b, q) = Behaviour::resolve(
            &args(),
            &headers,
            "hello [[mock chunks=40 chunk-delay-ms=50]] world",
        )
        .unwrap();
        assert_eq!(q, "hello world");
        assert_eq!(b.chunks, 40);
        assert_eq!(b.chunk_delay, Duration::from_millis(50));
        let (b, q) = Behaviour::resolve(&args(), &headers, "plain").unwrap();
        assert_eq!((b.chunks, q.as_str()), (5, "plain"));
    }

    #[test]
    fn bad_directives_are_refused_with_a_reason() {
        let err = Behaviour::resolve(&args(), &HeaderMap::new(), "[[mock nope=1]]").unwrap_err();
        assert!(err.contains("unknown key \"nope\""), "{err}");
        let err = Behaviour::resolve(&args(), &HeaderMap::new(), "[[mock chunks=x]]").unwrap_err();
        assert!(err.contains("invalid value \"x\" for chunks"), "{err}");
        let err = Behaviour::resolve(&args(), &HeaderMap::new(), "[[mock usage=maybe]]").unwrap_err();
        assert!(err.contains("usage"), "{err}");
        let err = Behaviour::resolve(&args(), &HeaderMap::new(), "[[mock chunks=2").unwrap_err();
        assert!(err.contains("closing"), "{err}");
    }

    #[test]
    fn dify_keys_script_the_app() {
        let (b, q) = Behaviour::resolve(
            &args(),
            &HeaderMap::new(),
            "hi [[mock replace-after=2 ping-gap-ms=1500 ping-every-ms=300 pause-after=3 agent-tool=web_search workflow=true require-inputs=plan,locale]]",
        )
        .unwrap();
        assert_eq!(q, "hi");
        let d = b.dify;
        assert_eq!(d.replace_after, Some(2));
        assert_eq!(
            (d.ping_gap, d.ping_every),
            (Duration::from_millis(1500), Duration::from_millis(300))
        );
        assert_eq!(d.pause_after, 3);
        assert_eq!(d.agent_tool.as_deref(), Some("web_search"));
        assert!(d.workflow);
        assert_eq!(d.require_inputs, ["plan", "locale"]);
        let defaults = Behaviour::defaults(&args()).dify;
        assert_eq!(
            (defaults.pause_after, defaults.ping_every),
            (1, Duration::from_secs(10))
        );
        let err = Behaviour::resolve(&args(), &HeaderMap::new(), "[[mock workflow=yes]]").unwrap_err();
        assert!(err.contains("workflow"), "{err}");
        let err = Behaviour::resolve(&args(), &HeaderMap::new(), "[[mock ping-every-ms=0]]").unwrap_err();
        assert!(err.contains("ping-every-ms"), "{err}");
    }

    #[test]
    fn fail_first_then_success_and_retry_after() {
        let mut b = Behaviour::defaults(&args());
        b.fail_first = Some(2);
        assert_eq!(
            b.failure(0),
            Some(Failure {
                status: 503,
                retry_after: None
            })
        );
        assert!(b.failure(1).is_some());
        assert_eq!(b.failure(2), None);
        b.fail_first = None;
        b.fail_status = Some(429);
        assert_eq!(b.failure(9).unwrap().retry_after, Some(1));
        b.retry_after = Some(7);
        assert_eq!(b.failure(9).unwrap().retry_after, Some(7));
    }
}
