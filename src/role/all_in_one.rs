//! `chatbox` with no subcommand: gateway and worker in one process on the
//! embedded adapters (in-process bus and coordinator, SQLite, files in a
//! local folder, demo model unless a provider is configured). Nothing to install; prints where to connect
//! and ready-made development tokens.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::response::Redirect;
use axum::routing::get;
use base64::Engine;
use chatbox_gateway::{Gateway, GatewayDeps};
use chatbox_shared::auth::{TokenMinter, TokenValidator};
use chatbox_shared::bus::{Bus, MemoryBus, MemoryBusOptions, MeteredBus};
use chatbox_shared::config::{Config, Role, Secret};
use chatbox_shared::coordinator::{Coordinator, MemoryCoordinator, MeteredCoordinator};
use chatbox_worker::{Worker, WorkerDeps};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::ops::{self, Readiness};
use crate::{backplane, blobs, shutdown, storage};

const DEV_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);

/// Where the all-in-one keeps the JWT secret it makes when none is
/// configured, under the data folder, so tokens outlive a restart.
const JWT_SECRET_FILE: &str = "jwt-secret.key";

/// The JWT secret kept in `data_dir` (made on first use) for when none is
/// configured; `chatbox token` reads it too.
pub(crate) fn kept_jwt_secret(data_dir: &str) -> anyhow::Result<Secret> {
    let path = std::path::Path::new(data_dir).join(JWT_SECRET_FILE);
    let bytes = chatbox_shared::keyfile::kept_key(&path)
        .with_context(|| format!("cannot keep a JWT secret in {}", path.display()))?;
    Ok(Secret::new(
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes),
    ))
}

/// Runs the all-in-one until a shutdown signal.
pub(crate) async fn run(mut config: Config, metrics: PrometheusHandle) -> anyhow::Result<()> {
    let signal = shutdown::on_signal();
    let kept_secret = config.chatbox.jwt_secret.is_empty() && config.chatbox.auth.jwt_public_key.is_empty();
    if kept_secret {
        config.chatbox.jwt_secret = kept_jwt_secret(&config.chatbox.data_dir)?;
        info!(data_dir = %config.chatbox.data_dir, "no JWT secret configured: using the one kept in the data folder");
    }
    let pod_id = if config.chatbox.pod_id.is_empty() {
        "local".to_owned()
    } else {
        config.chatbox.pod_id.clone()
    };
    let namespace = backplane::namespace(&config)?;
    // The claims models take inputs from go with each message; no other.
    let validator = TokenValidator::new(config.chatbox.jwt_secret.expose(), &config.chatbox.auth)
        .map_err(anyhow::Error::msg)?
        .forwarding(config.chatbox.llm.forwarded_claims());
    let bus: Arc<dyn Bus> = Arc::new(MeteredBus::new(Arc::new(MemoryBus::new(MemoryBusOptions {
        dedupe_window: config.chatbox.nats.duplicate_window,
        ..MemoryBusOptions::default()
    }))));
    let coordinator: Arc<dyn Coordinator> = Arc::new(MeteredCoordinator::new(Arc::new(
        MemoryCoordinator::new(namespace.keys()),
    )));
    let store = storage::open(&config, Role::AllInOne, &pod_id).await?;
    let listener = ops::bind(&config.app.listen).await?;
    let (blob, blob_routes) = blobs::open(&config, Role::AllInOne, Some(listener.local_addr()?)).await?;
    let config = Arc::new(config);

    let worker = Worker::start(WorkerDeps {
        config: Arc::clone(&config),
        store,
        blob,
        pod_id: pod_id.clone(),
        bus: Arc::clone(&bus),
        coordinator: Arc::clone(&coordinator),
        namespace: namespace.clone(),
    })
    .await
    .context("cannot start the worker")?;
    let gateway = Gateway::start(GatewayDeps {
        config: Arc::clone(&config),
        pod_id,
        bus,
        coordinator,
        validator: Arc::new(validator),
        namespace,
    })
    .await
    .context("cannot start the gateway")?;

    let draining = CancellationToken::new();
    let ops = ops::router(Readiness::new(Vec::new(), draining.clone()), metrics);
    let mut app = gateway.router();
    if config.chatbox.web.enabled {
        app = app.route("/", get(|| async { Redirect::temporary("/chat/") }));
    }
    if let Some(routes) = blob_routes {
        app = app.merge(routes);
    }
    let stop_http = CancellationToken::new();
    let server = ops::serve_on(listener, app, ops, &config.app, stop_http.clone()).await?;
    print_banner(&config, server.addr, kept_secret, &worker);

    signal.cancelled().await;
    draining.cancel();
    stop_http.cancel();
    gateway.shutdown(config.app.shutdown_timeout).await;
    worker.shutdown(config.app.shutdown_timeout).await;
    ops::join_server(server).await;
    info!("stopped");
    Ok(())
}

