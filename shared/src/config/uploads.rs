//! `[chatbox.uploads]` (the seed's `[userupload]`: limits and allowed
//! types) and `[chatbox.blob]` (where files live: S3 or a local folder).
//!
//! `UPLOAD_MAX_SIZE`, `S3_BUCKET`, `S3_REGION` and `S3_ENDPOINT` (the
//! seed's names) set their keys. Both sections are checked for the worker
//! and the all-in-one; the `[chatbox.blob.s3]` keys only where S3 is the
//! store ([`BlobConfig::resolved_kind`]).

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::problems::Problems;
use super::validate::{Role, decode_key};
use super::{Secret, duration};

/// `[chatbox.uploads]`: what users may upload and how long links live.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UploadsConfig {
    /// Largest file, like `"20MB"` (the seed's `maxSize`).
    #[serde(with = "size")]
    pub max_size: u64,
    /// Largest voice message.
    #[serde(with = "size")]
    pub max_voice_size: u64,
    /// Media types users may upload as files.
    pub allowed_types: Vec<String>,
    /// Media types accepted as voice messages.
    pub voice_types: Vec<String>,
    /// How long an upload URL (and its slot) stays valid.
    #[serde(with = "duration")]
    pub upload_url_ttl: Duration,
    /// How long a download URL stays valid; every history read signs anew.
    #[serde(with = "duration")]
    pub download_url_ttl: Duration,
    /// How often a worker deletes upload slots never used.
    #[serde(with = "duration")]
    pub cleanup_interval: Duration,
    /// Key prefix of accepted files (the seed's `prefix`).
    pub prefix: String,
    /// Key prefix of uploads not yet checked.
    pub quarantine_prefix: String,
    /// Text files up to this size go to the model as text.
    #[serde(with = "size")]
    pub inline_text_size: u64,
    /// Images up to this size go to models that see images.
    #[serde(with = "size")]
    pub inline_image_size: u64,
}

impl Default for UploadsConfig {
    fn default() -> Self {
        let strings = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect();
        UploadsConfig {
            max_size: 20 * MB,
            max_voice_size: 10 * MB,
            allowed_types: strings(&[
                "image/png",
                "image/jpeg",
                "image/gif",
                "image/webp",
                "application/pdf",
                "text/plain",
                "text/markdown",
                "text/csv",
                "application/json",
            ]),
            voice_types: strings(&[
                "audio/webm",
                "audio/ogg",
                "audio/mp4",
                "audio/mpeg",
                "audio/wav",
                "audio/aac",
                "audio/flac",
            ]),
            upload_url_ttl: Duration::from_secs(10 * 60),
            download_url_ttl: Duration::from_secs(60 * 60),
            cleanup_interval: Duration::from_secs(60),
            prefix: "chat-files".into(),
            quarantine_prefix: "quarantine".into(),
            inline_text_size: 32 * 1024,
            inline_image_size: 5 * MB,
        }
    }
}

/// Longest a presigned S3 URL may live (SigV4's limit).
const MAX_URL_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

impl UploadsConfig {
    /// Sizes are above zero, links live at most as long as S3 allows, and
    /// the two prefixes are distinct key prefixes.
    pub(super) fn check(&self, p: &mut Problems) {
        p.check(self.max_size > 0, "chatbox.uploads.max_size", || {
            "must be more than zero".into()
        });
        p.check(self.max_voice_size > 0, "chatbox.uploads.max_voice_size", || {
            "must be more than zero".into()
        });
        for (ttl, key) in [
            (self.upload_url_ttl, "chatbox.uploads.upload_url_ttl"),
            (self.download_url_ttl, "chatbox.uploads.download_url_ttl"),
        ] {
            p.check(!ttl.is_zero() && ttl <= MAX_URL_TTL, key, || {
                "must be longer than zero and at most 7 days".into()
            });
        }
        p.positive(self.cleanup_interval, "chatbox.uploads.cleanup_interval");
        for (prefix, key) in [
            (&self.prefix, "chatbox.uploads.prefix"),
            (&self.quarantine_prefix, "chatbox.uploads.quarantine_prefix"),
        ] {
            let prefix = prefix.trim_matches('/');
            p.check(
                !prefix.is_empty() && !prefix.split('/').any(|part| part.is_empty() || part == ".."),
                key,
                || "must be a key prefix like \"chat-files\"".into(),
            );
        }
        p.check(
            self.prefix.trim_matches('/') != self.quarantine_prefix.trim_matches('/'),
            "chatbox.uploads.quarantine_prefix",
            || "must differ from chatbox.uploads.prefix".into(),
        );
    }
}

const MB: u64 = 1024 * 1024;

