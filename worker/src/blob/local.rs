//! The local adapter of the file store: a folder on disk, for the
//! all-in-one (one process).
//!
//! Objects live at `<dir>/objects/<key>` and their content types at
//! `<dir>/meta/<key>`. Every write goes to `<dir>/tmp/` first and is
//! renamed into place, so a reader never sees half an object. Clients
//! reach the files through URLs the all-in-one serves itself
//! ([`routes`], `/chat/blobs/{key}`), signed with HMAC-SHA256 in the
//! manner of S3's presigned URLs: the signature covers the operation, the
//! key, the expiry and every other parameter, so none can be changed. The
//! signing key is kept in `<dir>/signing.key` unless one is configured, so
//! links survive a restart.
//!
//! A key and a key under it (`a` and `a/b`) cannot both exist here, as a
//! file cannot be a folder too; the uploads never make such pairs.
//!
//! A signed PUT writes exactly the size it was signed for, once: the first
//! request to a link leaves a mark at `<dir>/used/<key>` (made with
//! `create_new`, so of two racing requests one wins), and every later
//! request is refused, whether the object is still there or was taken in
//! or refused and deleted since. A mark goes when its link has expired. A
//! request that stored nothing (too large, broken off) removes its mark,
//! so the client may try again while the link lives.
//!
//! Folders are made readable by this user only (0700) and files 0600:
//! uploads are the users' own. With `ENCRYPTION_KEY` set
//! ([`LocalBlobStore::with_encryption`]) objects are also encrypted at rest
//! ([`super::sealed`]); what was stored before stays readable.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::http::header::{
    ACCEPT_RANGES, CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, RANGE,
};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use chatbox_shared::protocol::{ErrorCode, ErrorInfo, Timestamp, outbound};
use futures_util::StreamExt;
use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use sha2::Sha256;
use tokio::io::AsyncWriteExt;

use super::sealed::{FileCipher, ObjectReader, ObjectWriter};
use super::{
    BlobError, BlobStore, Download, ObjectInfo, SignedRequest, check_key, check_prefix, content_disposition,
    observed,
};

const ADAPTER: &str = "local";

/// Where the all-in-one serves the files.
pub(super) const ROUTE_PREFIX: &str = "/chat/blobs/";

/// Temporary files older than this are left over from a crash.
const STALE_TMP: Duration = Duration::from_secs(3600);

/// Query values are percent-encoded except for RFC 3986's unreserved
/// characters, the same way when signing and when checking.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

type HmacSha256 = Hmac<Sha256>;

/// How often marks of expired links are swept (and at every start).
const USED_SWEEP: Duration = Duration::from_secs(600);

/// Files in a folder, served by the all-in-one's HTTP server.
pub struct LocalBlobStore {
    objects: PathBuf,
    meta: PathBuf,
    tmp: PathBuf,
    /// Marks of upload links already used ([`UsedLinks`]).
    used: UsedLinks,
    /// Encrypts objects at rest; `None`: stored as they are.
    cipher: Option<FileCipher>,
    /// HMAC-SHA256 keyed with the signing key, cloned for each URL.
    signer: HmacSha256,
    public_url: String,
    /// The folder, for logs.
    location: String,
}

impl std::fmt::Debug for LocalBlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalBlobStore")
            .field("dir", &self.location)
            .field("public_url", &self.public_url)
            .finish_non_exhaustive()
    }
}

impl LocalBlobStore {
    /// Opens (creating it if need be) the store in `dir`, whose URLs start
    /// with `public_url` (like `http://127.0.0.1:8080`) and are signed with
    /// `signing_key`, or with the key kept in `dir/signing.key` when `None`.
    pub fn open(dir: &Path, signing_key: Option<[u8; 32]>, public_url: &str) -> Result<Self, BlobError> {
        let io = |what: &str, path: &Path, e: std::io::Error| {
            BlobError::Other(format!("cannot {what} {}: {e}", path.display()))
        };
        let objects = dir.join("objects");
        let meta = dir.join("meta");
        let tmp = dir.join("tmp");
        let used = dir.join("used");
        for folder in [&objects, &meta, &tmp, &used] {
            create_private_dir(folder).map_err(|e| io("create the folder", folder, e))?;
        }
        // Folders made before they were kept private become private now.
        for folder in [dir, &objects, &meta, &tmp, &used] {
            make_private(folder, 0o700).map_err(|e| io("restrict the folder", folder, e))?;
        }
        remove_stale(&tmp);
        let used = UsedLinks::new(used);
        used.sweep_expired();
        let signing_key = match signing_key {
            Some(key) => key,
            None => kept_signing_key(&dir.join("signing.key"))?,
        };
        let signer = <HmacSha256 as Mac>::new_from_slice(&signing_key)
            .map_err(|e| BlobError::Other(format!("cannot use the signing key: {e}")))?;
        let public_url = public_url.trim().trim_end_matches('/').to_owned();
        if !(public_url.starts_with("http://") || public_url.starts_with("https://")) {
            return Err(BlobError::Other(format!(
                "the local file store's public URL {public_url:?} must start with http:// or https://"
            )));
        }
        Ok(LocalBlobStore {
            objects,
            meta,
            tmp,
            used,
            cipher: None,
            signer,
            public_url,
            location: dir.display().to_string(),
        })
    }
}

