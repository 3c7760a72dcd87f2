//! Opening the file store: a local folder for the all-in-one, whose
//! signed URLs its own HTTP server answers, or S3 for scaled workers (or
//! as configured: a single scaled worker may keep files locally and serve
//! them on its own HTTP port, like it may keep SQLite).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use chatbox_shared::config::{BlobKind, Config, Role, decode_key};
use chatbox_worker::blob::{BlobStore, FileCipher, LocalBlobStore, S3BlobStore};
use tracing::{info, warn};

/// The file store of `role`, and the routes that serve it when this
/// process must (the local store).
pub(crate) async fn open(
    config: &Config,
    role: Role,
    listening: Option<SocketAddr>,
) -> anyhow::Result<(Arc<dyn BlobStore>, Option<Router>)> {
    let blob = &config.chatbox.blob;
    match blob.resolved_kind(role) {
        BlobKind::Local | BlobKind::Auto => {
            if role == Role::Worker {
                warn!(
                    "local file store on a scaled worker: run exactly one worker, and let clients reach its port"
                );
            }
            let dir = if blob.local_dir.is_empty() {
                PathBuf::from(&config.chatbox.data_dir).join("files")
            } else {
                PathBuf::from(&blob.local_dir)
            };
            let public_url = if blob.public_url.is_empty() {
                let addr = listening.context("the local file store needs chatbox.blob.public_url here")?;
                let host = if addr.ip().is_unspecified() {
                    SocketAddr::new([127, 0, 0, 1].into(), addr.port())
                } else {
                    addr
                };
                format!("http://{host}")
            } else {
                blob.public_url.clone()
            };
            let key = decode_key(blob.signing_key.expose());
            let mut store = LocalBlobStore::open(&dir, key, &public_url)
                .with_context(|| format!("chatbox.blob.local_dir ({})", dir.display()))?;
            let keys = &config.chatbox.store;
            if let Some(current) = decode_key(keys.encryption_key.expose()) {
                let old: Vec<[u8; 32]> = keys
                    .old_encryption_keys
                    .iter()
                    .filter_map(|k| decode_key(k.expose()))
                    .collect();
                store = store.with_encryption(FileCipher::new(&current, &old));
                info!("uploaded files are encrypted at rest (ENCRYPTION_KEY)");
            }
            info!(dir = %dir.display(), %public_url, "local file store");
            let store = Arc::new(store);
            Ok((Arc::clone(&store) as Arc<dyn BlobStore>, Some(store.routes())))
        }
        BlobKind::S3 => {
            let settings = &blob.s3;
            let store = S3BlobStore::connect(settings)
                .await
                .context("chatbox.blob.s3 (S3_BUCKET, S3_ENDPOINT)")?;
            info!(bucket = %settings.bucket, endpoint = %settings.endpoint, region = %settings.region, "S3 file store");
            Ok((Arc::new(store), None))
        }
    }
}