/// Where files are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlobKind {
    /// A local folder for the all-in-one, S3 for the scaled worker.
    Auto,
    /// An S3 bucket (AWS S3, MinIO, any S3-compatible store).
    S3,
    /// A folder on this machine, served by the all-in-one (one process only).
    Local,
}

/// `[chatbox.blob]`: the file store.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BlobConfig {
    /// `auto`, `s3` or `local`.
    pub kind: BlobKind,
    /// Folder of the local store; empty: `<data_dir>/files`.
    pub local_dir: String,
    /// Key that signs local URLs (32 bytes, base64); empty: one is made and
    /// kept in the folder.
    pub signing_key: Secret,
    /// Base URL clients reach the local store at; empty: the listen address.
    pub public_url: String,
    /// The S3 bucket.
    pub s3: S3Config,
}

impl Default for BlobConfig {
    fn default() -> Self {
        BlobConfig {
            kind: BlobKind::Auto,
            local_dir: String::new(),
            signing_key: Secret::default(),
            public_url: String::new(),
            s3: S3Config::default(),
        }
    }
}

impl BlobConfig {
    /// The store `role` uses: `auto` is local for the all-in-one, S3 for
    /// the scaled roles.
    pub fn resolved_kind(&self, role: Role) -> BlobKind {
        match self.kind {
            BlobKind::Auto if role == Role::AllInOne => BlobKind::Local,
            BlobKind::Auto => BlobKind::S3,
            kind => kind,
        }
    }

    /// The signing key is a key, and the S3 store has a bucket, URLs and
    /// either both credentials or neither.
    pub(super) fn check(&self, p: &mut Problems, role: Role) {
        p.check(
            self.signing_key.is_empty() || decode_key(self.signing_key.expose()).is_some(),
            "chatbox.blob.signing_key",
            || "must be 32 bytes in base64 (try: openssl rand -base64 32)".into(),
        );
        if self.resolved_kind(role) == BlobKind::S3 {
            let s3 = &self.s3;
            p.check(!s3.bucket.trim().is_empty(), "chatbox.blob.s3.bucket", || {
                "is required for the S3 file store".into()
            });
            p.check(!s3.region.trim().is_empty(), "chatbox.blob.s3.region", || {
                "must not be empty".into()
            });
            for (url, key) in [
                (&s3.endpoint, "chatbox.blob.s3.endpoint"),
                (&s3.public_endpoint, "chatbox.blob.s3.public_endpoint"),
            ] {
                p.check(
                    url.is_empty() || url.starts_with("http://") || url.starts_with("https://"),
                    key,
                    || format!("{url:?} must start with http:// or https://"),
                );
            }
            p.check(
                s3.access_key_id.is_empty() == s3.secret_access_key.is_empty(),
                "chatbox.blob.s3.secret_access_key",
                || "set both access_key_id and secret_access_key, or neither (the standard AWS chain)".into(),
            );
            p.check(
                s3.kms_key_id.is_empty() || s3.server_side_encryption == ServerSideEncryption::SseKms,
                "chatbox.blob.s3.kms_key_id",
                || "is used with server_side_encryption = \"sse-kms\" only".into(),
            );
        }
        if !self.public_url.is_empty() {
            p.check(
                self.public_url.starts_with("http://") || self.public_url.starts_with("https://"),
                "chatbox.blob.public_url",
                || format!("{:?} must start with http:// or https://", self.public_url),
            );
        }
    }
}

/// `[chatbox.blob.s3]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Config {
    /// The bucket (`S3_BUCKET`).
    pub bucket: String,
    /// Its region.
    pub region: String,
    /// The endpoint workers use; empty: AWS.
    pub endpoint: String,
    /// The endpoint in URLs given to clients, when they reach the store at
    /// another address than workers do; empty: `endpoint`.
    pub public_endpoint: String,
    /// Path-style addressing (`endpoint/bucket/key`), which MinIO needs.
    pub path_style: bool,
    /// Access key; empty: the standard AWS chain (environment, profile,
    /// web identity, instance role).
    pub access_key_id: Secret,
    /// Its secret.
    pub secret_access_key: Secret,
    /// Server-side encryption of what is written: `none` (the bucket's
    /// default), `sse-s3` (AES256, keys the store manages) or `sse-kms`.
    pub server_side_encryption: ServerSideEncryption,
    /// The KMS key of `sse-kms` (id, ARN or alias); empty: the account's
    /// default key for S3.
    pub kms_key_id: String,
}

/// How the S3 store encrypts objects at rest (`chatbox.blob.s3.server_side_encryption`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerSideEncryption {
    /// Nothing asked: the bucket's default encryption applies.
    #[default]
    #[serde(rename = "none")]
    None,
    /// SSE-S3: AES256 with keys the store manages.
    #[serde(rename = "sse-s3")]
    SseS3,
    /// SSE-KMS: keys of the key management service.
    #[serde(rename = "sse-kms")]
    SseKms,
}

