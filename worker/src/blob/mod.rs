//! The `BlobStore` port: the files users upload, kept outside the
//! database and handed to clients as signed URLs.
//!
//! Adapters: [`S3BlobStore`] (any S3-compatible bucket, the scaled
//! workers) and [`LocalBlobStore`] (a folder on disk whose URLs the
//! all-in-one serves itself, signed with HMAC-SHA256). One conformance
//! suite (`worker/tests/blob_conformance.rs`) runs against both.
//!
//! Bytes of uploads and downloads never pass a gateway or a worker: a
//! client PUTs a file to the URL of [`BlobStore::presign_put`] and reads it
//! from the URL of [`BlobStore::presign_get`]. Workers only look at what
//! arrived ([`BlobStore::head`], [`BlobStore::read_range`]), move it out of
//! quarantine ([`BlobStore::copy`], [`BlobStore::retire`]) and sweep slots
//! never used ([`BlobStore::list`], [`BlobStore::delete`]).
//!
//! A signed PUT writes one object of exactly the declared size, once: the
//! length is part of the signature, and a second write to the link is
//! refused (S3: `If-None-Match: *` signed in; local: a mark of the used
//! link). [`BlobStore::retire`] keeps refusing after the quarantine object
//! was taken in or refused, until the link expires.
//!
//! Keys are plain paths of `[A-Za-z0-9._/-]` ([`check_key`]), so the same
//! key means the same object in a bucket and on disk, and never escapes
//! the local folder. Every operation is timed in
//! `chatbox_blob_operation_seconds` and its failures are logged.

mod local;
mod s3;
mod sealed;

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use chatbox_shared::protocol::Timestamp;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

pub use local::LocalBlobStore;
pub use s3::S3BlobStore;
pub use sealed::FileCipher;

/// Longest key, in bytes (S3 allows 1024; ours are much shorter).
pub(crate) const MAX_KEY_LEN: usize = 512;

/// Where uploaded files are kept.
#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// The adapter's name for logs and metrics: `s3` or `local`.
    fn adapter(&self) -> &'static str;

    /// Readiness: the bucket or folder answers.
    async fn check(&self) -> Result<(), BlobError>;

    /// Stores `bytes` at `key`, replacing what was there.
    async fn put(&self, key: &str, bytes: Bytes, content_type: &str) -> Result<(), BlobError>;

    /// The object's size and type; `None` if there is none at `key`.
    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, BlobError>;

    /// Bytes `[start, end)` clamped to the object's size; NotFound if missing.
    async fn read_range(&self, key: &str, start: u64, end: u64) -> Result<Bytes, BlobError>;

    /// Copies an object, setting the copy's content type (S3: MetadataDirective REPLACE).
    async fn copy(&self, from: &str, to: &str, content_type: &str) -> Result<(), BlobError>;

    /// Deletes the object at `key`; one that is missing is fine.
    async fn delete(&self, key: &str) -> Result<(), BlobError>;

    /// Up to `limit` keys that start with `prefix`, sorted.
    async fn list(&self, prefix: &str, limit: usize) -> Result<Vec<String>, BlobError>;

    /// A URL the client PUTs the file to, directly (the bytes never pass a
    /// gateway): a body of exactly `size` bytes, once, while `ttl` lasts.
    /// Callers still check the size with [`BlobStore::head`] once the
    /// upload is reported.
    async fn presign_put(
        &self,
        key: &str,
        content_type: &str,
        size: u64,
        ttl: Duration,
    ) -> Result<SignedRequest, BlobError>;

    /// Ends an upload key whose file was taken in or refused: its bytes
    /// go, and its signed PUT writes nothing more until it expires (S3: an
    /// empty object stays in the way, swept with the quarantine's
    /// orphans; local: the link's mark stays).
    async fn retire(&self, key: &str) -> Result<(), BlobError>;

    /// A URL that downloads the object until `ttl` passes.
    async fn presign_get(
        &self,
        key: &str,
        download: &Download<'_>,
        ttl: Duration,
    ) -> Result<String, BlobError>;
}

