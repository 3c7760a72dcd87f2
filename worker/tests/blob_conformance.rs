//! One conformance suite for the `BlobStore` port, run against both
//! adapters: the local folder (always), served by a real HTTP server on an
//! ephemeral port as the all-in-one serves it, and S3 at
//! `CHATBOX_TEST_S3_ENDPOINT` — the s3s-fs stand-in that `scripts/test.sh`
//! starts, or any S3-compatible store — each test in a bucket of its own.
//! Signed URLs are used the way a browser uses them: with a plain HTTP
//! client.

// A test harness: a failed unwrap is a failed test, with its place.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, unreachable_pub)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chatbox_shared::config::{S3Config, Secret, ServerSideEncryption};
use chatbox_worker::blob::{
    BlobError, BlobStore, Download, FileCipher, LocalBlobStore, ObjectInfo, S3BlobStore,
};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_DISPOSITION, CONTENT_TYPE};

const TTL: Duration = Duration::from_secs(300);

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: start the S3 stand-in (scripts/test.sh does: . scripts/lib/services.sh && ensure_s3) or point it at a store")
    })
}

fn s3_config(bucket: &str) -> S3Config {
    S3Config {
        bucket: bucket.to_owned(),
        region: "us-east-1".into(),
        endpoint: env("CHATBOX_TEST_S3_ENDPOINT"),
        public_endpoint: String::new(),
        path_style: true,
        access_key_id: Secret::new(env("CHATBOX_TEST_S3_ACCESS_KEY")),
        secret_access_key: Secret::new(env("CHATBOX_TEST_S3_SECRET_KEY")),
        ..S3Config::default()
    }
}

/// A plain client, as an operator would use, to make and remove buckets.
fn admin_client(config: &S3Config) -> aws_sdk_s3::Client {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let conf = aws_sdk_s3::config::Builder::new()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .http_client(http)
        .region(aws_sdk_s3::config::Region::new(config.region.clone()))
        .endpoint_url(&config.endpoint)
        .force_path_style(true)
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            config.access_key_id.expose(),
            config.secret_access_key.expose(),
            None,
            None,
            "blob-conformance",
        ))
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

enum Fixture {
    Local {
        store: Arc<LocalBlobStore>,
        dir: std::path::PathBuf,
        /// Encrypting at rest.
        sealed: bool,
        server: tokio::task::JoinHandle<()>,
    },
    S3 {
        store: Arc<S3BlobStore>,
        admin: aws_sdk_s3::Client,
        bucket: String,
    },
}

impl Fixture {
    async fn local() -> Self {
        Self::local_with(None).await
    }

    /// The local store encrypting at rest, as with `ENCRYPTION_KEY`.
    async fn local_sealed() -> Self {
        Self::local_with(Some(FileCipher::new(&[9; 32], &[]))).await
    }

    async fn local_with(cipher: Option<FileCipher>) -> Self {
        let dir = std::env::temp_dir().join(format!("chatbox-blob-{:016x}", rand::random::<u64>()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let mut store =
            LocalBlobStore::open(&dir, None, &format!("http://{addr}/")).expect("open the local store");
        let sealed = cipher.is_some();
        if let Some(cipher) = cipher {
            store = store.with_encryption(cipher);
        }
        let store = Arc::new(store);
        let app = Arc::clone(&store).routes();
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("serve");
        });
        Fixture::Local {
            store,
            dir,
            sealed,
            server,
        }
    }

