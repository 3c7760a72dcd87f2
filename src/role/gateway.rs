//! `chatbox gateway`: a scaled gateway on Redis and NATS.

use std::sync::Arc;

use anyhow::Context;
use chatbox_gateway::{Gateway, GatewayDeps};
use chatbox_shared::auth::TokenValidator;
use chatbox_shared::config::Config;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::ops::{self, Readiness};
use crate::{backplane, shutdown};

/// Runs a gateway until a shutdown signal, then drains it.
pub(crate) async fn run(config: Config, metrics: PrometheusHandle) -> anyhow::Result<()> {
    let signal = shutdown::on_signal();
    let pod_id = backplane::pod_id(&config, "gateway");
    let namespace = backplane::namespace(&config)?;
    // The claims models take inputs from go with each message; no other.
    let validator = TokenValidator::new(config.chatbox.jwt_secret.expose(), &config.chatbox.auth)
        .map_err(anyhow::Error::msg)?
        .forwarding(config.chatbox.llm.forwarded_claims());
    let bus = backplane::nats(&config, &pod_id, &namespace).await?;
    let coordinator = backplane::redis(&config, &namespace).await?;
    let (metered_bus, metered_coordinator) = backplane::metered(&bus, &coordinator);
    let config = Arc::new(config);
    let gateway = Gateway::start(GatewayDeps {
        config: Arc::clone(&config),
        pod_id,
        bus: metered_bus,
        coordinator: metered_coordinator,
        validator: Arc::new(validator),
        namespace,
    })
    .await
    .context("cannot start the gateway")?;

    let draining = CancellationToken::new();
    let readiness = Readiness::new(backplane::probes(bus, coordinator), draining.clone());
    let ops = ops::router(readiness, metrics);
    let stop_http = CancellationToken::new();
    let server = ops::serve(
        &config.app.listen,
        gateway.router(),
        ops,
        &config.app,
        stop_http.clone(),
    )
    .await?;

    signal.cancelled().await;
    draining.cancel();
    stop_http.cancel();
    gateway.shutdown(config.app.shutdown_timeout).await;
    ops::join_server(server).await;
    info!("gateway stopped");
    Ok(())
}
