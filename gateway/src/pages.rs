//! The pages a gateway serves: the chat page at `/chat/` and the admin
//! console at `/chat/admin/`, their files at `/chat/assets/<path>`.
//!
//! The files come from the repository's `web/` folder, built into the
//! binary (`build.rs`), or from `chatbox.web.dir` read on every request.
//! Built-in pages are cache-friendly for phones on slow networks: every
//! `assets/...` reference in an `index.html` gets `?v=<content hash>`, and
//! a file asked for with its current hash is cached for a year; the pages
//! themselves are revalidated (`no-cache` with an `ETag`), so a deploy
//! shows at once. Text goes gzipped (compressed once, at start) to
//! clients that take it. Every answer carries a strict Content Security Policy —
//! scripts and styles from these files only — with file-store origins for
//! uploads and downloads; the chat page may be framed by the sites of
//! `chatbox.web.frame_ancestors`, the admin console never.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use chatbox_shared::config::{BlobKind, ChatboxConfig};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tracing::warn;

include!(concat!(env!("OUT_DIR"), "/web_files.rs"));

const CHAT_INDEX: &str = "chat/index.html";
const ADMIN_INDEX: &str = "admin/index.html";
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// The pages' routes, or none when `chatbox.web.enabled` is off.
pub(crate) fn routes(config: &ChatboxConfig) -> Option<Router> {
    if !config.web.enabled {
        return None;
    }
    let pages = Arc::new(Pages::new(config));
    Some(
        Router::new()
            .route("/chat", get(|| async { Redirect::permanent("/chat/") }))
            .route("/chat/", get(chat_page))
            .route(
                "/chat/admin",
                get(|| async { Redirect::permanent("/chat/admin/") }),
            )
            .route("/chat/admin/", get(admin_page))
            .route("/chat/assets/{*path}", get(asset))
            .with_state(pages),
    )
}

/// Where the files come from, and the policies they are served with.
struct Pages {
    source: Source,
    chat_policy: HeaderValue,
    admin_policy: HeaderValue,
}

enum Source {
    /// Built into the binary, hashed once.
    Built(HashMap<&'static str, File>),
    /// `chatbox.web.dir`, read on every request.
    Folder(PathBuf),
}

/// A built-in file, ready to send.
struct File {
    bytes: Bytes,
    /// The first 16 hex digits of the bytes' SHA-256.
    version: String,
    etag: HeaderValue,
    /// The same, gzipped, for text worth compressing.
    gzip: Option<(Bytes, HeaderValue)>,
}

impl Pages {
    fn new(config: &ChatboxConfig) -> Pages {
        let source = if config.web.dir.is_empty() {
            Source::Built(built_files())
        } else {
            Source::Folder(PathBuf::from(&config.web.dir))
        };
        // Each file-store origin as " <origin>", after the fixed sources.
        let files: String = file_store_origins(config)
            .iter()
            .map(|origin| format!(" {origin}"))
            .collect();
        let policy = |ancestors: &str| {
            let value = format!(
                "default-src 'none'; script-src 'self'; style-src 'self'; \
                 img-src 'self' blob: data:{files}; media-src 'self' blob:{files}; \
                 connect-src 'self'{files}; font-src 'self'; manifest-src 'self'; \
                 base-uri 'none'; form-action 'self'; frame-ancestors {ancestors}"
            );
            HeaderValue::try_from(value).unwrap_or_else(|e| {
                warn!("cannot use the pages' content security policy ({e}); serving the strictest one");
                HeaderValue::from_static("default-src 'self'; frame-ancestors 'none'")
            })
        };
        Pages {
            source,
            chat_policy: policy(&frame_ancestors(config)),
            admin_policy: policy("'none'"),
        }
    }

