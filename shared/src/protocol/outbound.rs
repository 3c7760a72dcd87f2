//! Server frames out: one constructor per kind of frame the server sends,
//! so every frame of a kind has the same shape wherever it is built.

use super::{ErrorInfo, Message, MessageType, Metadata, Sender, Timestamp};

/// Why a connection's status changed; the `metadata.status` and
/// `metadata.reason` of a `connection_status` frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusReason {
    /// A fresh session was started for this connection.
    NewSession,
    /// The connection resumed the user's earlier session.
    Restored,
    /// The user connected somewhere else; this connection is closed.
    ConnectedElsewhere,
    /// The server lost ownership of the session; reconnect.
    OwnershipLost,
    /// The server is shutting down; reconnect (another server will answer).
    ServerShutdown,
    /// The client was silent for too long.
    IdleTimeout,
    /// The client could not keep up with the frames sent to it.
    SlowConsumer,
    /// The session was ended (by the user, or after the reconnect timeout);
    /// connect again for a new one.
    SessionEnded,
    /// The token the socket was opened with expired and no fresh one came
    /// (`reauth`); connect again with a new token.
    TokenExpired,
}

impl StatusReason {
    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            StatusReason::NewSession => "new_session",
            StatusReason::Restored => "restored",
            StatusReason::ConnectedElsewhere => "connected_elsewhere",
            StatusReason::OwnershipLost => "ownership_lost",
            StatusReason::ServerShutdown => "server_shutdown",
            StatusReason::IdleTimeout => "idle_timeout",
            StatusReason::SlowConsumer => "slow_consumer",
            StatusReason::SessionEnded => "session_ended",
            StatusReason::TokenExpired => "token_expired",
        }
    }

    /// Whether this status ends the connection.
    pub(crate) const fn closes(self) -> bool {
        !matches!(self, StatusReason::NewSession | StatusReason::Restored)
    }

    /// What the user should read.
    pub(crate) const fn description(self) -> &'static str {
        match self {
            StatusReason::NewSession => "Connected. A new conversation has started.",
            StatusReason::Restored => "Reconnected. Your conversation continues.",
            StatusReason::ConnectedElsewhere => {
                "This conversation was opened in another window or device, so this one was closed."
            }
            StatusReason::OwnershipLost => {
                "The connection to this conversation was lost. Reconnecting will restore it."
            }
            StatusReason::ServerShutdown => {
                "The server is restarting. Reconnect to continue where you left off."
            }
            StatusReason::IdleTimeout => "The connection was idle for too long and was closed.",
            StatusReason::SlowConsumer => {
                "The connection could not keep up and was closed. Reconnect to continue."
            }
            StatusReason::SessionEnded => "This conversation has ended. Connect again to start a new one.",
            StatusReason::TokenExpired => {
                "Your sign-in expired. Sign in again to continue this conversation."
            }
        }
    }

    /// The reason text of the WebSocket close frame that goes with it.
    pub const fn close_reason(self) -> &'static str {
        match self {
            StatusReason::NewSession | StatusReason::Restored => "",
            StatusReason::ConnectedElsewhere => "connected elsewhere",
            StatusReason::OwnershipLost => "session moved; reconnect",
            StatusReason::ServerShutdown => "server shutting down; reconnect",
            StatusReason::IdleTimeout => "idle timeout",
            StatusReason::SlowConsumer => "too slow to keep up",
            StatusReason::SessionEnded => "session ended",
            StatusReason::TokenExpired => "token expired",
        }
    }

    /// The WebSocket close code that goes with it.
    pub const fn close_code(self) -> u16 {
        match self {
            StatusReason::NewSession | StatusReason::Restored => 1000,
            StatusReason::ServerShutdown => 1001,
            StatusReason::IdleTimeout => 1000,
            StatusReason::SlowConsumer => 1008,
            StatusReason::SessionEnded => 4003,
            StatusReason::ConnectedElsewhere => 4001,
            StatusReason::OwnershipLost => 4002,
            StatusReason::TokenExpired => 4401,
        }
    }
}

fn framed(kind: MessageType, session_id: Option<&str>) -> Message {
    let mut m = Message::new(kind);
    m.session_id = session_id.map(str::to_owned);
    m.timestamp = Some(Timestamp::now());
    m
}

