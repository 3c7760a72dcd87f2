//! What admins read and send: the bodies of `/chat/admin/*`, the `data`
//! of the admin socket's `session_state` and `presence` frames, and the
//! requests gateways pass on to workers for them.

use serde::{Deserialize, Serialize};

use super::sessions::SessionSummary;
use super::{Message, Timestamp};

/// An admin, as the console shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminRef {
    /// The admin's user id.
    pub admin_id: String,
    /// Their display name.
    pub admin_name: String,
    /// Since when (a takeover's start); absent for watchers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Timestamp>,
}

/// Who is on a session besides its user: the `data` of `presence`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Presence {
    /// The admins watching it.
    pub watchers: Vec<AdminRef>,
    /// The admin who has taken it over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assisting: Option<AdminRef>,
}

/// Which sessions, by their state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    /// Not ended.
    Active,
    /// Ended.
    Ended,
}

/// How the admin session list is ordered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdminSort {
    /// When the session started.
    #[default]
    StartTime,
    /// When it last saw a message.
    LastActivity,
    /// Tokens used.
    Tokens,
    /// Average response time.
    ResponseTime,
}

/// `asc` or `desc`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    /// Smallest first.
    Asc,
    /// Largest (latest) first.
    #[default]
    Desc,
}

/// Request of `admin.sessions` (the query of `GET /chat/admin/sessions`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminSessionsQuery {
    /// Only this user's sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Only active or only ended sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<SessionStatus>,
    /// Only sessions whose user asked (or did not ask) for a person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub help_requested: Option<bool>,
    /// Only sessions an admin took part in (or not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_assisted: Option<bool>,
    /// Sessions that started at or after this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Timestamp>,
    /// Sessions that started before this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Timestamp>,
    /// The order.
    #[serde(default)]
    pub sort: AdminSort,
    /// Its direction.
    #[serde(default)]
    pub order: Order,
    /// Page size (1 to 100).
    pub limit: usize,
    /// `next_cursor` of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// A session as the admin console lists it: what its user sees in their
/// own list, plus whose it is, its figures, and what is live (where its
/// user is connected, who assists, who watches).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminSessionView {
    /// Id, name, times, flags, message count, model.
    #[serde(flatten)]
    pub summary: SessionSummary,
    /// Its user.
    pub user_id: String,
    /// When its user last asked for a person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub help_requested_at: Option<Timestamp>,
    /// Tokens its answers used.
    pub total_tokens: u64,
    /// Average response time, in milliseconds.
    pub avg_response_ms: u64,
    /// Longest response time, in milliseconds.
    pub max_response_ms: u64,
    /// Whether its user is connected now.
    pub connected: bool,
    /// The gateway pod the user is connected to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// The admin who has taken it over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assisting: Option<AdminRef>,
    /// The admins watching it.
    pub watchers: Vec<AdminRef>,
}

/// Reply of `admin.sessions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminSessionList {
    /// This page.
    pub sessions: Vec<AdminSessionView>,
    /// Sessions matching the filters, in all.
    pub total: u64,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Request of `admin.session`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminSessionRequest {
    /// The session.
    pub session_id: String,
    /// How many of its latest messages to include.
    pub messages: usize,
}

/// A takeover in a session's audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TakeoverView {
    /// The admin's user id.
    pub admin_id: String,
    /// Their name.
    pub admin_name: String,
    /// When it began.
    pub started_at: Timestamp,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<Timestamp>,
    /// How (`released`, `disconnected`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_reason: Option<String>,
}

/// Reply of `admin.session` (and the `data` of `session_state`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminSessionDetail {
    /// The session.
    pub session: AdminSessionView,
    /// Its latest messages, oldest first, as their frames.
    pub messages: Vec<Message>,
    /// Its takeovers, oldest first.
    pub takeovers: Vec<TakeoverView>,
}

/// Request of `admin.metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricsQuery {
    /// Start of the period.
    pub from: Timestamp,
    /// End of the period.
    pub to: Timestamp,
    /// Split the period into this many equal buckets for charts
    /// ([`AdminMetrics::series`]); none when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buckets: Option<u32>,
}

/// Most buckets one metrics request may ask for.
pub const MAX_METRICS_BUCKETS: u32 = 200;

/// Reply of `admin.metrics` (seed "Admin Metrics Data Model").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdminMetrics {
    /// Start of the period.
    pub from: Timestamp,
    /// End of the period.
    pub to: Timestamp,
    /// Sessions that started in the period.
    pub total_sessions: u64,
    /// Sessions not ended, now.
    pub active_sessions: u64,
    /// Sessions with a connected user, now.
    pub connected_sessions: u64,
    /// Average of the concurrency samples in the period.
    pub avg_concurrent: f64,
    /// Largest concurrency sample in the period.
    pub max_concurrent: u64,
    /// Samples the averages come from.
    pub samples: u64,
    /// Tokens used by the period's sessions.
    pub total_tokens: u64,
    /// Their average response time, in milliseconds.
    pub avg_response_ms: u64,
    /// Their longest response time, in milliseconds.
    pub max_response_ms: u64,
    /// How many of them an admin took part in.
    pub admin_assisted: u64,
    /// How many of them asked for a person.
    pub help_requests: u64,
    /// The period in equal buckets, oldest first, when asked for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub series: Vec<MetricsBucket>,
}

/// One bucket of [`AdminMetrics::series`]: the same figures over
/// `[from, to)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsBucket {
    /// Start of the bucket.
    pub from: Timestamp,
    /// End of the bucket.
    pub to: Timestamp,
    /// Sessions that started in it.
    pub sessions: u64,
    /// Tokens of those sessions.
    pub tokens: u64,
    /// Their average response time, in milliseconds.
    pub avg_response_ms: u64,
    /// Their longest response time, in milliseconds.
    pub max_response_ms: u64,
    /// Average of the concurrency samples taken in it.
    pub avg_concurrent: f64,
    /// Largest concurrency sample taken in it.
    pub max_concurrent: u64,
    /// Sessions that started in it and asked for a person.
    pub help_requests: u64,
    /// Sessions that started in it and an admin took part in.
    pub admin_assisted: u64,
}
