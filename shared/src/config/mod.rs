//! Configuration: one TOML file, every key overridable from the environment.
//!
//! The file's layout follows the seed (`[app]`, `[chatbox]`,
//! `[chatbox.websocket]`, `[[chatbox.llm.providers]]`). Every key has a
//! default, so an empty file — or none — is a valid all-in-one
//! configuration. Environment variables override the file: each key as
//! `CHATBOX_<PATH>` (`chatbox.websocket.read_buffer_size` →
//! `CHATBOX_WEBSOCKET_READ_BUFFER_SIZE`, `app.listen` → `CHATBOX_APP_LISTEN`),
//! and the seed's own names (`JWT_SECRET`, `REDIS_URL`, …; see
//! [`env::SEED_ALIASES`]). Invalid configuration fails at start with a
//! message that names the key and the problem ([`ConfigError`]).

pub(crate) mod duration;
pub mod env;
pub mod notifications;
mod secret;
pub mod uploads;
mod validate;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use notifications::NotificationsConfig;
pub use secret::Secret;
pub use uploads::{BlobConfig, BlobKind, S3Config, UploadsConfig};
pub use validate::{Role, decode_key};

/// Why configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read configuration file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// The file is not valid TOML.
    #[error("configuration file {path} is not valid TOML: {message}")]
    Syntax { path: PathBuf, message: String },
    /// One or more keys have unacceptable values.
    #[error("invalid configuration:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<String>),
}

/// The whole configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Process-level settings (`[app]`).
    pub app: AppConfig,
    /// Everything chatbox (`[chatbox]`).
    pub chatbox: ChatboxConfig,
}

/// `[app]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AppConfig {
    /// Address of the HTTP server (WebSocket, health, metrics).
    pub listen: String,
    /// Graceful-shutdown budget: how long in-flight work may take to finish.
    #[serde(with = "duration")]
    pub shutdown_timeout: Duration,
}

impl Default for AppConfig {
    fn default() -> Self {
        AppConfig {
            listen: "127.0.0.1:8080".into(),
            shutdown_timeout: Duration::from_secs(25),
        }
    }
}

/// `[chatbox]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChatboxConfig {
    /// HS256 secret for JWTs (`JWT_SECRET`).
    pub jwt_secret: Secret,
    /// How long a disconnected session may be resumed (`RECONNECT_TIMEOUT`).
    #[serde(with = "duration")]
    pub reconnect_timeout: Duration,
    /// Connections one gateway pod accepts (`MAX_CONNECTIONS`).
    pub max_connections: u64,
    /// Messages a user may send per `rate_limit_window` (`RATE_LIMIT`).
    pub rate_limit: u32,
    /// The window of `rate_limit`.
    #[serde(with = "duration")]
    pub rate_limit_window: Duration,
    /// This pod's id (`POD_ID`); defaults to the host name.
    pub pod_id: String,
    /// Prefix of every Redis key, NATS subject and stream name, so several
    /// deployments can share one Redis and one NATS.
    pub namespace: String,
    /// Where the all-in-one keeps its data (`--data-dir`).
    pub data_dir: String,
    /// `[chatbox.store]`
    pub store: StoreConfig,
    /// `[chatbox.auth]`
    pub auth: AuthConfig,
    /// `[chatbox.websocket]`
    pub websocket: WebSocketConfig,
    /// `[chatbox.gateway]`
    pub gateway: GatewayConfig,
    /// `[chatbox.worker]`
    pub worker: WorkerConfig,
    /// `[chatbox.admin]`
    pub admin: AdminConfig,
    /// `[chatbox.redis]`
    pub redis: RedisConfig,
    /// `[chatbox.nats]`
    pub nats: NatsConfig,
    /// `[chatbox.llm]`
    pub llm: LlmConfig,
    /// `[chatbox.log]`
    pub log: LogConfig,
    /// `[chatbox.telemetry]`
    pub telemetry: TelemetryConfig,
    /// `[chatbox.notifications]`
    pub notifications: NotificationsConfig,
    /// What users may upload (`[chatbox.uploads]`).
    pub uploads: UploadsConfig,
    /// Where files are kept (`[chatbox.blob]`).
    pub blob: BlobConfig,
    /// The chat page and the admin console (`[chatbox.web]`).
    pub web: WebConfig,
}

