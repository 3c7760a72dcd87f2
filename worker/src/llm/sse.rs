//! Server-sent events, parsed incrementally from a byte stream, as model
//! providers stream them (`event:` and `data:` lines, a blank line ends an
//! event), and [`decode`], which turns a streaming HTTP answer into model
//! events with a provider's [`Decoder`]. An event with a name but no data
//! (Dify's `event: ping`) is not dispatched as an event, as the SSE rules
//! say, but it is news that the provider is alive: a decoder that cares
//! hears of it through [`Decoder::bare`].

use std::collections::VecDeque;

use futures_util::StreamExt;

use super::{LlmError, LlmEvent, LlmStream};

/// One event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SseEvent {
    /// The `event:` name, if any.
    pub event: Option<String>,
    /// The `data:` lines, joined with `\n`.
    pub data: String,
}

impl SseEvent {
    /// The event's data read as JSON; unreadable data is a protocol error
    /// that quotes the start of it.
    pub(super) fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, super::LlmError> {
        serde_json::from_str(&self.data).map_err(|e| {
            let data: String = self.data.chars().take(200).collect();
            super::LlmError::Protocol(format!("bad event {data:?}: {e}"))
        })
    }
}

/// Longest line the parser buffers before giving up on the stream.
const MAX_LINE: usize = 4 * 1024 * 1024;

/// An incremental parser: feed it bytes as they arrive, take out events.
#[derive(Debug, Default)]
pub(super) struct SseParser {
    partial: Vec<u8>,
    event: Option<String>,
    data: Option<String>,
    /// Names of the events that ended without data, since last taken.
    bare: Vec<String>,
}

impl SseParser {
    /// A parser with nothing buffered.
    pub(super) fn new() -> Self {
        Self::default()
    }

    /// Consumes `bytes`; appends every event they complete to `out`.
    pub(super) fn feed(&mut self, bytes: &[u8], out: &mut Vec<SseEvent>) -> Result<(), String> {
        let mut rest = bytes;
        while let Some(pos) = rest.iter().position(|&b| b == b'\n') {
            let (line, tail) = rest.split_at(pos);
            rest = &tail[1..];
            if self.partial.is_empty() {
                self.line(line, out)?;
            } else {
                let mut full = std::mem::take(&mut self.partial);
                full.extend_from_slice(line);
                self.line(&full, out)?;
            }
        }
        self.partial.extend_from_slice(rest);
        if self.partial.len() > MAX_LINE {
            return Err(format!("an event line is longer than {MAX_LINE} bytes"));
        }
        Ok(())
    }

    /// The names of the events that ended without any data line since the
    /// last call (`event: ping` then a blank line).
    pub(super) fn take_bare(&mut self) -> std::vec::Drain<'_, String> {
        self.bare.drain(..)
    }

    fn line(&mut self, line: &[u8], out: &mut Vec<SseEvent>) -> Result<(), String> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let line = std::str::from_utf8(line).map_err(|_| "an event line is not UTF-8".to_owned())?;
        if line.is_empty() {
            if let Some(data) = self.data.take() {
                out.push(SseEvent {
                    event: self.event.take(),
                    data,
                });
            } else if let Some(name) = self.event.take() {
                self.bare.push(name);
            }
            return Ok(());
        }
        if line.starts_with(':') {
            return Ok(());
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "data" => match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            },
            "event" => self.event = Some(value.to_owned()),
            _ => {}
        }
        Ok(())
    }
}

/// What a provider's stream decoder makes of one event.
pub(super) trait Decoder: Send + 'static {
    /// Appends the model events `event` carries to `out`; returns `true`
    /// when it is the provider's last event.
    fn decode(&mut self, event: SseEvent, out: &mut Vec<Result<LlmEvent, LlmError>>) -> bool;

    /// Appends what an event named `name` that carried no data says (by
    /// default nothing: such events are not dispatched).
    fn bare(&mut self, _name: &str, _out: &mut Vec<Result<LlmEvent, LlmError>>) {}

    /// Called once the last event was decoded (a decoder that cleans up
    /// when dropped early can stand down).
    fn finished(&mut self) {}

    /// The provider's last event, named in the error when the stream ends
    /// without it.
    fn end_marker(&self) -> &'static str;
}

