//! Error codes and the error object of the seed's error format:
//! `{"type":"error","error":{"code","message","recoverable","retry_after"}}`.
//!
//! Codes follow the seed's categories: authentication, validation, service
//! and rate limiting. Each code knows whether the client can carry on after
//! it and which HTTP status it maps to when it refuses an upgrade.

use serde::{Deserialize, Serialize};

/// A machine-readable error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    // Authentication (4xx)
    /// No token, a malformed token, or a bad signature.
    InvalidToken,
    /// The token's `exp` has passed.
    TokenExpired,
    /// The token is valid but lacks the role the request needs.
    Forbidden,
    /// The browser's `Origin` is not on the allow-list.
    OriginNotAllowed,
    // Validation (4xx)
    /// The frame is not valid JSON or not a JSON object.
    InvalidMessage,
    /// The `type` is not a protocol message type.
    UnknownMessageType,
    /// A field the message type requires is absent or empty.
    MissingField,
    /// A field is present but its value is not acceptable.
    InvalidField,
    /// A frame or field is larger than the configured limit.
    MessageTooLarge,
    /// The type exists but a client may not send it.
    NotAllowed,
    /// The server does not offer this feature (yet, or in this deployment).
    Unsupported,
    /// No such session for this user (never existed, or someone else's).
    SessionNotFound,
    /// The session has ended; start a new one.
    SessionEnded,
    /// Another admin has taken the session over (one at a time).
    SessionLocked,
    // Service (5xx)
    /// The language model backend failed or timed out.
    LlmUnavailable,
    /// The database failed.
    DatabaseError,
    /// The file store failed.
    StorageError,
    /// A dependency (bus, coordinator, workers) is not answering.
    ServiceUnavailable,
    /// The server is shutting down; reconnect.
    ServerShutdown,
    /// Anything else that went wrong on the server.
    InternalError,
    // Rate limiting (429)
    /// The user sent more messages than the configured rate allows.
    RateLimited,
    /// The server holds as many connections as it may.
    ConnectionLimit,

    /// The file is larger than the configured limit.
    FileTooLarge,
    /// The file's type is not on the allow-list.
    FileTypeNotAllowed,
    /// The file's content failed the checks (executable, script, disguised
    /// or damaged file); it was deleted.
    FileRejected,
    /// No such upload for this user, or it was never completed or expired.
    FileNotFound,
}

impl ErrorCode {
    /// The wire name (`RATE_LIMITED`).
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidToken => "INVALID_TOKEN",
            ErrorCode::TokenExpired => "TOKEN_EXPIRED",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::OriginNotAllowed => "ORIGIN_NOT_ALLOWED",
            ErrorCode::InvalidMessage => "INVALID_MESSAGE",
            ErrorCode::UnknownMessageType => "UNKNOWN_MESSAGE_TYPE",
            ErrorCode::MissingField => "MISSING_FIELD",
            ErrorCode::InvalidField => "INVALID_FIELD",
            ErrorCode::MessageTooLarge => "MESSAGE_TOO_LARGE",
            ErrorCode::NotAllowed => "NOT_ALLOWED",
            ErrorCode::Unsupported => "UNSUPPORTED",
            ErrorCode::SessionNotFound => "SESSION_NOT_FOUND",
            ErrorCode::SessionEnded => "SESSION_ENDED",
            ErrorCode::SessionLocked => "SESSION_LOCKED",
            ErrorCode::LlmUnavailable => "LLM_UNAVAILABLE",
            ErrorCode::DatabaseError => "DATABASE_ERROR",
            ErrorCode::StorageError => "STORAGE_ERROR",
            ErrorCode::ServiceUnavailable => "SERVICE_UNAVAILABLE",
            ErrorCode::ServerShutdown => "SERVER_SHUTDOWN",
            ErrorCode::InternalError => "INTERNAL_ERROR",
            ErrorCode::RateLimited => "RATE_LIMITED",
            ErrorCode::ConnectionLimit => "CONNECTION_LIMIT",
            ErrorCode::FileTooLarge => "FILE_TOO_LARGE",
            ErrorCode::FileTypeNotAllowed => "FILE_TYPE_NOT_ALLOWED",
            ErrorCode::FileRejected => "FILE_REJECTED",
            ErrorCode::FileNotFound => "FILE_NOT_FOUND",
        }
    }

    /// Whether the client may keep using the connection (or retry) after it.
    pub(crate) const fn recoverable(self) -> bool {
        !matches!(
            self,
            ErrorCode::InvalidToken
                | ErrorCode::TokenExpired
                | ErrorCode::Forbidden
                | ErrorCode::OriginNotAllowed
        )
    }

    /// The HTTP status used when this error refuses a request.
    pub const fn http_status(self) -> u16 {
        match self {
            ErrorCode::InvalidToken | ErrorCode::TokenExpired => 401,
            ErrorCode::Forbidden | ErrorCode::OriginNotAllowed | ErrorCode::NotAllowed => 403,
            ErrorCode::InvalidMessage
            | ErrorCode::UnknownMessageType
            | ErrorCode::MissingField
            | ErrorCode::InvalidField => 400,
            ErrorCode::MessageTooLarge | ErrorCode::FileTooLarge => 413,
            ErrorCode::FileTypeNotAllowed => 415,
            ErrorCode::FileRejected => 422,
            ErrorCode::FileNotFound => 404,
            ErrorCode::Unsupported => 501,
            ErrorCode::SessionNotFound => 404,
            ErrorCode::SessionEnded | ErrorCode::SessionLocked => 409,
            ErrorCode::RateLimited => 429,
            ErrorCode::LlmUnavailable => 502,
            ErrorCode::ConnectionLimit
            | ErrorCode::ServiceUnavailable
            | ErrorCode::ServerShutdown
            | ErrorCode::DatabaseError
            | ErrorCode::StorageError => 503,
            ErrorCode::InternalError => 500,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `error` object of an `error` frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorInfo {
    /// What went wrong, for programs.
    pub code: ErrorCode,
    /// What went wrong, for people.
    pub message: String,
    /// Whether the connection stays usable (or a retry may succeed).
    pub recoverable: bool,
    /// Milliseconds to wait before retrying, when the server knows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

impl ErrorInfo {
    /// An error with the code's usual recoverability.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorInfo {
            code,
            message: message.into(),
            recoverable: code.recoverable(),
            retry_after: None,
        }
    }

    /// Adds a retry hint.
    pub fn retry_after(mut self, after: std::time::Duration) -> Self {
        self.retry_after = Some(u64::try_from(after.as_millis()).unwrap_or(u64::MAX).max(1));
        self
    }

    /// Marks the error as fatal: the server closes the connection after it.
    pub fn fatal(mut self) -> Self {
        self.recoverable = false;
        self
    }
}