impl Default for ChatboxConfig {
    fn default() -> Self {
        ChatboxConfig {
            jwt_secret: Secret::default(),
            reconnect_timeout: Duration::from_secs(15 * 60),
            max_connections: 10_000,
            rate_limit: 100,
            rate_limit_window: Duration::from_secs(60),
            pod_id: String::new(),
            namespace: String::new(),
            data_dir: "./data".into(),
            store: StoreConfig::default(),
            auth: AuthConfig::default(),
            websocket: WebSocketConfig::default(),
            gateway: GatewayConfig::default(),
            worker: WorkerConfig::default(),
            admin: AdminConfig::default(),
            redis: RedisConfig::default(),
            nats: NatsConfig::default(),
            llm: LlmConfig::default(),
            log: LogConfig::default(),
            telemetry: TelemetryConfig::default(),
            notifications: NotificationsConfig::default(),
            uploads: UploadsConfig::default(),
            blob: BlobConfig::default(),
            web: WebConfig::default(),
        }
    }
}

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

/// `[chatbox.auth]`: JWT validation beyond the HS256 secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// PEM public key for RS256 tokens.
    pub jwt_public_key: String,
    /// A file holding the PEM public key, instead of `jwt_public_key`.
    pub jwt_public_key_file: String,
    /// Required `iss`, if set.
    pub issuer: String,
    /// Required `aud`, if set.
    pub audience: String,
    /// Clock skew tolerated on `exp` and `nbf`.
    #[serde(with = "duration")]
    pub leeway: Duration,
    /// The role that makes a user an admin.
    pub admin_role: String,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            jwt_public_key: String::new(),
            jwt_public_key_file: String::new(),
            issuer: String::new(),
            audience: String::new(),
            leeway: Duration::from_secs(30),
            admin_role: "admin".into(),
        }
    }
}

/// `[chatbox.websocket]`: socket limits and heartbeat.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebSocketConfig {
    /// Read buffer per socket, in bytes; grows only for larger frames.
    pub read_buffer_size: usize,
    /// Bytes buffered before a write is flushed to the socket.
    pub write_buffer_size: usize,
    /// Largest message a client may send, in bytes.
    pub max_message_size: usize,
    /// Largest frame a client may send, in bytes.
    pub max_frame_size: usize,
    /// Largest `content` of a client message, in bytes.
    pub max_content_bytes: usize,
    /// How often the server sends WebSocket pings.
    #[serde(with = "duration")]
    pub ping_period: Duration,
    /// A socket silent this long is closed.
    #[serde(with = "duration")]
    pub pong_wait: Duration,
    /// A write that takes longer fails and closes the socket.
    #[serde(with = "duration")]
    pub write_wait: Duration,
    /// Frames queued for a socket before it is dropped as too slow.
    pub send_queue_limit: usize,
    /// Browser origins allowed to open sockets (`WS_ALLOWED_ORIGINS`);
    /// empty allows every origin.
    pub allowed_origins: Vec<String>,
}

impl Default for WebSocketConfig {
    fn default() -> Self {
        WebSocketConfig {
            read_buffer_size: 1024,
            write_buffer_size: 4096,
            max_message_size: 64 * 1024,
            max_frame_size: 64 * 1024,
            max_content_bytes: 16 * 1024,
            ping_period: Duration::from_secs(30),
            pong_wait: Duration::from_secs(90),
            write_wait: Duration::from_secs(10),
            send_queue_limit: 1024,
            allowed_origins: Vec::new(),
        }
    }
}

/// `[chatbox.gateway]`: ownership and routing.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// Lifetime of a session's ownership lock.
    #[serde(with = "duration")]
    pub owner_ttl: Duration,
    /// How often a gateway renews the locks it holds.
    #[serde(with = "duration")]
    pub owner_renew_interval: Duration,
    /// How often a gateway writes its heartbeat.
    #[serde(with = "duration")]
    pub heartbeat_interval: Duration,
    /// A session quiet this long stops listening on `chat.out.<sid>`
    /// until its user speaks again or a worker asks it to attach.
    #[serde(with = "duration")]
    pub out_idle_timeout: Duration,
    /// How long a gateway waits for a worker's RPC answer.
    #[serde(with = "duration")]
    pub rpc_timeout: Duration,
    /// Browser origins allowed to call the HTTP API from another origin
    /// (`CORS_ALLOWED_ORIGINS`); empty: same origin only.
    pub cors_allowed_origins: Vec<String>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            owner_ttl: Duration::from_secs(30),
            owner_renew_interval: Duration::from_secs(10),
            heartbeat_interval: Duration::from_secs(10),
            out_idle_timeout: Duration::from_secs(120),
            rpc_timeout: Duration::from_secs(5),
            cors_allowed_origins: Vec::new(),
        }
    }
}

