//! The test harness: processes, namespaces, tokens and a WebSocket client.

#![allow(dead_code)]

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use chatbox_shared::auth::TokenMinter;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The HS256 secret every test process shares.
pub const SECRET: &str = "system-test-secret-0123456789-abcdefghijkl";

pub fn redis_url() -> String {
    std::env::var("CHATBOX_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

pub fn nats_url() -> String {
    std::env::var("CHATBOX_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// The MongoDB (or stand-in) the scaled tests use.
pub fn mongo_uri() -> String {
    std::env::var("CHATBOX_TEST_MONGO_URI").unwrap_or_else(|_| {
        panic!("CHATBOX_TEST_MONGO_URI is not set: start the MongoDB stand-in (scripts/test.sh does) or point it at a server")
    })
}

/// The content key of test deployments (32 bytes, base64).
pub const ENCRYPTION_KEY: &str = "c3lzdGVtLXRlc3QtZW5jcnlwdGlvbi1rZXktMzJieXQ=";

/// An HTTP client (with the process's TLS provider installed).
pub fn http() -> reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| {
            let _ = rustls::crypto::ring::default_provider().install_default();
            reqwest::Client::new()
        })
        .clone()
}

/// `GET url`.
pub async fn get(url: &str) -> reqwest::Result<reqwest::Response> {
    http().get(url).send().await
}

/// A free port on loopback.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A signed user token.
pub fn token(sub: &str, roles: &[&str]) -> String {
    let roles: Vec<String> = roles.iter().map(|r| (*r).to_owned()).collect();
    TokenMinter::new(SECRET)
        .mint(sub, Some(sub), &roles, Duration::from_secs(3600))
        .expect("token")
}

/// A signed token with a display name.
pub fn token_named(sub: &str, name: &str, roles: &[&str]) -> String {
    let roles: Vec<String> = roles.iter().map(|r| (*r).to_owned()).collect();
    TokenMinter::new(SECRET)
        .mint(sub, Some(name), &roles, Duration::from_secs(3600))
        .expect("token")
}

/// A unique name for a test run's namespace and logs.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}{:08x}", rand::random::<u32>())
}

/// Where a test's process logs go.
pub fn log_dir(namespace: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("system-tests")
        .join(namespace);
    std::fs::create_dir_all(&dir).expect("log dir");
    dir
}

/// A `chatbox` (or `mock-llm`) process; killed when dropped, and its log
/// printed if the test is failing.
pub struct Proc {
    pub name: String,
    child: Option<Child>,
    log: PathBuf,
    pub addr: String,
}

impl Proc {
    /// Starts `chatbox <args>` with `env`.
    pub fn start(name: &str, dir: &Path, args: &[&str], env: &[(String, String)], addr: &str) -> Proc {
        Proc::start_program(
            Path::new(env!("CARGO_BIN_EXE_chatbox")),
            name,
            dir,
            args,
            env,
            addr,
        )
    }

    /// Starts `program <args>` with `env` and nothing else of the test's
    /// environment but `PATH`.
    pub fn start_program(
        program: &Path,
        name: &str,
        dir: &Path,
        args: &[&str],
        env: &[(String, String)],
        addr: &str,
    ) -> Proc {
        let log = dir.join(format!("{name}.log"));
        let out = File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let mut cmd = Command::new(program);
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("CHATBOX_LOG_FORMAT", "text")
            .env("RUST_LOG", "info,chatbox_gateway=debug,chatbox_worker=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", program.display()));
        Proc {
            name: name.to_owned(),
            child: Some(child),
            log,
            addr: addr.to_owned(),
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).unwrap_or(0)
    }

    /// Sends SIGTERM.
    pub fn sigterm(&self) {
        self.signal(libc::SIGTERM);
    }

    /// Sends a signal to the process.
    #[allow(
        unsafe_code,
        reason = "kill(2) has no safe wrapper in std; the pid is our own child's"
    )]
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill takes plain integers and touches no memory of ours.
        unsafe {
            libc::kill(self.pid(), signal);
        }
    }

    /// Kills with SIGKILL and reaps.
    pub fn sigkill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits for the process to exit on its own.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut().expect("running");
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit within {timeout:?}\n{}",
                self.name,
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for `GET /chat/readyz` to answer 200.
    pub async fn wait_ready(&mut self) {
        let url = format!("http://{}/chat/readyz", self.addr);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("{} exited early ({status}):\n{}", self.name, self.log_text());
            }
            if let Ok(r) = get(&url).await
                && r.status().is_success()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} never became ready:\n{}",
                self.name,
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.sigkill();
        if std::thread::panicking() {
            let text = self.log_text();
            let tail: Vec<&str> = text.lines().rev().take(60).collect();
            eprintln!("----- {} ({}) last lines -----", self.name, self.log.display());
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

/// A test's namespace on the shared Redis and NATS; deleted on drop.
pub struct TestNamespace {
    pub name: String,
}

impl TestNamespace {
    pub fn new() -> Self {
        TestNamespace { name: unique("t") }
    }

    /// The namespace's key prefix.
    pub fn key(&self, rest: &str) -> String {
        format!("{}:{rest}", self.name)
    }

    /// The namespace's MongoDB database.
    pub fn database(&self) -> String {
        format!("chatbox_{}", self.name)
    }

    /// A store on the namespace's database, to look at what workers wrote.
    pub async fn store(&self) -> chatbox_worker::store::MongoStore {
        mongo_store(&self.database()).await
    }
}

/// A store on `database`, with the test deployments' key.
pub async fn mongo_store(database: &str) -> chatbox_worker::store::MongoStore {
    use chatbox_worker::store::{ContentCipher, MongoOptions, MongoStore};
    let key = chatbox_shared::config::decode_key(ENCRYPTION_KEY).expect("test key");
    MongoStore::connect(
        MongoOptions {
            uri: mongo_uri(),
            database: database.to_owned(),
            app_name: "system-tests".into(),
            server_timeout: Duration::from_secs(5),
            index_timeout: Duration::from_secs(10),
        },
        std::sync::Arc::new(ContentCipher::new(Some(key), &[])),
    )
    .await
    .expect("mongo")
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop cannot await: clean up on a thread with its own runtime.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            rt.block_on(async move {
                if let Ok(client) = async_nats::connect(nats_url()).await {
                    let js = async_nats::jetstream::new(client);
                    let stream = format!("{}_CHAT_IN", name.to_ascii_uppercase().replace('-', "_"));
                    let _ = js.delete_stream(stream).await;
                }
                if std::env::var("CHATBOX_TEST_MONGO_URI").is_ok() {
                    let _ = mongo_store(&format!("chatbox_{name}")).await.drop_database().await;
                }
                if let Ok(redis) = redis_client().await {
                    let script = "local n = 0 local cursor = '0' repeat local r = redis.call('SCAN', cursor, 'MATCH', ARGV[1], 'COUNT', 1000) cursor = r[1] for _, k in ipairs(r[2]) do n = n + redis.call('DEL', k) end until cursor == '0' return n";
                    let _: Result<i64, _> = fred::prelude::LuaInterface::eval(
                        &redis,
                        script,
                        Vec::<String>::new(),
                        vec![format!("{name}:*")],
                    )
                    .await;
                }
            });
        })
        .join();
    }
}