    /// `path` under `web/`, answering `If-None-Match`.
    async fn serve(&self, path: &str, kind: Kind, version: Option<&str>, headers: &HeaderMap) -> Response {
        if !is_safe_path(path) {
            return StatusCode::NOT_FOUND.into_response();
        }
        let (bytes, etag, gzipped, cache) = match &self.source {
            Source::Built(files) => {
                let Some(file) = files.get(path) else {
                    return StatusCode::NOT_FOUND.into_response();
                };
                let cache = if version.is_some_and(|v| v == file.version) {
                    IMMUTABLE
                } else {
                    "no-cache"
                };
                let (bytes, etag, gzipped) = match &file.gzip {
                    Some((gzip, etag)) if accepts_gzip(headers) => (gzip, etag, true),
                    _ => (&file.bytes, &file.etag, false),
                };
                if fresh(headers, etag) {
                    let mut answer = StatusCode::NOT_MODIFIED.into_response();
                    let h = answer.headers_mut();
                    h.insert(header::ETAG, etag.clone());
                    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
                    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
                    return answer;
                }
                (bytes.clone(), Some(etag.clone()), gzipped, cache)
            }
            Source::Folder(dir) => match tokio::fs::read(dir.join(path)).await {
                Ok(bytes) => (bytes.into(), None, false, "no-store"),
                Err(e) => {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        warn!(path, dir = %dir.display(), "cannot read a page file: {e}");
                    }
                    return StatusCode::NOT_FOUND.into_response();
                }
            },
        };
        let mut answer = Response::new(Body::from(bytes));
        let h = answer.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type(path)));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
        if let Some(etag) = etag {
            h.insert(header::ETAG, etag);
            h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
        }
        if gzipped {
            h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        match kind {
            Kind::ChatPage => {
                h.insert(header::CONTENT_SECURITY_POLICY, self.chat_policy.clone());
            }
            Kind::AdminPage => {
                h.insert(header::CONTENT_SECURITY_POLICY, self.admin_policy.clone());
                h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
            }
            Kind::Asset => {}
        }
        answer
    }
}

#[derive(Clone, Copy)]
enum Kind {
    ChatPage,
    AdminPage,
    Asset,
}

async fn chat_page(State(pages): State<Arc<Pages>>, headers: HeaderMap) -> Response {
    pages.serve(CHAT_INDEX, Kind::ChatPage, None, &headers).await
}

async fn admin_page(State(pages): State<Arc<Pages>>, headers: HeaderMap) -> Response {
    pages.serve(ADMIN_INDEX, Kind::AdminPage, None, &headers).await
}

/// `?v=` of an asset reference.
#[derive(Deserialize)]
struct AssetQuery {
    v: Option<String>,
}

async fn asset(
    State(pages): State<Arc<Pages>>,
    Path(path): Path<String>,
    Query(q): Query<AssetQuery>,
    headers: HeaderMap,
) -> Response {
    if path.ends_with("index.html") {
        return StatusCode::NOT_FOUND.into_response();
    }
    pages.serve(&path, Kind::Asset, q.v.as_deref(), &headers).await
}

/// The built-in files, with `?v=<hash>` added to the asset references of
/// each `index.html`.
fn built_files() -> HashMap<&'static str, File> {
    let version = |bytes: &[u8]| -> String {
        Sha256::digest(bytes)
            .iter()
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    let versions: Vec<(&str, String)> = WEB_FILES
        .iter()
        .filter(|(path, _)| !path.ends_with("index.html"))
        .map(|(path, bytes)| (*path, version(bytes)))
        .collect();
    WEB_FILES
        .iter()
        .map(|&(path, bytes)| {
            let bytes: Bytes = if path.ends_with("index.html") {
                versioned_references(&String::from_utf8_lossy(bytes), &versions).into()
            } else {
                Bytes::from_static(bytes)
            };
            let v = version(&bytes);
            let etag = |tag: String| HeaderValue::try_from(tag).unwrap_or(HeaderValue::from_static("\"0\""));
            let gzip = compressible(path)
                .then(|| gzip(&bytes))
                .flatten()
                .map(|gz| (gz, etag(format!("\"{v}-gz\""))));
            let file = File {
                etag: etag(format!("\"{v}\"")),
                bytes,
                version: v,
                gzip,
            };
            (path, file)
        })
        .collect()
}