/// `[chatbox.worker]`: turn processing.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerConfig {
    /// Address of the worker's HTTP server (health, metrics).
    pub listen: String,
    /// Turns one worker runs at once.
    pub max_concurrent_turns: usize,
    /// How long a turn may go without a sign of life before its message is
    /// handed to another worker.
    #[serde(with = "duration")]
    pub ack_wait: Duration,
    /// Messages handed out to all workers and not yet acked.
    pub max_ack_pending: i64,
    /// Messages a worker fetches per pull.
    pub pull_batch: usize,
    /// The longest a turn may run before it is abandoned with an error.
    #[serde(with = "duration")]
    pub turn_timeout: Duration,
    /// How long a streamed chunk may wait for more text before it is sent:
    /// text a model produces within the window goes out as one frame. A
    /// fast model then costs a few frames instead of one per token; a
    /// model slower than the window is not slowed down. 0 sends one frame
    /// per model event.
    #[serde(with = "duration")]
    pub chunk_window: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            listen: "127.0.0.1:9091".into(),
            max_concurrent_turns: 256,
            ack_wait: Duration::from_secs(30),
            max_ack_pending: 10_000,
            pull_batch: 64,
            turn_timeout: Duration::from_secs(300),
            chunk_window: Duration::from_millis(10),
        }
    }
}

/// `[chatbox.admin]`: admins watching and taking over sessions.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// How long a takeover outlives its admin's socket: an admin who comes
    /// back within it carries on; after it the user is told the admin left.
    #[serde(with = "duration")]
    pub takeover_grace: Duration,
    /// How often workers look for takeovers whose admin is gone.
    #[serde(with = "duration")]
    pub takeover_check_interval: Duration,
    /// Latest messages an admin receives when they start watching.
    pub watch_messages: usize,
    /// How often the number of connected sessions is sampled (for the
    /// average and maximum concurrency of `/chat/admin/metrics`).
    #[serde(with = "duration")]
    pub sample_interval: Duration,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            takeover_grace: Duration::from_secs(30),
            takeover_check_interval: Duration::from_secs(5),
            watch_messages: 50,
            sample_interval: Duration::from_secs(60),
        }
    }
}

/// `[chatbox.web]`: the pages gateways serve — the chat page at `/chat/`
/// and the admin console at `/chat/admin/`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    /// Serve the pages; off leaves the API and sockets only.
    pub enabled: bool,
    /// Serve the pages from this folder (laid out like the repository's
    /// `web/`), read on every request, instead of the copy built into the
    /// binary: for working on the pages, or your own branding.
    pub dir: String,
    /// Sites that may show the chat page in a frame (CSP
    /// `frame-ancestors`); empty: the origins of
    /// `chatbox.websocket.allowed_origins`, or any site when that is empty
    /// too. The admin console is never framed.
    pub frame_ancestors: Vec<String>,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            enabled: true,
            dir: String::new(),
            frame_ancestors: Vec::new(),
        }
    }
}

/// `[chatbox.redis]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://host:port[/db]` (`REDIS_URL`).
    pub url: String,
    /// Connections per process.
    pub pool_size: usize,
    /// How long to wait for the first connection.
    #[serde(with = "duration")]
    pub connect_timeout: Duration,
    /// How long one command may take.
    #[serde(with = "duration")]
    pub command_timeout: Duration,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: "redis://127.0.0.1:6379".into(),
            pool_size: 2,
            connect_timeout: Duration::from_secs(10),
            command_timeout: Duration::from_secs(2),
        }
    }
}

/// `[chatbox.nats]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NatsConfig {
    /// `nats://host:port` (`NATS_URL`); several separated by commas.
    pub url: String,
    /// How long to wait for the first connection.
    #[serde(with = "duration")]
    pub connect_timeout: Duration,
    /// How long the inbound stream keeps a message no worker took.
    #[serde(with = "duration")]
    pub stream_max_age: Duration,
    /// Window in which a repeated client message id is dropped.
    #[serde(with = "duration")]
    pub duplicate_window: Duration,
    /// Replicas of the inbound stream (3 on a NATS cluster).
    pub stream_replicas: usize,
}