/// What [`BlobStore::head`] tells about an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Its size in bytes.
    pub size: u64,
    /// The content type it was stored with.
    pub content_type: Option<String>,
}

/// A request the client makes itself, to a signed URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRequest {
    /// Where to send it.
    pub url: String,
    /// The method (`PUT`).
    pub method: &'static str,
    /// The headers the client must send as they are (the signature covers
    /// them), e.g. `content-type`.
    pub headers: BTreeMap<String, String>,
    /// When the URL stops working.
    pub expires_at: Timestamp,
}

/// How a download presents itself to the browser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Download<'a> {
    /// The name the browser saves it under.
    pub file_name: &'a str,
    /// The content type it is served with.
    pub content_type: &'a str,
    /// Shown in the page (images, audio) rather than saved.
    pub inline: bool,
}

/// Why a blob operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlobError {
    /// No object at this key.
    #[error("{0}")]
    NotFound(String),
    /// The key is not one this store accepts.
    #[error("{0}")]
    InvalidKey(String),
    /// The store did not answer (network, timeout, overloaded); try again.
    #[error("{0}")]
    Unavailable(String),
    /// Anything else: refused credentials, a missing bucket, a full disk.
    #[error("{0}")]
    Other(String),
}

impl BlobError {
    /// A bounded label for metrics.
    pub fn outcome(&self) -> &'static str {
        match self {
            BlobError::NotFound(_) => "not_found",
            BlobError::InvalidKey(_) => "invalid_key",
            BlobError::Unavailable(_) => "unavailable",
            BlobError::Other(_) => "error",
        }
    }
}

/// Checks that `key` is a key both adapters store the same way:
/// `[A-Za-z0-9._/-]` only, no leading `/`, no empty, `.` or `..` segment,
/// at most [`MAX_KEY_LEN`] bytes.
pub(crate) fn check_key(key: &str) -> Result<(), BlobError> {
    let invalid = |why: &str| Err(BlobError::InvalidKey(format!("invalid file key {key:?}: {why}")));
    if key.is_empty() {
        return invalid("it is empty");
    }
    if key.len() > MAX_KEY_LEN {
        return invalid(&format!("it is longer than {MAX_KEY_LEN} bytes"));
    }
    if let Some(c) = key.chars().find(|c| !is_key_char(*c)) {
        return invalid(&format!(
            "{c:?} is not allowed (only letters, digits and . _ / -)"
        ));
    }
    if key.starts_with('/') {
        return invalid("it starts with '/'");
    }
    if key.split('/').any(|segment| matches!(segment, "" | "." | "..")) {
        return invalid("a path segment is empty, '.' or '..'");
    }
    Ok(())
}

/// Checks a prefix for [`BlobStore::list`]: like a key, except that it may
/// be empty and its last segment (the part after the last `/`) may be
/// empty or any run of allowed characters.
pub(crate) fn check_prefix(prefix: &str) -> Result<(), BlobError> {
    let invalid = |why: &str| {
        Err(BlobError::InvalidKey(format!(
            "invalid key prefix {prefix:?}: {why}"
        )))
    };
    if prefix.len() > MAX_KEY_LEN {
        return invalid(&format!("it is longer than {MAX_KEY_LEN} bytes"));
    }
    if let Some(c) = prefix.chars().find(|c| !is_key_char(*c)) {
        return invalid(&format!(
            "{c:?} is not allowed (only letters, digits and . _ / -)"
        ));
    }
    if prefix.starts_with('/') {
        return invalid("it starts with '/'");
    }
    if let Some((folders, _)) = prefix.rsplit_once('/')
        && folders
            .split('/')
            .any(|segment| matches!(segment, "" | "." | ".."))
    {
        return invalid("a path segment is empty, '.' or '..'");
    }
    Ok(())
}

fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | '-')
}