impl Default for S3Config {
    fn default() -> Self {
        S3Config {
            bucket: String::new(),
            region: "us-east-1".into(),
            endpoint: String::new(),
            public_endpoint: String::new(),
            path_style: false,
            access_key_id: Secret::default(),
            secret_access_key: Secret::default(),
            server_side_encryption: ServerSideEncryption::None,
            kms_key_id: String::new(),
        }
    }
}

/// Byte sizes as a whole number of bytes or text like `"20MB"`, `"512 KiB"`
/// (K, M, G are powers of 1024, as the seed's `maxSize` means them).
pub(super) mod size {
    use super::*;

    /// Writes the size as text (`"20MB"` when whole megabytes).
    pub(crate) fn serialize<S: Serializer>(value: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_size(*value))
    }

    /// Reads a number of bytes or a size with a unit.
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bytes(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bytes(n) => Ok(n),
            Raw::Text(text) => parse_size(&text).map_err(serde::de::Error::custom),
        }
    }
}

/// `"20MB"` → 20 MiB in bytes.
pub(super) fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size like \"20MB\" or a number of bytes"))?;
    let factor = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1024,
        "M" | "MB" | "MIB" => MB,
        "G" | "GB" | "GIB" => 1024 * MB,
        other => return Err(format!("unknown size unit {other:?} (use B, KB, MB or GB)")),
    };
    Ok((number * factor as f64) as u64)
}

/// 20 MiB → `"20MB"`.
pub(super) fn format_size(bytes: u64) -> String {
    match bytes {
        b if b >= MB && b % MB == 0 => format!("{}MB", b / MB),
        b if b >= 1024 && b % 1024 == 0 => format!("{}KB", b / 1024),
        b => format!("{b}B"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::load;

    #[test]
    fn sizes_read_like_the_seed_writes_them() {
        assert_eq!(parse_size("100MB"), Ok(100 * MB));
        assert_eq!(parse_size("512 KiB"), Ok(512 * 1024));
        assert_eq!(parse_size("1.5GB"), Ok(1536 * MB));
        assert_eq!(parse_size("42"), Ok(42));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("3 parsecs").is_err());
        for n in [0, 1, 1024, 20 * MB, 5 * MB + 1] {
            assert_eq!(parse_size(&format_size(n)), Ok(n));
        }
    }

    #[test]
    fn file_settings_come_from_the_seed_names_and_are_checked() {
        let worker_env = [
            ("JWT_SECRET", "0123456789abcdef0123456789abcdef"),
            ("ENCRYPTION_KEY", "c3lzdGVtLXRlc3QtZW5jcnlwdGlvbi1rZXktMzJieXQ="),
        ];
        let err = load(None, &worker_env, Role::Worker).unwrap_err().to_string();
        assert!(
            err.contains("chatbox.blob.s3.bucket (CHATBOX_BLOB_S3_BUCKET or S3_BUCKET): is required"),
            "{err}"
        );
        let mut env = worker_env.to_vec();
        env.extend([
            ("S3_BUCKET", "chat-files"),
            ("S3_ENDPOINT", "http://minio:9000"),
            ("UPLOAD_MAX_SIZE", "100MB"),
            ("CHATBOX_UPLOADS_ALLOWED_TYPES", "image/png, application/pdf"),
        ]);
        let c = load(None, &env, Role::Worker).unwrap();
        assert_eq!(c.chatbox.blob.resolved_kind(Role::Worker), BlobKind::S3);
        assert_eq!(c.chatbox.blob.s3.endpoint, "http://minio:9000");
        assert_eq!(c.chatbox.uploads.max_size, 100 * 1024 * 1024);
        assert_eq!(c.chatbox.uploads.allowed_types, ["image/png", "application/pdf"]);
        let all_in_one = load(None, &[], Role::AllInOne).unwrap();
        assert_eq!(
            all_in_one.chatbox.blob.resolved_kind(Role::AllInOne),
            BlobKind::Local
        );
        let file = "[chatbox.uploads]\nmax_size = \"lots\"\n";
        let err = load(Some(file), &[], Role::AllInOne).unwrap_err().to_string();
        assert!(err.contains("max_size") && err.contains("not a size"), "{err}");
        let err = load(
            None,
            &[("S3_ENDPOINT", "minio:9000"), ("CHATBOX_BLOB_KIND", "s3")],
            Role::AllInOne,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("chatbox.blob.s3.endpoint") && err.contains("http://"),
            "{err}"
        );
    }
}
