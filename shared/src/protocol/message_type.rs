//! The message types of the protocol: the seed's twelve, `ping`/`pong`,
//! the session requests (`list_sessions`, `get_history`,
//! `rename_session`, `end_session`) with their answers, `stop` (stop
//! the answer streaming now), and the admin socket's `watch`, `unwatch`,
//! `takeover`, `release`, `session_state` and `presence`, and the
//! upload handshake (`request_upload` → `upload_slot`), and a fresh token
//! for an open socket (`reauth` → `reauthenticated`).

use serde::{Deserialize, Serialize};

/// The `type` field of every frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageType {
    UserMessage,
    AiResponse,
    FileUpload,
    VoiceMessage,
    Error,
    ConnectionStatus,
    TypingIndicator,
    HelpRequest,
    AdminJoin,
    AdminLeave,
    ModelSelect,
    Loading,
    Ping,
    Pong,
    ListSessions,
    SessionList,
    GetHistory,
    History,
    RenameSession,
    SessionRenamed,
    EndSession,
    /// Stop the answer streaming now (client → server).
    Stop,
    /// Admin: receive everything of a live session (admin → server).
    Watch,
    /// Admin: stop watching a session.
    Unwatch,
    /// Admin: take a session over (one admin at a time).
    Takeover,
    /// Admin: hand a taken-over session back to the assistant.
    Release,
    /// Admin: a session's state and recent messages (reply to `watch`).
    SessionState,
    /// Admin: who watches a session and who assists it (server → admins).
    Presence,
    /// Ask for a URL to upload a file or voice message to (client → server).
    RequestUpload,
    /// Where to upload: the file id and a signed URL (reply to `request_upload`).
    UploadSlot,
    /// A fresh token for the open socket, before the one it opened with
    /// expires (client → server).
    Reauth,
    /// The fresh token is accepted: its expiry (reply to `reauth`).
    Reauthenticated,
}

impl MessageType {
    /// Every type: the seed's twelve, the heartbeat pair, then the
    /// session requests and their answers.
    pub const ALL: [MessageType; 32] = [
        MessageType::UserMessage,
        MessageType::AiResponse,
        MessageType::FileUpload,
        MessageType::VoiceMessage,
        MessageType::Error,
        MessageType::ConnectionStatus,
        MessageType::TypingIndicator,
        MessageType::HelpRequest,
        MessageType::AdminJoin,
        MessageType::AdminLeave,
        MessageType::ModelSelect,
        MessageType::Loading,
        MessageType::Ping,
        MessageType::Pong,
        MessageType::ListSessions,
        MessageType::SessionList,
        MessageType::GetHistory,
        MessageType::History,
        MessageType::RenameSession,
        MessageType::SessionRenamed,
        MessageType::EndSession,
        MessageType::Stop,
        MessageType::Watch,
        MessageType::Unwatch,
        MessageType::Takeover,
        MessageType::Release,
        MessageType::SessionState,
        MessageType::Presence,
        MessageType::RequestUpload,
        MessageType::UploadSlot,
        MessageType::Reauth,
        MessageType::Reauthenticated,
    ];

    /// The wire name, as it appears in the `type` field.
    pub const fn as_str(self) -> &'static str {
        match self {
            MessageType::UserMessage => "user_message",
            MessageType::AiResponse => "ai_response",
            MessageType::FileUpload => "file_upload",
            MessageType::VoiceMessage => "voice_message",
            MessageType::Error => "error",
            MessageType::ConnectionStatus => "connection_status",
            MessageType::TypingIndicator => "typing_indicator",
            MessageType::HelpRequest => "help_request",
            MessageType::AdminJoin => "admin_join",
            MessageType::AdminLeave => "admin_leave",
            MessageType::ModelSelect => "model_select",
            MessageType::Loading => "loading",
            MessageType::Ping => "ping",
            MessageType::Pong => "pong",
            MessageType::ListSessions => "list_sessions",
            MessageType::SessionList => "session_list",
            MessageType::GetHistory => "get_history",
            MessageType::History => "history",
            MessageType::RenameSession => "rename_session",
            MessageType::SessionRenamed => "session_renamed",
            MessageType::EndSession => "end_session",
            MessageType::Stop => "stop",
            MessageType::Watch => "watch",
            MessageType::Unwatch => "unwatch",
            MessageType::Takeover => "takeover",
            MessageType::Release => "release",
            MessageType::SessionState => "session_state",
            MessageType::Presence => "presence",
            MessageType::RequestUpload => "request_upload",
            MessageType::UploadSlot => "upload_slot",
            MessageType::Reauth => "reauth",
            MessageType::Reauthenticated => "reauthenticated",
        }
    }

    /// Parses a wire name; `None` for anything that is not a protocol type.
    pub fn from_wire(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// Whether a client may send this type (the rest are server to client).
    pub(crate) const fn is_client_sendable(self) -> bool {
        matches!(
            self,
            MessageType::UserMessage
                | MessageType::FileUpload
                | MessageType::VoiceMessage
                | MessageType::TypingIndicator
                | MessageType::HelpRequest
                | MessageType::ModelSelect
                | MessageType::Ping
                | MessageType::ListSessions
                | MessageType::GetHistory
                | MessageType::RenameSession
                | MessageType::EndSession
                | MessageType::Stop
                | MessageType::Watch
                | MessageType::Unwatch
                | MessageType::Takeover
                | MessageType::Release
                | MessageType::RequestUpload
                | MessageType::Reauth
        )
    }

    /// Whether only admin sockets (`/chat/admin/ws`) may send this type.
    pub const fn is_admin_only(self) -> bool {
        matches!(
            self,
            MessageType::Watch | MessageType::Unwatch | MessageType::Takeover | MessageType::Release
        )
    }
}

impl std::fmt::Display for MessageType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_round_trip_through_serde_and_from_wire() {
        for t in MessageType::ALL {
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(json, format!("\"{}\"", t.as_str()));
            assert_eq!(MessageType::from_wire(t.as_str()), Some(t));
        }
        assert_eq!(MessageType::from_wire("USER_MESSAGE"), None);
    }
}
