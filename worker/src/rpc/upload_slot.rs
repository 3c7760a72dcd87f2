//! Upload slots (`uploads.slot`): the declared size and type are checked
//! against the limits and the allow-list before anything is uploaded, a
//! pending file is recorded, and the client gets a signed PUT URL into the
//! quarantine prefix that lives `upload_url_ttl` and takes one body of
//! exactly the declared size.

use chatbox_shared::envelope::{RpcError, UploadSlotRequest};
use chatbox_shared::ids::new_file_id;
use chatbox_shared::protocol::uploads::{UploadPurpose, UploadSlot};
use chatbox_shared::protocol::{ErrorCode, Timestamp};
use tracing::info;

use super::owned_session;
use crate::metrics;
use crate::state::WorkerState;
use crate::store::{FileKind, FileRecord, FileStatus};
use crate::uploads::{human_size, inspect, limits};

/// Opens an upload slot for the user's session.
pub(super) async fn open(state: &WorkerState, r: UploadSlotRequest) -> Result<UploadSlot, RpcError> {
    let session = owned_session(state, &r.user_id, &r.session_id).await?;
    if !session.is_active {
        return Err(RpcError {
            code: ErrorCode::SessionEnded,
            message: "this conversation has ended; files go to an active conversation".into(),
        });
    }
    let config = &state.config.chatbox.uploads;
    let upload = r.upload;
    let kind = match upload.purpose {
        UploadPurpose::File => FileKind::Upload,
        UploadPurpose::Voice => FileKind::Voice,
    };
    let (max_size, allowed) = limits(config, kind);
    let refuse = |code: ErrorCode, outcome: &'static str, message: String| {
        metrics::upload("slot", kind.as_str(), outcome);
        Err(RpcError { code, message })
    };
    if upload.size > max_size {
        return refuse(
            ErrorCode::FileTooLarge,
            "too_large",
            format!(
                "{} is {}; the largest {} accepted is {}",
                upload.name,
                human_size(upload.size),
                if kind == FileKind::Voice {
                    "voice message"
                } else {
                    "file"
                },
                human_size(max_size)
            ),
        );
    }
    let declared = inspect::normalise(&upload.content_type);
    if !allowed.iter().any(|t| inspect::normalise(t) == declared) {
        let what = if kind == FileKind::Voice {
            "voice messages"
        } else {
            "files"
        };
        return refuse(
            ErrorCode::FileTypeNotAllowed,
            "type_not_allowed",
            format!(
                "{declared} is not accepted for {what}; accepted: {}",
                allowed.join(", ")
            ),
        );
    }
    let file_id = new_file_id();
    let key = format!("{}/{file_id}", config.quarantine_prefix.trim_matches('/'));
    let signed = state
        .blob
        .presign_put(&key, &upload.content_type, upload.size, config.upload_url_ttl)
        .await
        .map_err(|e| {
            let info = crate::uploads::blob_unavailable(&e);
            RpcError {
                code: info.code,
                message: info.message,
            }
        })?;
    let record = FileRecord {
        id: file_id.clone(),
        user_id: r.user_id.clone(),
        session_id: r.session_id.clone(),
        kind,
        status: FileStatus::Pending,
        name: upload.name,
        declared_type: upload.content_type,
        media_type: None,
        declared_size: upload.size,
        size: None,
        key,
        created_at: Timestamp::now(),
        expires_at: signed.expires_at,
        reason: None,
        transcript: None,
        sha256: None,
    };
    state
        .store
        .create_file(&record)
        .await
        .map_err(super::store_error)?;
    metrics::upload("slot", kind.as_str(), "ok");
    info!(
        file_id = %file_id,
        session_id = %record.session_id,
        kind = kind.as_str(),
        declared_type = %record.declared_type,
        declared_size = record.declared_size,
        "upload slot opened"
    );
    Ok(UploadSlot {
        file_id,
        upload_url: signed.url,
        method: signed.method.to_owned(),
        headers: signed.headers,
        expires_at: signed.expires_at,
        max_size,
    })
}
