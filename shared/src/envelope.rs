//! What crosses the backplane between gateways and workers.
//!
//! Payloads are JSON. Routing facts a receiver needs before it parses the
//! payload (session, user, frame type, audience) and the W3C trace context
//! travel in NATS headers, named in [`headers`]. Frames on `chat.out` are
//! the exact bytes a client receives, so a gateway forwards them without
//! parsing.

use serde::{Deserialize, Serialize};

use crate::protocol::{ErrorCode, FinishReason, Metadata, Sender, Timestamp};

/// Header names used on the bus.
pub mod headers {
    /// The session a message belongs to.
    pub const SESSION: &str = "Chatbox-Session";
    /// The user a message is from or for.
    pub const USER: &str = "Chatbox-User";
    /// The protocol `type` of a frame on `chat.out` (of each frame, comma
    /// separated, in a batch).
    pub const TYPE: &str = "Chatbox-Type";
    /// Who on the session should receive a frame on `chat.out`; see [`super::Audience`].
    pub const AUDIENCE: &str = "Chatbox-Audience";
    /// W3C trace context.
    pub const TRACEPARENT: &str = "traceparent";
    /// The session sequence number of a stored frame on `chat.out` (its
    /// `seq`): a gateway delivers each one once, so a turn run again after
    /// its worker died does not echo the user's message a second time.
    /// In a batch, one entry per frame (`crate::frame_batch`).
    pub const SEQ: &str = "Chatbox-Seq";
    /// How many frames a batched `chat.out` message holds
    /// (`crate::frame_batch`); absent for a single frame.
    pub const FRAMES: &str = "Chatbox-Frames";
    /// The turn a frame on `chat.out` belongs to, as `<message_id>/<delivery>`:
    /// once a gateway has seen a later delivery of the same message (a
    /// worker took over the turn), frames of an earlier one are dropped.
    pub const TURN: &str = "Chatbox-Turn";
}

/// RPC method names (`chat.rpc.<method>`).
pub mod rpc {
    /// Open a new session or restore the user's active one.
    pub const OPEN_SESSION: &str = "session.open";
    /// A user's sessions.
    pub const LIST_SESSIONS: &str = "sessions.list";
    /// A session's messages.
    pub const SESSION_HISTORY: &str = "sessions.history";
    /// Rename a session.
    pub const RENAME_SESSION: &str = "sessions.rename";
    /// End a session.
    pub const END_SESSION: &str = "sessions.end";
    /// The models users may pick.
    pub const LIST_MODELS: &str = "models.list";
    /// Admin: every user's sessions, filtered and sorted.
    pub const ADMIN_SESSIONS: &str = "admin.sessions";
    /// Admin: one session, its recent messages and its takeovers.
    pub const ADMIN_SESSION: &str = "admin.session";
    /// Admin: session metrics over a period.
    pub const ADMIN_METRICS: &str = "admin.metrics";
    /// A signed URL to upload a file to.
    pub const UPLOAD_SLOT: &str = "uploads.slot";
}

/// The claims of a user's token that go to the models with each message
/// (the configuration names them: `inputs_from_claims`), by claim name.
pub type ForwardedClaims = std::collections::BTreeMap<String, serde_json::Value>;

/// An accepted client message, as a gateway hands it to the workers on
/// `chat.in.<sid>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboundEnvelope {
    /// The session.
    pub session_id: String,
    /// Who sent it (the JWT `sub`).
    pub user_id: String,
    /// The sender's display name, from the JWT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    /// The sender's token claims the configuration forwards to the models
    /// (`inputs_from_claims`); none other ever travels.
    #[serde(default, skip_serializing_if = "ForwardedClaims::is_empty")]
    pub claims: ForwardedClaims,
    /// The sender's role in the conversation.
    pub sender: Sender,
    /// Unique within the session: the client's id when it gave one.
    pub message_id: String,
    /// The client's own id, echoed back so it can match its message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// What the message is.
    pub body: InboundBody,
    /// When the gateway accepted it.
    pub received_at: Timestamp,
    /// The gateway that accepted it.
    pub gateway: String,
}