/// A Redis client for inspecting state from tests.
pub async fn redis_client() -> Result<fred::prelude::Client, fred::prelude::Error> {
    use fred::prelude::*;
    let client = Builder::from_config(Config::from_url(&redis_url())?).build()?;
    client.init().await?;
    Ok(client)
}

/// Reads a Redis string key.
pub async fn redis_get(key: &str) -> Option<String> {
    use fred::prelude::KeysInterface;
    let client = redis_client().await.expect("redis");
    client.get(key).await.expect("GET")
}

/// The environment every scaled process of a test shares: the backplane,
/// the store on the namespace's MongoDB database, and files in the S3
/// stand-in under the namespace's prefixes.
pub fn scaled_env(ns: &TestNamespace) -> Vec<(String, String)> {
    let mut env = backplane_env(ns);
    env.extend(
        [
            ("MONGO_URI", mongo_uri()),
            ("CHATBOX_STORE_DATABASE", ns.database()),
            ("ENCRYPTION_KEY", ENCRYPTION_KEY.to_owned()),
            ("CHATBOX_BLOB_KIND", "s3".to_owned()),
            ("S3_ENDPOINT", s3_env("CHATBOX_TEST_S3_ENDPOINT")),
            ("S3_BUCKET", s3_env("CHATBOX_TEST_S3_BUCKET")),
            ("CHATBOX_BLOB_S3_PATH_STYLE", "true".to_owned()),
            (
                "CHATBOX_BLOB_S3_ACCESS_KEY_ID",
                s3_env("CHATBOX_TEST_S3_ACCESS_KEY"),
            ),
            (
                "CHATBOX_BLOB_S3_SECRET_ACCESS_KEY",
                s3_env("CHATBOX_TEST_S3_SECRET_KEY"),
            ),
            ("CHATBOX_UPLOADS_PREFIX", format!("{}/files", ns.name)),
            (
                "CHATBOX_UPLOADS_QUARANTINE_PREFIX",
                format!("{}/quarantine", ns.name),
            ),
        ]
        .map(|(k, v)| (k.to_owned(), v)),
    );
    env
}