impl LocalBlobStore {
    /// Encrypts the objects written from now on with `cipher` (files
    /// stored before stay readable as they are).
    #[must_use]
    pub fn with_encryption(mut self, cipher: FileCipher) -> Self {
        self.cipher = Some(cipher);
        self
    }
}

/// Reads the signing key kept at `path`, or makes one (readable by this
/// user only).
fn kept_signing_key(path: &Path) -> Result<[u8; 32], BlobError> {
    chatbox_shared::keyfile::kept_key(path).map_err(|e| {
        BlobError::Other(format!(
            "cannot keep the signing key {} ({e}); links given out stop working if it is replaced",
            path.display()
        ))
    })
}

/// Deletes temporary files a crash left behind.
fn remove_stale(tmp: &Path) {
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    for entry in entries.flatten() {
        if is_stale(&entry) {
            // Best effort: what is not removed now is tried at the next start.
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Whether the file of `entry` was last written more than [`STALE_TMP`] ago.
fn is_stale(entry: &std::fs::DirEntry) -> bool {
    entry
        .metadata()
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age > STALE_TMP)
}

/// Makes `dir` and its missing parents, readable by this user only.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Sets the mode of `path` (on Unix; elsewhere the folder's ACLs rule).
fn make_private(path: &Path, mode: u32) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
    }
    #[cfg(not(unix))]
    {
        let _ = (path, mode);
        Ok(())
    }
}

/// Creates a new file at `path` readable and writable by this user only.
async fn create_private_file(path: &Path) -> std::io::Result<tokio::fs::File> {
    let mut options = tokio::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    options.open(path).await
}

/// The marks of upload links already used: `<dir>/used/<key>`, holding
/// the link's expiry in Unix seconds.
struct UsedLinks {
    dir: PathBuf,
    /// When marks of expired links were last swept.
    swept: std::sync::Mutex<Instant>,
}

/// Why a mark could not be made.
enum MarkError {
    /// The link was used before.
    Used,
    /// The folder failed.
    Io(std::io::Error),
}

impl UsedLinks {
    fn new(dir: PathBuf) -> Self {
        UsedLinks {
            dir,
            swept: std::sync::Mutex::new(Instant::now()),
        }
    }

    /// Marks the link of `key`, expiring at `exp`, as used; refused if it
    /// was (by this request's rival, or any request before).
    async fn mark(&self, key: &str, exp: u64) -> Result<PathBuf, MarkError> {
        self.sweep_now_and_then();
        let path = self.dir.join(key);
        let parent = path.parent().unwrap_or(&self.dir).to_path_buf();
        tokio::task::spawn_blocking(move || create_private_dir(&parent))
            .await
            .map_err(|e| MarkError::Io(std::io::Error::other(e)))?
            .map_err(MarkError::Io)?;
        let mut file = match create_private_file(&path).await {
            Ok(file) => file,
            Err(e) if e.kind() == ErrorKind::AlreadyExists => return Err(MarkError::Used),
            Err(e) => return Err(MarkError::Io(e)),
        };
        file.write_all(exp.to_string().as_bytes())
            .await
            .map_err(MarkError::Io)?;
        Ok(path)
    }

    /// Sweeps in the background when the last sweep is [`USED_SWEEP`] old.
    fn sweep_now_and_then(&self) {
        {
            let mut swept = self
                .swept
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if swept.elapsed() < USED_SWEEP {
                return;
            }
            *swept = Instant::now();
        }
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || sweep_used(&dir));
    }

    /// Removes the marks of links that have expired.
    fn sweep_expired(&self) {
        sweep_used(&self.dir);
    }
}

/// Removes the marks under `dir` whose link has expired (best effort:
/// what stays is tried at the next sweep).
fn sweep_used(dir: &Path) {
    let now = unix_now_ms() / 1000;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() => pending.push(path),
                Ok(t) if t.is_file() => {
                    let exp = std::fs::read_to_string(&path)
                        .ok()
                        .and_then(|text| text.trim().parse::<u64>().ok());
                    // A mark without an expiry is one being written, or
                    // one a crash cut short: removed once it is old.
                    let expired = match exp {
                        Some(exp) => exp < now,
                        None => is_stale(&entry),
                    };
                    if expired {
                        let _ = std::fs::remove_file(&path);
                    }
                }
                _ => {}
            }
        }
    }
}

