//! The pages: the chat page and the admin console served with their
//! security headers and cache rules, the development folder, and the
//! all-in-one's kept JWT secret that keeps the printed links working
//! across restarts.

use std::process::Command;

use crate::support::*;

async fn get(url: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = http().get(url);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    request.send().await.expect("GET")
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// The `assets/...?v=...` references of a page.
fn asset_references(page: &str) -> Vec<String> {
    page.split(['"', '\''])
        .filter(|part| part.contains("assets/") && part.contains("?v="))
        .map(|part| part.trim_start_matches("../").to_owned())
        .collect()
}

#[tokio::test]
async fn pages_are_served_with_their_policies_and_cache_rules() {
    let dir = log_dir(&unique("pages"));
    let env = vec![(
        "WS_ALLOWED_ORIGINS".to_owned(),
        "https://app.example.com".to_owned(),
    )];
    let server = start_all_in_one(&dir, &env, "all-in-one").await;
    let base = format!("http://{}", server.addr);

    let chat = get(&format!("{base}/chat/"), &[]).await;
    assert_eq!(chat.status(), 200);
    assert_eq!(header(&chat, "content-type"), "text/html; charset=utf-8");
    assert_eq!(header(&chat, "cache-control"), "no-cache");
    assert_eq!(header(&chat, "x-content-type-options"), "nosniff");
    let policy = header(&chat, "content-security-policy").to_owned();
    assert!(policy.contains("script-src 'self';"), "{policy}");
    assert!(
        policy.ends_with("frame-ancestors 'self' https://app.example.com"),
        "the sites allowed to open sockets may frame the chat: {policy}"
    );
    let etag = header(&chat, "etag").to_owned();
    let page = chat.text().await.unwrap();
    let assets = asset_references(&page);
    assert!(
        !assets.is_empty(),
        "the page names its files with versions: {page}"
    );

    for asset in &assets {
        let url = format!("{base}/chat/{asset}");
        let versioned = get(&url, &[]).await;
        assert_eq!(versioned.status(), 200, "{url}");
        assert_eq!(
            header(&versioned, "cache-control"),
            "public, max-age=31536000, immutable",
            "{url}"
        );
        let tag = header(&versioned, "etag").to_owned();
        let plain = url.split_once('?').unwrap().0;
        let unversioned = get(plain, &[]).await;
        assert_eq!(header(&unversioned, "cache-control"), "no-cache", "{plain}");
        let again = get(plain, &[("if-none-match", &tag)]).await;
        assert_eq!(again.status(), 304, "{plain}");
    }
    let revalidated = get(&format!("{base}/chat/"), &[("if-none-match", &etag)]).await;
    assert_eq!(revalidated.status(), 304);
    let packed = get(&format!("{base}/chat/"), &[("accept-encoding", "gzip, br")]).await;
    assert_eq!(header(&packed, "content-encoding"), "gzip");
    assert_eq!(header(&packed, "vary"), "accept-encoding");
    assert_ne!(header(&packed, "etag"), etag, "each encoding has its own tag");
    assert!(packed.bytes().await.unwrap().len() < page.len());

    let admin = get(&format!("{base}/chat/admin/"), &[]).await;
    assert_eq!(admin.status(), 200);
    assert_eq!(header(&admin, "x-frame-options"), "DENY");
    assert!(
        header(&admin, "content-security-policy").ends_with("frame-ancestors 'none'"),
        "the console is never framed"
    );
    assert!(!asset_references(&admin.text().await.unwrap()).is_empty());

    for (path, status) in [
        ("/chat/assets/chat/index.html", 404),
        ("/chat/assets/chat/..%2F..%2FCargo.toml", 404),
        ("/chat/assets/../Cargo.toml", 404),
        ("/chat/assets/chat/no-such.js", 404),
    ] {
        assert_eq!(
            get(&format!("{base}{path}"), &[]).await.status(),
            status,
            "{path}"
        );
    }
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for (path, to) in [
        ("/", "/chat/"),
        ("/chat", "/chat/"),
        ("/chat/admin", "/chat/admin/"),
    ] {
        let answer = no_redirects.get(format!("{base}{path}")).send().await.unwrap();
        assert!(answer.status().is_redirection(), "{path}");
        assert_eq!(header(&answer, "location"), to, "{path}");
    }
}

#[tokio::test]
async fn the_pages_folder_replaces_the_built_in_pages_and_can_be_turned_off() {
    let dir = log_dir(&unique("pages-dir"));
    let web = dir.join("web");
    std::fs::create_dir_all(web.join("chat")).unwrap();
    std::fs::write(
        web.join("chat/index.html"),
        "<!doctype html><title>Branded</title>",
    )
    .unwrap();
    std::fs::write(web.join("chat/brand.css"), "body{color:teal}").unwrap();
    let env = vec![("CHATBOX_WEB_DIR".to_owned(), web.display().to_string())];
    let server = start_all_in_one(&dir, &env, "branded").await;
    let base = format!("http://{}", server.addr);
    let page = get(&format!("{base}/chat/"), &[]).await;
    assert_eq!(header(&page, "cache-control"), "no-store");
    assert_eq!(
        page.text().await.unwrap(),
        "<!doctype html><title>Branded</title>"
    );
    std::fs::write(web.join("chat/brand.css"), "body{color:navy}").unwrap();
    let css = get(&format!("{base}/chat/assets/chat/brand.css"), &[]).await;
    assert_eq!(header(&css, "content-type"), "text/css; charset=utf-8");
    assert_eq!(
        css.text().await.unwrap(),
        "body{color:navy}",
        "read on every request"
    );
    drop(server);

    let off = vec![("CHATBOX_WEB_ENABLED".to_owned(), "false".to_owned())];
    let server = start_all_in_one(&log_dir(&unique("pages-off")), &off, "no-pages").await;
    let base = format!("http://{}", server.addr);
    assert_eq!(get(&format!("{base}/chat/"), &[]).await.status(), 404);
    assert_eq!(get(&format!("{base}/chat/healthz"), &[]).await.status(), 200);
}

#[tokio::test]
async fn the_all_in_one_keeps_its_jwt_secret_so_links_survive_a_restart() {
    let dir = log_dir(&unique("kept-secret"));
    let addr = format!("127.0.0.1:{}", free_port());
    let server = start_all_in_one_at(&dir, &[], "first", &addr).await;
    let data = dir.join("data");
    let kept = std::fs::read(data.join("jwt-secret.key")).expect("the secret is kept");
    assert_eq!(kept.len(), 32);

    let out = Command::new(env!("CARGO_BIN_EXE_chatbox"))
        .args(["token", "--sub", "kim", "--data-dir"])
        .arg(&data)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .expect("chatbox token");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let models = format!("http://{addr}/chat/models");
    let bearer = format!("Bearer {token}");
    assert_eq!(get(&models, &[("authorization", &bearer)]).await.status(), 200);

    drop(server);
    let again = start_all_in_one_at(&dir, &[], "second", &addr).await;
    assert_eq!(
        get(&models, &[("authorization", &bearer)]).await.status(),
        200,
        "a token minted before the restart still works"
    );
    assert!(
        again.log_text().contains(&format!("http://{addr}/chat/#token=")),
        "the banner prints the chat page's link"
    );
}
