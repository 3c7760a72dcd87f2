//! Opening the store a worker keeps sessions and messages in: SQLite under
//! `data_dir` for the all-in-one, MongoDB for the scaled worker (or as
//! configured), with content encrypted when a key is set.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chatbox_shared::config::{Config, Role, StoreKind, decode_key, redact_url};
use chatbox_worker::store::{
    ContentCipher, MeteredStore, MongoOptions, MongoStore, SqliteStore, Store, key_id,
};
use tracing::{info, warn};

/// The configured content cipher (keys were checked at start).
pub(crate) fn cipher(config: &Config) -> ContentCipher {
    let store = &config.chatbox.store;
    let current = decode_key(store.encryption_key.expose());
    let old: Vec<[u8; 32]> = store
        .old_encryption_keys
        .iter()
        .filter_map(|k| decode_key(k.expose()))
        .collect();
    match &current {
        Some(key) => {
            info!(key_id = %key_id(key), old_keys = old.len(), "message content is encrypted at rest")
        }
        None => warn!("no ENCRYPTION_KEY: message content is stored unencrypted"),
    }
    ContentCipher::new(current, &old)
}

/// Opens the store for `role`, timed ([`MeteredStore`]).
pub(crate) async fn open(config: &Config, role: Role, app_name: &str) -> anyhow::Result<Arc<dyn Store>> {
    let settings = &config.chatbox.store;
    let cipher = Arc::new(cipher(config));
    let kind = match settings.kind {
        StoreKind::Auto if role == Role::AllInOne => StoreKind::Sqlite,
        StoreKind::Auto => StoreKind::Mongo,
        kind => kind,
    };
    match kind {
        StoreKind::Sqlite => {
            if role == Role::Worker {
                warn!("SQLite store on a scaled worker: run exactly one worker with it");
            }
            let store = SqliteStore::open(Path::new(&config.chatbox.data_dir), cipher)
                .context("chatbox.data_dir (CHATBOX_DATA_DIR)")?;
            Ok(Arc::new(MeteredStore::new(Arc::new(store))))
        }
        StoreKind::Mongo | StoreKind::Auto => {
            let uri = settings.mongo_uri.expose();
            let store = MongoStore::connect(
                MongoOptions {
                    uri: uri.to_owned(),
                    database: settings.database.clone(),
                    app_name: app_name.to_owned(),
                    server_timeout: Duration::from_secs(5),
                    index_timeout: settings.index_timeout,
                },
                cipher,
            )
            .await
            .context("chatbox.store.mongo_uri (MONGO_URI)")?;
            info!(uri = %redact_url(uri), database = %settings.database, "MongoDB store");
            Ok(Arc::new(MeteredStore::new(Arc::new(store))))
        }
    }
}
