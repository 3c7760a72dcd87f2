//! `[chatbox.store]`: where workers keep sessions and messages (MongoDB,
//! or a SQLite file under `chatbox.data_dir`), and the key that encrypts
//! message content at rest.
//!
//! The seed's `MONGO_URI` and `ENCRYPTION_KEY` set `mongo_uri` and
//! `encryption_key`. Only the worker roles (and the all-in-one) check this
//! section; a scaled worker requires an encryption key unless
//! `allow_plaintext` is set.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::problems::Problems;
use super::validate::{Role, decode_key};
use super::{Secret, duration};

/// Which database holds sessions and messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// SQLite for the all-in-one, MongoDB for the scaled worker.
    Auto,
    /// MongoDB (`MONGO_URI`).
    Mongo,
    /// A SQLite file under `data_dir` (one worker only).
    Sqlite,
}

/// `[chatbox.store]`: persistence of sessions and messages (workers only).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// `auto`, `mongo` or `sqlite`.
    pub kind: StoreKind,
    /// MongoDB connection string (`MONGO_URI`).
    pub mongo_uri: Secret,
    /// MongoDB database name.
    pub database: String,
    /// AES-256-GCM key for message content, 32 bytes in base64
    /// (`ENCRYPTION_KEY`).
    pub encryption_key: Secret,
    /// Earlier keys, still used to read what they encrypted.
    pub old_encryption_keys: Vec<Secret>,
    /// Let a scaled worker store content unencrypted when no key is set.
    pub allow_plaintext: bool,
    /// How long index creation may take at start before the worker goes on
    /// without waiting.
    #[serde(with = "duration")]
    pub index_timeout: Duration,
    /// How often a worker looks for sessions to end (left longer than the
    /// reconnect timeout).
    #[serde(with = "duration")]
    pub sweep_interval: Duration,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            kind: StoreKind::Auto,
            mongo_uri: Secret::new("mongodb://127.0.0.1:27017"),
            database: "chat".into(),
            encryption_key: Secret::default(),
            old_encryption_keys: Vec::new(),
            allow_plaintext: false,
            index_timeout: Duration::from_secs(30),
            sweep_interval: Duration::from_secs(60),
        }
    }
}

impl StoreConfig {
    /// The keys are keys, and a store that needs MongoDB can reach one.
    pub(super) fn check(&self, p: &mut Problems, role: Role) {
        p.check(
            self.encryption_key.is_empty() || decode_key(self.encryption_key.expose()).is_some(),
            "chatbox.store.encryption_key",
            || "must be 32 bytes in base64 (try: openssl rand -base64 32)".into(),
        );
        for key in &self.old_encryption_keys {
            p.check(
                decode_key(key.expose()).is_some(),
                "chatbox.store.old_encryption_keys",
                || "every key must be 32 bytes in base64".into(),
            );
        }
        if role == Role::Worker {
            p.check(
                !self.encryption_key.is_empty() || self.allow_plaintext,
                "chatbox.store.encryption_key",
                || "is required for the worker (message content is encrypted at rest); set chatbox.store.allow_plaintext = true to store it unencrypted".into(),
            );
        }
        if self.kind == StoreKind::Mongo || (self.kind == StoreKind::Auto && role == Role::Worker) {
            let uri = self.mongo_uri.expose();
            p.check(
                uri.starts_with("mongodb://") || uri.starts_with("mongodb+srv://"),
                "chatbox.store.mongo_uri",
                || "must start with mongodb:// or mongodb+srv://".into(),
            );
            p.check(!self.database.is_empty(), "chatbox.store.database", || {
                "must not be empty".into()
            });
        }
        p.positive(self.index_timeout, "chatbox.store.index_timeout");
        p.positive(self.sweep_interval, "chatbox.store.sweep_interval");
    }
}
