//! Taking an uploaded file in, when its `file_upload` or `voice_message`
//! turn comes: the file must be this user's, in this session, uploaded,
//! within the limit, and its bytes must be an allowed format that matches
//! the declared type ([`inspect`]); a voice message must also be in a
//! format transcription reads (not raw AAC). A refused file is deleted and marked
//! rejected, with the reason the user is told.
//!
//! The file is copied out of quarantine *before* it is checked, and the
//! copy is what is checked: its key has no upload link, so the bytes
//! accepted are exactly the bytes looked at, whatever a client sends to
//! the quarantine link meanwhile (which refuses a second write anyway).
//! An accepted copy gets the media type its bytes show and is marked
//! ready; a refused one is deleted. Either way the quarantine key is
//! retired ([`crate::blob::BlobStore::retire`]): its link writes nothing
//! more. A file already ready (a redelivered turn) is taken as it is.

use bytes::Bytes;
use chatbox_shared::envelope::InboundEnvelope;
use chatbox_shared::protocol::{ErrorCode, ErrorInfo};
use sha2::Digest;
use tracing::{info, warn};

use super::inspect::{self, Format, Refusal, Sample};
use super::{blob_unavailable, human_size, limits};
use crate::blob::BlobError;
use crate::metrics;
use crate::state::WorkerState;
use crate::store::{FileKind, FilePatch, FileRecord, FileStatus, StoreError};

/// Why a file was not taken in.
#[derive(Debug)]
pub(crate) enum IntakeError {
    /// The user's request cannot be met; they are told why.
    Refused(ErrorInfo),
    /// The file store failed: try the turn again.
    BlobUnavailable(ErrorInfo),
    /// The database failed: try the turn again.
    Store(StoreError),
}

impl From<StoreError> for IntakeError {
    fn from(e: StoreError) -> Self {
        IntakeError::Store(e)
    }
}

impl From<BlobError> for IntakeError {
    fn from(e: BlobError) -> Self {
        IntakeError::BlobUnavailable(blob_unavailable(&e))
    }
}

fn refused(code: ErrorCode, message: impl Into<String>) -> IntakeError {
    IntakeError::Refused(ErrorInfo::new(code, message))
}

/// The slot of `file` ended before its message came.
fn expired(file: &FileRecord) -> IntakeError {
    metrics::upload("intake", file.kind.as_str(), "expired");
    refused(
        ErrorCode::FileNotFound,
        format!(
            "the upload of {} expired before it was sent; upload it again",
            file.name
        ),
    )
}

/// Takes file `file_id` in for the turn of `envelope`, as `kind`.
pub(crate) async fn accept(
    state: &WorkerState,
    envelope: &InboundEnvelope,
    file_id: &str,
    kind: FileKind,
) -> Result<FileRecord, IntakeError> {
    let store = state.store.as_ref();
    let file = find(state, envelope, file_id, kind).await?;
    if file.status == FileStatus::Ready {
        return Ok(file);
    }
    let Some(object) = state.blob.head(&file.key).await? else {
        metrics::upload("intake", kind.as_str(), "missing");
        return Err(refused(
            ErrorCode::FileNotFound,
            format!(
                "{} has not been uploaded yet: PUT it to the upload URL, then send this message",
                file.name
            ),
        ));
    };
    let (max_size, _) = limits(&state.config.chatbox.uploads, kind);
    if object.size > max_size {
        let message = format!(
            "{} is {}; the largest accepted is {}",
            file.name,
            human_size(object.size),
            human_size(max_size)
        );
        return Err(reject(state, &file, None, ErrorCode::FileTooLarge, "too_large", message).await);
    }
    let key = permanent_key(&state.config.chatbox.uploads.prefix, &file);
    let (format, media_type, size, whole) = take_copy(state, &file, &key).await?;
    let patch = FilePatch {
        media_type: Some(media_type.clone()),
        size: Some(size),
        key: Some(key.clone()),
        sha256: whole.map(|bytes| hex(&sha2::Sha256::digest(&bytes))),
        ..FilePatch::status(FileStatus::Ready)
    };
    if !store.update_file(&file.id, FileStatus::Pending, &patch).await? {
        // The slot's cleanup got there first. What cannot be deleted now
        // is an object no file record names: the upload cleanup's second
        // net (an S3 lifecycle rule) or the next sweep takes it.
        if let Err(e) = state.blob.delete(&key).await {
            warn!(file_id = %file.id, "cannot delete an expired upload: {e}");
        }
        return Err(expired(&file));
    }
    if let Err(e) = state.blob.retire(&file.key).await {
        warn!(file_id = %file.id, key = %file.key, "accepted, but the quarantine copy stays: {e}");
    }
    metrics::upload("intake", kind.as_str(), "ok");
    metrics::upload_bytes(kind.as_str(), size);
    info!(
        file_id = %file.id,
        format = format.human_name(),
        media_type = %media_type,
        size,
        "upload accepted"
    );
    Ok(FileRecord {
        status: FileStatus::Ready,
        media_type: Some(media_type),
        size: Some(size),
        key,
        sha256: patch.sha256,
        ..file
    })
}

