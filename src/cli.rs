//! The command line: one binary, several roles.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// chatbox — an AI chat service. Without a subcommand it runs everything in
/// one process on embedded defaults (no Redis, NATS or database needed).
#[derive(Debug, Parser)]
#[command(name = "chatbox", version)]
pub(crate) struct Cli {
    /// Configuration file (TOML); every key can also be set from the
    /// environment (see README).
    #[arg(long, global = true, env = "CHATBOX_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub role: Option<Role>,

    #[command(flatten)]
    pub all_in_one: AllInOneArgs,
}

/// Options of the all-in-one.
#[derive(Debug, Args)]
pub(crate) struct AllInOneArgs {
    /// Address to listen on [default: 127.0.0.1:8080, or app.listen].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Where conversations are kept [default: ./data, or CHATBOX_DATA_DIR].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Role {
    /// A stateless WebSocket gateway (scaled role; needs REDIS_URL and NATS_URL).
    Gateway(GatewayArgs),
    /// A worker: turns, language models, sessions (scaled role; needs REDIS_URL and NATS_URL).
    Worker(WorkerArgs),
    /// Print a signed JWT for the configured secret.
    Token(TokenArgs),
}

#[derive(Debug, Args)]
pub(crate) struct GatewayArgs {
    /// Address to listen on [default: app.listen, 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// This pod's id (unique among gateways) [default: POD_ID, or the host name].
    #[arg(long, value_name = "ID")]
    pub pod_id: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct WorkerArgs {
    /// Address of the health and metrics server [default: chatbox.worker.listen, 127.0.0.1:9091].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// This pod's id [default: POD_ID, or the host name].
    #[arg(long, value_name = "ID")]
    pub pod_id: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct TokenArgs {
    /// The user id (`sub`).
    #[arg(long, value_name = "ID")]
    pub sub: String,
    /// The display name (`name`).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// A role to grant (repeatable), e.g. `--role admin`.
    #[arg(long = "role", value_name = "ROLE")]
    pub roles: Vec<String>,
    /// How long the token is valid, e.g. 1h, 30m, 7d.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub ttl: std::time::Duration,
    /// Without JWT_SECRET: the all-in-one's data folder, whose kept secret
    /// signs the token [default: ./data, or CHATBOX_DATA_DIR].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<String>,
}