/// Prints where to go. Ready-made tokens only when the all-in-one made the
/// secret itself (a first run on a developer's machine): with a secret the
/// operator configured, a token in the log would be a credential anyone who
/// reads the log could use (an admin's reads every conversation).
fn print_banner(config: &Config, addr: std::net::SocketAddr, kept_secret: bool, worker: &Worker) {
    let models: Vec<String> = worker.models().into_iter().map(|(id, _)| id).collect();
    let mut banner = String::from("\nchatbox is running (all-in-one, embedded defaults)\n\n");
    let tokens = kept_secret.then(|| {
        let minter = TokenMinter::new(config.chatbox.jwt_secret.expose());
        let mint = |sub: &str, name: &str, roles: &[String]| {
            minter
                .mint(sub, Some(name), roles, DEV_TOKEN_TTL)
                .unwrap_or_else(|e| format!("(no token: {e})"))
        };
        let admin_roles = std::slice::from_ref(&config.chatbox.auth.admin_role);
        (
            mint("dev-user", "Dev User", &[]),
            mint("dev-admin", "Dev Admin", admin_roles),
        )
    });
    match (&tokens, config.chatbox.web.enabled) {
        (Some((user, admin)), true) => banner.push_str(&format!(
            "  Chat         http://{addr}/chat/#token={user}\n  \
             Admin        http://{addr}/chat/admin/#token={admin}\n\n"
        )),
        (None, true) => banner.push_str(&format!(
            "  Chat         http://{addr}/chat/#token=<a user's token>\n  \
             Admin        http://{addr}/chat/admin/\n\n"
        )),
        (_, false) => {}
    }
    banner.push_str(&format!(
        "  WebSocket    ws://{addr}/chat/ws\n  \
         Health       http://{addr}/chat/healthz\n  \
         Metrics      http://{}/metrics\n  \
         Models       {}\n",
        if config.app.ops_listen.is_empty() {
            addr.to_string()
        } else {
            config.app.ops_listen.clone()
        },
        models.join(", ")
    ));
    match &tokens {
        Some((user, admin)) => {
            banner.push_str(&format!(
                "\n  User token (24h):\n    {user}\n  \
                 Admin token (24h):\n    {admin}\n\n  \
                 Try it:  websocat 'ws://{addr}/chat/ws?token={user}'\n           \
                 then send {{\"type\":\"user_message\",\"content\":\"Hello\"}}\n"
            ));
            banner.push_str(&format!(
                "\n  JWT secret: made for you and kept in {}/{JWT_SECRET_FILE}\n  \
                 (set JWT_SECRET to choose your own; `chatbox token` mints more tokens with it)\n",
                config.chatbox.data_dir
            ));
        }
        None if config.chatbox.jwt_secret.is_empty() => {
            banner.push_str("\n  Tokens: from your own issuer (RS256); none is printed.\n");
        }
        None => banner.push_str(&format!(
            "\n  Tokens: signed with the secret you configured; none is printed.\n  \
             Mint one with `chatbox token --sub <user id>` (add `--role {}` for the console).\n",
            config.chatbox.auth.admin_role
        )),
    }
    println!("{banner}");
}