fn meta<const N: usize>(pairs: [(&str, String); N]) -> Option<Metadata> {
    Some(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

/// An `error` frame.
pub fn error(session_id: Option<&str>, info: ErrorInfo) -> Message {
    let mut m = framed(MessageType::Error, session_id);
    m.error = Some(info);
    m
}

/// The answer to a client's `ping`.
pub fn pong() -> Message {
    framed(MessageType::Pong, None)
}

/// A `connection_status` frame.
pub fn connection_status(
    session_id: &str,
    reason: StatusReason,
    reconnect_timeout: std::time::Duration,
) -> Message {
    let mut m = framed(MessageType::ConnectionStatus, Some(session_id));
    m.content = Some(reason.description().to_owned());
    let status = if reason.closes() { "closed" } else { "connected" };
    m.metadata = meta([
        ("status", status.to_owned()),
        ("reason", reason.as_str().to_owned()),
        ("restored", (reason == StatusReason::Restored).to_string()),
        ("reconnect_timeout_s", reconnect_timeout.as_secs().to_string()),
    ]);
    m
}

/// The loading indicator for the answer `message_id`: on when a turn
/// starts (a client resets any partial text it holds for that id), off
/// when it ends.
pub fn loading(session_id: &str, message_id: &str, active: bool) -> Message {
    let mut m = framed(MessageType::Loading, Some(session_id));
    m.message_id = Some(message_id.to_owned());
    m.metadata = meta([("active", active.to_string())]);
    m
}

/// The typing indicator of `sender`.
pub fn typing(session_id: &str, sender: Sender, active: bool) -> Message {
    let mut m = framed(MessageType::TypingIndicator, Some(session_id));
    m.sender = Some(sender);
    m.metadata = meta([("active", active.to_string())]);
    m
}

/// One streamed piece of an answer: `content` is the new text only.
pub fn ai_chunk(session_id: &str, message_id: &str, delta: String) -> Message {
    let mut m = framed(MessageType::AiResponse, Some(session_id));
    m.message_id = Some(message_id.to_owned());
    m.sender = Some(Sender::Ai);
    m.content = Some(delta);
    m.done = Some(false);
    m
}

/// The whole answer so far, replacing what the client shows for
/// `message_id` (`metadata.replace: "true"`): the provider rewrote the
/// answer (Dify's output moderation), or the answer started again.
pub fn ai_replace(session_id: &str, message_id: &str, text: String) -> Message {
    let mut m = ai_chunk(session_id, message_id, text);
    m.metadata = meta([("replace", "true".to_owned())]);
    m
}

/// The answer `message_id` is being worked on before (or between) its
/// text: an agent calls a tool (`metadata.status: "working"`, and the
/// tool in `metadata.tool` when the provider names it). A `loading` frame,
/// so clients that know only the seed's types keep their indicator on.
pub fn working(session_id: &str, message_id: &str, tool: Option<&str>) -> Message {
    let mut m = loading(session_id, message_id, true);
    let meta = m.metadata.get_or_insert_with(Metadata::new);
    meta.insert("status".into(), "working".into());
    if let Some(tool) = tool {
        meta.insert("tool".into(), tool.to_owned());
    }
    m
}

/// The user's message `client_id` is accepted — stored in the session's
/// queue, durable — and its answer `message_id` is on its way, though no
/// worker has started it yet (`metadata.status: "queued"`). Sent by the
/// gateway to the sender alone as soon as the queue has the message,
/// whatever the load; the echo (with the message's `seq`) follows when a
/// worker takes the turn. A `loading` frame, so clients that know only the
/// seed's types show their indicator.
pub fn queued(session_id: &str, client_id: Option<&str>, message_id: &str) -> Message {
    let mut m = loading(session_id, message_id, true);
    m.id = client_id.map(str::to_owned);
    let meta = m.metadata.get_or_insert_with(Metadata::new);
    meta.insert("status".into(), "queued".into());
    m
}

/// Token and timing figures of a finished answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnswerStats {
    /// Tokens of the prompt.
    pub prompt_tokens: u64,
    /// Tokens of the answer.
    pub completion_tokens: u64,
    /// From the start of the turn to the first token.
    pub first_token_ms: u64,
    /// From the start of the turn to the last token.
    pub response_time_ms: u64,
}

/// The last frame of an answer: `done: true` and the *whole* text in
/// `content`, so a client that missed a chunk still ends with the full
/// answer.
pub fn ai_final(
    session_id: &str,
    message_id: &str,
    seq: Option<u64>,
    full_text: String,
    model_id: &str,
    stats: &AnswerStats,
) -> Message {
    let mut m = framed(MessageType::AiResponse, Some(session_id));
    m.message_id = Some(message_id.to_owned());
    m.seq = seq;
    m.sender = Some(Sender::Ai);
    m.content = Some(full_text);
    m.model_id = Some(model_id.to_owned());
    m.done = Some(true);
    m.metadata = meta([
        ("prompt_tokens", stats.prompt_tokens.to_string()),
        ("completion_tokens", stats.completion_tokens.to_string()),
        ("first_token_ms", stats.first_token_ms.to_string()),
        ("response_time_ms", stats.response_time_ms.to_string()),
    ]);
    m
}

/// The confirmation of `model_select`: the session's model from now on.
pub fn model_selected(request_id: Option<&str>, session_id: &str, model_id: &str, name: &str) -> Message {
    let mut m = framed(MessageType::ModelSelect, Some(session_id));
    m.id = request_id.map(str::to_owned);
    m.model_id = Some(model_id.to_owned());
    m.content = Some(name.to_owned());
    m
}

/// The answer to a request (`session_list`, `history`, `session_renamed`):
/// the request's `id`, and its result in `data`.
pub fn reply(
    kind: MessageType,
    request_id: Option<&str>,
    session_id: Option<&str>,
    data: serde_json::Value,
) -> Message {
    let mut m = framed(kind, session_id);
    m.id = request_id.map(str::to_owned);
    m.data = Some(data);
    m
}

/// An `error` frame that answers the request `request_id`.
pub fn error_reply(request_id: Option<&str>, session_id: Option<&str>, info: ErrorInfo) -> Message {
    let mut m = error(session_id, info);
    m.id = request_id.map(str::to_owned);
    m
}
