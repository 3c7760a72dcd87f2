//! A session as the store keeps it: its record, its running totals, the
//! changes a worker writes to it, and the cursor that pages a user's
//! sessions.

use chatbox_shared::protocol::Timestamp;

use super::AdminRef;

/// A session, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// The session id.
    pub id: String,
    /// Its user.
    pub user_id: String,
    /// Its name (generated from the first message, or set by the user).
    pub name: String,
    /// The model chosen for it, if not the default.
    pub model_id: Option<String>,
    /// When it started.
    pub start_time: Timestamp,
    /// When it last saw a message or a connection.
    pub last_activity: Timestamp,
    /// When it ended.
    pub end_time: Option<Timestamp>,
    /// How long it lasted, in seconds (set when it ends).
    pub duration_s: Option<u64>,
    /// Whether it is the user's current session (not ended).
    pub is_active: bool,
    /// Whether the user asked for a person.
    pub help_requested: bool,
    /// When the user last asked for a person.
    pub help_requested_at: Option<Timestamp>,
    /// Whether an admin took part.
    pub admin_assisted: bool,
    /// The admin assisting now, if any.
    pub assisting_admin_id: Option<String>,
    /// Their name.
    pub assisting_admin_name: Option<String>,
    /// Running totals.
    pub counters: SessionCounters,
}

/// A session's running totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionCounters {
    /// Messages stored (user, AI and admin).
    pub message_count: u64,
    /// Tokens of every answer, prompt and completion.
    pub total_tokens: u64,
    /// Answers timed.
    pub response_count: u64,
    /// Their response times added up, in milliseconds.
    pub total_response_ms: u64,
    /// Average response time, in milliseconds.
    pub avg_response_ms: u64,
    /// Longest response time, in milliseconds.
    pub max_response_ms: u64,
    /// Times to the first token added up, in milliseconds.
    pub total_first_token_ms: u64,
    /// Average time to the first token, in milliseconds.
    pub avg_first_token_ms: u64,
}

impl SessionCounters {
    /// Counts one more answer that took `response_ms`, whose first token
    /// came after `first_token_ms`, and used `tokens`.
    pub(crate) fn add_answer(&mut self, tokens: u64, response_ms: u64, first_token_ms: u64) {
        self.message_count += 1;
        self.total_tokens += tokens;
        self.response_count += 1;
        self.total_response_ms += response_ms;
        self.avg_response_ms = self.total_response_ms / self.response_count;
        self.max_response_ms = self.max_response_ms.max(response_ms);
        self.total_first_token_ms += first_token_ms;
        self.avg_first_token_ms = self.total_first_token_ms / self.response_count;
    }
}

impl SessionRecord {
    /// A new, active session.
    pub fn new(id: &str, user_id: &str, now: Timestamp) -> Self {
        SessionRecord {
            id: id.to_owned(),
            user_id: user_id.to_owned(),
            name: String::new(),
            model_id: None,
            start_time: now,
            last_activity: now,
            end_time: None,
            duration_s: None,
            is_active: true,
            help_requested: false,
            help_requested_at: None,
            admin_assisted: false,
            assisting_admin_id: None,
            assisting_admin_name: None,
            counters: SessionCounters::default(),
        }
    }
}

/// Changes to a session. `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionPatch {
    /// New last activity.
    pub last_activity: Option<Timestamp>,
    /// New name.
    pub name: Option<String>,
    /// New totals (computed by the worker that holds the session).
    pub counters: Option<SessionCounters>,
    /// Active again (a resumed session).
    pub is_active: Option<bool>,
    /// The model the user chose.
    pub model_id: Option<String>,
    /// The user asked for a person at this time: sets `help_requested`
    /// too.
    pub help_requested_at: Option<Timestamp>,
    /// Whether an admin took part.
    pub admin_assisted: Option<bool>,
    /// The admin assisting now: `Some(None)` clears them.
    pub assisting_admin: Option<Option<AdminRef>>,
}

/// Where a page of a user's sessions starts: after this session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionCursor {
    /// Its last activity.
    pub last_activity: Timestamp,
    /// Its id.
    pub id: String,
}

impl SessionCursor {
    /// `"<millis>_<id>"`: opaque to clients.
    pub fn encode(&self) -> String {
        format!("{}_{}", self.last_activity.as_millis(), self.id)
    }

    /// Parses what [`SessionCursor::encode`] wrote.
    pub fn decode(text: &str) -> Option<Self> {
        let (ms, id) = text.split_once('_')?;
        Some(SessionCursor {
            last_activity: Timestamp::from_millis(ms.parse().ok()?),
            id: id.to_owned(),
        })
    }
}