/// A setting of the S3 stand-in that `scripts/test.sh` starts.
pub fn s3_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: start the S3 stand-in (scripts/test.sh does: ensure_s3)")
    })
}

/// The backplane part of [`scaled_env`] (Redis, NATS, secrets, timings).
pub fn backplane_env(ns: &TestNamespace) -> Vec<(String, String)> {
    [
        ("CHATBOX_NAMESPACE", ns.name.as_str()),
        ("JWT_SECRET", SECRET),
        ("REDIS_URL", &redis_url()),
        ("NATS_URL", &nats_url()),
        ("CHATBOX_GATEWAY_OWNER_TTL", "3s"),
        ("CHATBOX_GATEWAY_OWNER_RENEW_INTERVAL", "1s"),
        ("CHATBOX_WORKER_ACK_WAIT", "2s"),
        ("CHATBOX_APP_SHUTDOWN_TIMEOUT", "10s"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// Writes a configuration file naming one OpenAI-compatible provider.
pub fn provider_config(dir: &Path, name: &str, mock_addr: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    let text = format!(
        "[[chatbox.llm.providers]]\nid = \"mock\"\nname = \"Mock\"\ntype = \"openai\"\nendpoint = \"http://{mock_addr}/v1\"\nmodel = \"mock-model\"\n"
    );
    std::fs::write(&path, text).expect("config file");
    path
}

/// The `mock-llm` binary (the crate `tools/mock-llm`). Cargo tells a
/// package's tests where that package's own binaries are, not another
/// member's, so it is taken from next to `chatbox`, where building the
/// workspace puts it; missing, or older than its sources, it stops the
/// test with the command that builds it.
pub fn mock_llm_bin() -> PathBuf {
    let chatbox = Path::new(env!("CARGO_BIN_EXE_chatbox"));
    let bin = chatbox.with_file_name("mock-llm");
    let profile = match chatbox
        .parent()
        .and_then(Path::file_name)
        .and_then(|d| d.to_str())
    {
        Some("debug") | None => String::new(),
        Some("release") => " --release".to_owned(),
        Some(other) => format!(" --profile {other}"),
    };
    let build = format!("cargo build -p chatbox-mock-llm{profile}");
    let built = std::fs::metadata(&bin)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| panic!("no mock-llm at {}: build it with `{build}`", bin.display()));
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/mock-llm");
    if let Some(newer) = newer_than(&crate_dir, built) {
        panic!(
            "{} is older than {}: rebuild it with `{build}`",
            bin.display(),
            newer.display()
        );
    }
    bin
}

/// A file under `dir` changed after `time`, if any (`target/` skipped).
fn newer_than(dir: &Path, time: std::time::SystemTime) -> Option<PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            if entry.file_name() != "target"
                && let Some(newer) = newer_than(&path, time)
            {
                return Some(newer);
            }
        } else if meta.modified().is_ok_and(|m| m > time) {
            return Some(path);
        }
    }
    None
}

/// A pod's `/metrics`, as text.
pub async fn metrics_text(pod: &Proc) -> String {
    get(&format!("http://{}/metrics", pod.addr))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text")
}

