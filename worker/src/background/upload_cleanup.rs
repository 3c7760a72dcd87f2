//! Upload slots never used: every `cleanup_interval` a worker takes the
//! pending files whose slot ended more than a `cleanup_interval` ago,
//! deletes whatever was uploaded to quarantine and marks them expired.
//! The status changes by compare-and-set, so a file taken in at the same
//! moment is never deleted under its turn; several workers may sweep at
//! once without harm. (An S3 lifecycle rule on the quarantine prefix is a
//! good second net: docs/CONFIGURATION.md, `quarantine_prefix`.)

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

/// One pass; returns how many slots were cleaned up.
async fn sweep_once(state: &WorkerState) -> usize {
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
