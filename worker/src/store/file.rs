//! A file as the store keeps it: what it is, where it is in its life
//! (pending → ready, rejected or expired), its record, and the change of
//! status a worker writes. Its bytes are in the blob store.

use chatbox_shared::protocol::Timestamp;

/// What a stored file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A file the user attached.
    Upload,
    /// A voice message the user recorded.
    Voice,
    /// A file a model produced.
    Generated,
}

impl FileKind {
    /// Its stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            FileKind::Upload => "upload",
            FileKind::Voice => "voice",
            FileKind::Generated => "generated",
        }
    }

    /// Reads what [`FileKind::as_str`] wrote.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "upload" => Some(FileKind::Upload),
            "voice" => Some(FileKind::Voice),
            "generated" => Some(FileKind::Generated),
            _ => None,
        }
    }
}

/// Where a file is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileStatus {
    /// Its upload slot is open; no bytes accepted yet.
    Pending,
    /// Its bytes are stored and checked.
    Ready,
    /// Its bytes were refused (see [`FileRecord::reason`]).
    Rejected,
    /// Its upload slot ended before the upload did.
    Expired,
}

impl FileStatus {
    /// Its stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            FileStatus::Pending => "pending",
            FileStatus::Ready => "ready",
            FileStatus::Rejected => "rejected",
            FileStatus::Expired => "expired",
        }
    }

    /// Reads what [`FileStatus::as_str`] wrote.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "pending" => Some(FileStatus::Pending),
            "ready" => Some(FileStatus::Ready),
            "rejected" => Some(FileStatus::Rejected),
            "expired" => Some(FileStatus::Expired),
            _ => None,
        }
    }
}

/// A file a user uploaded (or a model produced), as stored (`files`
/// collection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRecord {
    /// Unique; chosen by the caller.
    pub id: String,
    /// Its user.
    pub user_id: String,
    /// The session it belongs to.
    pub session_id: String,
    /// What it is.
    pub kind: FileKind,
    /// Where it is in its life.
    pub status: FileStatus,
    /// Its name as the user gave it (sealed, context [`file_context`](super::file_context)).
    pub name: String,
    /// The media type the client declared.
    pub declared_type: String,
    /// The media type found in its bytes (once ready).
    pub media_type: Option<String>,
    /// The size the client declared, in bytes.
    pub declared_size: u64,
    /// Its actual size, in bytes (once ready).
    pub size: Option<u64>,
    /// Its object key in the blob store.
    pub key: String,
    /// When it was recorded.
    pub created_at: Timestamp,
    /// When its upload slot ends.
    pub expires_at: Timestamp,
    /// Why it was refused.
    pub reason: Option<String>,
    /// A voice message's text (sealed, context [`transcript_context`](super::transcript_context)).
    pub transcript: Option<String>,
    /// The hex SHA-256 of its content (once ready).
    pub sha256: Option<String>,
}

/// A change of a file's status and what comes with it; `None` leaves a
/// field as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilePatch {
    /// The new status.
    pub status: FileStatus,
    /// The media type found in its bytes.
    pub media_type: Option<String>,
    /// Its actual size, in bytes.
    pub size: Option<u64>,
    /// Its object key in the blob store.
    pub key: Option<String>,
    /// Why it was refused.
    pub reason: Option<String>,
    /// A voice message's text.
    pub transcript: Option<String>,
    /// The hex SHA-256 of its content.
    pub sha256: Option<String>,
}

impl FilePatch {
    /// A change of status only.
    pub fn status(status: FileStatus) -> Self {
        FilePatch {
            status,
            media_type: None,
            size: None,
            key: None,
            reason: None,
            transcript: None,
            sha256: None,
        }
    }
}