/// A metric summed over its series (every line that starts with `name`),
/// from a pod's `/metrics`.
pub async fn metric_sum(pod: &Proc, name: &str) -> f64 {
    metrics_text(pod)
        .await
        .lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Starts a mock LLM.
pub async fn start_mock(dir: &Path, name: &str, extra: &[&str]) -> Proc {
    let addr = format!("127.0.0.1:{}", free_port());
    let mut args = vec!["--listen", addr.as_str()];
    args.extend_from_slice(extra);
    let proc = Proc::start_program(&mock_llm_bin(), name, dir, &args, &[], &addr);
    let deadline = Instant::now() + Duration::from_secs(20);
    while get(&format!("http://{addr}/mock/stats")).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "mock-llm did not start:\n{}",
            proc.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    proc
}

/// What a mock LLM has seen.
pub async fn mock_stats(mock: &Proc) -> Value {
    get(&format!("http://{}/mock/stats", mock.addr))
        .await
        .expect("stats")
        .json()
        .await
        .expect("stats json")
}

/// Completions a mock LLM has served.
pub async fn mock_completions(mock: &Proc) -> u64 {
    mock_stats(mock).await["completions"].as_u64().unwrap_or(0)
}

/// Starts a gateway.
pub async fn start_gateway(dir: &Path, env: &[(String, String)], name: &str) -> Proc {
    let addr = format!("127.0.0.1:{}", free_port());
    let mut proc = Proc::start(
        name,
        dir,
        &["gateway", "--listen", &addr, "--pod-id", name],
        env,
        &addr,
    );
    proc.wait_ready().await;
    proc
}

/// Starts a worker using `config` (a provider file) if given.
pub async fn start_worker(dir: &Path, env: &[(String, String)], name: &str, config: Option<&Path>) -> Proc {
    let addr = format!("127.0.0.1:{}", free_port());
    let mut args = vec!["worker", "--listen", addr.as_str(), "--pod-id", name];
    let config_arg;
    if let Some(path) = config {
        config_arg = path.display().to_string();
        args.push("--config");
        args.push(&config_arg);
    }
    let mut proc = Proc::start(name, dir, &args, env, &addr);
    proc.wait_ready().await;
    proc
}

/// Starts an all-in-one keeping its data under `dir/data`.
pub async fn start_all_in_one(dir: &Path, env: &[(String, String)], name: &str) -> Proc {
    start_all_in_one_at(dir, env, name, &format!("127.0.0.1:{}", free_port())).await
}

/// Starts an all-in-one on `addr`.
pub async fn start_all_in_one_at(dir: &Path, env: &[(String, String)], name: &str, addr: &str) -> Proc {
    let data = dir.join("data").display().to_string();
    let mut proc = Proc::start(name, dir, &["--listen", addr, "--data-dir", &data], env, addr);
    proc.wait_ready().await;
    proc
}

/// How a test client presents its token.
#[derive(Debug, Clone, Copy)]
pub enum TokenVia {
    Query,
    Header,
    Subprotocol,
}

/// A WebSocket test client that keeps every frame it reads.
pub struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub frames: Vec<Value>,
    /// When each of `frames` arrived.
    pub arrivals: Vec<Instant>,
    pub protocol: Option<String>,
}

/// A refused upgrade.
#[derive(Debug)]
pub struct Refusal {
    pub status: u16,
    pub body: Value,
    pub retry_after: Option<String>,
}

/// What ended a socket.
#[derive(Debug, Clone, PartialEq)]
pub struct Closed {
    pub code: u16,
    pub reason: String,
}

impl Client {
    /// Connects with a token in the query string.
    pub async fn connect(addr: &str, token: &str, session: Option<&str>) -> Client {
        Self::try_connect(addr, Some(token), session, TokenVia::Query, None)
            .await
            .unwrap_or_else(|r| panic!("connection refused: {r:?}"))
    }

    /// Connects asking for a new session (`new_session=true`), or returns
    /// the refusal.
    pub async fn try_connect_new_session(addr: &str, token: &str) -> Result<Client, Refusal> {
        Self::open(
            format!("ws://{addr}/chat/ws?new_session=true&"),
            Some(token),
            None,
            TokenVia::Query,
            None,
        )
        .await
    }

    /// Connects an admin console (`/chat/admin/ws`).
    pub async fn connect_admin(addr: &str, token: &str) -> Client {
        Self::try_connect_admin(addr, token)
            .await
            .unwrap_or_else(|r| panic!("admin connection refused: {r:?}"))
    }

    /// Connects an admin console, or returns the refusal.
    pub async fn try_connect_admin(addr: &str, token: &str) -> Result<Client, Refusal> {
        Self::open(
            format!("ws://{addr}/chat/admin/ws?"),
            Some(token),
            None,
            TokenVia::Query,
            None,
        )
        .await
    }

