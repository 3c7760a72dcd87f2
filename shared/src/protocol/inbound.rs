//! Client frames in: parse, validate and sanitize.
//!
//! A frame becomes a [`ClientFrame`] or a [`ProtocolError`] that names the
//! problem in words a client developer understands. Nothing here panics on
//! any input (a property test holds it to that), and nothing here allocates
//! more than the frame's own size.

use serde_json::{Map, Value};

use serde::Deserialize;

use super::uploads::UploadRequest;
use super::{ErrorCode, MessageType, Metadata, Timestamp};

/// Limits applied to client frames.
#[derive(Debug, Clone)]
pub struct InboundLimits {
    /// Largest `content`, in bytes after sanitizing.
    pub max_content_bytes: usize,
    /// Most `metadata` entries.
    pub max_metadata_entries: usize,
    /// Largest metadata key or value, in bytes.
    pub max_metadata_value_bytes: usize,
}

impl Default for InboundLimits {
    fn default() -> Self {
        InboundLimits {
            max_content_bytes: 16 * 1024,
            max_metadata_entries: 16,
            max_metadata_value_bytes: 1024,
        }
    }
}

/// A frame the client may send, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientCommand {
    /// Text for the assistant (or, during a takeover, for the admin).
    UserMessage {
        id: Option<String>,
        content: String,
        model_id: Option<String>,
        metadata: Option<Metadata>,
    },
    /// A file the client uploaded and now shares in the conversation.
    FileUpload {
        id: Option<String>,
        file_id: String,
        content: Option<String>,
    },
    /// A recorded voice message the client uploaded.
    VoiceMessage { id: Option<String>, file_id: String },
    /// The user started or stopped typing.
    TypingIndicator { active: bool },
    /// The user asks for a person.
    HelpRequest {
        id: Option<String>,
        content: Option<String>,
    },
    /// The user picks another language model for this session.
    ModelSelect { id: Option<String>, model_id: String },
    /// Application-level heartbeat.
    Ping,
    /// The user's sessions, most recent first (`metadata.limit`,
    /// `metadata.cursor`).
    ListSessions { id: Option<String>, page: PageRequest },
    /// A session's messages in order (`session_id`, or the connection's;
    /// `metadata.cursor` is the last `seq` already held).
    GetHistory {
        id: Option<String>,
        session_id: Option<String>,
        page: PageRequest,
    },
    /// A new name for a session (`content`; `session_id`, or the
    /// connection's).
    RenameSession {
        id: Option<String>,
        session_id: Option<String>,
        name: String,
    },
    /// End the connection's session (a new one starts on reconnect).
    EndSession { id: Option<String> },
    /// Stop the answer streaming now; what arrived is kept.
    Stop { id: Option<String> },
    /// Admin: receive everything of session `session_id` as it happens.
    Watch { id: Option<String>, session_id: String },
    /// Admin: stop watching a session.
    Unwatch { id: Option<String>, session_id: String },
    /// Admin: take a session over.
    Takeover { id: Option<String>, session_id: String },
    /// Admin: hand a session back to the assistant.
    Release { id: Option<String>, session_id: String },
    /// A URL to upload a file or voice message to (`data`: name, size,
    /// content_type, purpose).
    RequestUpload {
        id: Option<String>,
        upload: UploadRequest,
    },
    /// A fresh token for this socket (`token`), checked like the one it
    /// opened with: the socket then lives until the new token expires.
    Reauth { id: Option<String>, token: String },
}

/// Which page of a list a request wants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageRequest {
    /// How many items (1 to 100; the server's default when absent).
    pub limit: Option<usize>,
    /// Where the previous page ended (`next_cursor` of that page).
    pub cursor: Option<String>,
}

/// Longest session name, in characters.
pub const MAX_SESSION_NAME_CHARS: usize = 100;