fn unix_now_ms() -> u64 {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    u64::try_from(ms).unwrap_or(u64::MAX)
}

impl LocalBlobStore {
    /// Where the object at `key` lives.
    fn object_path(&self, key: &str) -> PathBuf {
        self.objects.join(key)
    }

    fn meta_path(&self, key: &str) -> PathBuf {
        self.meta.join(key)
    }

    fn tmp_path(&self) -> PathBuf {
        self.tmp.join(format!("{:032x}", rand::random::<u128>()))
    }

    fn io_error(&self, what: &str, key: &str, e: &std::io::Error) -> BlobError {
        BlobError::Other(format!("cannot {what} file {key:?} in {}: {e}", self.location))
    }

    fn not_found(&self, key: &str) -> BlobError {
        BlobError::NotFound(format!("no file {key:?} in {}", self.location))
    }

    /// Moves a finished temporary file to `dest`, making its folders.
    async fn commit(&self, tmp: &Path, dest: &Path) -> std::io::Result<()> {
        let parent = dest.parent().unwrap_or(&self.objects);
        let mut result = Ok(());
        // A delete may prune the folder between making and renaming: twice.
        for _ in 0..2 {
            let mut folders = tokio::fs::DirBuilder::new();
            folders.recursive(true);
            #[cfg(unix)]
            folders.mode(0o700);
            folders.create(parent).await?;
            result = tokio::fs::rename(tmp, dest).await;
            match &result {
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                _ => break,
            }
        }
        if result.is_err() {
            discard(tmp).await;
        }
        result
    }

    /// Writes `bytes` to a temporary file and moves it to `dest`.
    async fn write_atomically(&self, dest: &Path, bytes: &[u8]) -> std::io::Result<()> {
        let tmp = self.tmp_path();
        let written = async {
            let mut file = create_private_file(&tmp).await?;
            file.write_all(bytes).await?;
            file.sync_data().await
        }
        .await;
        if let Err(e) = written {
            discard(&tmp).await;
            return Err(e);
        }
        self.commit(&tmp, dest).await
    }

    /// Moves a finished temporary object into place with its content
    /// type (the type first: a reader never finds an object without it).
    async fn store(&self, key: &str, tmp: &Path, content_type: &str) -> Result<(), BlobError> {
        if let Err(e) = self
            .write_atomically(&self.meta_path(key), content_type.as_bytes())
            .await
        {
            discard(tmp).await;
            return Err(self.io_error("store the type of", key, &e));
        }
        self.commit(tmp, &self.object_path(key))
            .await
            .map_err(|e| self.io_error("store", key, &e))
    }

