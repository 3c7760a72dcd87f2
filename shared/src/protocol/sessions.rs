//! What clients read about sessions: the `data` of `session_list` and
//! `history` frames, and the bodies of `GET /chat/sessions` and
//! `GET /chat/sessions/{id}/messages`.

use serde::{Deserialize, Serialize};

use super::{Message, Timestamp};

/// One session in a user's list (property 50, docs/PROPERTIES.md#p50: name, last message
/// time, message count, admin-assisted flag).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionSummary {
    /// The session id.
    pub session_id: String,
    /// Its name (generated from the first message, or given by the user).
    pub name: String,
    /// When it started.
    pub start_time: Timestamp,
    /// When it last saw a message (or a reconnect).
    pub last_activity: Timestamp,
    /// When it ended, if it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<Timestamp>,
    /// Its length in seconds, once ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<u64>,
    /// Whether it is the user's current session.
    pub is_active: bool,
    /// Messages in it.
    pub message_count: u64,
    /// Whether a person from the staff took part.
    pub admin_assisted: bool,
    /// Whether the user asked for a person.
    pub help_requested: bool,
    /// The model chosen for it, if not the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_id: Option<String>,
}

/// A page of sessions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionPage {
    /// Most recently active first.
    pub sessions: Vec<SessionSummary>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// A page of a session's messages, oldest first, as the frames the
/// client saw live (`user_message`, `ai_response` with `done: true`, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryPage {
    /// The session.
    pub session_id: String,
    /// The messages, by `seq`.
    pub messages: Vec<Message>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}