/// `assets/<path>"` → `assets/<path>?v=<version>"` for every file.
fn versioned_references(page: &str, versions: &[(&str, String)]) -> String {
    let mut page = page.to_owned();
    for (path, version) in versions {
        for quote in ['"', '\''] {
            page = page.replace(
                &format!("assets/{path}{quote}"),
                &format!("assets/{path}?v={version}{quote}"),
            );
        }
    }
    page
}

/// Text worth compressing.
fn compressible(path: &str) -> bool {
    [".html", ".js", ".css", ".json", ".svg", ".webmanifest"]
        .iter()
        .any(|ext| path.ends_with(ext))
}

/// `bytes` gzipped, when that makes them smaller.
fn gzip(bytes: &[u8]) -> Option<Bytes> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).ok()?;
    let packed = encoder.finish().ok()?;
    (packed.len() < bytes.len()).then(|| packed.into())
}

/// Whether the client takes gzip (`Accept-Encoding` names it, and not
/// with `q=0`).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let named = parts.next().is_some_and(|name| name.eq_ignore_ascii_case("gzip"));
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            named && !refused
        })
}

/// Whether the client's copy (`If-None-Match`) is current.
fn fresh(headers: &HeaderMap, etag: &HeaderValue) -> bool {
    let Some(Ok(wanted)) = headers.get(header::IF_NONE_MATCH).map(|v| v.to_str()) else {
        return false;
    };
    let current = etag.to_str().unwrap_or_default();
    wanted
        .split(',')
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == current || tag == "*")
}

/// A relative path of plain segments: no `..`, no hidden files, no
/// backslashes or empty segments.
fn is_safe_path(path: &str) -> bool {
    !path.is_empty()
        && path.split('/').all(|segment| {
            !segment.is_empty()
                && !segment.starts_with('.')
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        })
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json",
        Some("webmanifest") => "application/manifest+json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("woff2") => "font/woff2",
        _ => "application/octet-stream",
    }
}

/// Origins the browser uploads files to and downloads them from: the
/// local store's public URL, the S3 endpoints (and their bucket
/// subdomains), or Amazon S3 itself.
fn file_store_origins(config: &ChatboxConfig) -> Vec<String> {
    let blob = &config.blob;
    let mut origins: Vec<String> = [&blob.public_url, &blob.s3.public_endpoint, &blob.s3.endpoint]
        .into_iter()
        .filter_map(|url| origin(url))
        .collect();
    if !blob.s3.path_style {
        let subdomains: Vec<String> = [&blob.s3.public_endpoint, &blob.s3.endpoint]
            .into_iter()
            .filter_map(|url| origin(url))
            .filter_map(|o| {
                o.split_once("://")
                    .map(|(scheme, host)| format!("{scheme}://*.{host}"))
            })
            .collect();
        origins.extend(subdomains);
    }
    let s3_endpoint_set = !blob.s3.endpoint.is_empty() || !blob.s3.public_endpoint.is_empty();
    if blob.kind != BlobKind::Local && !s3_endpoint_set && !blob.s3.bucket.is_empty() {
        origins.push("https://*.amazonaws.com".into());
    }
    origins.sort();
    origins.dedup();
    origins
}

/// `scheme://host[:port]` of an http(s) URL, if it is one (and safe to
/// put in a header).
fn origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.trim().split_once("://")?;
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let host = rest.split(['/', '?', '#']).next()?;
    let safe = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    safe.then(|| format!("{scheme}://{host}"))
}

