//! The `chatbox` binary: one program, several roles (the pattern of Loki's
//! `-target`).
//!
//! * `chatbox` — everything in one process on embedded adapters;
//! * `chatbox gateway` / `chatbox worker` — the scaled roles, on Redis and
//!   NATS;
//! * `chatbox token` — mint a JWT.
//!
//! The mock LLM that tests and benchmarks answer from is a tool of its own
//! (`tools/mock-llm`), not part of this binary.
//!
//! This file only dispatches. Configuration and telemetry are set up here,
//! before the async runtime starts; each role lives in [`role`].

mod backplane;
mod blobs;
mod cli;
mod http_server;
mod ops;
mod process;
mod role;
mod shutdown;
mod storage;

use std::collections::HashMap;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use chatbox_shared::config::{self, Config};
use clap::Parser;

use crate::cli::{Cli, Role};

fn main() -> ExitCode {
    // Every TLS client of the process (the OTLP exporter included, which
    // starts before anything else) uses ring. It fails only if a provider
    // is installed already, which is as good.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chatbox: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let config_path = cli.config.as_deref();
    match cli.role {
        Some(Role::Token(args)) => {
            let config = load(config_path, config::Role::Token, HashMap::new())?;
            role::token::run(&config, &args)
        }
        Some(Role::Gateway(args)) => {
            let mut overrides = HashMap::new();
            if let Some(listen) = args.listen {
                overrides.insert("CHATBOX_APP_LISTEN", listen);
            }
            if let Some(pod) = args.pod_id {
                overrides.insert("CHATBOX_POD_ID", pod);
            }
            let config = load(config_path, config::Role::Gateway, overrides)?;
            let _telemetry = start_telemetry(&config)?;
            let metrics = chatbox_shared::telemetry::metrics::install().map_err(anyhow::Error::msg)?;
            runtime()?.block_on(role::gateway::run(config, metrics))
        }
        Some(Role::Worker(args)) => {
            let mut overrides = HashMap::new();
            if let Some(listen) = args.listen {
                overrides.insert("CHATBOX_WORKER_LISTEN", listen);
            }
            if let Some(pod) = args.pod_id {
                overrides.insert("CHATBOX_POD_ID", pod);
            }
            let config = load(config_path, config::Role::Worker, overrides)?;
            let _telemetry = start_telemetry(&config)?;
            let metrics = chatbox_shared::telemetry::metrics::install().map_err(anyhow::Error::msg)?;
            runtime()?.block_on(role::worker::run(config, metrics))
        }
        None => {
            let mut overrides = HashMap::new();
            if let Some(listen) = cli.all_in_one.listen {
                overrides.insert("CHATBOX_APP_LISTEN", listen);
            }
            if let Some(dir) = cli.all_in_one.data_dir {
                overrides.insert("CHATBOX_DATA_DIR", dir);
            }
            let config = load(config_path, config::Role::AllInOne, overrides)?;
            let _telemetry = start_telemetry(&config)?;
            let metrics = chatbox_shared::telemetry::metrics::install().map_err(anyhow::Error::msg)?;
            runtime()?.block_on(role::all_in_one::run(config, metrics))
        }
    }
}

/// Loads configuration; command-line flags win over the environment.
fn load(
    path: Option<&Path>,
    role: config::Role,
    flags: HashMap<&'static str, String>,
) -> anyhow::Result<Config> {
    let lookup = |name: &str| flags.get(name).cloned().or_else(|| std::env::var(name).ok());
    Ok(Config::load_with_env(path, role, &lookup)?)
}

fn start_telemetry(config: &Config) -> anyhow::Result<chatbox_shared::telemetry::TelemetryGuard> {
    chatbox_shared::telemetry::init(&config.chatbox.log, &config.chatbox.telemetry)
        .map_err(anyhow::Error::msg)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}