/// The content of an inbound message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum InboundBody {
    /// Text for the assistant.
    UserMessage {
        content: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        model_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        metadata: Option<Metadata>,
    },
    /// The model for this and every later turn of the session.
    ModelSelect { model_id: String },
    /// The user asks for a person.
    HelpRequest {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        content: Option<String>,
    },
    /// An admin took the session over (the gateway holds the lock).
    AdminJoin {
        admin_id: String,
        admin_name: String,
        since: Timestamp,
    },
    /// A takeover ended; the assistant answers again.
    AdminLeave {
        admin_id: String,
        admin_name: String,
        since: Timestamp,
        reason: TakeoverEnd,
    },
    /// Text from the admin who has taken the session over (the envelope's
    /// `user_id` and `user_name` are the admin's).
    AdminMessage { content: String },
    /// A file the user uploaded, shared in the conversation.
    FileUpload {
        file_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        content: Option<String>,
    },
    /// A voice message the user uploaded.
    VoiceMessage { file_id: String },
}

impl InboundBody {
    /// A short label for logs and metrics.
    pub const fn kind(&self) -> &'static str {
        match self {
            InboundBody::UserMessage { .. } => "user_message",
            InboundBody::ModelSelect { .. } => "model_select",
            InboundBody::HelpRequest { .. } => "help_request",
            InboundBody::AdminJoin { .. } => "admin_join",
            InboundBody::AdminLeave { .. } => "admin_leave",
            InboundBody::AdminMessage { .. } => "admin_message",
            InboundBody::FileUpload { .. } => "file_upload",
            InboundBody::VoiceMessage { .. } => "voice_message",
        }
    }

    /// Whether the assistant answers it: what the user says (text, a file,
    /// a voice message), unless a person has taken the session over.
    pub const fn is_answered(&self) -> bool {
        matches!(
            self,
            InboundBody::UserMessage { .. }
                | InboundBody::FileUpload { .. }
                | InboundBody::VoiceMessage { .. }
        )
    }
}

/// How a takeover ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TakeoverEnd {
    /// The admin handed the session back.
    Released,
    /// The admin's socket dropped and they did not come back within the
    /// grace period.
    Disconnected,
}

impl TakeoverEnd {
    /// The name kept in the audit log.
    pub const fn as_str(self) -> &'static str {
        match self {
            TakeoverEnd::Released => "released",
            TakeoverEnd::Disconnected => "disconnected",
        }
    }
}

/// Stop what is being answered to a session, on `chat.stop.<sid>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopAnswer {
    /// The session.
    pub session_id: String,
    /// Who asked.
    pub user_id: String,
    /// Why.
    pub reason: StopReason,
    /// Answers to messages received up to this moment are stopped.
    pub at: Timestamp,
}

/// Why an answer is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The user pressed stop.
    User,
    /// The user closed the conversation (a normal close of the socket).
    Left,
    /// An admin took the session over.
    Takeover,
}

impl StopReason {
    /// How the stopped answer is marked (`finish_reason`).
    pub const fn finish_reason(self) -> FinishReason {
        match self {
            StopReason::User => FinishReason::Stopped,
            StopReason::Left => FinishReason::UserLeft,
            StopReason::Takeover => FinishReason::AdminTakeover,
        }
    }
}

/// Which sockets of a session a frame on `chat.out` is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Audience {
    /// The user and every admin watching.
    All,
    /// Only the user.
    User,
    /// Only admins watching the session.
    Admins,
}

impl Audience {
    /// The header value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Audience::All => "all",
            Audience::User => "user",
            Audience::Admins => "admins",
        }
    }

    /// Parses a header value; anything unknown means everyone.
    pub fn from_header(value: Option<&str>) -> Self {
        match value {
            Some("user") => Audience::User,
            Some("admins") => Audience::Admins,
            _ => Audience::All,
        }
    }
}

/// A control message for one gateway, on `chat.ctl.<pod>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Control {
    /// Close connection `conn_id` (kill switch): the session is now owned
    /// by a newer connection.
    Kill {
        conn_id: u64,
        session_id: String,
        reason: KillReason,
    },
    /// Subscribe to `chat.out.<session_id>` if a socket here belongs to the
    /// session, then reply: a worker is about to publish frames the gateway
    /// may not be listening for.
    Attach { session_id: String },
}

/// Why a connection is killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KillReason {
    /// The user opened the session on another connection.
    ConnectedElsewhere,
    /// The session ended.
    SessionEnded,
}

/// Reply to [`Control::Attach`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachReply {
    /// Whether a local socket belongs to the session (and is now listening).
    pub attached: bool,
}

