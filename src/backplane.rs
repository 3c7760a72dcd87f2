//! Connecting the scaled roles to their backplane: NATS and Redis, from
//! configuration.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use chatbox_shared::bus::{Bus, MeteredBus, NatsBus, NatsOptions};
use chatbox_shared::config::{Config, redact_url};
use chatbox_shared::coordinator::{Coordinator, MeteredCoordinator, RedisCoordinator, RedisOptions};
use chatbox_shared::ids::{is_valid_pod_id, sanitize_pod_id};
use chatbox_shared::namespace::Namespace;
use chatbox_shared::periodic::{FirstPass, every};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::ops::Probe;

/// The pod id: configured, or the host name, or a random one.
pub(crate) fn pod_id(config: &Config, fallback_prefix: &str) -> String {
    if !config.chatbox.pod_id.is_empty() {
        return config.chatbox.pod_id.clone();
    }
    match std::env::var("HOSTNAME") {
        Ok(host) if !host.is_empty() => sanitize_pod_id(&host),
        _ => {
            let id = format!("{fallback_prefix}-{:08x}", rand::random::<u32>());
            debug_assert!(is_valid_pod_id(&id));
            id
        }
    }
}

/// The deployment's namespace (validated at start).
pub(crate) fn namespace(config: &Config) -> anyhow::Result<Namespace> {
    Namespace::new(&config.chatbox.namespace).map_err(anyhow::Error::msg)
}

/// Connects to NATS and makes sure the inbound stream exists.
pub(crate) async fn nats(
    config: &Config,
    pod_id: &str,
    namespace: &Namespace,
) -> anyhow::Result<Arc<NatsBus>> {
    let nats = &config.chatbox.nats;
    let worker = &config.chatbox.worker;
    let bus = NatsBus::connect(NatsOptions {
        url: nats.url.clone(),
        name: pod_id.to_owned(),
        subjects: namespace.subjects(),
        connect_timeout: nats.connect_timeout,
        ack_wait: worker.ack_wait,
        max_ack_pending: worker.max_ack_pending,
        stream_max_age: nats.stream_max_age,
        duplicate_window: nats.duplicate_window,
        replicas: nats.stream_replicas,
    })
    .await
    .context("chatbox.nats.url (NATS_URL)")?;
    bus.ensure_inbound_stream().await.context("JetStream")?;
    info!(url = %redact_url(&nats.url), stream = %namespace.subjects().inbound_stream(), "NATS ready");
    Ok(Arc::new(bus))
}

/// Connects to Redis.
pub(crate) async fn redis(config: &Config, namespace: &Namespace) -> anyhow::Result<Arc<RedisCoordinator>> {
    let redis = &config.chatbox.redis;
    let coordinator = RedisCoordinator::connect(RedisOptions {
        url: redis.url.clone(),
        pool_size: redis.pool_size,
        connect_timeout: redis.connect_timeout,
        command_timeout: redis.command_timeout,
        keys: namespace.keys(),
    })
    .await
    .context("chatbox.redis.url (REDIS_URL)")?;
    info!(url = %redact_url(&redis.url), "Redis ready");
    Ok(Arc::new(coordinator))
}

/// The backplane ports as the gateway and worker use them: timed
/// (`chatbox_bus_operation_seconds`, `chatbox_coordinator_operation_seconds`).
pub(crate) fn metered(
    bus: &Arc<NatsBus>,
    coordinator: &Arc<RedisCoordinator>,
) -> (Arc<dyn Bus>, Arc<dyn Coordinator>) {
    (
        Arc::new(MeteredBus::new(Arc::clone(bus) as Arc<dyn Bus>)),
        Arc::new(MeteredCoordinator::new(
            Arc::clone(coordinator) as Arc<dyn Coordinator>
        )),
    )
}

/// Readiness probes of the scaled roles: NATS and Redis answer.
pub(crate) fn probes(bus: Arc<NatsBus>, coordinator: Arc<RedisCoordinator>) -> Vec<Probe> {
    vec![
        Probe::new("nats", move || {
            let bus = Arc::clone(&bus);
            async move { bus.check().await.map_err(|e| e.to_string()) }
        }),
        Probe::new("redis", move || {
            let coordinator = Arc::clone(&coordinator);
            async move { coordinator.check().await.map_err(|e| e.to_string()) }
        }),
    ]
}

/// How often a worker reads the inbound queue's backlog.
const BACKLOG_SAMPLE_PERIOD: Duration = Duration::from_secs(10);
/// When it first does, after start.
const BACKLOG_FIRST_SAMPLE: Duration = Duration::from_secs(1);

/// Samples the JetStream backlog of `chat.in` into
/// `chatbox_worker_inbound_pending` (not yet delivered) and
/// `chatbox_worker_inbound_ack_pending` (delivered, not yet acked) until
/// `cancel`. The stream is shared, so every worker reports the same
/// figures.
pub(crate) async fn sample_backlog(bus: Arc<NatsBus>, cancel: CancellationToken) {
    // The durable consumer appears when the first worker starts consuming,
    // a moment after start: the first look waits for it.
    tokio::select! {
        () = cancel.cancelled() => return,
        () = tokio::time::sleep(BACKLOG_FIRST_SAMPLE) => {}
    }
    let told = AtomicBool::new(false);
    every(BACKLOG_SAMPLE_PERIOD, FirstPass::Now, &cancel, || async {
        match bus.inbound_backlog().await {
            Ok((pending, ack_pending)) => {
                metrics::gauge!("chatbox_worker_inbound_pending").set(pending as f64);
                metrics::gauge!("chatbox_worker_inbound_ack_pending").set(ack_pending as f64);
                told.store(false, Ordering::Relaxed);
            }
            // Once per failing streak.
            Err(e) if !told.swap(true, Ordering::Relaxed) => {
                warn!("cannot read the inbound queue's backlog: {e}");
            }
            Err(_) => {}
        }
    })
    .await;
}