    async fn s3() -> Self {
        let bucket = format!("chatbox-test-{:08x}", rand::random::<u32>());
        let config = s3_config(&bucket);
        let admin = admin_client(&config);
        admin
            .create_bucket()
            .bucket(&bucket)
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "create bucket {bucket}: {}",
                    aws_sdk_s3::error::DisplayErrorContext(e)
                )
            });
        let store = S3BlobStore::connect(&config).await.expect("connect to S3");
        Fixture::S3 {
            store: Arc::new(store),
            admin,
            bucket,
        }
    }

    fn store(&self) -> &dyn BlobStore {
        match self {
            Fixture::Local { store, .. } => store.as_ref(),
            Fixture::S3 { store, .. } => store.as_ref(),
        }
    }

    fn is_local(&self) -> bool {
        matches!(self, Fixture::Local { .. })
    }

    async fn cleanup(self) {
        match self {
            Fixture::Local { dir, server, .. } => {
                server.abort();
                let _ = std::fs::remove_dir_all(dir);
            }
            Fixture::S3 { store, admin, bucket } => {
                for key in store.list("", 10_000).await.expect("list for cleanup") {
                    store.delete(&key).await.expect("delete for cleanup");
                }
                admin
                    .delete_bucket()
                    .bucket(&bucket)
                    .send()
                    .await
                    .expect("delete bucket");
            }
        }
    }
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod local {
            $(
                #[tokio::test]
                async fn $name() {
                    let f = super::Fixture::local().await;
                    super::$name(&f).await;
                    f.cleanup().await;
                }
            )*
        }
        mod local_sealed {
            $(
                #[tokio::test]
                async fn $name() {
                    let f = super::Fixture::local_sealed().await;
                    super::$name(&f).await;
                    f.cleanup().await;
                }
            )*
        }
        mod s3 {
            $(
                #[tokio::test]
                async fn $name() {
                    let f = super::Fixture::s3().await;
                    super::$name(&f).await;
                    f.cleanup().await;
                }
            )*
        }
    };
}

conformance!(
    the_store_answers,
    put_head_and_read_ranges,
    copy_replaces_the_content_type,
    delete_removes_and_missing_is_fine,
    list_by_prefix_is_sorted_and_limited,
    missing_objects_are_none_or_not_found,
    invalid_keys_are_refused_before_anything_is_sent,
    presigned_put_stores_the_file_with_its_type,
    presigned_put_with_a_tampered_signature_is_refused,
    presigned_put_with_another_content_type_is_refused,
    presigned_get_downloads_with_the_file_name,
    presigned_get_expires,
    presigned_put_takes_the_declared_size_once,
    local_get_is_sandboxed_and_serves_ranges,
    s3_urls_are_signed_for_the_public_endpoint,
    s3_writes_ask_for_server_side_encryption,
    local_files_are_private_to_the_user,
    sealed_local_files_hold_no_plaintext,
);

fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

fn pdf(inline: bool) -> Download<'static> {
    Download {
        file_name: "Résumé 2024.pdf",
        content_type: "application/pdf",
        inline,
    }
}

/// Makes one character of the URL's signature different.
fn tamper(url: &str) -> String {
    let (name, at) = ["X-Amz-Signature=", "sig="]
        .iter()
        .find_map(|name| url.find(name).map(|at| (name, at)))
        .expect("a signature in the URL");
    let i = at + name.len();
    let old = &url[i..=i];
    let new = if old == "a" { "b" } else { "a" };
    format!("{}{new}{}", &url[..i], &url[i + 1..])
}

async fn the_store_answers(f: &Fixture) {
    let store = f.store();
    store.check().await.unwrap();
    assert_eq!(store.adapter(), if f.is_local() { "local" } else { "s3" });
}