    /// Connects, or returns the refusal.
    pub async fn try_connect(
        addr: &str,
        token: Option<&str>,
        session: Option<&str>,
        via: TokenVia,
        origin: Option<&str>,
    ) -> Result<Client, Refusal> {
        Self::open(format!("ws://{addr}/chat/ws?"), token, session, via, origin).await
    }

    async fn open(
        mut url: String,
        token: Option<&str>,
        session: Option<&str>,
        via: TokenVia,
        origin: Option<&str>,
    ) -> Result<Client, Refusal> {
        if let (Some(t), TokenVia::Query) = (token, via) {
            url.push_str(&format!("token={t}&"));
        }
        if let Some(s) = session {
            url.push_str(&format!("session_id={s}"));
        }
        let mut request = url.as_str().into_client_request().expect("request");
        if let Some(t) = token {
            match via {
                TokenVia::Header => {
                    request.headers_mut().insert(
                        "authorization",
                        HeaderValue::from_str(&format!("Bearer {t}")).unwrap(),
                    );
                }
                TokenVia::Subprotocol => {
                    request.headers_mut().insert(
                        "sec-websocket-protocol",
                        HeaderValue::from_str(&format!("chatbox.v1, bearer.{t}")).unwrap(),
                    );
                }
                TokenVia::Query => {}
            }
        }
        if let Some(o) = origin {
            request
                .headers_mut()
                .insert("origin", HeaderValue::from_str(o).unwrap());
        }
        match tokio_tungstenite::connect_async(request).await {
            Ok((ws, response)) => Ok(Client {
                ws,
                frames: Vec::new(),
                arrivals: Vec::new(),
                protocol: response
                    .headers()
                    .get("sec-websocket-protocol")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned),
            }),
            Err(tungstenite::Error::Http(response)) => {
                let status = response.status().as_u16();
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let body = response
                    .body()
                    .as_ref()
                    .and_then(|b| serde_json::from_slice(b).ok())
                    .unwrap_or(Value::Null);
                Err(Refusal {
                    status,
                    body,
                    retry_after,
                })
            }
            Err(e) => panic!("cannot connect to {url}: {e}"),
        }
    }

    pub async fn send(&mut self, frame: Value) {
        self.ws
            .send(Message::text(frame.to_string()))
            .await
            .expect("send");
    }

    pub async fn send_raw(&mut self, message: Message) {
        self.ws.send(message).await.expect("send");
    }

    /// Sends a user message with a client id.
    pub async fn say(&mut self, id: &str, content: &str) {
        self.send(serde_json::json!({ "type": "user_message", "id": id, "content": content }))
            .await;
    }

    /// Sends a user message; false when the socket is already gone.
    pub async fn try_say(&mut self, id: &str, content: &str) -> bool {
        let frame = serde_json::json!({ "type": "user_message", "id": id, "content": content });
        self.ws.send(Message::text(frame.to_string())).await.is_ok()
    }

    /// The first page of the connection's session history.
    pub async fn history(&mut self) -> Vec<Value> {
        self.send(serde_json::json!({ "type": "get_history", "id": "h" }))
            .await;
        let page = self
            .until(Duration::from_secs(10), |f| f["type"] == "history")
            .await;
        page["data"]["messages"].as_array().cloned().unwrap_or_default()
    }

    /// The next JSON frame, or the close that ended the socket.
    pub async fn next(&mut self, timeout: Duration) -> Result<Value, Closed> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let message = match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => panic!(
                    "no frame within {timeout:?}; frames so far:\n{}",
                    serde_json::to_string_pretty(&self.frames).unwrap()
                ),
                Ok(None) => {
                    return Err(Closed {
                        code: 1006,
                        reason: "stream ended".into(),
                    });
                }
                Ok(Some(Err(e))) => {
                    return Err(Closed {
                        code: 1006,
                        reason: e.to_string(),
                    });
                }
                Ok(Some(Ok(m))) => m,
            };
            match message {
                Message::Text(text) => {
                    let value: Value = serde_json::from_str(&text).expect("server frames are JSON");
                    assert!(value["type"].is_string(), "frame without type: {value}");
                    self.frames.push(value.clone());
                    self.arrivals.push(Instant::now());
                    return Ok(value);
                }
                Message::Close(frame) => {
                    let (code, reason) = frame
                        .map(|CloseFrame { code, reason }| (u16::from(code), reason.to_string()))
                        .unwrap_or((1005, String::new()));
                    return Err(Closed { code, reason });
                }
                _ => {}
            }
        }
    }

    /// Reads frames until one satisfies `pred`; returns it.
    pub async fn until(&mut self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left.max(Duration::from_millis(1))).await {
                Ok(frame) if pred(&frame) => return frame,
                Ok(_) => {}
                Err(closed) => panic!(
                    "socket closed ({closed:?}) before the expected frame; frames:\n{}",
                    serde_json::to_string_pretty(&self.frames).unwrap()
                ),
            }
        }
    }

    /// Reads frames until the socket closes; returns the close.
    pub async fn until_closed(&mut self, timeout: Duration) -> Closed {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if let Err(closed) = self.next(left.max(Duration::from_millis(1))).await {
                return closed;
            }
        }
    }

    /// The first frame: the connection status.
    pub async fn status(&mut self) -> Value {
        self.until(Duration::from_secs(10), |f| f["type"] == "connection_status")
            .await
    }

    /// Reads until the final answer to client message `id` arrives; returns it.
    pub async fn answer(&mut self, timeout: Duration) -> Value {
        self.until(timeout, |f| f["type"] == "ai_response" && f["done"] == true)
            .await
    }
}