    /// The object, opened for reading; NotFound if missing.
    async fn open_object(&self, key: &str) -> Result<ObjectReader, BlobError> {
        let path = self.object_path(key);
        let file = match tokio::fs::File::open(&path).await {
            Ok(file) => file,
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
                return Err(self.not_found(key));
            }
            Err(e) => return Err(self.io_error("open", key, &e)),
        };
        let meta = file
            .metadata()
            .await
            .map_err(|e| self.io_error("read", key, &e))?;
        if !meta.is_file() {
            return Err(self.not_found(key));
        }
        ObjectReader::open(file, meta.len(), self.cipher.as_ref())
            .await
            .map_err(|e| self.io_error("read", key, &e))
    }

    /// Writes a new object's content to the temporary file `tmp`.
    async fn write_tmp(&self, tmp: &Path, bytes: &[u8]) -> std::io::Result<()> {
        let mut object = ObjectWriter::start(create_private_file(tmp).await?, self.cipher.as_ref()).await?;
        object.write(bytes).await?;
        object.finish().await
    }

    /// Removes the empty folders left above `path`, up to `root`.
    async fn prune(root: &Path, path: &Path) {
        let mut folder = path.parent();
        while let Some(dir) = folder {
            if dir == root || !dir.starts_with(root) || tokio::fs::remove_dir(dir).await.is_err() {
                break;
            }
            folder = dir.parent();
        }
    }

    /// The URL of `op` on `key`, with `params`, signed.
    fn signed_url(&self, key: &str, params: &[(&'static str, String)]) -> String {
        let query = canonical_query(params.iter().map(|(name, value)| (*name, value.as_str())));
        let sig = URL_SAFE_NO_PAD.encode(self.signature(key, &query));
        format!("{}{ROUTE_PREFIX}{key}?{query}&sig={sig}", self.public_url)
    }

    fn signature(&self, key: &str, canonical_query: &str) -> Vec<u8> {
        self.mac(key, canonical_query).finalize().into_bytes().to_vec()
    }

    fn mac(&self, key: &str, canonical_query: &str) -> HmacSha256 {
        let mut mac = self.signer.clone();
        mac.update(b"chatbox-blob-v1\n");
        mac.update(key.as_bytes());
        mac.update(b"\n");
        mac.update(canonical_query.as_bytes());
        mac
    }

    /// Checks a request for `key` whose query string is `query`: signed by
    /// this store, for `op`, not expired. Returns its parameters (without
    /// `sig`) and its expiry, in Unix seconds.
    fn verify(&self, key: &str, query: Option<&str>, op: &str) -> Result<Signed, Box<Response>> {
        let forbidden =
            |message: &str| Box::new(refuse(StatusCode::FORBIDDEN, ErrorCode::Forbidden, message));
        let invalid = "This link is not valid: it is incomplete or was changed. Ask for a new one.";
        let mut params = BTreeMap::new();
        for pair in query.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |s: &str| percent_decode_str(s).decode_utf8().map(|v| v.into_owned());
            let (Ok(name), Ok(value)) = (decode(name), decode(value)) else {
                return Err(forbidden(invalid));
            };
            if params.insert(name, value).is_some() {
                return Err(forbidden(invalid));
            }
        }
        let Some(sig) = params.remove("sig") else {
            return Err(forbidden(invalid));
        };
        let Ok(sig) = URL_SAFE_NO_PAD.decode(sig.as_bytes()) else {
            return Err(forbidden(invalid));
        };
        let canonical = canonical_query(params.iter().map(|(n, v)| (n.as_str(), v.as_str())));
        if self.mac(key, &canonical).verify_slice(&sig).is_err() {
            return Err(forbidden(invalid));
        }
        if params.get("op").map(String::as_str) != Some(op) {
            return Err(forbidden(&format!(
                "This link does not allow {}.",
                if op == "put" { "uploading" } else { "downloading" }
            )));
        }
        let Some(exp) = params.get("exp").and_then(|e| e.parse::<u64>().ok()) else {
            return Err(forbidden(invalid));
        };
        let now_ms = unix_now_ms();
        if now_ms > exp.saturating_mul(1000) {
            return Err(forbidden(&format!(
                "This link expired at {}. Ask for a new one.",
                Timestamp::from_millis(exp.saturating_mul(1000))
            )));
        }
        Ok(Signed {
            params,
            seconds_left: exp.saturating_sub(now_ms / 1000),
        })
    }
}

/// A request whose signature checked out.
struct Signed {
    params: BTreeMap<String, String>,
    seconds_left: u64,
}

impl Signed {
    fn get(&self, name: &str) -> &str {
        self.params.get(name).map(String::as_str).unwrap_or_default()
    }
}

