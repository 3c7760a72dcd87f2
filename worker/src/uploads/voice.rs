//! Voice messages: the recording goes to the provider's transcription
//! endpoint (property 25: docs/PROPERTIES.md#p25) and its text is kept with the file, so a
//! redelivered turn does not transcribe twice. The transcript is what the
//! user sees under the recording and what the model answers.

use tracing::{info, warn};

use crate::llm::Audio;
use crate::state::WorkerState;
use crate::store::{FilePatch, FileRecord, FileStatus, StoreError};

/// How a transcription went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Transcript {
    /// The words spoken.
    Text(String),
    /// The provider or the file store failed; the recording is kept.
    Failed,
    /// No provider transcribes here.
    Unavailable,
}

impl Transcript {
    /// The value of the message's `transcription` metadata.
    pub(crate) fn label(&self) -> &'static str {
        match self {
            Transcript::Text(_) => "ok",
            Transcript::Failed => "failed",
            Transcript::Unavailable => "unavailable",
        }
    }
}

/// The transcript of a ready voice file.
pub(crate) async fn transcribe(state: &WorkerState, file: &FileRecord) -> Result<Transcript, StoreError> {
    if let Some(text) = &file.transcript {
        return Ok(Transcript::Text(text.clone()));
    }
    let Some(transcriber) = state.providers.transcriber() else {
        return Ok(Transcript::Unavailable);
    };
    let size = file.size.unwrap_or(file.declared_size);
    let bytes = match state.blob.read_range(&file.key, 0, size).await {
        Ok(bytes) => bytes,
        Err(e) => {
            warn!(file_id = %file.id, "cannot read a voice message to transcribe: {e}");
            return Ok(Transcript::Failed);
        }
    };
    let media_type = file
        .media_type
        .clone()
        .unwrap_or_else(|| super::inspect::normalise(&file.declared_type));
    let Some(audio) = Audio::recording(bytes, &media_type) else {
        // Intake refuses these now; a voice message kept before cannot go.
        warn!(file_id = %file.id, %media_type, "a voice message in a format transcription does not read");
        return Ok(Transcript::Failed);
    };
    let text = match transcriber.transcribe(audio, None).await {
        Ok(text) => text,
        Err(e) => {
            warn!(file_id = %file.id, provider = transcriber.provider_id(), "transcription failed: {e}");
            return Ok(Transcript::Failed);
        }
    };
    let patch = FilePatch {
        transcript: Some(text.clone()),
        ..FilePatch::status(FileStatus::Ready)
    };
    state
        .store
        .update_file(&file.id, FileStatus::Ready, &patch)
        .await?;
    info!(file_id = %file.id, chars = text.chars().count(), "voice message transcribed");
    Ok(Transcript::Text(text))
}