/// The model events of a streaming answer. A body that breaks off, or
/// ends before the decoder saw the last event, ends the stream with an
/// error: a cut answer is never taken for a whole one.
pub(super) fn decode(response: reqwest::Response, decoder: impl Decoder) -> LlmStream {
    struct State<D> {
        bytes: futures_util::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
        parser: SseParser,
        decoder: D,
        ready: VecDeque<Result<LlmEvent, LlmError>>,
        done: bool,
    }
    let state = State {
        bytes: response.bytes_stream().boxed(),
        parser: SseParser::new(),
        decoder,
        ready: VecDeque::new(),
        done: false,
    };
    futures_util::stream::unfold(state, |mut s| async move {
        let mut events = Vec::new();
        let mut decoded = Vec::new();
        loop {
            if let Some(item) = s.ready.pop_front() {
                return Some((item, s));
            }
            if s.done {
                return None;
            }
            match s.bytes.next().await {
                Some(Ok(data)) => {
                    if let Err(e) = s.parser.feed(&data, &mut events) {
                        s.ready.push_back(Err(LlmError::Protocol(e)));
                        s.done = true;
                    }
                    // Signs of life come first: they arrived with this
                    // piece of the body, before anything after it.
                    for name in s.parser.take_bare() {
                        if !s.done {
                            s.decoder.bare(&name, &mut decoded);
                        }
                    }
                    s.ready.extend(decoded.drain(..));
                    for event in events.drain(..) {
                        if s.done {
                            break;
                        }
                        if s.decoder.decode(event, &mut decoded) {
                            s.decoder.finished();
                            s.done = true;
                        }
                        // An error ends the stream: nothing after it counts.
                        if decoded.iter().any(Result::is_err) {
                            s.done = true;
                        }
                        s.ready.extend(decoded.drain(..));
                    }
                }
                Some(Err(e)) => {
                    s.ready.push_back(Err(super::http::transport_error(e)));
                    s.done = true;
                }
                None => {
                    let marker = s.decoder.end_marker();
                    s.ready.push_back(Err(LlmError::Protocol(format!(
                        "the stream ended before {marker}"
                    ))));
                    s.done = true;
                }
            }
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_in_pieces(input: &str, piece: usize) -> Vec<SseEvent> {
        let mut parser = SseParser::new();
        let mut out = Vec::new();
        for chunk in input.as_bytes().chunks(piece) {
            parser.feed(chunk, &mut out).unwrap();
        }
        out
    }

    #[test]
    fn events_survive_any_split_of_the_byte_stream() {
        let input = "event: message_start\ndata: {\"a\":1}\n\n: keep-alive\n\ndata: one\r\ndata: twö\r\n\r\ndata: [DONE]\n\n";
        let expected = vec![
            SseEvent {
                event: Some("message_start".into()),
                data: "{\"a\":1}".into(),
            },
            SseEvent {
                event: None,
                data: "one\ntwö".into(),
            },
            SseEvent {
                event: None,
                data: "[DONE]".into(),
            },
        ];
        for piece in 1..input.len() {
            assert_eq!(
                parse_in_pieces(input, piece),
                expected,
                "split every {piece} bytes"
            );
        }
    }

    #[test]
    fn events_without_data_are_not_dispatched_but_their_names_are_kept() {
        let mut parser = SseParser::new();
        let mut out = Vec::new();
        parser
            .feed(
                b"event: ping\n\nevent: ping\r\n\r\n: comment\n\ndata: {}\n\nevent: x\n",
                &mut out,
            )
            .unwrap();
        assert_eq!(
            out,
            [SseEvent {
                event: None,
                data: "{}".into()
            }]
        );
        assert_eq!(parser.take_bare().collect::<Vec<_>>(), ["ping", "ping"]);
        assert_eq!(parser.take_bare().count(), 0, "taken once");
        parser.feed(b"data: 1\n\n", &mut out).unwrap();
        assert_eq!(
            out[1].event.as_deref(),
            Some("x"),
            "a name followed by data is an event"
        );
        assert_eq!(parser.take_bare().count(), 0);
    }
}