/// `name=value&…`, sorted by name, values percent-encoded: the same text
/// when signing and when checking, whatever order the client sends.
fn canonical_query<'a>(params: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let mut pairs: Vec<(&str, &str)> = params.collect();
    pairs.sort_unstable();
    pairs
        .iter()
        .map(|(name, value)| {
            format!(
                "{}={}",
                utf8_percent_encode(name, QUERY_VALUE),
                utf8_percent_encode(value, QUERY_VALUE)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// The expiry of a URL valid for `ttl`, in Unix seconds (rounded up).
fn expires(ttl: Duration) -> u64 {
    let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
    unix_now_ms().saturating_add(ttl_ms).div_ceil(1000)
}

#[async_trait]
impl BlobStore for LocalBlobStore {
    fn adapter(&self) -> &'static str {
        ADAPTER
    }

    async fn check(&self) -> Result<(), BlobError> {
        observed(ADAPTER, "check", &self.location, "", async {
            for folder in [&self.objects, &self.meta, &self.tmp] {
                let meta = tokio::fs::metadata(folder).await.map_err(|e| {
                    BlobError::Unavailable(format!("the file folder {} is not there: {e}", folder.display()))
                })?;
                if !meta.is_dir() {
                    return Err(BlobError::Other(format!("{} is not a folder", folder.display())));
                }
            }
            Ok(())
        })
        .await
    }

    async fn put(&self, key: &str, bytes: Bytes, content_type: &str) -> Result<(), BlobError> {
        observed(ADAPTER, "put", &self.location, key, async {
            check_key(key)?;
            let tmp = self.tmp_path();
            if let Err(e) = self.write_tmp(&tmp, &bytes).await {
                discard(&tmp).await;
                return Err(self.io_error("write", key, &e));
            }
            self.store(key, &tmp, content_type).await
        })
        .await
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, BlobError> {
        observed(ADAPTER, "head", &self.location, key, async {
            check_key(key)?;
            let size = match self.open_object(key).await {
                Ok(object) => object.size,
                Err(BlobError::NotFound(_)) => return Ok(None),
                Err(e) => return Err(e),
            };
            let content_type = tokio::fs::read_to_string(self.meta_path(key)).await.ok();
            Ok(Some(ObjectInfo { size, content_type }))
        })
        .await
    }

    async fn read_range(&self, key: &str, start: u64, end: u64) -> Result<Bytes, BlobError> {
        observed(ADAPTER, "read_range", &self.location, key, async {
            check_key(key)?;
            let mut object = self.open_object(key).await?;
            let bytes = object
                .read(start, end)
                .await
                .map_err(|e| self.io_error("read", key, &e))?;
            Ok(Bytes::from(bytes))
        })
        .await
    }

    async fn copy(&self, from: &str, to: &str, content_type: &str) -> Result<(), BlobError> {
        observed(ADAPTER, "copy", &self.location, from, async {
            check_key(from)?;
            check_key(to)?;
            // The open source stays the object it was, even if it is
            // replaced meanwhile: the copy is one version, whole (sealed
            // content is copied as it is: it is not bound to its key).
            let mut source = self.open_object(from).await?.into_stored();
            let tmp = self.tmp_path();
            let copied = async {
                let mut file = create_private_file(&tmp).await?;
                tokio::io::copy(&mut source, &mut file).await?;
                file.sync_data().await
            }
            .await;
            if let Err(e) = copied {
                discard(&tmp).await;
                return Err(self.io_error("copy", from, &e));
            }
            self.store(to, &tmp, content_type).await
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<(), BlobError> {
        observed(ADAPTER, "delete", &self.location, key, async {
            check_key(key)?;
            for (root, path) in [
                (&self.objects, self.object_path(key)),
                (&self.meta, self.meta_path(key)),
            ] {
                match tokio::fs::remove_file(&path).await {
                    Ok(()) => Self::prune(root, &path).await,
                    Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {}
                    // A folder: keys under it are other objects.
                    Err(e) if e.kind() == ErrorKind::IsADirectory => {}
                    Err(e) => return Err(self.io_error("delete", key, &e)),
                }
            }
            Ok(())
        })
        .await
    }

    async fn retire(&self, key: &str) -> Result<(), BlobError> {
        // The link's mark outlives the object: nothing more to do.
        self.delete(key).await
    }

    async fn list(&self, prefix: &str, limit: usize) -> Result<Vec<String>, BlobError> {
        observed(ADAPTER, "list", &self.location, prefix, async {
            check_prefix(prefix)?;
            let objects = self.objects.clone();
            let prefix = prefix.to_owned();
            tokio::task::spawn_blocking(move || list_files(&objects, &prefix, limit))
                .await
                .map_err(|e| BlobError::Other(format!("listing files stopped: {e}")))?
        })
        .await
    }

    async fn presign_put(
        &self,
        key: &str,
        content_type: &str,
        size: u64,
        ttl: Duration,
    ) -> Result<SignedRequest, BlobError> {
        observed(ADAPTER, "presign_put", &self.location, key, async {
            check_key(key)?;
            let exp = expires(ttl);
            let url = self.signed_url(
                key,
                &[
                    ("op", "put".to_owned()),
                    ("exp", exp.to_string()),
                    ("size", size.to_string()),
                    ("ct", content_type.to_owned()),
                ],
            );
            Ok(SignedRequest {
                url,
                method: "PUT",
                headers: BTreeMap::from([("content-type".to_owned(), content_type.to_owned())]),
                expires_at: Timestamp::from_millis(exp.saturating_mul(1000)),
            })
        })
        .await
    }

    async fn presign_get(
        &self,
        key: &str,
        download: &Download<'_>,
        ttl: Duration,
    ) -> Result<String, BlobError> {
        observed(ADAPTER, "presign_get", &self.location, key, async {
            check_key(key)?;
            Ok(self.signed_url(
                key,
                &[
                    ("op", "get".to_owned()),
                    ("exp", expires(ttl).to_string()),
                    ("ct", download.content_type.to_owned()),
                    ("name", download.file_name.to_owned()),
                    ("inline", if download.inline { "1" } else { "0" }.to_owned()),
                ],
            ))
        })
        .await
    }
}

/// Keys under `objects` that start with `prefix`, sorted, at most `limit`.
fn list_files(objects: &Path, prefix: &str, limit: usize) -> Result<Vec<String>, BlobError> {
    // Only the folder the prefix names can hold matches.
    let (folder, start) = match prefix.rsplit_once('/') {
        Some((folder, _)) => (objects.join(folder), format!("{folder}/")),
        None => (objects.to_path_buf(), String::new()),
    };
    let mut keys = Vec::new();
    let mut pending = vec![(folder, start)];
    while let Some((dir, key_prefix)) = pending.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => continue,
            Err(e) => {
                return Err(BlobError::Other(format!("cannot list {}: {e}", dir.display())));
            }
        };
        for entry in entries {
            let entry = entry.map_err(|e| BlobError::Other(format!("cannot list {}: {e}", dir.display())))?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            let key = format!("{key_prefix}{name}");
            // Skip whole folders that cannot match.
            if !(key.starts_with(prefix) || prefix.starts_with(&key)) {
                continue;
            }
            match entry.file_type() {
                Ok(t) if t.is_dir() => pending.push((entry.path(), format!("{key}/"))),
                Ok(t) if t.is_file() && key.starts_with(prefix) && check_key(&key).is_ok() => keys.push(key),
                _ => {}
            }
        }
    }
    keys.sort_unstable();
    keys.truncate(limit);
    Ok(keys)
}

impl LocalBlobStore {
    /// The routes that serve the store's signed URLs: `PUT` and `GET` on
    /// `/chat/blobs/{key}`.
    pub fn routes(self: Arc<Self>) -> Router {
        Router::new()
            .route("/chat/blobs/{*key}", get(serve_get).put(serve_put))
            .with_state(self)
    }
}

/// A refusal in the project's error format.
fn refuse(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Response {
    let body = outbound::error(None, ErrorInfo::new(code, message)).to_json();
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

fn storage_failed(e: &BlobError) -> Response {
    refuse(
        StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::StorageError,
        format!("The file store failed: {e}"),
    )
}

fn not_found() -> Response {
    // No code names a missing file; INVALID_FIELD says the link names none.
    refuse(
        StatusCode::NOT_FOUND,
        ErrorCode::InvalidField,
        "There is no file at this link: it was deleted, or never uploaded.",
    )
}

const X_CONTENT_TYPE_OPTIONS: HeaderName = HeaderName::from_static("x-content-type-options");
const CONTENT_SECURITY_POLICY: HeaderName = HeaderName::from_static("content-security-policy");

/// Counts a request served, by its status.
fn served(op: &'static str, started: Instant, response: Response) -> Response {
    let outcome = match response.status().as_u16() {
        200..=299 => "ok",
        404 => "not_found",
        400 => "invalid_key",
        403 | 413 | 416 => "refused",
        503 => "unavailable",
        _ => "error",
    };
    crate::metrics::blob_operation(ADAPTER, op, outcome, started.elapsed());
    response
}

async fn serve_put(
    State(store): State<Arc<LocalBlobStore>>,
    UrlPath(key): UrlPath<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    served(
        "serve_put",
        started,
        put_signed(&store, &key, query.as_deref(), &headers, body).await,
    )
}

async fn put_signed(
    store: &LocalBlobStore,
    key: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: Body,
) -> Response {
    let signed = match store.verify(key, query, "put") {
        Ok(signed) => signed,
        Err(refusal) => return *refusal,
    };
    if let Err(e) = check_key(key) {
        return refuse(StatusCode::BAD_REQUEST, ErrorCode::InvalidField, e.to_string());
    }
    let content_type = signed.get("ct");
    let sent_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if sent_type != content_type {
        return refuse(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            format!("This link uploads a file of type {content_type:?}; the request sent {sent_type:?}."),
        );
    }
    let (Ok(size), Ok(exp)) = (
        signed.get("size").parse::<u64>(),
        signed.get("exp").parse::<u64>(),
    ) else {
        return refuse(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            "This link is not valid.",
        );
    };
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n != size) {
        return wrong_size(size);
    }
    let mark = match store.used.mark(key, exp).await {
        Ok(mark) => mark,
        Err(MarkError::Used) => {
            return refuse(
                StatusCode::FORBIDDEN,
                ErrorCode::Forbidden,
                "This link was used already: a file is uploaded once. Ask for a new one.",
            );
        }
        Err(MarkError::Io(e)) => return storage_failed(&store.io_error("write", key, &e)),
    };
    let response = receive(store, key, content_type, size, body).await;
    if !response.status().is_success() {
        // Nothing was stored: the link may be tried again.
        discard(&mark).await;
    }
    response
}

/// The refusal of a body that is not the size the link was signed for.
fn wrong_size(size: u64) -> Response {
    refuse(
        StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::MessageTooLarge,
        format!("This link uploads a file of exactly {size} bytes, the size declared for it."),
    )
}

/// Receives a body of exactly `size` bytes into a temporary file, and
/// stores it at `key`.
async fn receive(store: &LocalBlobStore, key: &str, content_type: &str, size: u64, body: Body) -> Response {
    let tmp = store.tmp_path();
    let started =
        async { ObjectWriter::start(create_private_file(&tmp).await?, store.cipher.as_ref()).await };
    let mut file = match started.await {
        Ok(file) => file,
        Err(e) => {
            discard(&tmp).await;
            return storage_failed(&store.io_error("write", key, &e));
        }
    };
    let mut stream = body.into_data_stream();
    let mut written: u64 = 0;
    let outcome: Result<(), Response> = async {
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                refuse(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::InvalidMessage,
                    format!("The upload broke off: {e}"),
                )
            })?;
            written += chunk.len() as u64;
            if written > size {
                return Err(wrong_size(size));
            }
            file.write(&chunk)
                .await
                .map_err(|e| storage_failed(&store.io_error("write", key, &e)))?;
        }
        if written != size {
            return Err(wrong_size(size));
        }
        file.finish()
            .await
            .map_err(|e| storage_failed(&store.io_error("write", key, &e)))
    }
    .await;
    if let Err(refusal) = outcome {
        discard(&tmp).await;
        if refusal.status().is_server_error() {
            tracing::warn!(
                adapter = ADAPTER,
                key,
                "an upload to a signed URL could not be stored"
            );
        }
        return refusal;
    }
    match store.store(key, &tmp, content_type).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => {
            tracing::warn!(adapter = ADAPTER, key, store = %store.location, error = %e, "an upload to a signed URL could not be stored");
            storage_failed(&e)
        }
    }
}

async fn serve_get(
    State(store): State<Arc<LocalBlobStore>>,
    UrlPath(key): UrlPath<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let started = Instant::now();
    served(
        "serve_get",
        started,
        get_signed(&store, &key, query.as_deref(), &headers).await,
    )
}

async fn get_signed(store: &LocalBlobStore, key: &str, query: Option<&str>, headers: &HeaderMap) -> Response {
    let signed = match store.verify(key, query, "get") {
        Ok(signed) => signed,
        Err(refusal) => return *refusal,
    };
    if let Err(e) = check_key(key) {
        return refuse(StatusCode::BAD_REQUEST, ErrorCode::InvalidField, e.to_string());
    }
    let object = match store.open_object(key).await {
        Ok(object) => object,
        Err(BlobError::NotFound(_)) => return not_found(),
        Err(e) => {
            tracing::warn!(adapter = ADAPTER, key, store = %store.location, error = %e, "a signed download failed");
            return storage_failed(&e);
        }
    };
    let size = object.size;
    let range = headers.get(RANGE).and_then(|v| v.to_str().ok());
    let (status, start, len) = match range.map(|r| byte_range(r, size)) {
        None | Some(ByteRange::Ignored) => (StatusCode::OK, 0, size),
        Some(ByteRange::Satisfiable(start, end)) => (StatusCode::PARTIAL_CONTENT, start, end - start + 1),
        Some(ByteRange::Unsatisfiable) => {
            let mut refusal = refuse(
                StatusCode::RANGE_NOT_SATISFIABLE,
                ErrorCode::InvalidField,
                format!("The file has {size} bytes; the requested range is outside them."),
            );
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                refusal.headers_mut().insert(CONTENT_RANGE, v);
            }
            return refusal;
        }
    };
    let body = Body::from_stream(object.stream(start, len));
    let mut response = (status, body).into_response();
    let download = Download {
        file_name: signed.get("name"),
        content_type: signed.get("ct"),
        inline: signed.get("inline") == "1",
    };
    let out = response.headers_mut();
    let content_type = HeaderValue::from_str(download.content_type)
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
    out.insert(CONTENT_TYPE, content_type);
    out.insert(CONTENT_LENGTH, HeaderValue::from(len));
    if let Ok(v) = HeaderValue::from_str(&content_disposition(&download)) {
        out.insert(CONTENT_DISPOSITION, v);
    }
    out.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    out.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox; default-src 'none'"),
    );
    out.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(v) = HeaderValue::from_str(&format!("private, max-age={}", signed.seconds_left)) {
        out.insert(CACHE_CONTROL, v);
    }
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{}/{size}", start + len - 1))
    {
        out.insert(CONTENT_RANGE, v);
    }
    response
}

