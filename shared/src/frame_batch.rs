//! Several frames for one session in one `chat.out` message.
//!
//! A model that streams faster than the worker publishes (most do, in
//! bursts) would cost one NATS message per chunk: a publish in the worker,
//! a routed message in the NATS server and a wake-up in the gateway, each.
//! The worker therefore sends the frames that are ready at the same moment
//! as one message. Each stays its own WebSocket frame to the client, sent
//! as soon as it arrives: batching takes nothing but what was already
//! waiting.
//!
//! On the wire a batch is the frames' JSON joined by `\n` (compact JSON
//! has no raw newline), with the header `Chatbox-Frames: <n>`; the
//! per-frame facts a gateway routes by travel as comma-separated lists in
//! the usual headers: `Chatbox-Type` (`ai_response,ai_response,loading`)
//! and, when any frame is stored, `Chatbox-Seq` (`,,7`: empty for frames
//! without one). A message without `Chatbox-Frames` is one frame, as
//! before.

use std::fmt::Write as _;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::bus::Headers;
use crate::envelope::headers;
use crate::protocol::{Message, MessageType};

/// Frames gathered for one `chat.out` message.
#[derive(Debug, Default)]
pub struct FrameBatch {
    payload: BytesMut,
    types: String,
    seqs: String,
    stored: bool,
    traced: bool,
    len: usize,
}

impl FrameBatch {
    /// No frames yet.
    pub fn new() -> Self {
        FrameBatch::default()
    }

    /// Adds a frame.
    pub fn push(&mut self, frame: &Message) {
        if self.len > 0 {
            self.payload.put_u8(b'\n');
            self.types.push(',');
            self.seqs.push(',');
        }
        frame.write_json(&mut self.payload);
        self.types.push_str(frame.kind.as_str());
        self.traced |= !(frame.kind == MessageType::AiResponse && frame.done == Some(false));
        if let Some(seq) = frame.seq {
            // Writing to a String cannot fail.
            let _ = write!(self.seqs, "{seq}");
            self.stored = true;
        }
        self.len += 1;
    }

    /// Whether any frame is worth a trace context: everything but streamed
    /// chunks, which stay as light as they can be.
    pub fn traced(&self) -> bool {
        self.traced
    }

    /// Frames gathered.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether none were.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The headers (added to `into`) and payload of the message.
    pub fn finish(self, into: &mut Headers) -> Bytes {
        into.insert(headers::TYPE, self.types);
        if self.stored {
            into.insert(headers::SEQ, self.seqs);
        }
        if self.len != 1 {
            into.insert(headers::FRAMES, self.len.to_string());
        }
        self.payload.freeze()
    }
}

/// One frame of a `chat.out` message, as a gateway forwards it.
#[derive(Debug, Clone, PartialEq)]
pub struct OutFrame {
    /// Its type, when the header names a known one.
    pub kind: Option<MessageType>,
    /// Its sequence number, when it is stored.
    pub seq: Option<u64>,
    /// The bytes the client receives.
    pub bytes: Bytes,
}

/// The frames of a `chat.out` message (one, unless it is a batch), without
/// copying their bytes or allocating.
pub fn split(message_headers: &Headers, payload: Bytes) -> Frames<'_> {
    Frames {
        types: message_headers.get(headers::TYPE).unwrap_or_default().split(','),
        seqs: message_headers.get(headers::SEQ).unwrap_or_default().split(','),
        batch: message_headers.get(headers::FRAMES).is_some(),
        rest: Some(payload),
    }
}

/// The frames of one `chat.out` message, in order ([`split`]).
#[derive(Debug)]
pub struct Frames<'h> {
    types: std::str::Split<'h, char>,
    seqs: std::str::Split<'h, char>,
    /// Whether the payload holds several frames, one per line.
    batch: bool,
    /// What is left to split.
    rest: Option<Bytes>,
}

impl Iterator for Frames<'_> {
    type Item = OutFrame;

    fn next(&mut self) -> Option<OutFrame> {
        let mut rest = self.rest.take()?;
        let bytes = match rest.iter().position(|b| *b == b'\n') {
            Some(end) if self.batch => {
                let frame = rest.split_to(end);
                rest.advance(1);
                self.rest = Some(rest);
                frame
            }
            _ => rest,
        };
        Some(OutFrame {
            kind: self.types.next().and_then(MessageType::from_wire),
            seq: self.seqs.next().and_then(|s| s.parse::<u64>().ok()),
            bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::outbound;

    #[test]
    fn a_batch_splits_back_into_its_frames_with_their_types_and_seqs() {
        let chunk = outbound::ai_chunk("s1", "a1", "Hello\nworld".into());
        let mut stored = outbound::ai_chunk("s1", "a1", "Hello world".into());
        stored.done = Some(true);
        stored.seq = Some(7);
        let loading = outbound::loading("s1", "a1", false);
        let mut batch = FrameBatch::new();
        for frame in [&chunk, &stored, &loading] {
            batch.push(frame);
        }
        assert_eq!(batch.len(), 3);
        let mut headers = Headers::new();
        let payload = batch.finish(&mut headers);
        assert_eq!(
            headers.get(headers::TYPE),
            Some("ai_response,ai_response,loading")
        );
        assert_eq!(headers.get(headers::SEQ), Some(",7,"));
        let frames: Vec<OutFrame> = split(&headers, payload).collect();
        let expected: Vec<OutFrame> = [(&chunk, None), (&stored, Some(7)), (&loading, None)]
            .into_iter()
            .map(|(frame, seq)| OutFrame {
                kind: Some(frame.kind),
                seq,
                bytes: frame.to_json(),
            })
            .collect();
        assert_eq!(frames, expected, "a newline in the text does not split a frame");
    }

    #[test]
    fn one_frame_is_a_plain_message() {
        let loading = outbound::loading("s1", "a1", true);
        let mut batch = FrameBatch::new();
        batch.push(&loading);
        let mut headers = Headers::new();
        let payload = batch.finish(&mut headers);
        assert_eq!(headers.get(headers::FRAMES), None);
        assert_eq!(headers.get(headers::SEQ), None);
        assert_eq!(payload, loading.to_json());
        let frames: Vec<OutFrame> = split(&headers, payload).collect();
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].kind, Some(MessageType::Loading));
    }
}