/// `frame-ancestors` of the chat page.
fn frame_ancestors(config: &ChatboxConfig) -> String {
    let listed = if config.web.frame_ancestors.is_empty() {
        &config.websocket.allowed_origins
    } else {
        &config.web.frame_ancestors
    };
    if listed.is_empty() || listed.iter().any(|o| o == "*") {
        return "*".into();
    }
    let mut sources = vec!["'self'".to_owned()];
    sources.extend(
        listed
            .iter()
            .filter_map(|o| if o == "'self'" { None } else { origin(o) }),
    );
    sources.dedup();
    sources.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asset_references_get_their_version() {
        let versions = vec![
            ("chat/chat.js", "abc".to_owned()),
            ("chat/chat.css", "def".to_owned()),
        ];
        let page = r#"<link href="assets/chat/chat.css"><script src='assets/chat/chat.js'></script><script src="assets/chat/chat.json"></script>"#;
        assert_eq!(
            versioned_references(page, &versions),
            r#"<link href="assets/chat/chat.css?v=def"><script src='assets/chat/chat.js?v=abc'></script><script src="assets/chat/chat.json"></script>"#
        );
    }

    #[test]
    fn only_plain_relative_paths_are_served() {
        for ok in ["chat/chat.js", "admin/charts.js", "a_b-c.d/e.png"] {
            assert!(is_safe_path(ok), "{ok}");
        }
        for bad in [
            "",
            "../etc/passwd",
            "chat/../../x",
            "/abs",
            "chat//x",
            ".git/config",
            "chat/.env",
            "a\\b",
            "chat/%2e%2e",
        ] {
            assert!(!is_safe_path(bad), "{bad}");
        }
    }

    #[test]
    fn gzip_is_sent_to_clients_that_take_it() {
        let mut headers = HeaderMap::new();
        assert!(!accepts_gzip(&headers));
        for (value, takes) in [
            ("gzip, deflate, br", true),
            ("br;q=1.0, GZIP;q=0.5", true),
            ("gzip;q=0", false),
            ("gzip; q=0.0", false),
            ("identity", false),
        ] {
            headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static(value));
            assert_eq!(accepts_gzip(&headers), takes, "{value}");
        }
        let text = "let x = 1;\n".repeat(200);
        let packed = gzip(text.as_bytes()).unwrap();
        let mut unpacked = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&packed[..]), &mut unpacked).unwrap();
        assert_eq!(unpacked, text);
        assert!(gzip(b"x").is_none(), "not when it grows");
    }

    #[test]
    fn if_none_match_is_honoured() {
        let etag = HeaderValue::from_static("\"v1\"");
        let mut headers = HeaderMap::new();
        assert!(!fresh(&headers, &etag));
        headers.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("\"v0\", W/\"v1\""),
        );
        assert!(fresh(&headers, &etag));
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"v0\""));
        assert!(!fresh(&headers, &etag));
    }

    #[test]
    fn policies_name_the_file_store_and_the_framing_sites() {
        let mut config = ChatboxConfig::default();
        assert_eq!(file_store_origins(&config), Vec::<String>::new());
        assert_eq!(frame_ancestors(&config), "*");

        config.blob.s3.bucket = "chat-files".into();
        assert_eq!(file_store_origins(&config), ["https://*.amazonaws.com"]);
        config.blob.s3.endpoint = "http://minio:9000/".into();
        config.blob.s3.public_endpoint = "https://files.example.com/base".into();
        config.blob.s3.path_style = true;
        assert_eq!(
            file_store_origins(&config),
            ["http://minio:9000", "https://files.example.com"]
        );
        config.blob.s3.path_style = false;
        assert!(file_store_origins(&config).contains(&"https://*.files.example.com".to_owned()));
        config.blob.public_url = "javascript:alert(1)".into();
        assert!(
            !file_store_origins(&config)
                .iter()
                .any(|o| o.contains("javascript"))
        );

        config.websocket.allowed_origins = vec!["https://app.example.com".into()];
        assert_eq!(frame_ancestors(&config), "'self' https://app.example.com");
        config.web.frame_ancestors = vec!["https://shop.example.com/path".into(), "'self'".into()];
        assert_eq!(frame_ancestors(&config), "'self' https://shop.example.com");
    }
}
