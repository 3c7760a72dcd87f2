//! The upload handshake, the same over HTTP (`POST /chat/uploads`) and
//! the socket (`request_upload` → `upload_slot`): the client says what it
//! is about to upload, gets a file id and a signed URL, PUTs the bytes
//! there, then sends `file_upload` or `voice_message` with the file id.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{ErrorCode, ProtocolError, Timestamp};

/// Longest file name kept, in characters.
pub const MAX_FILE_NAME_CHARS: usize = 200;

/// What the upload becomes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UploadPurpose {
    /// A file shared in the conversation (`file_upload`).
    #[default]
    File,
    /// A recorded voice message (`voice_message`), transcribed.
    Voice,
}

impl UploadPurpose {
    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            UploadPurpose::File => "file",
            UploadPurpose::Voice => "voice",
        }
    }
}

/// What the client is about to upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadRequest {
    /// The file's name (path parts are dropped).
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its media type, like `image/png` or `audio/webm;codecs=opus`.
    pub content_type: String,
    /// `file` (default) or `voice`.
    #[serde(default)]
    pub purpose: UploadPurpose,
}

impl UploadRequest {
    /// Checks the request and cleans the name; the limits and the
    /// allow-list are the worker's to check.
    pub fn validated(mut self) -> Result<Self, ProtocolError> {
        self.name = clean_file_name(&self.name).ok_or_else(|| {
            ProtocolError::new(
                ErrorCode::InvalidField,
                "`name` must be a file name, like \"photo.png\"",
            )
        })?;
        if self.size == 0 {
            return Err(ProtocolError::new(
                ErrorCode::InvalidField,
                "`size` must be the file's size in bytes (empty files are not uploaded)",
            ));
        }
        let media = self.content_type.trim();
        let essence = media.split(';').next().unwrap_or_default().trim();
        let valid = media.len() <= 127
            && essence.split_once('/').is_some_and(|(t, s)| {
                let token = |x: &str| {
                    !x.is_empty()
                        && x.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
                };
                token(t) && token(s)
            })
            && media.bytes().all(|b| (0x20..0x7f).contains(&b));
        if !valid {
            return Err(ProtocolError::new(
                ErrorCode::InvalidField,
                "`content_type` must be a media type, like \"image/png\"",
            ));
        }
        self.content_type = media.to_ascii_lowercase();
        Ok(self)
    }
}

/// The file name kept: the last path part, without control characters,
/// at most [`MAX_FILE_NAME_CHARS`]; `None` when nothing is left.
pub fn clean_file_name(name: &str) -> Option<String> {
    let last = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let clean: String = last
        .chars()
        .filter(|c| !c.is_control() && !matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}'))
        .collect();
    let clean = clean.trim().trim_start_matches('.');
    let clean: String = clean.chars().take(MAX_FILE_NAME_CHARS).collect();
    (!clean.is_empty()).then_some(clean)
}

/// Where and how to upload (the answer to an [`UploadRequest`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadSlot {
    /// The file's id, for `file_upload` / `voice_message`.
    pub file_id: String,
    /// Where to send the bytes.
    pub upload_url: String,
    /// With this method (`PUT`).
    pub method: String,
    /// And these headers (the signed `content-type`).
    pub headers: BTreeMap<String, String>,
    /// When the URL stops working.
    pub expires_at: Timestamp,
    /// The largest size accepted, in bytes.
    pub max_size: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(name: &str, size: u64, content_type: &str) -> UploadRequest {
        UploadRequest {
            name: name.into(),
            size,
            content_type: content_type.into(),
            purpose: UploadPurpose::File,
        }
    }

    #[test]
    fn names_lose_their_paths_and_control_characters() {
        assert_eq!(clean_file_name("../../etc/passwd").as_deref(), Some("passwd"));
        assert_eq!(
            clean_file_name("C:\\Users\\me\\cat.png").as_deref(),
            Some("cat.png")
        );
        assert_eq!(
            clean_file_name("a\u{0}b\u{202e}gnp.exe").as_deref(),
            Some("abgnp.exe")
        );
        assert_eq!(clean_file_name(".hidden").as_deref(), Some("hidden"));
        assert_eq!(clean_file_name("dir/"), None);
        assert_eq!(clean_file_name("  "), None);
        let long = "x".repeat(500);
        assert_eq!(
            clean_file_name(&long).map(|n| n.chars().count()),
            Some(MAX_FILE_NAME_CHARS)
        );
    }

    #[test]
    fn requests_are_checked_before_the_worker_sees_them() {
        let ok = request("Cat.PNG", 10, "Image/PNG")
            .validated()
            .map(|r| r.content_type);
        assert_eq!(ok, Ok("image/png".into()));
        let voice = request("memo.webm", 10, "audio/webm;codecs=opus").validated();
        assert!(voice.is_ok());
        for (name, size, ct) in [
            ("", 10, "image/png"),
            ("a.png", 0, "image/png"),
            ("a.png", 10, "png"),
            ("a.png", 10, "image/"),
            ("a.png", 10, "image/p ng"),
        ] {
            let refused = request(name, size, ct).validated().map_err(|e| e.code);
            assert_eq!(refused, Err(ErrorCode::InvalidField), "{name:?} {size} {ct:?}");
        }
    }
}