impl Default for NatsConfig {
    fn default() -> Self {
        NatsConfig {
            url: "nats://127.0.0.1:4222".into(),
            connect_timeout: Duration::from_secs(10),
            stream_max_age: Duration::from_secs(24 * 3600),
            duplicate_window: Duration::from_secs(120),
            stream_replicas: 1,
        }
    }
}

/// `[chatbox.llm]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LlmConfig {
    /// `[[chatbox.llm.providers]]`; the first is the default model. With
    /// none, the built-in demo model answers.
    pub providers: Vec<ProviderConfig>,
    /// `[chatbox.llm.demo]`
    pub demo: DemoConfig,
    /// Tokens of earlier messages sent with each request, newest first,
    /// as context (the user's new message always goes).
    pub context_tokens: u64,
    /// The provider that turns voice messages into text (its
    /// `transcription_model` is used); empty: the first provider that has
    /// a `transcription_model`.
    pub transcription: String,
    /// `[chatbox.llm.retry]`
    pub retry: RetryConfig,
    /// `[chatbox.llm.breaker]`
    pub breaker: BreakerConfig,
}

impl Default for LlmConfig {
    fn default() -> Self {
        LlmConfig {
            providers: Vec::new(),
            demo: DemoConfig::default(),
            context_tokens: 3000,
            transcription: String::new(),
            retry: RetryConfig::default(),
            breaker: BreakerConfig::default(),
        }
    }
}

/// `[chatbox.llm.retry]`: how a failed model request is tried again —
/// only while nothing of the answer has reached the user.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryConfig {
    /// Attempts per provider, the first included.
    pub attempts: u32,
    /// Wait before the second attempt; doubled for each one after, with
    /// jitter.
    #[serde(with = "duration")]
    pub base_delay: Duration,
    /// Longest wait between attempts.
    #[serde(with = "duration")]
    pub max_delay: Duration,
    /// Longest `Retry-After` honoured; a provider that asks for more is
    /// treated as failing (the fallback answers, or the user is told when
    /// to try again).
    #[serde(with = "duration")]
    pub max_retry_after: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            attempts: 3,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(20),
        }
    }
}

/// `[chatbox.llm.breaker]`: one circuit breaker per provider and worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerConfig {
    /// Failed requests in a row that open the breaker.
    pub failure_threshold: u32,
    /// How long an open breaker refuses requests before it lets a probe
    /// through (half-open).
    #[serde(with = "duration")]
    pub open_for: Duration,
    /// Requests let through at once while half-open.
    pub half_open_probes: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failure_threshold: 5,
            open_for: Duration::from_secs(30),
            half_open_probes: 1,
        }
    }
}

/// The kind of API a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// OpenAI Chat Completions, or any compatible endpoint.
    Openai,
    /// Anthropic Messages.
    Anthropic,
    /// Dify chat-messages.
    Dify,
}

/// One `[[chatbox.llm.providers]]` entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// The model id users select (`model_id`).
    pub id: String,
    /// The name users see.
    #[serde(default)]
    pub name: String,
    /// The API it speaks.
    #[serde(rename = "type")]
    pub kind: ProviderKind,
    /// Base URL, like `https://api.openai.com/v1`.
    pub endpoint: String,
    /// API key (`LLM_PROVIDER_<ID>_API_KEY` overrides it). Never logged.
    #[serde(default, rename = "apiKey", alias = "api_key")]
    pub api_key: Secret,
    /// The provider's model name.
    #[serde(default)]
    pub model: String,
    /// Stream the answer (`false` waits for the whole answer).
    #[serde(default = "default_true")]
    pub stream: bool,
    /// Upper bound on answer tokens.
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// Sampling temperature.
    #[serde(default)]
    pub temperature: Option<f32>,
    /// A system prompt put before the conversation (OpenAI, Anthropic;
    /// a Dify app has its own).
    #[serde(default)]
    pub system_prompt: Option<String>,
    /// Another provider's id: it answers when this one is failing or its
    /// breaker is open (and its own fallback after it).
    #[serde(default)]
    pub fallback: Option<String>,
    /// The API version header (Anthropic's `anthropic-version`).
    #[serde(default)]
    pub api_version: Option<String>,
    /// The speech-to-text model of an OpenAI-compatible provider
    /// (`/audio/transcriptions`), like `whisper-1`.
    #[serde(default)]
    pub transcription_model: Option<String>,
    /// The model accepts image inputs: users' pictures are sent to it.
    #[serde(default)]
    pub vision: bool,
    /// Ask for a spoken answer as well as text (OpenAI audio models such as
    /// `gpt-4o-audio-preview`; `modalities: ["text","audio"]`).
    #[serde(default)]
    pub audio_output: Option<AudioOutput>,
    /// Extra HTTP headers sent with every request (gateways and proxies
    /// that want their own headers).
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
    /// Connect timeout.
    #[serde(default = "default_connect_timeout", with = "duration")]
    pub connect_timeout: Duration,
    /// Longest wait for the first token.
    #[serde(default = "default_first_token_timeout", with = "duration")]
    pub first_token_timeout: Duration,
    /// Longest silence between two chunks.
    #[serde(default = "default_idle_timeout", with = "duration")]
    pub idle_timeout: Duration,
}