impl ClientCommand {
    /// The frame's type.
    pub fn kind(&self) -> MessageType {
        match self {
            ClientCommand::UserMessage { .. } => MessageType::UserMessage,
            ClientCommand::FileUpload { .. } => MessageType::FileUpload,
            ClientCommand::VoiceMessage { .. } => MessageType::VoiceMessage,
            ClientCommand::TypingIndicator { .. } => MessageType::TypingIndicator,
            ClientCommand::HelpRequest { .. } => MessageType::HelpRequest,
            ClientCommand::ModelSelect { .. } => MessageType::ModelSelect,
            ClientCommand::Ping => MessageType::Ping,
            ClientCommand::ListSessions { .. } => MessageType::ListSessions,
            ClientCommand::GetHistory { .. } => MessageType::GetHistory,
            ClientCommand::RenameSession { .. } => MessageType::RenameSession,
            ClientCommand::EndSession { .. } => MessageType::EndSession,
            ClientCommand::Stop { .. } => MessageType::Stop,
            ClientCommand::Watch { .. } => MessageType::Watch,
            ClientCommand::Unwatch { .. } => MessageType::Unwatch,
            ClientCommand::Takeover { .. } => MessageType::Takeover,
            ClientCommand::Release { .. } => MessageType::Release,
            ClientCommand::RequestUpload { .. } => MessageType::RequestUpload,
            ClientCommand::Reauth { .. } => MessageType::Reauth,
        }
    }

    /// The client's message id, when it gave one.
    pub fn client_id(&self) -> Option<&str> {
        match self {
            ClientCommand::UserMessage { id, .. }
            | ClientCommand::FileUpload { id, .. }
            | ClientCommand::VoiceMessage { id, .. }
            | ClientCommand::HelpRequest { id, .. }
            | ClientCommand::ModelSelect { id, .. }
            | ClientCommand::ListSessions { id, .. }
            | ClientCommand::GetHistory { id, .. }
            | ClientCommand::RenameSession { id, .. }
            | ClientCommand::EndSession { id }
            | ClientCommand::Stop { id }
            | ClientCommand::Watch { id, .. }
            | ClientCommand::Unwatch { id, .. }
            | ClientCommand::Takeover { id, .. }
            | ClientCommand::Release { id, .. }
            | ClientCommand::RequestUpload { id, .. }
            | ClientCommand::Reauth { id, .. } => id.as_deref(),
            ClientCommand::TypingIndicator { .. } | ClientCommand::Ping => None,
        }
    }
}

/// A validated client frame and the session it names, if it names one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFrame {
    /// `session_id` as the client wrote it; the gateway checks it against
    /// the connection's session.
    pub session_id: Option<String>,
    /// What the client asks for.
    pub command: ClientCommand,
}

/// Why a client frame was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ProtocolError {
    /// The seed error code.
    pub code: ErrorCode,
    /// A sentence for the client developer.
    pub message: String,
}

impl ProtocolError {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ProtocolError {
            code,
            message: message.into(),
        }
    }
}