/// RFC 5987 `attr-char`: everything else in `filename*` is percent-encoded.
const ATTR_CHAR: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// The `Content-Disposition` of a download (RFC 6266): `inline` or
/// `attachment`, an ASCII `filename` for old clients and the exact name
/// as `filename*` (RFC 5987).
pub(crate) fn content_disposition(download: &Download<'_>) -> String {
    let kind = if download.inline { "inline" } else { "attachment" };
    // A name is never a path: browsers would drop the folders anyway.
    let name = download
        .file_name
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or_default()
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .collect::<String>();
    let name = if name.is_empty() || name == "." || name == ".." {
        "download".to_owned()
    } else {
        name
    };
    let fallback: String = name
        .chars()
        .map(|c| match c {
            ' '..='~' if c != '"' && c != '\\' && c != '%' => c,
            _ => '_',
        })
        .collect();
    let encoded = utf8_percent_encode(&name, ATTR_CHAR);
    format!("{kind}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

/// Runs one operation of `adapter`, timing it in
/// `chatbox_blob_operation_seconds` and logging its failure with the key
/// and where the store is (`store`: a bucket or a folder).
pub(crate) async fn observed<T>(
    adapter: &'static str,
    op: &'static str,
    store: &str,
    key: &str,
    work: impl Future<Output = Result<T, BlobError>>,
) -> Result<T, BlobError> {
    let started = Instant::now();
    let result = work.await;
    let outcome = match &result {
        Ok(_) => "ok",
        Err(e) => e.outcome(),
    };
    crate::metrics::blob_operation(adapter, op, outcome, started.elapsed());
    match &result {
        Err(e @ (BlobError::Unavailable(_) | BlobError::Other(_))) => {
            tracing::warn!(adapter, op, store, key, error = %e, "file store operation failed");
        }
        Err(e) => tracing::debug!(adapter, op, store, key, error = %e, "file store operation refused"),
        Ok(_) => {}
    }
    result
}

/// `now + ttl`, for [`SignedRequest::expires_at`].
fn expiry(ttl: Duration) -> Timestamp {
    let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
    Timestamp::from_millis(Timestamp::now().as_millis().saturating_add(ttl_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_plain_relative_paths() {
        for key in ["a", "chat-files/u1/2024/f_1.pdf", ".hidden", "a..b/c", "x-y_z.Z9"] {
            assert_eq!(check_key(key), Ok(()), "{key}");
        }
        for key in [
            "", "/abs", "a//b", "a/", "./a", "a/../b", "..", "a b", "a\\b", "ä", "a?b", "a%2e",
        ] {
            assert!(matches!(check_key(key), Err(BlobError::InvalidKey(_))), "{key}");
        }
        assert!(check_key(&"a".repeat(MAX_KEY_LEN)).is_ok());
        assert!(check_key(&"a".repeat(MAX_KEY_LEN + 1)).is_err());
    }

    #[test]
    fn prefixes_may_end_anywhere_but_not_climb() {
        for prefix in ["", "a", "a/", "a/b.", "a/.", "a/..", "chat-files/u1/"] {
            assert_eq!(check_prefix(prefix), Ok(()), "{prefix}");
        }
        for prefix in ["/", "../a", "a//", "./", "a/../b/", "a b"] {
            assert!(check_prefix(prefix).is_err(), "{prefix}");
        }
    }

    #[test]
    fn disposition_keeps_the_name_and_an_ascii_fallback() {
        let d = |file_name, inline| {
            content_disposition(&Download {
                file_name,
                content_type: "application/pdf",
                inline,
            })
        };
        assert_eq!(
            d("report.pdf", false),
            "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf"
        );
        assert_eq!(
            d("Résumé 2024.pdf", true),
            "inline; filename=\"R_sum_ 2024.pdf\"; filename*=UTF-8''R%C3%A9sum%C3%A9%202024.pdf"
        );
        assert_eq!(
            d("a\"b\\c;d\r\n.txt", false),
            "attachment; filename=\"c;d.txt\"; filename*=UTF-8''c%3Bd.txt"
        );
        assert_eq!(
            d("../../etc/passwd", false),
            "attachment; filename=\"passwd\"; filename*=UTF-8''passwd"
        );
        assert_eq!(
            d("", false),
            "attachment; filename=\"download\"; filename*=UTF-8''download"
        );
        assert_eq!(
            d("100%.txt", false),
            "attachment; filename=\"100_.txt\"; filename*=UTF-8''100%25.txt"
        );
    }
}