/// `audio_output` of a provider: the voice and file format of spoken
/// answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AudioOutput {
    /// The provider's voice, like `alloy`.
    pub voice: String,
    /// `wav`, `mp3`, `flac`, `opus` or `pcm16` (raw 24 kHz 16-bit mono).
    pub format: String,
}

impl Default for AudioOutput {
    fn default() -> Self {
        AudioOutput {
            voice: "alloy".into(),
            format: "wav".into(),
        }
    }
}

/// The `audio_output.format`s OpenAI knows.
pub const AUDIO_FORMATS: [&str; 5] = ["wav", "mp3", "flac", "opus", "pcm16"];

fn default_true() -> bool {
    true
}
fn default_connect_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_first_token_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_idle_timeout() -> Duration {
    Duration::from_secs(30)
}

/// `[chatbox.llm.demo]`: the built-in model of the all-in-one.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DemoConfig {
    /// Pause between streamed words, so streaming is visible.
    #[serde(with = "duration")]
    pub chunk_delay: Duration,
}

impl Default for DemoConfig {
    fn default() -> Self {
        DemoConfig {
            chunk_delay: Duration::from_millis(25),
        }
    }
}

/// `[chatbox.log]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `error`, `warn`, `info`, `debug`, `trace`, or a full filter like
    /// `info,chatbox_gateway=debug` (`RUST_LOG` overrides it).
    pub level: String,
    /// `json`, `text`, or `auto` (text on a terminal, JSON otherwise).
    pub format: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            format: "auto".into(),
        }
    }
}

/// `[chatbox.telemetry]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// OTLP/HTTP endpoint for traces (`OTEL_EXPORTER_OTLP_ENDPOINT`); empty
    /// disables tracing export.
    pub otlp_endpoint: String,
    /// `service.name` of exported traces.
    pub service_name: String,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            otlp_endpoint: String::new(),
            service_name: "chatbox".into(),
        }
    }
}

impl Config {
    /// Loads the file (if any), applies the environment, and checks the
    /// result for `role`.
    pub fn load(path: Option<&Path>, role: Role) -> Result<Config, ConfigError> {
        Self::load_with_env(path, role, &|name| std::env::var(name).ok())
    }