/// Parses one client text frame.
pub fn parse_client_frame(text: &str, limits: &InboundLimits) -> Result<ClientFrame, ProtocolError> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        ProtocolError::new(ErrorCode::InvalidMessage, format!("frame is not valid JSON: {e}"))
    })?;
    let Value::Object(obj) = value else {
        return Err(ProtocolError::new(
            ErrorCode::InvalidMessage,
            "frame must be a JSON object like {\"type\":\"user_message\",\"content\":\"hi\"}",
        ));
    };
    let kind_name = match obj.get("type") {
        None | Some(Value::Null) => {
            return Err(ProtocolError::new(
                ErrorCode::MissingField,
                "field `type` is required",
            ));
        }
        Some(Value::String(s)) => s.as_str(),
        Some(_) => {
            return Err(ProtocolError::new(
                ErrorCode::InvalidField,
                "field `type` must be a string",
            ));
        }
    };
    let Some(kind) = MessageType::from_wire(kind_name) else {
        return Err(ProtocolError::new(
            ErrorCode::UnknownMessageType,
            format!("unknown message type {:?}", truncate(kind_name, 64)),
        ));
    };
    if !kind.is_client_sendable() {
        return Err(ProtocolError::new(
            ErrorCode::NotAllowed,
            format!("`{kind}` frames are sent by the server, not by clients"),
        ));
    }

    let fields = Fields(&obj);
    let session_id = fields.identifier("session_id")?;
    fields.timestamp("timestamp")?;
    let id = fields.identifier("id")?;

    let command = match kind {
        MessageType::UserMessage => ClientCommand::UserMessage {
            id,
            content: fields.required_content("content", limits)?,
            model_id: fields.model_id("model_id")?,
            metadata: fields.metadata("metadata", limits)?,
        },
        MessageType::FileUpload => ClientCommand::FileUpload {
            id,
            file_id: fields.required_identifier("file_id")?,
            content: fields.optional_content("content", limits)?,
        },
        MessageType::VoiceMessage => ClientCommand::VoiceMessage {
            id,
            file_id: fields.required_identifier("file_id")?,
        },
        MessageType::TypingIndicator => {
            let metadata = fields.metadata("metadata", limits)?;
            let active = match metadata.as_ref().and_then(|m| m.get("active")) {
                None => true,
                Some(v) if v == "true" => true,
                Some(v) if v == "false" => false,
                Some(_) => {
                    return Err(ProtocolError::new(
                        ErrorCode::InvalidField,
                        "metadata.active must be \"true\" or \"false\"",
                    ));
                }
            };
            ClientCommand::TypingIndicator { active }
        }
        MessageType::HelpRequest => ClientCommand::HelpRequest {
            id,
            content: fields.optional_content("content", limits)?,
        },
        MessageType::ModelSelect => ClientCommand::ModelSelect {
            id,
            model_id: fields
                .model_id("model_id")?
                .ok_or_else(|| ProtocolError::new(ErrorCode::MissingField, "field `model_id` is required"))?,
        },
        MessageType::Ping => ClientCommand::Ping,
        MessageType::ListSessions => ClientCommand::ListSessions {
            id,
            page: fields.page(limits)?,
        },
        MessageType::GetHistory => ClientCommand::GetHistory {
            id,
            session_id: session_id.clone(),
            page: fields.page(limits)?,
        },
        MessageType::RenameSession => {
            let name = fields.required_content("content", limits)?;
            if name.chars().count() > MAX_SESSION_NAME_CHARS {
                return Err(ProtocolError::new(
                    ErrorCode::MessageTooLarge,
                    format!("a session name is at most {MAX_SESSION_NAME_CHARS} characters"),
                ));
            }
            ClientCommand::RenameSession {
                id,
                session_id: session_id.clone(),
                name: name.split_whitespace().collect::<Vec<_>>().join(" "),
            }
        }
        MessageType::EndSession => ClientCommand::EndSession { id },
        MessageType::Stop => ClientCommand::Stop { id },
        MessageType::Watch => ClientCommand::Watch {
            id,
            session_id: fields.required_identifier("session_id")?,
        },
        MessageType::Unwatch => ClientCommand::Unwatch {
            id,
            session_id: fields.required_identifier("session_id")?,
        },
        MessageType::Takeover => ClientCommand::Takeover {
            id,
            session_id: fields.required_identifier("session_id")?,
        },
        MessageType::Release => ClientCommand::Release {
            id,
            session_id: fields.required_identifier("session_id")?,
        },
        MessageType::RequestUpload => ClientCommand::RequestUpload {
            id,
            upload: fields.upload()?,
        },
        MessageType::Reauth => ClientCommand::Reauth {
            id,
            token: fields
                .string("token")?
                .filter(|t| !t.is_empty())
                .ok_or_else(|| ProtocolError::new(ErrorCode::MissingField, "field `token` is required"))?
                .to_owned(),
        },
        // Refused above by is_client_sendable.
        _ => {
            return Err(ProtocolError::new(
                ErrorCode::NotAllowed,
                format!("`{kind}` frames are sent by the server, not by clients"),
            ));
        }
    };
    Ok(ClientFrame { session_id, command })
}

/// Typed access to the fields of a frame, with errors that name the field.
struct Fields<'a>(&'a Map<String, Value>);

