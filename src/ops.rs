//! The operational HTTP endpoints every role serves: `/chat/healthz`
//! (the process is alive), `/chat/readyz` (its dependencies answer and it
//! is not draining; 503 names what does not) and `/metrics` (Prometheus,
//! with the process metrics of [`crate::process`]).

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
use axum::serve::ListenerExt;
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tracing::info;

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

/// The ops routes.
pub(crate) fn router(readiness: Readiness, metrics: PrometheusHandle) -> Router {
    Router::new()
        .route("/chat/healthz", get(healthz))
        .route("/chat/readyz", get(readyz))
        .route("/metrics", get(render_metrics))
        .with_state(Arc::new(OpsState { readiness, metrics }))
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

/// Binds `addr` and serves `app` until `stop` is cancelled; returns once
/// the listener is bound, with the serving task.
pub(crate) async fn serve(
    addr: &str,
    app: Router,
    stop: CancellationToken,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>)> {
    serve_on(bind(addr).await?, app, stop)
}

/// Binds `addr` (to learn the port before the routes are built).
pub(crate) async fn bind(addr: &str) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))
}

/// Waits for the HTTP server to end at shutdown; says so if it failed.
pub(crate) async fn join_server(server: tokio::task::JoinHandle<std::io::Result<()>>) {
    match server.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!("the HTTP server ended with an error: {e}"),
        Err(e) => tracing::error!("the HTTP server panicked: {e}"),
    }
}

/// Serves `app` on a bound listener until `stop`.
pub(crate) fn serve_on(
    listener: tokio::net::TcpListener,
    app: Router,
    stop: CancellationToken,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>)> {
    let local = listener.local_addr()?;
    let listener = listener.tap_io(|tcp| {
        // Small frames (streamed chunks) must not wait for Nagle. Failing
        // only costs latency, never correctness.
        let _ = tcp.set_nodelay(true);
    });
    info!(addr = %local, "listening");
    let server = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(stop.cancelled_owned());
    Ok((local, tokio::spawn(async move { server.await })))
}
