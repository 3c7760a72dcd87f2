//! What the admin console asks of the store and keeps in it: the admin
//! named in sessions and takeovers, the filtered and sorted list of every
//! user's sessions and the totals over a period, the takeover audit log
//! and the samples of how many sessions were live.

use chatbox_shared::protocol::Timestamp;

use super::SessionRecord;

/// An admin, as sessions and the audit log name them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminRef {
    /// The admin's user id.
    pub id: String,
    /// Their display name.
    pub name: String,
}

/// How the admin session list is ordered (ties broken by session id, in
/// the same direction).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SessionSort {
    /// By start time.
    #[default]
    StartTime,
    /// By last activity.
    LastActivity,
    /// By tokens used.
    Tokens,
    /// By average response time.
    ResponseTime,
}

impl SessionSort {
    /// The stored field it orders by (the same name in every adapter).
    pub(crate) fn field(self) -> &'static str {
        match self {
            SessionSort::StartTime => "start_time",
            SessionSort::LastActivity => "last_activity",
            SessionSort::Tokens => "total_tokens",
            SessionSort::ResponseTime => "avg_response_time",
        }
    }
}

/// A filtered, sorted page of every user's sessions (admin console).
/// Filters left `None` match every session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdminSessionQuery {
    /// Only this user's sessions.
    pub user_id: Option<String>,
    /// Only active (`true`) or ended (`false`) sessions.
    pub active: Option<bool>,
    /// Only sessions where the user did (or did not) ask for a person.
    pub help_requested: Option<bool>,
    /// Only sessions an admin did (or did not) take part in.
    pub admin_assisted: Option<bool>,
    /// Only sessions that started at or after this time.
    pub started_from: Option<Timestamp>,
    /// Only sessions that started before this time.
    pub started_to: Option<Timestamp>,
    /// The order.
    pub sort: SessionSort,
    /// Largest first.
    pub descending: bool,
    /// Matching sessions to skip.
    pub offset: usize,
    /// At most this many sessions (0: none, only the total).
    pub limit: usize,
}

/// One page of [`Store::admin_sessions`](super::Store::admin_sessions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminSessionPage {
    /// The page, decrypted.
    pub sessions: Vec<SessionRecord>,
    /// Matching sessions in all.
    pub total: u64,
}

/// Totals over the sessions that started in a period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionAggregates {
    /// Sessions.
    pub total_sessions: u64,
    /// Their tokens.
    pub total_tokens: u64,
    /// Their answers timed.
    pub response_count: u64,
    /// Those answers' response times added up, in milliseconds.
    pub total_response_ms: u64,
    /// The longest response time, in milliseconds.
    pub max_response_ms: u64,
    /// Sessions an admin took part in.
    pub admin_assisted: u64,
    /// Sessions where the user asked for a person.
    pub help_requests: u64,
}

/// A takeover of a session by an admin, for the audit log (property 56: docs/PROPERTIES.md#p56).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TakeoverRecord {
    /// Unique; chosen by the caller.
    pub id: String,
    /// The session taken over.
    pub session_id: String,
    /// Its user.
    pub user_id: String,
    /// The admin who took it over.
    pub admin: AdminRef,
    /// When the takeover started.
    pub started_at: Timestamp,
    /// When it ended.
    pub ended_at: Option<Timestamp>,
    /// Why it ended: `"released"`, `"disconnected"`, `"session_ended"`, …
    pub end_reason: Option<String>,
}

/// The number of live sessions at one moment (property 58: docs/PROPERTIES.md#p58).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConcurrencySample {
    /// The moment.
    pub at: Timestamp,
    /// Sessions live then.
    pub concurrent: u64,
}
