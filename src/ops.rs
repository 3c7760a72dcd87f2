//! The operational HTTP endpoints every role serves: `/chat/healthz`
//! (the process is alive), `/chat/readyz` (its dependencies answer and it
//! is not draining; 503 names what does not) and `/metrics` (Prometheus,
//! with the process metrics of [`crate::process`]).
//!
//! With `app.ops_listen` set, `/metrics` is served only on that address
//! (with the health checks), not on the role's own listener: traffic
//! levels and login failures are not for everyone who can reach the
//! chat. The listeners themselves are [`crate::http_server`]'s.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use chatbox_shared::config::AppConfig;
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::http_server::{self, Limits};

type ProbeFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// A named readiness check.
pub(crate) struct Probe {
    name: &'static str,
    check: Box<dyn Fn() -> ProbeFuture + Send + Sync>,
}

impl Probe {
    /// A probe that runs `check`.
    pub(crate) fn new<F, Fut>(name: &'static str, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        Probe {
            name,
            check: Box::new(move || Box::pin(check())),
        }
    }
}

/// What `/chat/readyz` checks.
pub(crate) struct Readiness {
    probes: Vec<Probe>,
    draining: CancellationToken,
}

impl Readiness {
    /// Readiness from probes; not ready once `draining` is cancelled.
    pub(crate) fn new(probes: Vec<Probe>, draining: CancellationToken) -> Self {
        Readiness { probes, draining }
    }
}

struct OpsState {
    readiness: Readiness,
    metrics: PrometheusHandle,
}

/// The ops routes: the health checks, and `/metrics`, which may be served
/// apart.
pub(crate) struct OpsRoutes {
    health: Router,
    metrics: Router,
}

/// The ops routes.
pub(crate) fn router(readiness: Readiness, metrics: PrometheusHandle) -> OpsRoutes {
    let state = Arc::new(OpsState { readiness, metrics });
    OpsRoutes {
        health: Router::new()
            .route("/chat/healthz", get(healthz))
            .route("/chat/readyz", get(readyz))
            .with_state(Arc::clone(&state)),
        metrics: Router::new()
            .route("/metrics", get(render_metrics))
            .with_state(state),
    }
}

async fn healthz() -> impl IntoResponse {
    axum::Json(json!({ "status": "healthy" }))
}

async fn readyz(State(state): State<Arc<OpsState>>) -> impl IntoResponse {
    let readiness = &state.readiness;
    let mut failing = serde_json::Map::new();
    if readiness.draining.is_cancelled() {
        failing.insert("server".into(), json!("shutting down"));
    }
    let checks = readiness.probes.iter().map(|p| async move {
        let result = tokio::time::timeout(Duration::from_secs(2), (p.check)())
            .await
            .unwrap_or_else(|_| Err("no answer within 2s".into()));
        (p.name, result)
    });
    for (name, result) in futures_util::future::join_all(checks).await {
        if let Err(e) = result {
            failing.insert(name.into(), json!(e));
        }
    }
    if failing.is_empty() {
        (StatusCode::OK, axum::Json(json!({ "status": "ready" })))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({ "status": "not_ready", "failing": failing })),
        )
    }
}

async fn render_metrics(State(state): State<Arc<OpsState>>) -> impl IntoResponse {
    state.metrics.run_upkeep();
    let mut text = state.metrics.render();
    text.push_str(&crate::process::render());
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        text,
    )
}

/// The HTTP servers of a role: its own listener, and the ops listener
/// when `app.ops_listen` is set.
pub(crate) struct Servers {
    /// The address the role's own listener is bound to.
    pub addr: SocketAddr,
    main: JoinHandle<std::io::Result<()>>,
    ops: Option<JoinHandle<std::io::Result<()>>>,
}

/// Binds `addr` and serves `app` and the ops routes until `stop` is
/// cancelled; returns once the listeners are bound.
pub(crate) async fn serve(
    addr: &str,
    app: Router,
    ops: OpsRoutes,
    config: &AppConfig,
    stop: CancellationToken,
) -> anyhow::Result<Servers> {
    serve_on(bind(addr).await?, app, ops, config, stop).await
}

/// Binds `addr` (to learn the port before the routes are built).
pub(crate) async fn bind(addr: &str) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))
}

/// Waits for the HTTP servers to end at shutdown; says so if one failed.
pub(crate) async fn join_server(servers: Servers) {
    for server in std::iter::once(servers.main).chain(servers.ops) {
        match server.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("the HTTP server ended with an error: {e}"),
            Err(e) => tracing::error!("the HTTP server panicked: {e}"),
        }
    }
}

/// Serves `app` and the ops routes on a bound listener until `stop`;
/// `/metrics` goes to `app.ops_listen` instead when it is set.
pub(crate) async fn serve_on(
    listener: tokio::net::TcpListener,
    app: Router,
    ops: OpsRoutes,
    config: &AppConfig,
    stop: CancellationToken,
) -> anyhow::Result<Servers> {
    let limits = Limits::from_config(config);
    let (app, ops) = if config.ops_listen.is_empty() {
        (app.merge(ops.health).merge(ops.metrics), None)
    } else {
        let ops_listener = bind(&config.ops_listen).await?;
        info!(addr = %ops_listener.local_addr()?, "serving /metrics on the ops listener");
        let ops_app = ops.health.clone().merge(ops.metrics);
        let server = http_server::serve(ops_listener, ops_app, limits, stop.clone());
        (app.merge(ops.health), Some(tokio::spawn(server)))
    };
    let addr = listener.local_addr()?;
    info!(%addr, "listening");
    let main = tokio::spawn(http_server::serve(listener, app, limits, stop));
    Ok(Servers { addr, main, ops })
}