/// The file `file_id` of the envelope's user and session, asked for as
/// `kind`, ready or pending; refused otherwise.
async fn find(
    state: &WorkerState,
    envelope: &InboundEnvelope,
    file_id: &str,
    kind: FileKind,
) -> Result<FileRecord, IntakeError> {
    let file = match state.store.file(file_id).await? {
        Some(f) if f.user_id == envelope.user_id && f.session_id == envelope.session_id => f,
        _ => {
            metrics::upload("intake", kind.as_str(), "missing");
            return Err(refused(
                ErrorCode::FileNotFound,
                format!("there is no upload {file_id} in this conversation; ask for an upload URL first"),
            ));
        }
    };
    if file.kind != kind {
        let (asked, send) = match file.kind {
            FileKind::Voice => ("a voice message", "voice_message"),
            _ => ("a file", "file_upload"),
        };
        return Err(refused(
            ErrorCode::InvalidField,
            format!("upload {file_id} was asked for as {asked}; send it with {send}"),
        ));
    }
    match file.status {
        FileStatus::Rejected => {
            let reason = file.reason.as_deref().unwrap_or("it failed the checks");
            Err(refused(
                ErrorCode::FileRejected,
                format!("{} was refused: {reason}", file.name),
            ))
        }
        FileStatus::Expired => Err(expired(&file)),
        FileStatus::Ready | FileStatus::Pending => Ok(file),
    }
}

/// Copies the upload to `key`, its permanent place, and checks the copy:
/// the format, the media type it gets, its size and the whole file when
/// it had to be read. A refused copy is deleted and the file rejected.
async fn take_copy(
    state: &WorkerState,
    file: &FileRecord,
    key: &str,
) -> Result<(Format, String, u64, Option<Bytes>), IntakeError> {
    let (max_size, allowed) = limits(&state.config.chatbox.uploads, file.kind);
    state.blob.copy(&file.key, key, &file.declared_type).await?;
    let refuse = |code, outcome, message| reject(state, file, Some(key), code, outcome, message);
    let Some(copy) = state.blob.head(key).await? else {
        return Err(IntakeError::BlobUnavailable(blob_unavailable(
            &BlobError::NotFound(format!("the copy of {} at {key} vanished", file.id)),
        )));
    };
    if copy.size > max_size {
        let message = format!(
            "{} is {}; the largest accepted is {}",
            file.name,
            human_size(copy.size),
            human_size(max_size)
        );
        return Err(refuse(ErrorCode::FileTooLarge, "too_large", message).await);
    }
    let (format, media_type, whole) = match check(state, key, &file.declared_type, copy.size, allowed).await?
    {
        Ok(found) => found,
        Err(refusal) => {
            let (code, outcome) = match refusal {
                Refusal::NotAllowed { .. } => (ErrorCode::FileTypeNotAllowed, "type_not_allowed"),
                _ => (ErrorCode::FileRejected, "rejected"),
            };
            let message = format!("{} was refused: {refusal}", file.name);
            return Err(refuse(code, outcome, message).await);
        }
    };
    if file.kind == FileKind::Voice && !crate::llm::transcription_reads(&media_type) {
        let what = match format {
            Format::Aac => "raw AAC audio (ADTS, not in an MP4/M4A container)",
            other => other.human_name(),
        };
        let message = format!(
            "{} was refused: {what} cannot be transcribed; record or send voice messages as {}",
            file.name,
            crate::llm::READABLE_FORMATS
        );
        return Err(refuse(ErrorCode::FileTypeNotAllowed, "type_not_allowed", message).await);
    }
    if media_type != file.declared_type {
        // The type the bytes show, on the copy that was checked.
        state.blob.copy(key, key, &media_type).await?;
    }
    Ok((format, media_type, copy.size, whole))
}