impl Fields<'_> {
    fn string(&self, name: &str) -> Result<Option<&str>, ProtocolError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(ProtocolError::new(
                ErrorCode::InvalidField,
                format!("field `{name}` must be a string"),
            )),
        }
    }

    /// Ids go into NATS subjects and Redis keys: a strict alphabet.
    fn identifier(&self, name: &str) -> Result<Option<String>, ProtocolError> {
        let Some(s) = self.string(name)? else {
            return Ok(None);
        };
        if crate::ids::is_valid_id(s) {
            Ok(Some(s.to_owned()))
        } else {
            Err(ProtocolError::new(
                ErrorCode::InvalidField,
                format!("field `{name}` must be 1 to 64 letters, digits, '-', '_', '.' or ':'"),
            ))
        }
    }

    fn required_identifier(&self, name: &str) -> Result<String, ProtocolError> {
        self.identifier(name)?
            .ok_or_else(|| ProtocolError::new(ErrorCode::MissingField, format!("field `{name}` is required")))
    }

    fn model_id(&self, name: &str) -> Result<Option<String>, ProtocolError> {
        let Some(s) = self.string(name)? else {
            return Ok(None);
        };
        let ok = !s.is_empty()
            && s.len() <= 128
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:/@".contains(&b));
        if ok {
            Ok(Some(s.to_owned()))
        } else {
            Err(ProtocolError::new(
                ErrorCode::InvalidField,
                format!("field `{name}` must be 1 to 128 letters, digits or -_.:/@"),
            ))
        }
    }

    fn timestamp(&self, name: &str) -> Result<Option<Timestamp>, ProtocolError> {
        let Some(s) = self.string(name)? else {
            return Ok(None);
        };
        Timestamp::parse(s).map(Some).ok_or_else(|| {
            ProtocolError::new(
                ErrorCode::InvalidField,
                format!("field `{name}` must be RFC 3339 UTC, like 2024-01-01T12:00:00Z"),
            )
        })
    }

    fn optional_content(&self, name: &str, limits: &InboundLimits) -> Result<Option<String>, ProtocolError> {
        let Some(raw) = self.string(name)? else {
            return Ok(None);
        };
        if raw.len() > limits.max_content_bytes {
            return Err(ProtocolError::new(
                ErrorCode::MessageTooLarge,
                format!(
                    "field `{name}` is {} bytes; the limit is {} bytes",
                    raw.len(),
                    limits.max_content_bytes
                ),
            ));
        }
        let clean = sanitize_text(raw);
        Ok((!clean.is_empty()).then_some(clean))
    }

    fn required_content(&self, name: &str, limits: &InboundLimits) -> Result<String, ProtocolError> {
        self.optional_content(name, limits)?.ok_or_else(|| {
            ProtocolError::new(
                ErrorCode::MissingField,
                format!("field `{name}` must not be empty"),
            )
        })
    }

    /// `data` of a `request_upload`.
    fn upload(&self) -> Result<UploadRequest, ProtocolError> {
        let data = match self.0.get("data") {
            Some(data @ Value::Object(_)) => data,
            None | Some(Value::Null) => {
                return Err(ProtocolError::new(
                    ErrorCode::MissingField,
                    "field `data` is required: {\"name\":…,\"size\":…,\"content_type\":…}",
                ));
            }
            Some(_) => {
                return Err(ProtocolError::new(
                    ErrorCode::InvalidField,
                    "field `data` must be an object",
                ));
            }
        };
        UploadRequest::deserialize(data)
            .map_err(|e| ProtocolError::new(ErrorCode::InvalidField, format!("field `data`: {e}")))?
            .validated()
    }

    /// `metadata.limit` (1 to 100) and `metadata.cursor`.
    fn page(&self, limits: &InboundLimits) -> Result<PageRequest, ProtocolError> {
        let metadata = self.metadata("metadata", limits)?.unwrap_or_default();
        let limit = match metadata.get("limit") {
            None => None,
            Some(v) => match v.parse::<usize>() {
                Ok(n) if (1..=100).contains(&n) => Some(n),
                _ => {
                    return Err(ProtocolError::new(
                        ErrorCode::InvalidField,
                        "metadata.limit must be a number from 1 to 100",
                    ));
                }
            },
        };
        let cursor = metadata.get("cursor").filter(|c| !c.is_empty()).cloned();
        if cursor.as_ref().is_some_and(|c| c.len() > 128) {
            return Err(ProtocolError::new(
                ErrorCode::InvalidField,
                "metadata.cursor is not one this server gave",
            ));
        }
        Ok(PageRequest { limit, cursor })
    }

    fn metadata(&self, name: &str, limits: &InboundLimits) -> Result<Option<Metadata>, ProtocolError> {
        let obj = match self.0.get(name) {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Object(obj)) => obj,
            Some(_) => {
                return Err(ProtocolError::new(
                    ErrorCode::InvalidField,
                    format!("field `{name}` must be an object of strings"),
                ));
            }
        };
        if obj.len() > limits.max_metadata_entries {
            return Err(ProtocolError::new(
                ErrorCode::MessageTooLarge,
                format!(
                    "field `{name}` has {} entries; the limit is {}",
                    obj.len(),
                    limits.max_metadata_entries
                ),
            ));
        }
        let mut out = Metadata::new();
        for (k, v) in obj {
            let Value::String(v) = v else {
                return Err(ProtocolError::new(
                    ErrorCode::InvalidField,
                    format!("`{name}.{}` must be a string", truncate(k, 64)),
                ));
            };
            if k.len() > limits.max_metadata_value_bytes || v.len() > limits.max_metadata_value_bytes {
                return Err(ProtocolError::new(
                    ErrorCode::MessageTooLarge,
                    format!(
                        "`{name}` keys and values are limited to {} bytes",
                        limits.max_metadata_value_bytes
                    ),
                ));
            }
            out.insert(sanitize_text(k), sanitize_text(v));
        }
        Ok(Some(out))
    }
}