    /// [`Config::load`] with an explicit environment (for tests).
    pub fn load_with_env(
        path: Option<&Path>,
        role: Role,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let file = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                text.parse::<toml::Table>().map_err(|e| ConfigError::Syntax {
                    path: path.to_owned(),
                    message: e.to_string(),
                })?
            }
            None => toml::Table::new(),
        };
        let merged = env::apply(file, lookup).map_err(ConfigError::Invalid)?;
        let mut config: Config =
            serde_path_to_error::deserialize(toml::Value::Table(merged)).map_err(|e| {
                let key = e.path().to_string();
                let names = env::names_for(&key);
                ConfigError::Invalid(vec![format!("{key}{names}: {}", e.inner())])
            })?;
        config
            .resolve_files()
            .map_err(|e| ConfigError::Invalid(vec![e]))?;
        config.validate(role).map_err(ConfigError::Invalid)?;
        Ok(config)
    }

    fn resolve_files(&mut self) -> Result<(), String> {
        let auth = &mut self.chatbox.auth;
        if auth.jwt_public_key.is_empty() && !auth.jwt_public_key_file.is_empty() {
            auth.jwt_public_key = std::fs::read_to_string(&auth.jwt_public_key_file).map_err(|e| {
                format!(
                    "chatbox.auth.jwt_public_key_file: cannot read {}: {e}",
                    auth.jwt_public_key_file
                )
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn load(file: Option<&str>, env: &[(&str, &str)], role: Role) -> Result<Config, ConfigError> {
        let env: HashMap<String, String> = env.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
        let path = file.map(|text| {
            let path = std::env::temp_dir().join(format!("chatbox-config-{}.toml", rand::random::<u64>()));
            std::fs::write(&path, text).unwrap();
            path
        });
        Config::load_with_env(path.as_deref(), role, &|name| env.get(name).cloned())
    }

    #[test]
    fn defaults_are_a_valid_all_in_one() {
        let c = load(None, &[], Role::AllInOne).unwrap();
        assert_eq!(c.app.listen, "127.0.0.1:8080");
        assert_eq!(c.chatbox.reconnect_timeout, Duration::from_secs(900));
        assert!(c.chatbox.llm.providers.is_empty());
    }

    #[test]
    fn environment_overrides_the_file_and_chatbox_names_win_over_seed_names() {
        let file =
            "[chatbox]\nmax_connections = 5\nrate_limit = 7\n[chatbox.websocket]\nread_buffer_size = 2048\n";
        let c = load(
            Some(file),
            &[
                ("MAX_CONNECTIONS", "50"),
                ("RATE_LIMIT", "8"),
                ("CHATBOX_RATE_LIMIT", "9"),
                ("WS_ALLOWED_ORIGINS", "https://a.example, https://b.example"),
                ("RECONNECT_TIMEOUT", "2m"),
            ],
            Role::AllInOne,
        )
        .unwrap();
        assert_eq!(c.chatbox.max_connections, 50);
        assert_eq!(c.chatbox.rate_limit, 9);
        assert_eq!(c.chatbox.websocket.read_buffer_size, 2048);
        assert_eq!(
            c.chatbox.websocket.allowed_origins,
            ["https://a.example", "https://b.example"]
        );
        assert_eq!(c.chatbox.reconnect_timeout, Duration::from_secs(120));
    }

    #[test]
    fn provider_keys_come_from_the_environment_and_never_show_in_debug() {
        let file = "[[chatbox.llm.providers]]\nid = \"openai-gpt4\"\ntype = \"openai\"\nendpoint = \"https://api.openai.com/v1\"\napiKey = \"from-file\"\nmodel = \"gpt-4\"\n";
        let c = load(
            Some(file),
            &[("LLM_PROVIDER_OPENAI_GPT4_API_KEY", "sk-env")],
            Role::AllInOne,
        )
        .unwrap();
        let provider = &c.chatbox.llm.providers[0];
        assert_eq!(provider.api_key.expose(), "sk-env");
        assert!(!format!("{c:?}").contains("sk-env"));
    }

    #[test]
    fn problems_name_the_key_and_its_variables() {
        let Err(ConfigError::Invalid(problems)) = load(
            None,
            &[("MAX_CONNECTIONS", "0"), ("RATE_LIMIT", "x")],
            Role::Gateway,
        ) else {
            panic!("invalid configuration accepted")
        };
        assert_eq!(
            problems,
            vec!["chatbox.rate_limit (RATE_LIMIT): \"x\" is not a whole number".to_owned()]
        );

        let Err(ConfigError::Invalid(problems)) = load(None, &[("MAX_CONNECTIONS", "0")], Role::Gateway)
        else {
            panic!("invalid configuration accepted")
        };
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("chatbox.jwt_secret (CHATBOX_JWT_SECRET or JWT_SECRET)"))
        );
        assert!(
            problems.iter().any(
                |p| p.starts_with("chatbox.max_connections (CHATBOX_MAX_CONNECTIONS or MAX_CONNECTIONS)")
            )
        );

        let err = load(
            Some("[chatbox]\nreconnect_timeout = \"soon\"\n"),
            &[],
            Role::AllInOne,
        )
        .unwrap_err();
        assert!(err.to_string().contains("chatbox.reconnect_timeout"), "{err}");
        let err = load(Some("[chatbox\n"), &[], Role::AllInOne).unwrap_err();
        assert!(matches!(err, ConfigError::Syntax { .. }), "{err}");
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

    #[test]
    fn notifications_come_from_the_seed_variables_and_keep_their_secrets() {
        use notifications::{Channel, EmailEngine, EventKind, SmsEngine};
        let file = "[chatbox.notifications]\nemail_engine = \"smtp\"\nsms_engine = \"twilio\"\n\
                    [[chatbox.notifications.rules]]\nevent = \"llm_failure\"\nchannels = [\"sms\"]\n";
        let c = load(
            Some(file),
            &[
                ("JWT_SECRET", "0123456789abcdef0123456789abcdef"),
                ("ENCRYPTION_KEY", "c3lzdGVtLXRlc3QtZW5jcnlwdGlvbi1rZXktMzJieXQ="),
                ("ADMIN_EMAILS", "ops@example.com, oncall@example.com"),
                ("ADMIN_PHONES", "+14155550100"),
                ("SMTP_HOST", "smtp.example.com"),
                ("SMTP_PORT", "2525"),
                ("SMTP_USER", "mailer"),
                ("SMTP_PASS", "smtp-secret"),
                ("SMTP_FROM", "noreply@example.com"),
                ("TWILIO_ACCOUNT_SID", "AC0123"),
                ("TWILIO_AUTH_TOKEN", "twilio-secret"),
                ("TWILIO_FROM_NUMBER", "+14155550199"),
                ("SES_SECRET_ACCESS_KEY", "ses-secret"),
                ("CHATBOX_NOTIFICATIONS_RATE_LIMIT_WINDOW", "1m"),
                ("S3_BUCKET", "chat-files"),
            ],
            Role::Worker,
        )
        .unwrap();
        let n = &c.chatbox.notifications;
        assert_eq!(n.admin_emails, ["ops@example.com", "oncall@example.com"]);
        assert_eq!(n.admin_phones, ["+14155550100"]);
        assert_eq!(
            (n.email_engine, n.sms_engine),
            (EmailEngine::Smtp, SmsEngine::Twilio)
        );
        assert_eq!((n.smtp.host.as_str(), n.smtp.port), ("smtp.example.com", 2525));
        assert_eq!(n.smtp.password.expose(), "smtp-secret");
        assert_eq!(n.from, "noreply@example.com");
        assert_eq!(n.twilio.auth_token.expose(), "twilio-secret");
        assert_eq!(n.rate_limit.window, Duration::from_secs(60));
        assert_eq!(n.rule(EventKind::LlmFailure).channels, [Channel::Sms]);
        let debug = format!("{c:?}");
        for secret in ["smtp-secret", "twilio-secret", "ses-secret"] {
            assert!(!debug.contains(secret), "{secret} printed");
        }
    }

    #[test]
    fn notification_problems_name_their_keys() {
        let problems = |file: &str, env: &[(&str, &str)]| match load(Some(file), env, Role::AllInOne) {
            Err(ConfigError::Invalid(problems)) => problems.join("\n"),
            Ok(_) => panic!("accepted: {file}"),
            Err(e) => panic!("{e}"),
        };
        let text = problems(
            "[chatbox.notifications]\nemail_engine = \"smtp\"\nsms_engine = \"twilio\"\n\
             admin_emails = [\"not-an-address\"]\nadmin_phones = [\"555-0100\"]\n\
             [chatbox.notifications.rate_limit]\nmax_per_window = 0\n",
            &[("TWILIO_AUTH_TOKEN", "twilio-secret")],
        );
        for expected in [
            "chatbox.notifications.smtp.host (CHATBOX_NOTIFICATIONS_SMTP_HOST or SMTP_HOST): is required when email_engine is smtp",
            "chatbox.notifications.twilio.account_sid (CHATBOX_NOTIFICATIONS_TWILIO_ACCOUNT_SID or TWILIO_ACCOUNT_SID): is required",
            "chatbox.notifications.twilio.from_number",
            "chatbox.notifications.admin_emails (CHATBOX_NOTIFICATIONS_ADMIN_EMAILS or ADMIN_EMAILS): \"not-an-address\"",
            "chatbox.notifications.admin_phones (CHATBOX_NOTIFICATIONS_ADMIN_PHONES or ADMIN_PHONES): \"555-0100\" is not a phone number in E.164",
            "chatbox.notifications.rate_limit.max_per_window (CHATBOX_NOTIFICATIONS_RATE_LIMIT_MAX_PER_WINDOW): must be at least 1",
        ] {
            assert!(text.contains(expected), "{expected:?} not in:\n{text}");
        }
        assert!(!text.contains("twilio-secret"));

        for (key, rule, word) in [
            (
                "event",
                "event = \"meteor_strike\"\nchannels = [\"email\"]",
                "meteor_strike",
            ),
            (
                "channels",
                "event = \"help_request\"\nchannels = [\"pigeon\"]",
                "pigeon",
            ),
        ] {
            let file = format!("[[chatbox.notifications.rules]]\n{rule}\n");
            let err = load(Some(&file), &[], Role::AllInOne).unwrap_err().to_string();
            assert!(
                err.contains(&format!("chatbox.notifications.rules[0].{key}")) && err.contains(word),
                "{err}"
            );
        }
        let text = problems(
            "[[chatbox.notifications.rules]]\nevent = \"help_request\"\nchannels = [\"sms\"]\nphones = [\"+1\"]\n\
             [[chatbox.notifications.rules]]\nevent = \"help_request\"\nchannels = []\n",
            &[],
        );
        assert!(
            text.contains("chatbox.notifications.rules[0].phones: \"+1\""),
            "{text}"
        );
        assert!(
            text.contains("chatbox.notifications.rules[1].event: \"help_request\" has a rule already"),
            "{text}"
        );
        assert!(
            text.contains("chatbox.notifications.rules[1].channels: names no channel"),
            "{text}"
        );
    }

    #[test]
    fn fallbacks_must_name_providers_and_not_go_round_in_circles() {
        let provider = |id: &str, kind: &str, fallback: &str| {
            format!(
                "[[chatbox.llm.providers]]\nid = \"{id}\"\ntype = \"{kind}\"\nendpoint = \"https://example.com/v1\"\nfallback = \"{fallback}\"\n"
            )
        };
        let good = provider("claude", "anthropic", "dify")
            + &provider("dify", "dify", "gpt")
            + "[[chatbox.llm.providers]]\nid = \"gpt\"\ntype = \"openai\"\nendpoint = \"https://example.com/v1\"\n";
        let config = load(Some(&good), &[], Role::AllInOne).unwrap();
        assert_eq!(config.chatbox.llm.providers[0].fallback.as_deref(), Some("dify"));

        let unknown = provider("claude", "anthropic", "nobody");
        let err = load(Some(&unknown), &[], Role::AllInOne).unwrap_err().to_string();
        assert!(
            err.contains("chatbox.llm.providers[0].fallback") && err.contains("\"nobody\""),
            "{err}"
        );

        let circle =
            provider("a", "openai", "b") + &provider("b", "dify", "c") + &provider("c", "anthropic", "a");
        let err = load(Some(&circle), &[], Role::AllInOne).unwrap_err().to_string();
        assert!(err.contains("a -> b -> c -> a"), "{err}");
    }

    #[test]
    fn vision_and_audio_output_are_read_with_defaults_and_checked() {
        let provider = |kind: &str, extra: &str| {
            format!(
                "[[chatbox.llm.providers]]\nid = \"m\"\ntype = \"{kind}\"\nendpoint = \"https://example.com/v1\"\n{extra}"
            )
        };
        let config = load(Some(&provider("openai", "")), &[], Role::AllInOne).unwrap();
        let plain = &config.chatbox.llm.providers[0];
        assert!(!plain.vision && plain.audio_output.is_none());

        let spoken = provider("openai", "vision = true\naudio_output = {}\n");
        let config = load(Some(&spoken), &[], Role::AllInOne).unwrap();
        let p = &config.chatbox.llm.providers[0];
        assert!(p.vision);
        assert_eq!(p.audio_output, Some(AudioOutput::default()));
        assert_eq!(
            p.audio_output
                .as_ref()
                .map(|a| (a.voice.as_str(), a.format.as_str())),
            Some(("alloy", "wav"))
        );
        let seeing = provider("anthropic", "vision = true\n");
        assert!(
            load(Some(&seeing), &[], Role::AllInOne)
                .unwrap()
                .chatbox
                .llm
                .providers[0]
                .vision
        );

        let err = load(
            Some(&provider("dify", "audio_output = {}\n")),
            &[],
            Role::AllInOne,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("chatbox.llm.providers[0].audio_output"), "{err}");
        let err = load(
            Some(&provider("openai", "audio_output = { format = \"ogg\" }\n")),
            &[],
            Role::AllInOne,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("audio_output.format") && err.contains("\"ogg\""),
            "{err}"
        );
        let mp3 = "audio_output = { voice = \"echo\", format = \"mp3\" }\n";
        let err = load(Some(&provider("openai", mp3)), &[], Role::AllInOne)
            .unwrap_err()
            .to_string();
        assert!(err.contains("stream = false"), "{err}");
        let whole = format!("stream = false\n{mp3}");
        assert!(load(Some(&provider("openai", &whole)), &[], Role::AllInOne).is_ok());
    }
}
