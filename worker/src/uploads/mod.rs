//! Files and voice messages, from the upload slot to the model.
//!
//! The bytes never pass a gateway. A client asks for a slot
//! (`uploads.slot`, answered in `rpc/upload_slot.rs`): the worker checks the declared size and type against
//! `[chatbox.uploads]`, records a pending file and answers with a signed
//! PUT URL into the quarantine prefix. The client uploads there, then
//! sends `file_upload` or `voice_message` with the file id; the turn takes
//! the file in ([`intake`]): it must exist, fit the limit and be what it
//! claims to be by its bytes ([`inspect`]) — refused files are deleted and
//! the user hears why — then it moves to its permanent key and is ready.
//! A voice message is transcribed ([`voice`]). What the model receives of
//! a file — an image, the text, or a mention — is [`prompt`]'s choice;
//! files that come back with answers (spoken audio, provider files,
//! links) are [`generated`]. Every URL a client sees is signed when it is
//! sent ([`links`]), so history never hands out an expired one. Slots
//! never used are deleted by the upload cleanup (`background/upload_cleanup.rs`).

pub(crate) mod generated;
pub(crate) mod inspect;
pub(crate) mod intake;
pub(crate) mod links;
pub(crate) mod prompt;
pub(crate) mod voice;

use chatbox_shared::config::UploadsConfig;
use chatbox_shared::protocol::{ErrorCode, ErrorInfo};

use crate::blob::BlobError;
use crate::store::FileKind;

/// Metadata keys of a message that carries a file.
pub(crate) mod meta {
    /// The file's name.
    pub(crate) const FILE_NAME: &str = "file_name";
    /// Its media type.
    pub(crate) const CONTENT_TYPE: &str = "content_type";
    /// Its size in bytes.
    pub(crate) const FILE_SIZE: &str = "file_size";
    /// How a voice message's transcription went: `ok`, `failed`,
    /// `unavailable`.
    pub(crate) const TRANSCRIPTION: &str = "transcription";
    /// Files linked from an answer, as a JSON array of `{url, name,
    /// source}` (`source`: `provider` or `answer`).
    pub(crate) const FILES: &str = "files";
}

/// The limit and allow-list of an upload of `kind`.
pub(crate) fn limits(config: &UploadsConfig, kind: FileKind) -> (u64, &[String]) {
    match kind {
        FileKind::Voice => (config.max_voice_size, &config.voice_types),
        FileKind::Upload | FileKind::Generated => (config.max_size, &config.allowed_types),
    }
}

/// What the user hears when the file store fails.
pub(crate) fn blob_unavailable(e: &BlobError) -> ErrorInfo {
    tracing::warn!("file store failure: {e}");
    ErrorInfo::new(
        ErrorCode::StorageError,
        "files cannot be reached right now; try again shortly",
    )
    .retry_after(std::time::Duration::from_secs(2))
}

/// A size for people: `1.5 MB`, `20 KB`, `312 bytes`.
pub(crate) fn human_size(bytes: u64) -> String {
    const KB: f64 = 1024.0;
    let b = bytes as f64;
    if b >= KB * KB {
        format!("{:.1} MB", b / (KB * KB)).replace(".0 ", " ")
    } else if b >= KB {
        format!("{:.0} KB", b / KB)
    } else {
        format!("{bytes} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_size(312), "312 bytes");
        assert_eq!(human_size(20 * 1024), "20 KB");
        assert_eq!(human_size(20 * 1024 * 1024), "20 MB");
        assert_eq!(human_size(1536 * 1024), "1.5 MB");
    }
}
