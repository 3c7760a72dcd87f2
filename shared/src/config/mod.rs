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
//!
//! This file holds the whole ([`Config`]), `[app]`, the keys of `[chatbox]`
//! itself, and loading. Each section is a file of its own with its
//! defaults and checks (`[chatbox.store]` in `store.rs`, `[chatbox.llm]`
//! in `llm.rs`, …); which checks a role runs is decided in `validate.rs`.
//! Every type is re-exported here, as `config::StoreConfig` and so on.

mod admin;
mod auth;
mod backplane;
pub(crate) mod duration;
mod env;
mod gateway;
mod llm;
pub mod notifications;
mod problems;
mod provider_wire;
mod secret;
mod store;
mod telemetry;
mod uploads;
mod validate;
mod web;
mod websocket;
mod worker;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use admin::AdminConfig;
pub use auth::AuthConfig;
pub use backplane::{NatsConfig, RedisConfig};
pub use gateway::GatewayConfig;
pub use llm::{
    AudioOutput, BreakerConfig, DemoConfig, LlmConfig, ProviderConfig, ProviderKind, RetryConfig,
    TokenLimitField,
};
pub use notifications::NotificationsConfig;
pub use secret::{Secret, redact_url};
pub use store::{StoreConfig, StoreKind};
pub use telemetry::{LogConfig, TelemetryConfig};
pub use uploads::{BlobConfig, BlobKind, S3Config, ServerSideEncryption, UploadsConfig};
pub use validate::{Role, decode_key};
pub use web::WebConfig;
pub use websocket::WebSocketConfig;
pub use worker::WorkerConfig;

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
    /// A separate address for `/metrics` (and the health checks); empty
    /// serves them on the role's own listener.
    pub ops_listen: String,
    /// How long a request's headers may take to arrive (slowloris).
    #[serde(with = "duration")]
    pub header_read_timeout: Duration,
    /// The largest request head (start line and headers), in bytes.
    pub max_header_bytes: usize,
    /// Connections that may wait for their first request at once.
    pub max_handshakes: usize,
}

impl Default for AppConfig {
    fn default() -> Self {
        AppConfig {
            listen: "127.0.0.1:8080".into(),
            shutdown_timeout: Duration::from_secs(25),
            ops_listen: String::new(),
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 32 * 1024,
            max_handshakes: 1024,
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
    /// Sockets a user may open per `rate_limit_window` (each opens,
    /// restores or starts a session).
    pub session_rate_limit: u32,
    /// `get_history` and `rename_session` requests a user may make per
    /// `rate_limit_window`, each kind on its own (socket and HTTP together).
    pub request_rate_limit: u32,
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
            session_rate_limit: 20,
            request_rate_limit: 120,
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

    /// Loads `file` (written to a temporary file) for `role`, with `env` as
    /// the whole environment. The sections' tests load through it too.
    pub(super) fn load(file: Option<&str>, env: &[(&str, &str)], role: Role) -> Result<Config, ConfigError> {
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
}