/// Whether a frame is an error with `code`.
pub fn is_error(frame: &Value, code: &str) -> bool {
    frame["type"] == "error" && frame["error"]["code"] == code
}

/// A Redis or NATS server of a test's own, on a spare port, for fault
/// tests that stop and restart it. Stopped when dropped.
pub struct OwnServer {
    child: Option<Child>,
    pub port: u16,
    args: Vec<String>,
    program: String,
}

fn find_program(name: &str) -> String {
    for dir in std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(["/usr/sbin", "/usr/bin"])
    {
        let path = Path::new(dir).join(name);
        if path.exists() {
            return path.display().to_string();
        }
    }
    panic!("{name} is not installed (scripts/test.sh installs it)")
}

impl OwnServer {
    /// A redis-server that keeps nothing on disk.
    pub fn redis(dir: &Path) -> OwnServer {
        let port = free_port();
        let args = [
            "--bind",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            &dir.display().to_string(),
        ]
        .map(str::to_owned)
        .to_vec();
        Self::launch(find_program("redis-server"), args, port)
    }

    /// A nats-server with JetStream storing under `dir` (kept across restarts).
    pub fn nats(dir: &Path) -> OwnServer {
        let port = free_port();
        let store = dir.join(format!("nats-{port}"));
        let args = [
            "-a",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-js",
            "-sd",
            &store.display().to_string(),
        ]
        .map(str::to_owned)
        .to_vec();
        Self::launch(find_program("nats-server"), args, port)
    }

    /// The MongoDB stand-in, keeping its data in a file under `dir` (kept
    /// across restarts).
    pub fn mongo(dir: &Path) -> OwnServer {
        let program = std::env::var("CHATBOX_TEST_NX_27017").unwrap_or_else(|_| {
            let home = std::env::var("HOME").unwrap_or_default();
            format!("{home}/.cache/chatbox/nx-27017/bin/nx-27017")
        });
        assert!(
            Path::new(&program).exists(),
            "the MongoDB stand-in is not installed at {program} (scripts/test.sh installs it)"
        );
        let port = free_port();
        let file = dir.join(format!("mongo-{port}.db"));
        let args = [
            "--db",
            &file.display().to_string(),
            "--host",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "--pid-file",
            &dir.join(format!("mongo-{port}.pid")).display().to_string(),
            "--log-file",
            &dir.join(format!("mongo-{port}.log")).display().to_string(),
        ]
        .map(str::to_owned)
        .to_vec();
        Self::launch(program, args, port)
    }

    fn launch(program: String, args: Vec<String>, port: u16) -> OwnServer {
        let mut server = OwnServer {
            child: None,
            port,
            args,
            program,
        };
        server.start();
        server
    }

    /// Starts (again) on the same port.
    pub fn start(&mut self) {
        let child = Command::new(&self.program)
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "{} did not start", self.program);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops it (SIGKILL).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `GET /chat/readyz`: the status and the JSON body.
pub async fn readiness(addr: &str) -> (u16, Value) {
    let response = get(&format!("http://{addr}/chat/readyz")).await.expect("readyz");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}
