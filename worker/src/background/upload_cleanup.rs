//! Upload slots never used: every `cleanup_interval` a worker takes the
//! pending files whose slot ended more than a `cleanup_interval` ago,
//! deletes whatever was uploaded to quarantine and marks them expired.
//! The status changes by compare-and-set, so a file taken in at the same
//! moment is never deleted under its turn; several workers may sweep at
//! once without harm. (An S3 lifecycle rule on the quarantine prefix is a
//! good second net: docs/CONFIGURATION.md, `quarantine_prefix`.)
//!
//! The same pass sweeps the quarantine's orphans: objects no pending slot
//! owns — the empty objects that keep a retired S3 link from writing,
//! anything written to a link after its file was taken in or refused, and
//! leftovers of a file record that is gone — once their link has expired
//! (before that, deleting an S3 retirement object would let the link
//! write again).

use chatbox_shared::periodic::{FirstPass, every};
use std::sync::Arc;

use chatbox_shared::protocol::Timestamp;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::metrics;
use crate::state::WorkerState;
use crate::store::{FilePatch, FileStatus};

/// Slots looked at per pass.
const BATCH: usize = 200;

/// Sweeps every `cleanup_interval` until cancelled.
pub(super) async fn cleanup_loop(state: Arc<WorkerState>, cancel: CancellationToken) {
    let period = state.config.chatbox.uploads.cleanup_interval;
    every(period, FirstPass::Now, &cancel, || async {
        sweep_once(&state).await;
    })
    .await;
}

/// One pass: unused slots, then orphans.
async fn sweep_once(state: &WorkerState) {
    expire_slots(state).await;
    sweep_orphans(state).await;
}

/// Quarantine keys looked at per pass.
const ORPHAN_BATCH: usize = 1000;

/// Deletes what lies under the quarantine prefix that no pending slot owns,
/// once its link has expired; returns how many objects went.
async fn sweep_orphans(state: &WorkerState) -> usize {
    let prefix = format!(
        "{}/",
        state.config.chatbox.uploads.quarantine_prefix.trim_matches('/')
    );
    let keys = match state.blob.list(&prefix, ORPHAN_BATCH).await {
        Ok(keys) => keys,
        Err(e) => {
            warn!("cannot list the upload quarantine: {e}");
            return 0;
        }
    };
    if keys.is_empty() {
        return 0;
    }
    let ids: Vec<String> = keys.iter().map(|k| k[prefix.len()..].to_owned()).collect();
    let files = match state.store.files(&ids).await {
        Ok(files) => files,
        Err(e) => {
            warn!("cannot look up the files of the upload quarantine: {e}");
            return 0;
        }
    };
    let now = Timestamp::now();
    let mut swept = 0;
    for (key, id) in keys.iter().zip(&ids) {
        let owner = files.iter().find(|f| &f.id == id);
        let orphan = match owner {
            None => true,
            Some(file) => file.status != FileStatus::Pending && file.expires_at < now,
        };
        if !orphan {
            continue;
        }
        match state.blob.delete(key).await {
            Ok(()) => swept += 1,
            Err(e) => warn!(%key, "cannot delete an orphan of the upload quarantine: {e}"),
        }
    }
    if swept > 0 {
        metrics::orphans_swept(swept as u64);
        info!(swept, "orphans of the upload quarantine deleted");
    }
    swept
}

/// Expires the slots never used; returns how many were cleaned up.
async fn expire_slots(state: &WorkerState) -> usize {
    let grace = state.config.chatbox.uploads.cleanup_interval;
    let before = Timestamp::from_millis(
        Timestamp::now()
            .as_millis()
            .saturating_sub(grace.as_millis() as u64),
    );
    let expired = match state.store.expired_slots(before, BATCH).await {
        Ok(expired) => expired,
        Err(e) => {
            warn!("cannot list expired upload slots: {e}");
            return 0;
        }
    };
    let mut cleaned = 0;
    for file in expired {
        match state
            .store
            .update_file(
                &file.id,
                FileStatus::Pending,
                &FilePatch::status(FileStatus::Expired),
            )
            .await
        {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                warn!(file_id = %file.id, "cannot expire an upload slot: {e}");
                return cleaned;
            }
        }
        if let Err(e) = state.blob.delete(&file.key).await {
            warn!(file_id = %file.id, key = %file.key, "expired slot, but its upload stays: {e}");
        }
        debug!(file_id = %file.id, "unused upload slot cleaned up");
        cleaned += 1;
    }
    if cleaned > 0 {
        metrics::slots_expired(cleaned as u64);
        info!(cleaned, "unused upload slots cleaned up");
    }
    cleaned
}
