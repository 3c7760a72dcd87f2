//! `chatbox worker`: a scaled worker on Redis and NATS.

use std::sync::Arc;

use anyhow::Context;
use chatbox_shared::bus::Bus;
use chatbox_shared::config::{Config, Role};
use chatbox_shared::coordinator::Coordinator;
use chatbox_worker::{Worker, WorkerDeps};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::ops::{self, Probe, Readiness};
use crate::{backplane, shutdown, storage};

/// Runs a worker until a shutdown signal, then drains it.
pub async fn run(config: Config, metrics: PrometheusHandle) -> anyhow::Result<()> {
    let signal = shutdown::on_signal();
    let pod_id = backplane::pod_id(&config, "worker");
    let namespace = backplane::namespace(&config)?;
    let bus = backplane::nats(&config, &pod_id, &namespace).await?;
    let coordinator = backplane::redis(&config, &namespace).await?;
    let store = storage::open(&config, Role::Worker, &pod_id).await?;
    let config = Arc::new(config);
    let worker = Worker::start(WorkerDeps {
        config: Arc::clone(&config),
        store: Arc::clone(&store),
        pod_id,
        bus: Arc::clone(&bus) as Arc<dyn Bus>,
        coordinator: Arc::clone(&coordinator) as Arc<dyn Coordinator>,
        namespace,
    })
    .await
    .context("cannot start the worker")?;

    let draining = CancellationToken::new();
    let mut probes = backplane::probes(bus, coordinator);
    probes.push(Probe::new("store", move || {
        let store = Arc::clone(&store);
        async move { store.check().await.map_err(|e| e.to_string()) }
    }));
    let readiness = Readiness::new(probes, draining.clone());
    let stop_http = CancellationToken::new();
    let (_, server) = ops::serve(
        &config.chatbox.worker.listen,
        ops::router(readiness, metrics),
        stop_http.clone(),
    )
    .await?;

    signal.cancelled().await;
    draining.cancel();
    worker.shutdown(config.app.shutdown_timeout).await;
    stop_http.cancel();
    let _ = server.await;
    info!("worker stopped");
    Ok(())
}