/// Request of [`rpc::OPEN_SESSION`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenSession {
    /// The user.
    pub user_id: String,
    /// The session the client asks to resume, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_session_id: Option<String>,
    /// Start a new session even if one is active (which then ends).
    #[serde(default)]
    pub new_session: bool,
}

/// Request of [`rpc::LIST_SESSIONS`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListSessions {
    /// Whose sessions.
    pub user_id: String,
    /// Page size.
    pub limit: usize,
    /// Where the previous page ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// Request of [`rpc::SESSION_HISTORY`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionHistory {
    /// Who asks (must own the session).
    pub user_id: String,
    /// The session.
    pub session_id: String,
    /// Page size.
    pub limit: usize,
    /// Where the previous page ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// Request of [`rpc::RENAME_SESSION`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenameSession {
    /// Who asks (must own the session).
    pub user_id: String,
    /// The session.
    pub session_id: String,
    /// Its new name.
    pub name: String,
}

/// Request of [`rpc::UPLOAD_SLOT`]; the answer is an
/// [`UploadSlot`](crate::protocol::uploads::UploadSlot).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadSlotRequest {
    /// Who uploads.
    pub user_id: String,
    /// The session the file is for.
    pub session_id: String,
    /// What they are about to upload (validated by the gateway).
    pub upload: crate::protocol::uploads::UploadRequest,
}

/// Request of [`rpc::END_SESSION`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndSession {
    /// Who asks (must own the session).
    pub user_id: String,
    /// The session.
    pub session_id: String,
}

/// Reply of [`rpc::OPEN_SESSION`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenedSession {
    /// The session the connection belongs to from now on.
    pub session_id: String,
    /// Whether it is an earlier session resumed (`false`: a new one).
    pub restored: bool,
    /// The user's previously active session when it is a different one:
    /// its sockets must be closed (one active session per user).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_session_id: Option<String>,
    /// The model the session uses (its choice, or the default).
    #[serde(default)]
    pub model_id: String,
    /// The models the user may pick, default first.
    #[serde(default)]
    pub models: Vec<ModelInfo>,
}

/// A model users may pick.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// What `model_select` names.
    pub id: String,
    /// What people see.
    pub name: String,
    /// The kind of provider (`openai`, `anthropic`, `dify`, `demo`).
    pub provider: String,
    /// Whether it answers when nothing was chosen.
    pub default: bool,
}

/// Reply of [`rpc::LIST_MODELS`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelList {
    /// Default first.
    pub models: Vec<ModelInfo>,
}

/// The reply of any RPC: `{"ok": …}` or `{"error": {…}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RpcReply<T> {
    /// It worked.
    Ok(T),
    /// It did not.
    Error(RpcError),
}

/// Why an RPC failed, in the client protocol's terms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct RpcError {
    /// The client-facing code.
    pub code: ErrorCode,
    /// A sentence for people.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inbound_envelope_round_trips() {
        let env = InboundEnvelope {
            session_id: "s".into(),
            user_id: "u".into(),
            user_name: Some("Ann".into()),
            claims: ForwardedClaims::from([("tier".to_owned(), serde_json::json!("gold"))]),
            sender: Sender::User,
            message_id: "m".into(),
            client_id: None,
            body: InboundBody::UserMessage {
                content: "hi".into(),
                model_id: None,
                metadata: None,
            },
            received_at: Timestamp::from_millis(1),
            gateway: "gw".into(),
        };
        let json = serde_json::to_string(&env).unwrap();
        assert!(
            json.contains(r#""body":{"type":"user_message","content":"hi"}"#),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<InboundEnvelope>(&json).unwrap(), env);
    }

    #[test]
    fn control_and_rpc_reply_shapes() {
        let kill = Control::Kill {
            conn_id: 7,
            session_id: "s".into(),
            reason: KillReason::ConnectedElsewhere,
        };
        assert_eq!(
            serde_json::to_string(&kill).unwrap(),
            r#"{"op":"kill","conn_id":7,"session_id":"s","reason":"connected_elsewhere"}"#
        );
        let reply: RpcReply<AttachReply> = RpcReply::Ok(AttachReply { attached: true });
        assert_eq!(
            serde_json::to_string(&reply).unwrap(),
            r#"{"ok":{"attached":true}}"#
        );
    }
}
