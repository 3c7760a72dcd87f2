//! Download links: signed when a frame leaves the worker (the echo of an
//! upload, an answer with audio, every history page), valid for
//! `download_url_ttl` (property 21: docs/PROPERTIES.md#p21). Nothing stores a signed URL, so
//! history never hands out an expired one. Images and audio open inline
//! (thumbnails, playback); everything else downloads as an attachment.

use std::collections::HashMap;

use chatbox_shared::protocol::Message;
use tracing::warn;

use crate::blob::Download;
use crate::state::WorkerState;
use crate::store::{FileRecord, FileStatus};

/// A fresh download URL of a ready file.
pub(crate) async fn download_url(state: &WorkerState, file: &FileRecord) -> Option<String> {
    if file.status != FileStatus::Ready {
        return None;
    }
    let media_type = file.media_type.as_deref().unwrap_or("application/octet-stream");
    let download = Download {
        file_name: &file.name,
        content_type: media_type,
        inline: media_type.starts_with("image/") || media_type.starts_with("audio/"),
    };
    let ttl = state.config.chatbox.uploads.download_url_ttl;
    match state.blob.presign_get(&file.key, &download, ttl).await {
        Ok(url) => Some(url),
        Err(e) => {
            warn!(file_id = %file.id, "cannot sign a download URL: {e}");
            None
        }
    }
}

/// Sets `file_url` on every frame that carries a file, with one store
/// read for all of them.
pub(crate) async fn sign(state: &WorkerState, frames: &mut [Message]) {
    let mut ids: Vec<String> = frames.iter().filter_map(|f| f.file_id.clone()).collect();
    if ids.is_empty() {
        return;
    }
    ids.sort_unstable();
    ids.dedup();
    let files = match state.store.files(&ids).await {
        Ok(files) => files,
        Err(e) => {
            warn!("cannot look up the files of a page: {e}");
            return;
        }
    };
    let mut urls = HashMap::with_capacity(files.len());
    for file in &files {
        if let Some(url) = download_url(state, file).await {
            urls.insert(file.id.as_str(), url);
        }
    }
    for frame in frames {
        if let Some(url) = frame.file_id.as_deref().and_then(|id| urls.get(id)) {
            frame.file_url = Some(url.clone());
        }
    }
}