/// What a `Range` header asks of a file of `size` bytes.
#[derive(Debug, PartialEq, Eq)]
enum ByteRange {
    /// Bytes `start..=end`.
    Satisfiable(u64, u64),
    /// Outside the file: 416.
    Unsatisfiable,
    /// Not one byte range we serve (several ranges, other units): the
    /// whole file, as RFC 9110 allows.
    Ignored,
}

/// Parses a single `bytes=a-b`, `bytes=a-` or `bytes=-n`.
fn byte_range(header: &str, size: u64) -> ByteRange {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return ByteRange::Ignored;
    };
    if spec.contains(',') {
        return ByteRange::Ignored;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return ByteRange::Ignored;
    };
    let parse = |s: &str| s.trim().parse::<u64>().ok();
    let (start, end) = match (first.trim(), last.trim()) {
        ("", "") => return ByteRange::Ignored,
        ("", n) => match parse(n) {
            Some(0) => return ByteRange::Unsatisfiable,
            Some(n) => (size.saturating_sub(n), size.saturating_sub(1)),
            None => return ByteRange::Ignored,
        },
        (a, "") => match parse(a) {
            Some(a) => (a, size.saturating_sub(1)),
            None => return ByteRange::Ignored,
        },
        (a, b) => match (parse(a), parse(b)) {
            (Some(a), Some(b)) if a <= b => (a, b.min(size.saturating_sub(1))),
            _ => return ByteRange::Ignored,
        },
    };
    if size == 0 || start >= size {
        return ByteRange::Unsatisfiable;
    }
    ByteRange::Satisfiable(start, end)
}

