//! What a model receives of a file the user shared, as the provider
//! supports it: an image as an image input for models that see images
//! (`vision = true`) up to `inline_image_size`; a text file's content up
//! to `inline_text_size`; otherwise a mention of the file (name, type,
//! size), so the model knows it is there and can say what it cannot read.

use std::fmt::Write;

use tracing::warn;

use super::{human_size, links};
use crate::llm::{Attachment, LlmProvider};
use crate::state::WorkerState;
use crate::store::FileRecord;

/// The user's words and the attachments a model receives for `file`.
pub(crate) async fn with_file(
    state: &WorkerState,
    provider: &dyn LlmProvider,
    caption: &str,
    file: &FileRecord,
) -> (String, Vec<Attachment>) {
    let uploads = &state.config.chatbox.uploads;
    let media_type = file.media_type.as_deref().unwrap_or(&file.declared_type);
    let size = file.size.unwrap_or(file.declared_size);
    let mut text = caption.to_owned();
    if media_type.starts_with("image/") && provider.accepts_images() && size <= uploads.inline_image_size {
        if let Some(data) = read(state, file, size).await {
            let url = links::download_url(state, file).await;
            if text.is_empty() {
                text = format!("(image: {})", file.name);
            }
            let image = Attachment::Image {
                media_type: media_type.to_owned(),
                data,
                url,
            };
            return (text, vec![image]);
        }
    } else if is_text(media_type)
        && size <= uploads.inline_text_size
        && let Some(data) = read(state, file, size).await
    {
        let body = String::from_utf8_lossy(&data);
        // Writing to a String cannot fail.
        let _ = write!(text, "\n\n[File: {}]\n{body}\n[End of file]", file.name);
        return (text.trim_start().to_owned(), Vec::new());
    }
    // Writing to a String cannot fail.
    let _ = write!(
        text,
        "\n\n[The user shared a file: {} ({media_type}, {}). Its content is not available to you.]",
        file.name,
        human_size(size)
    );
    (text.trim_start().to_owned(), Vec::new())
}

/// How an earlier file message reads in the conversation a model gets:
/// its caption and the file's name.
pub(crate) fn mention(caption: &str, file_name: &str) -> String {
    if caption.is_empty() {
        format!("[shared a file: {file_name}]")
    } else {
        format!("{caption}\n[shared a file: {file_name}]")
    }
}

fn is_text(media_type: &str) -> bool {
    media_type.starts_with("text/") || media_type == "application/json"
}

async fn read(state: &WorkerState, file: &FileRecord, size: u64) -> Option<bytes::Bytes> {
    match state.blob.read_range(&file.key, 0, size).await {
        Ok(data) => Some(data),
        Err(e) => {
            warn!(file_id = %file.id, "cannot read a file for the model; it is mentioned instead: {e}");
            None
        }
    }
}
