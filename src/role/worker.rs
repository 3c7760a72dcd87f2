//! `chatbox worker`: a scaled worker on Redis and NATS.

use std::sync::Arc;

use anyhow::Context;
use chatbox_shared::config::{Config, Role};
use chatbox_worker::{Worker, WorkerDeps};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::ops::{self, Probe, Readiness};
use crate::{backplane, blobs, shutdown, storage};

/// Runs a worker until a shutdown signal, then drains it.
pub(crate) async fn run(config: Config, metrics: PrometheusHandle) -> anyhow::Result<()> {
    let signal = shutdown::on_signal();
    let pod_id = backplane::pod_id(&config, "worker");
    let namespace = backplane::namespace(&config)?;
    let bus = backplane::nats(&config, &pod_id, &namespace).await?;
    let coordinator = backplane::redis(&config, &namespace).await?;
    let (metered_bus, metered_coordinator) = backplane::metered(&bus, &coordinator);
    let store = storage::open(&config, Role::Worker, &pod_id).await?;
    let listener = ops::bind(&config.chatbox.worker.listen).await?;
    let (blob, blob_routes) = blobs::open(&config, Role::Worker, Some(listener.local_addr()?)).await?;
    let config = Arc::new(config);
    let worker = Worker::start(WorkerDeps {
        config: Arc::clone(&config),
        store: Arc::clone(&store),
        blob: Arc::clone(&blob),
        pod_id,
        bus: metered_bus,
        coordinator: metered_coordinator,
        namespace,
    })
    .await
    .context("cannot start the worker")?;

    let draining = CancellationToken::new();
    let backlog = tokio::spawn(backplane::sample_backlog(Arc::clone(&bus), draining.clone()));
    let mut probes = backplane::probes(bus, coordinator);
    probes.push(Probe::new("store", move || {
        let store = Arc::clone(&store);
        async move { store.check().await.map_err(|e| e.to_string()) }
    }));
    probes.push(Probe::new("files", move || {
        let blob = Arc::clone(&blob);
        async move { blob.check().await.map_err(|e| e.to_string()) }
    }));
    let readiness = Readiness::new(probes, draining.clone());
    let stop_http = CancellationToken::new();
    let ops = ops::router(readiness, metrics);
    let app = blob_routes.unwrap_or_default();
    let server = ops::serve_on(listener, app, ops, &config.app, stop_http.clone()).await?;

    signal.cancelled().await;
    draining.cancel();
    worker.shutdown(config.app.shutdown_timeout).await;
    stop_http.cancel();
    ops::join_server(server).await;
    if let Err(e) = backlog.await {
        tracing::error!("the backlog sampler panicked: {e}");
    }
    info!("worker stopped");
    Ok(())
}
