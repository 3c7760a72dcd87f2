//! The one envelope every frame uses, in both directions.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{ErrorInfo, MessageType, Timestamp};

/// Free-form string pairs (`metadata` in the seed: `map[string]string`).
pub type Metadata = BTreeMap<String, String>;

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sender {
    User,
    Ai,
    Admin,
}

impl Sender {
    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Sender::User => "user",
            Sender::Ai => "ai",
            Sender::Admin => "admin",
        }
    }
}

/// A protocol frame: the seed's fields plus optional additions.
///
/// Every field but `type` is optional on the wire; which ones a type needs
/// is checked by [`super::parse_client_frame`] for client frames and by the
/// constructors in [`super::outbound`] for server frames.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// What the frame is.
    #[serde(rename = "type")]
    pub kind: MessageType,
    /// The session this frame belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// The client's id for a message it sends; echoed back for idempotency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The server's id of a message (on every chunk of a streamed answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// The message's position in its session, assigned when it is accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// Text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// An uploaded file's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_id: Option<String>,
    /// A signed URL to download a file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_url: Option<String>,
    /// A language model's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_id: Option<String>,
    /// When the frame was written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<Timestamp>,
    /// Who wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<Sender>,
    /// Free-form string pairs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
    /// On `error` frames: what went wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorInfo>,
    /// On `ai_response` chunks: `true` on the last chunk of an answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done: Option<bool>,
    /// Structured answers to requests (`session_list`, `history`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
}

impl Message {
    /// A frame of `kind` with every optional field empty.
    pub fn new(kind: MessageType) -> Self {
        Message {
            kind,
            session_id: None,
            id: None,
            message_id: None,
            seq: None,
            content: None,
            file_id: None,
            file_url: None,
            model_id: None,
            timestamp: None,
            sender: None,
            metadata: None,
            error: None,
            done: None,
            data: None,
        }
    }

    /// Serializes to the bytes of a text frame.
    pub fn to_json(&self) -> bytes::Bytes {
        let mut out = bytes::BytesMut::new();
        self.write_json(&mut out);
        out.freeze()
    }

    /// Appends the frame's JSON (compact: no raw newline) to `out`.
    pub fn write_json(&self, out: &mut bytes::BytesMut) {
        use bytes::BufMut;
        // A Message holds only strings, numbers, bools and string maps, and
        // a BytesMut takes every write: serialization cannot fail.
        let _ = serde_json::to_writer(out.writer(), self);
    }

    /// A metadata value.
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.metadata.as_ref()?.get(key).map(String::as_str)
    }
}