/// What the bytes are: the format, the media type to keep, and the whole
/// file when it had to be read (archives, small files).
type Checked = (Format, String, Option<Bytes>);

/// Looks at the bytes of the object at `key`, of `size` bytes, declared
/// as `declared_type`.
async fn check(
    state: &WorkerState,
    key: &str,
    declared_type: &str,
    size: u64,
    allowed: &[String],
) -> Result<Result<Checked, Refusal>, IntakeError> {
    let head_len = inspect::HEAD_BYTES as u64;
    let head = state.blob.read_range(key, 0, head_len).await?;
    let whole = (size <= head_len).then(|| head.clone());
    let tail = match &whole {
        Some(all) => all.clone(),
        None => {
            let start = size.saturating_sub(inspect::TAIL_BYTES as u64);
            state.blob.read_range(key, start, size).await?
        }
    };
    let sample = Sample {
        head: &head,
        tail: &tail,
        size,
    };
    let (format, media_type) = match inspect::inspect(&sample, declared_type, allowed) {
        Ok(found) => found,
        Err(refusal) => return Ok(Err(refusal)),
    };
    if format != Format::Zip {
        return Ok(Ok((format, media_type, whole)));
    }
    let archive = match whole {
        Some(all) => all,
        None => state.blob.read_range(key, 0, size).await?,
    };
    Ok(inspect::check_zip(&archive).map(|()| (format, media_type, Some(archive))))
}

/// Deletes a refused upload (and its checked `copy`), records why, and
/// says it to the user.
async fn reject(
    state: &WorkerState,
    file: &FileRecord,
    copy: Option<&str>,
    code: ErrorCode,
    outcome: &'static str,
    message: String,
) -> IntakeError {
    warn!(
        file_id = %file.id,
        user_id = %file.user_id,
        declared_type = %file.declared_type,
        reason = %message,
        "upload refused and deleted"
    );
    metrics::upload("intake", file.kind.as_str(), outcome);
    if let Err(e) = state.blob.retire(&file.key).await {
        warn!(file_id = %file.id, key = %file.key, "cannot delete a refused upload: {e}");
    }
    if let Some(copy) = copy
        && let Err(e) = state.blob.delete(copy).await
    {
        warn!(file_id = %file.id, key = %copy, "cannot delete the copy of a refused upload: {e}");
    }
    let patch = FilePatch {
        reason: Some(message.clone()),
        ..FilePatch::status(FileStatus::Rejected)
    };
    if let Err(e) = state
        .store
        .update_file(&file.id, FileStatus::Pending, &patch)
        .await
    {
        warn!(file_id = %file.id, "cannot record a refused upload: {e}");
    }
    refused(code, message)
}

/// `<prefix>/<yyyy-mm>/<file id>`: files of a month together, for
/// lifecycle rules and audits.
pub(crate) fn permanent_key(prefix: &str, file: &FileRecord) -> String {
    let month: String = file.created_at.to_string().chars().take(7).collect();
    format!("{}/{month}/{}", prefix.trim_matches('/'), file.id)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