async fn put_head_and_read_ranges(f: &Fixture) {
    let store = f.store();
    let body = Bytes::from_static(b"0123456789abcdef");
    store
        .put("files/u1/a.txt", body.clone(), "text/plain")
        .await
        .unwrap();
    assert_eq!(
        store.head("files/u1/a.txt").await.unwrap(),
        Some(ObjectInfo {
            size: 16,
            content_type: Some("text/plain".into())
        })
    );
    assert_eq!(store.read_range("files/u1/a.txt", 0, 16).await.unwrap(), body);
    assert_eq!(
        &store.read_range("files/u1/a.txt", 2, 5).await.unwrap()[..],
        b"234"
    );
    // Clamped to the object's size.
    assert_eq!(
        &store.read_range("files/u1/a.txt", 10, 1000).await.unwrap()[..],
        b"abcdef"
    );
    assert_eq!(
        &store.read_range("files/u1/a.txt", 0, u64::MAX).await.unwrap(),
        &body
    );
    assert!(
        store
            .read_range("files/u1/a.txt", 16, 32)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .read_range("files/u1/a.txt", 100, 200)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.read_range("files/u1/a.txt", 5, 5).await.unwrap().is_empty());

    // A put replaces the object and its type.
    store
        .put("files/u1/a.txt", Bytes::from_static(b"{}"), "application/json")
        .await
        .unwrap();
    assert_eq!(
        store.head("files/u1/a.txt").await.unwrap(),
        Some(ObjectInfo {
            size: 2,
            content_type: Some("application/json".into())
        })
    );
    // An empty object is an object.
    store
        .put("files/u1/empty", Bytes::new(), "text/plain")
        .await
        .unwrap();
    assert_eq!(
        store.head("files/u1/empty").await.unwrap().map(|i| i.size),
        Some(0)
    );
    assert!(
        store
            .read_range("files/u1/empty", 0, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn copy_replaces_the_content_type(f: &Fixture) {
    let store = f.store();
    store
        .put(
            "quarantine/x",
            Bytes::from_static(b"%PDF-1.7 ..."),
            "application/octet-stream",
        )
        .await
        .unwrap();
    store
        .copy("quarantine/x", "files/x.pdf", "application/pdf")
        .await
        .unwrap();
    assert_eq!(
        store.head("files/x.pdf").await.unwrap(),
        Some(ObjectInfo {
            size: 12,
            content_type: Some("application/pdf".into())
        })
    );
    assert_eq!(&store.read_range("files/x.pdf", 0, 4).await.unwrap()[..], b"%PDF");
    // The source is left as it was.
    assert_eq!(
        store
            .head("quarantine/x")
            .await
            .unwrap()
            .and_then(|i| i.content_type),
        Some("application/octet-stream".into())
    );
    assert!(matches!(
        store.copy("quarantine/none", "files/none", "text/plain").await,
        Err(BlobError::NotFound(_))
    ));
    assert_eq!(store.head("files/none").await.unwrap(), None);
}

async fn delete_removes_and_missing_is_fine(f: &Fixture) {
    let store = f.store();
    store
        .put("d/1/a", Bytes::from_static(b"a"), "text/plain")
        .await
        .unwrap();
    store
        .put("d/1/b", Bytes::from_static(b"b"), "text/plain")
        .await
        .unwrap();
    store.delete("d/1/a").await.unwrap();
    assert_eq!(store.head("d/1/a").await.unwrap(), None);
    assert!(store.head("d/1/b").await.unwrap().is_some());
    store.delete("d/1/a").await.unwrap();
    store.delete("never/was").await.unwrap();
    store.delete("d/1/b").await.unwrap();
    assert_eq!(store.list("d/", 10).await.unwrap(), Vec::<String>::new());
    // The key can be used again after its folder emptied.
    store
        .put("d/1/a", Bytes::from_static(b"again"), "text/plain")
        .await
        .unwrap();
    assert_eq!(store.head("d/1/a").await.unwrap().map(|i| i.size), Some(5));
}

async fn list_by_prefix_is_sorted_and_limited(f: &Fixture) {
    let store = f.store();
    for key in ["p/b/2", "p/a/1", "p/b/1", "p/a-2", "p/c", "q/a", "pz"] {
        store
            .put(key, Bytes::from_static(b"x"), "text/plain")
            .await
            .unwrap();
    }
    assert_eq!(
        store.list("p/", 100).await.unwrap(),
        ["p/a-2", "p/a/1", "p/b/1", "p/b/2", "p/c"]
    );
    assert_eq!(store.list("p/", 2).await.unwrap(), ["p/a-2", "p/a/1"]);
    assert_eq!(store.list("p/a", 100).await.unwrap(), ["p/a-2", "p/a/1"]);
    assert_eq!(store.list("p/b/", 100).await.unwrap(), ["p/b/1", "p/b/2"]);
    assert_eq!(store.list("p", 100).await.unwrap().len(), 6);
    assert_eq!(store.list("", 100).await.unwrap().len(), 7);
    assert_eq!(store.list("nothing/", 100).await.unwrap(), Vec::<String>::new());
    assert_eq!(store.list("p/", 0).await.unwrap(), Vec::<String>::new());
    assert!(matches!(
        store.list("../", 10).await,
        Err(BlobError::InvalidKey(_))
    ));
}

async fn missing_objects_are_none_or_not_found(f: &Fixture) {
    let store = f.store();
    assert_eq!(store.head("no/such/key").await.unwrap(), None);
    match store.read_range("no/such/key", 0, 10).await {
        Err(BlobError::NotFound(message)) => assert!(message.contains("no/such/key"), "{message}"),
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert!(matches!(
        store.read_range("no/such/key", 5, 5).await,
        Err(BlobError::NotFound(_))
    ));
}

async fn invalid_keys_are_refused_before_anything_is_sent(f: &Fixture) {
    let store = f.store();
    for key in [
        "",
        "/abs",
        "a/../b",
        "a//b",
        "a b",
        "ä",
        "a?x=1",
        &"k".repeat(513),
    ] {
        let invalid =
            |r: Result<(), BlobError>| assert!(matches!(r, Err(BlobError::InvalidKey(_))), "{key:?}: {r:?}");
        invalid(store.put(key, Bytes::from_static(b"x"), "text/plain").await);
        invalid(store.head(key).await.map(|_| ()));
        invalid(store.read_range(key, 0, 1).await.map(|_| ()));
        invalid(store.copy(key, "ok", "text/plain").await);
        invalid(store.copy("ok", key, "text/plain").await);
        invalid(store.delete(key).await);
        invalid(store.presign_put(key, "text/plain", 10, TTL).await.map(|_| ()));
        invalid(store.presign_get(key, &pdf(false), TTL).await.map(|_| ()));
    }
}

async fn presigned_put_stores_the_file_with_its_type(f: &Fixture) {
    let store = f.store();
    let signed = store
        .presign_put("up/voice.webm", "audio/webm", 1000, TTL)
        .await
        .unwrap();
    assert_eq!(signed.method, "PUT");
    assert_eq!(
        signed.headers.get("content-type").map(String::as_str),
        Some("audio/webm")
    );
    let now = chatbox_shared::protocol::Timestamp::now().as_millis();
    let expires = signed.expires_at.as_millis();
    assert!(
        expires > now + 290_000 && expires < now + 310_000,
        "expires_at {}",
        signed.expires_at
    );
    // Nothing a browser could not send: no checksum to compute.
    assert!(
        !signed.url.to_ascii_lowercase().contains("checksum"),
        "{}",
        signed.url
    );
    assert!(
        signed.headers.keys().all(|h| !h.contains("checksum")),
        "{:?}",
        signed.headers
    );

    let mut request = http().put(&signed.url).body(vec![7u8; 1000]);
    for (name, value) in &signed.headers {
        request = request.header(name, value);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    assert!(
        status.is_success(),
        "{status}: {}",
        response.text().await.unwrap_or_default()
    );
    assert_eq!(
        store.head("up/voice.webm").await.unwrap(),
        Some(ObjectInfo {
            size: 1000,
            content_type: Some("audio/webm".into())
        })
    );
}

async fn presigned_put_with_a_tampered_signature_is_refused(f: &Fixture) {
    let store = f.store();
    let signed = store
        .presign_put("up/t.txt", "text/plain", 1024, TTL)
        .await
        .unwrap();
    let response = http()
        .put(tamper(&signed.url))
        .header(CONTENT_TYPE, "text/plain")
        .body("forged")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    // Another key under the same signature is refused too.
    let moved = signed.url.replace("up/t.txt", "up/u.txt");
    let response = http()
        .put(moved)
        .header(CONTENT_TYPE, "text/plain")
        .body("forged")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(store.head("up/t.txt").await.unwrap(), None);
    assert_eq!(store.head("up/u.txt").await.unwrap(), None);
}

async fn presigned_put_with_another_content_type_is_refused(f: &Fixture) {
    let store = f.store();
    let signed = store
        .presign_put("up/img.png", "image/png", 1024, TTL)
        .await
        .unwrap();
    let response = http()
        .put(&signed.url)
        .header(CONTENT_TYPE, "text/html")
        .body("<script>alert(1)</script>")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(store.head("up/img.png").await.unwrap(), None);
}

async fn presigned_get_downloads_with_the_file_name(f: &Fixture) {
    let store = f.store();
    store
        .put(
            "files/r.pdf",
            Bytes::from_static(b"%PDF-1.7 resume"),
            "application/octet-stream",
        )
        .await
        .unwrap();
    let url = store.presign_get("files/r.pdf", &pdf(false), TTL).await.unwrap();
    let response = http().get(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let header = |name| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(header(CONTENT_TYPE), "application/pdf");
    let disposition = header(CONTENT_DISPOSITION);
    assert!(disposition.starts_with("attachment;"), "{disposition}");
    assert!(
        disposition.contains("filename*=UTF-8''R%C3%A9sum%C3%A9%202024.pdf"),
        "{disposition}"
    );
    assert_eq!(&response.bytes().await.unwrap()[..], b"%PDF-1.7 resume");

    let inline = store.presign_get("files/r.pdf", &pdf(true), TTL).await.unwrap();
    let response = http().get(&inline).send().await.unwrap();
    let disposition = response
        .headers()
        .get(CONTENT_DISPOSITION)
        .unwrap()
        .to_str()
        .unwrap();
    assert!(disposition.starts_with("inline;"), "{disposition}");

    let missing = store
        .presign_get("files/none.pdf", &pdf(false), TTL)
        .await
        .unwrap();
    assert_eq!(
        http().get(&missing).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    let tampered = http().get(tamper(&url)).send().await.unwrap();
    assert_eq!(tampered.status(), StatusCode::FORBIDDEN);
}

async fn presigned_get_expires(f: &Fixture) {
    let store = f.store();
    store
        .put("files/short", Bytes::from_static(b"soon gone"), "text/plain")
        .await
        .unwrap();
    let url = store
        .presign_get("files/short", &pdf(false), Duration::from_secs(1))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let response = http().get(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let body = response.text().await.unwrap();
    if f.is_local() {
        assert!(body.contains("expired"), "{body}");
        assert!(body.contains("FORBIDDEN"), "{body}");
    }
}

async fn presigned_put_takes_the_declared_size_once(f: &Fixture) {
    let store = f.store();
    let signed = store
        .presign_put("up/once.bin", "application/octet-stream", 100, TTL)
        .await
        .unwrap();
    let send = |body: reqwest::Body| {
        let mut request = http().put(&signed.url).body(body);
        for (name, value) in &signed.headers {
            request = request.header(name, value);
        }
        request.send()
    };
    for wrong in [101, 99, 1_000_000] {
        // Refused, or cut off mid-body (the store answers before reading it all).
        if let Ok(response) = send(vec![0u8; wrong].into()).await {
            assert!(
                response.status().is_client_error(),
                "{wrong} bytes on a link for 100: {}",
                response.status()
            );
        }
    }
    if f.is_local() {
        // Streamed without a length: stopped once it passes the size.
        let chunks =
            futures_util::stream::iter((0..50).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![1u8; 10]))));
        let response = send(reqwest::Body::wrap_stream(chunks)).await.unwrap();
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let body = response.text().await.unwrap();
        assert!(body.contains("MESSAGE_TOO_LARGE"), "{body}");
    }
    assert_eq!(store.head("up/once.bin").await.unwrap(), None, "nothing stored");
    // Exactly the declared size is taken, once.
    let response = send(vec![1u8; 100].into()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let again = send(vec![2u8; 100].into()).await.unwrap();
    assert!(
        again.status().is_client_error(),
        "a second write: {}",
        again.status()
    );
    assert_eq!(
        &store.read_range("up/once.bin", 0, 100).await.unwrap()[..],
        &[1u8; 100][..],
        "the first upload stands"
    );
    // Retired (taken in or refused): the bytes go and the link stays shut.
    store.retire("up/once.bin").await.unwrap();
    let after = send(vec![3u8; 100].into()).await.unwrap();
    assert!(
        after.status().is_client_error(),
        "a write after retiring: {}",
        after.status()
    );
    let left = store.head("up/once.bin").await.unwrap().map(|i| i.size);
    assert!(matches!(left, None | Some(0)), "{left:?}");
}

async fn local_get_is_sandboxed_and_serves_ranges(f: &Fixture) {
    if !f.is_local() {
        return; // S3 sets its own headers; the bucket's policy is the operator's.
    }
    let store = f.store();
    let body: Vec<u8> = (0..=255u8).collect();
    store
        .put("voice/v.ogg", Bytes::from(body.clone()), "audio/ogg")
        .await
        .unwrap();
    let download = Download {
        file_name: "voice.ogg",
        content_type: "audio/ogg",
        inline: true,
    };
    let url = store.presign_get("voice/v.ogg", &download, TTL).await.unwrap();

    let response = http().get(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let h = response.headers().clone();
    let header = |name: &str| h.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default();
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert_eq!(header("content-security-policy"), "sandbox; default-src 'none'");
    assert_eq!(header("content-type"), "audio/ogg");
    assert_eq!(header("content-length"), "256");
    assert_eq!(header("accept-ranges"), "bytes");
    let cache = header("cache-control");
    let max_age: u64 = cache
        .strip_prefix("private, max-age=")
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("cache-control {cache:?}"));
    assert!((295..=301).contains(&max_age), "{cache}");
    assert_eq!(
        header("content-disposition"),
        "inline; filename=\"voice.ogg\"; filename*=UTF-8''voice.ogg"
    );
    assert_eq!(response.bytes().await.unwrap().to_vec(), body);

    let ranged = http()
        .get(&url)
        .header("range", "bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        ranged.headers().get("content-range").unwrap().to_str().unwrap(),
        "bytes 10-19/256"
    );
    assert_eq!(ranged.bytes().await.unwrap().to_vec(), body[10..20].to_vec());

    let tail = http()
        .get(&url)
        .header("range", "bytes=250-")
        .send()
        .await
        .unwrap();
    assert_eq!(tail.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(tail.bytes().await.unwrap().to_vec(), body[250..].to_vec());

    let outside = http()
        .get(&url)
        .header("range", "bytes=300-400")
        .send()
        .await
        .unwrap();
    assert_eq!(outside.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(
        outside.headers().get("content-range").unwrap().to_str().unwrap(),
        "bytes */256"
    );

    // A download link does not upload, and the signed type is the one served.
    let put = http()
        .put(&url)
        .header(CONTENT_TYPE, "audio/ogg")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::FORBIDDEN);
    let as_html = url.replace("ct=audio%2Fogg", "ct=text%2Fhtml");
    assert_ne!(as_html, url);
    assert_eq!(
        http().get(&as_html).send().await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    // Unsigned: refused in the project's error format.
    let bare = url.split_once('?').unwrap().0;
    let response = http().get(bare).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        response.headers().get(CONTENT_TYPE).unwrap().to_str().unwrap(),
        "application/json"
    );
    let error: serde_json::Value = response.json().await.unwrap();
    assert_eq!(error["type"], "error");
    assert_eq!(error["error"]["code"], "FORBIDDEN");
}

async fn s3_urls_are_signed_for_the_public_endpoint(f: &Fixture) {
    let Fixture::S3 { bucket, .. } = f else {
        return; // The local store's URLs start with its one public URL.
    };
    // Clients reach the same store under another name.
    let mut config = s3_config(bucket);
    config.public_endpoint = config.endpoint.replace("127.0.0.1", "localhost");
    assert_ne!(config.public_endpoint, config.endpoint);
    let store = S3BlobStore::connect(&config).await.unwrap();
    store
        .put("pub/a.txt", Bytes::from_static(b"hello"), "text/plain")
        .await
        .unwrap();
    let url = store.presign_get("pub/a.txt", &pdf(false), TTL).await.unwrap();
    assert!(url.starts_with(&config.public_endpoint), "{url}");
    let response = http().get(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(&response.bytes().await.unwrap()[..], b"hello");
    let signed = store
        .presign_put("pub/b.txt", "text/plain", 10, TTL)
        .await
        .unwrap();
    assert!(signed.url.starts_with(&config.public_endpoint), "{}", signed.url);
    // The host is signed: the worker's address does not take the URL.
    let elsewhere = url.replace(&config.public_endpoint, &config.endpoint);
    assert_eq!(
        http().get(&elsewhere).send().await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
}

async fn s3_writes_ask_for_server_side_encryption(f: &Fixture) {
    let Fixture::S3 { bucket, .. } = f else {
        return; // The local store encrypts with ENCRYPTION_KEY instead.
    };
    let config = S3Config {
        server_side_encryption: ServerSideEncryption::SseKms,
        kms_key_id: "alias/chatbox-files".into(),
        ..s3_config(bucket)
    };
    let store = S3BlobStore::connect(&config).await.unwrap();
    store
        .put("sse/a.txt", Bytes::from_static(b"hello"), "text/plain")
        .await
        .unwrap();
    store.copy("sse/a.txt", "sse/b.txt", "text/plain").await.unwrap();
    let signed = store
        .presign_put("sse/c.txt", "text/plain", 5, TTL)
        .await
        .unwrap();
    let header = |name: &str| signed.headers.get(name).map(String::as_str);
    assert_eq!(
        header("x-amz-server-side-encryption"),
        Some("aws:kms"),
        "{:?}",
        signed.headers
    );
    assert_eq!(
        header("x-amz-server-side-encryption-aws-kms-key-id"),
        Some("alias/chatbox-files")
    );
    // The headers are signed: a client that leaves them out is refused.
    let response = http()
        .put(&signed.url)
        .header(CONTENT_TYPE, "text/plain")
        .header("if-none-match", "*")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let mut request = http().put(&signed.url).body("hello");
    for (name, value) in &signed.headers {
        request = request.header(name, value);
    }
    assert_eq!(request.send().await.unwrap().status(), StatusCode::OK);
}

async fn local_files_are_private_to_the_user(f: &Fixture) {
    let Fixture::Local { dir, .. } = f else {
        return; // A bucket's access is its policy's.
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let store = f.store();
        store
            .put("a/b/c.txt", Bytes::from_static(b"hi"), "text/plain")
            .await
            .unwrap();
        store.copy("a/b/c.txt", "a/d.txt", "text/plain").await.unwrap();
        let signed = store.presign_put("q/e.txt", "text/plain", 2, TTL).await.unwrap();
        let response = http()
            .put(&signed.url)
            .header(CONTENT_TYPE, "text/plain")
            .body("hi")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let mode = |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        let mut pending = vec![dir.clone()];
        let mut files = 0;
        while let Some(folder) = pending.pop() {
            assert_eq!(mode(&folder), 0o700, "{}", folder.display());
            for entry in std::fs::read_dir(&folder).unwrap().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    pending.push(path);
                } else {
                    assert_eq!(mode(&path), 0o600, "{}", path.display());
                    files += 1;
                }
            }
        }
        assert!(
            files >= 7,
            "objects, types, the link's mark and the signing key: {files}"
        );
    }
}

async fn sealed_local_files_hold_no_plaintext(f: &Fixture) {
    let Fixture::Local {
        dir, sealed: true, ..
    } = f
    else {
        return; // Plain local files, or a bucket (server-side encryption).
    };
    let store = f.store();
    let text = "a secret recipe: ".repeat(10_000);
    store
        .put("s/recipe.txt", Bytes::from(text.clone()), "text/plain")
        .await
        .unwrap();
    let on_disk = std::fs::read(dir.join("objects/s/recipe.txt")).unwrap();
    assert!(
        !on_disk.windows(8).any(|w| w == b"a secret"),
        "the file on disk is encrypted"
    );
    assert_eq!(
        store.head("s/recipe.txt").await.unwrap().map(|i| i.size),
        Some(text.len() as u64)
    );
    let middle = store.read_range("s/recipe.txt", 65_530, 65_550).await.unwrap();
    assert_eq!(
        &middle[..],
        &text.as_bytes()[65_530..65_550],
        "a range across chunks"
    );
}