/// Removes a temporary file a failed write left. Best effort: temporary
/// files are named apart from objects, never read, and those left behind
/// are removed when the store next opens.
async fn discard(tmp: impl AsRef<Path>) {
    if let Err(e) = tokio::fs::remove_file(tmp.as_ref()).await
        && e.kind() != ErrorKind::NotFound
    {
        tracing::debug!(path = %tmp.as_ref().display(), "cannot remove a temporary file: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_rfc_9110() {
        use ByteRange::*;
        assert_eq!(byte_range("bytes=0-9", 100), Satisfiable(0, 9));
        assert_eq!(byte_range("bytes=90-200", 100), Satisfiable(90, 99));
        assert_eq!(byte_range("bytes=50-", 100), Satisfiable(50, 99));
        assert_eq!(byte_range("bytes=-10", 100), Satisfiable(90, 99));
        assert_eq!(byte_range("bytes=-500", 100), Satisfiable(0, 99));
        assert_eq!(byte_range("bytes=100-", 100), Unsatisfiable);
        assert_eq!(byte_range("bytes=-0", 100), Unsatisfiable);
        assert_eq!(byte_range("bytes=0-0", 0), Unsatisfiable);
        assert_eq!(byte_range("bytes=0-1,5-6", 100), Ignored);
        assert_eq!(byte_range("items=0-1", 100), Ignored);
        assert_eq!(byte_range("bytes=9-1", 100), Ignored);
        assert_eq!(byte_range("bytes=x-1", 100), Ignored);
    }

    #[test]
    fn the_canonical_query_ignores_order_and_encodes_values() {
        let a = canonical_query([("op", "get"), ("name", "a b+c/é"), ("exp", "1")].into_iter());
        let b = canonical_query([("exp", "1"), ("op", "get"), ("name", "a b+c/é")].into_iter());
        assert_eq!(a, b);
        assert_eq!(a, "exp=1&name=a%20b%2Bc%2F%C3%A9&op=get");
    }

    fn store(dir: &Path) -> LocalBlobStore {
        LocalBlobStore::open(dir, None, "http://127.0.0.1:1/").unwrap()
    }

    #[test]
    fn the_signing_key_is_made_once_and_kept() {
        let dir = std::env::temp_dir().join(format!("chatbox-blob-key-{:016x}", rand::random::<u64>()));
        let first = store(&dir);
        let again = store(&dir);
        let key = std::fs::read(dir.join("signing.key")).unwrap();
        assert_eq!(key.len(), 32);
        let url = |s: &LocalBlobStore| s.signed_url("k", &[("op", "get".into())]);
        assert_eq!(url(&first), url(&again));
        assert_eq!(first.public_url, "http://127.0.0.1:1");
        let given = LocalBlobStore::open(&dir, Some([7; 32]), "http://127.0.0.1:1").unwrap();
        assert_ne!(url(&given), url(&first));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_signature_covers_every_parameter() {
        let dir = std::env::temp_dir().join(format!("chatbox-blob-sig-{:016x}", rand::random::<u64>()));
        let s = store(&dir);
        let url = s.signed_url(
            "a/b.txt",
            &[
                ("op", "get".into()),
                ("exp", expires(Duration::from_secs(60)).to_string()),
            ],
        );
        let query = url.split_once('?').unwrap().1;
        assert!(s.verify("a/b.txt", Some(query), "get").is_ok());
        assert!(s.verify("a/c.txt", Some(query), "get").is_err());
        assert!(s.verify("a/b.txt", Some(query), "put").is_err());
        assert!(
            s.verify("a/b.txt", Some(&format!("{query}&inline=1")), "get")
                .is_err()
        );
        assert!(
            s.verify("a/b.txt", Some(&format!("{query}&op=get")), "get")
                .is_err()
        );
        let reordered: Vec<&str> = query.split('&').rev().collect();
        assert!(s.verify("a/b.txt", Some(&reordered.join("&")), "get").is_ok());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