/// Removes control characters (keeping newlines and tabs), folds `\r\n`
/// into `\n` and trims surrounding white space.
pub fn sanitize_text(raw: &str) -> String {
    let kept: String = raw
        .chars()
        .filter(|&c| c == '\n' || c == '\t' || !c.is_control())
        .filter(|&c| !matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}'))
        .collect();
    kept.trim().to_owned()
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ClientFrame, ProtocolError> {
        parse_client_frame(text, &InboundLimits::default())
    }

    fn code(text: &str) -> ErrorCode {
        parse(text).expect_err("frame should be refused").code
    }

    #[test]
    fn user_message_is_parsed_and_sanitized() {
        let frame = parse(
            r#"{"type":"user_message","session_id":"s-1","id":"c1","content":"  hi\u0000 there\r\n ","metadata":{"k":"v"}}"#,
        )
        .unwrap();
        assert_eq!(frame.session_id.as_deref(), Some("s-1"));
        let ClientCommand::UserMessage {
            id,
            content,
            metadata,
            ..
        } = frame.command
        else {
            panic!("expected a user message")
        };
        assert_eq!(id.as_deref(), Some("c1"));
        assert_eq!(content, "hi there");
        assert_eq!(metadata.unwrap().get("k").map(String::as_str), Some("v"));
    }

    #[test]
    fn malformed_frames_get_the_right_codes() {
        assert_eq!(code("{not json"), ErrorCode::InvalidMessage);
        assert_eq!(code("[1,2]"), ErrorCode::InvalidMessage);
        assert_eq!(code(r#"{"content":"x"}"#), ErrorCode::MissingField);
        assert_eq!(code(r#"{"type":7}"#), ErrorCode::InvalidField);
        assert_eq!(code(r#"{"type":"dance"}"#), ErrorCode::UnknownMessageType);
        assert_eq!(
            code(r#"{"type":"ai_response","content":"x"}"#),
            ErrorCode::NotAllowed
        );
        assert_eq!(code(r#"{"type":"user_message"}"#), ErrorCode::MissingField);
        assert_eq!(
            code(r#"{"type":"user_message","content":"   "}"#),
            ErrorCode::MissingField
        );
        assert_eq!(
            code(r#"{"type":"user_message","content":5}"#),
            ErrorCode::InvalidField
        );
        assert_eq!(
            code(r#"{"type":"user_message","content":"x","id":"a b"}"#),
            ErrorCode::InvalidField
        );
        assert_eq!(
            code(r#"{"type":"user_message","content":"x","session_id":"chat.in.>"}"#),
            ErrorCode::InvalidField
        );
        assert_eq!(
            code(r#"{"type":"user_message","content":"x","timestamp":"noon"}"#),
            ErrorCode::InvalidField
        );
        assert_eq!(
            code(r#"{"type":"user_message","content":"x","metadata":{"a":1}}"#),
            ErrorCode::InvalidField
        );
        assert_eq!(code(r#"{"type":"file_upload"}"#), ErrorCode::MissingField);
        assert_eq!(code(r#"{"type":"model_select"}"#), ErrorCode::MissingField);
        assert_eq!(
            code(r#"{"type":"typing_indicator","metadata":{"active":"maybe"}}"#),
            ErrorCode::InvalidField
        );
        assert_eq!(
            code(r#"{"type":"list_sessions","metadata":{"limit":"500"}}"#),
            ErrorCode::InvalidField
        );
        assert_eq!(code(r#"{"type":"rename_session"}"#), ErrorCode::MissingField);
        let long_name = format!(r#"{{"type":"rename_session","content":"{}"}}"#, "n".repeat(101));
        assert_eq!(code(&long_name), ErrorCode::MessageTooLarge);
        let big = format!(
            r#"{{"type":"user_message","content":"{}"}}"#,
            "x".repeat(16 * 1024 + 1)
        );
        assert_eq!(code(&big), ErrorCode::MessageTooLarge);
    }

    #[test]
    fn unknown_fields_are_ignored_for_forward_compatibility() {
        let frame = parse(r#"{"type":"ping","future_field":{"x":1}}"#).unwrap();
        assert_eq!(frame.command, ClientCommand::Ping);
    }

    #[test]
    fn admin_frames_need_a_session() {
        assert_eq!(
            parse(r#"{"type":"takeover","id":"t","session_id":"s-1"}"#)
                .unwrap()
                .command,
            ClientCommand::Takeover {
                id: Some("t".into()),
                session_id: "s-1".into()
            }
        );
        assert_eq!(
            parse(r#"{"type":"watch","session_id":"s-1"}"#).unwrap().command,
            ClientCommand::Watch {
                id: None,
                session_id: "s-1".into()
            }
        );
        assert_eq!(code(r#"{"type":"release"}"#), ErrorCode::MissingField);
        assert_eq!(
            code(r#"{"type":"unwatch","session_id":"a b"}"#),
            ErrorCode::InvalidField
        );
        assert!(MessageType::Takeover.is_admin_only());
        assert!(!MessageType::UserMessage.is_admin_only());
        assert_eq!(code(r#"{"type":"presence"}"#), ErrorCode::NotAllowed);
    }

    #[test]
    fn session_requests_read_their_pages_and_names() {
        let f = parse(
            r#"{"type":"get_history","id":"h1","session_id":"s-2","metadata":{"limit":"10","cursor":"7"}}"#,
        )
        .unwrap();
        assert_eq!(
            f.command,
            ClientCommand::GetHistory {
                id: Some("h1".into()),
                session_id: Some("s-2".into()),
                page: PageRequest {
                    limit: Some(10),
                    cursor: Some("7".into())
                },
            }
        );
        let f = parse(r#"{"type":"rename_session","content":"  Trip   to\nLisbon "}"#).unwrap();
        assert!(
            matches!(f.command, ClientCommand::RenameSession { ref name, .. } if name == "Trip to Lisbon")
        );
        let f = parse(r#"{"type":"end_session"}"#).unwrap();
        assert_eq!(f.command, ClientCommand::EndSession { id: None });
    }

    #[test]
    fn typing_indicator_reads_metadata_active() {
        let f = parse(r#"{"type":"typing_indicator","metadata":{"active":"false"}}"#).unwrap();
        assert_eq!(f.command, ClientCommand::TypingIndicator { active: false });
        let f = parse(r#"{"type":"typing_indicator"}"#).unwrap();
        assert_eq!(f.command, ClientCommand::TypingIndicator { active: true });
    }

    #[test]
    fn sanitize_removes_controls_and_bidi_overrides() {
        assert_eq!(sanitize_text("a\u{202E}b\u{7}c\n\td"), "abc\n\td");
    }
}
