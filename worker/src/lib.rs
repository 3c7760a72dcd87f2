//! The chatbox worker: everything slow or stateful.
//!
//! Workers are a competing-consumer group: any worker can take any
//! session's next message. The rooms, by job:
//!
//! - [`turns`] — the session's inbound queue, one turn at a time: a user's
//!   message answered by a model, a help request, a takeover's join,
//!   leave and messages, stops;
//! - [`rpc`] — the gateways' requests: which session a socket belongs to,
//!   a user's sessions and history, the admin console's queries, upload
//!   slots;
//! - [`background`] — the periodic passes: session sweep, takeover expiry,
//!   concurrency samples, upload cleanup;
//! - the ports it uses and their adapters: [`llm`] (language models),
//!   [`store`] (sessions and messages), [`blob`] (files), [`notify`]
//!   (e-mail, SMS); and [`uploads`] (checking files in, files out);
//! - what they share: [`state`], the [`outbox`] (frames out to sessions),
//!   [`history`] (stored messages as frames and model context),
//!   [`metrics`].
//!
//! Other crates see [`Worker`] and the four port modules: each exports its
//! trait, its adapters (`store::{SqliteStore, MongoStore, MeteredStore}`,
//! `blob::{LocalBlobStore, S3BlobStore}`, `llm::{OpenAiProvider, …}`) and
//! the records that cross it; the rooms stay private. A process builds the
//! ports ([`WorkerDeps`]: MongoDB, S3, NATS and Redis in the scaled roles),
//! embeds a worker with [`Worker::start`] and stops it with
//! [`Worker::shutdown`]:
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! use chatbox_shared::bus::{MemoryBus, MemoryBusOptions};
//! use chatbox_shared::config::Config;
//! use chatbox_shared::coordinator::MemoryCoordinator;
//! use chatbox_shared::namespace::Namespace;
//! use chatbox_worker::blob::LocalBlobStore;
//! use chatbox_worker::store::{ContentCipher, SqliteStore};
//! use chatbox_worker::{Worker, WorkerDeps};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = std::env::temp_dir().join(format!("chatbox-worker-doc-{}", std::process::id()));
//! let cipher = Arc::new(ContentCipher::new(None, &[]));
//! let namespace = Namespace::default();
//! let worker = Worker::start(WorkerDeps {
//!     config: Arc::new(Config::default()),
//!     pod_id: "worker-1".into(),
//!     bus: Arc::new(MemoryBus::new(MemoryBusOptions::default())),
//!     coordinator: Arc::new(MemoryCoordinator::new(namespace.keys())),
//!     store: Arc::new(SqliteStore::open(&dir, cipher)?),
//!     blob: Arc::new(LocalBlobStore::open(&dir.join("files"), None, "http://127.0.0.1:8080")?),
//!     namespace,
//! })
//! .await?;
//! // With no model configured, the built-in demo model answers.
//! assert_eq!(worker.models()[0].0, "demo");
//! // ... until SIGTERM:
//! worker.shutdown(Duration::from_secs(10)).await;
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok(())
//! # }
//! ```

mod background;
pub mod blob;
mod history;
pub mod llm;
mod metrics;
pub mod notify;
mod outbox;
mod rpc;
mod session_name;
mod state;
pub mod store;
mod turns;
mod uploads;

use std::sync::Arc;
use std::time::Duration;

use chatbox_shared::bus::{Bus, BusError};
use chatbox_shared::config::Config;
use chatbox_shared::coordinator::Coordinator;
use chatbox_shared::namespace::{Namespace, WORKER_QUEUE_GROUP};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::blob::BlobStore;
use crate::llm::{Opened, Providers};
use crate::notify::{Alert, EventKind, Notifications};
use crate::outbox::Outbox;
use crate::state::WorkerState;
use crate::store::{Store, StoreError};
use crate::turns::context_cache::ContextCache;

/// What a worker is built from.
pub struct WorkerDeps {
    /// The whole configuration.
    pub config: Arc<Config>,
    /// This pod's id.
    pub pod_id: String,
    /// The bus port.
    pub bus: Arc<dyn Bus>,
    /// The coordinator port.
    pub coordinator: Arc<dyn Coordinator>,
    /// The store port.
    pub store: Arc<dyn Store>,
    /// The file store port.
    pub blob: Arc<dyn BlobStore>,
    /// The deployment's namespace.
    pub namespace: Namespace,
}

/// Why a worker could not start.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The bus refused a subscription.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// The model configuration is unusable.
    #[error("{0}")]
    Providers(String),
    /// The store could not be prepared.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The notification engines are unusable.
    #[error("{0}")]
    Notifications(String),
}

/// A running worker.
pub struct Worker {
    state: Arc<WorkerState>,
    stop_pulling: CancellationToken,
    hard_stop: CancellationToken,
    stop_listening: CancellationToken,
    background: TaskTracker,
    turns: TaskTracker,
}

impl Worker {
    /// Starts answering RPCs and consuming the inbound queue.
    pub async fn start(deps: WorkerDeps) -> Result<Worker, WorkerError> {
        let providers = Providers::from_config(&deps.config.chatbox.llm).map_err(WorkerError::Providers)?;
        let notifications =
            Notifications::from_config(&deps.config, Arc::clone(&deps.coordinator), &deps.pod_id)
                .map_err(WorkerError::Notifications)?;
        watch_breakers(&providers, &notifications, &deps.pod_id);
        let subjects = deps.namespace.subjects();
        let state = Arc::new(WorkerState {
            outbox: Outbox::new(
                Arc::clone(&deps.bus),
                Arc::clone(&deps.coordinator),
                subjects.clone(),
                deps.config.chatbox.gateway.rpc_timeout,
            ),
            providers,
            store: deps.store,
            blob: deps.blob,
            stops: Arc::default(),
            context_cache: ContextCache::new(deps.config.chatbox.worker.context_cache_bytes),
            notifications,
            subjects,
            config: deps.config,
            pod_id: deps.pod_id,
            bus: deps.bus,
            coordinator: deps.coordinator,
        });
        let stop_pulling = CancellationToken::new();
        let hard_stop = CancellationToken::new();
        let tasks = TaskTracker::new();
        let turns = TaskTracker::new();

        state.store.prepare().await?;
        let requests = state
            .bus
            .queue_subscribe(state.subjects.rpc(">"), WORKER_QUEUE_GROUP.to_owned())
            .await?;
        let stops = state.bus.subscribe(state.subjects.stop_all()).await?;
        state.bus.flush().await?;
        tasks.spawn(rpc::serve(Arc::clone(&state), requests, stop_pulling.clone()));
        // Stops are heard until the last turn is done, after the queue.
        let stop_listening = CancellationToken::new();
        tokio::spawn(turns::stops::listen(
            Arc::clone(&state.stops),
            state.subjects.clone(),
            stops,
            stop_listening.clone(),
        ));
        background::spawn(&state, &tasks, &stop_pulling);
        tasks.spawn(Arc::clone(&state.notifications).digest_loop(stop_pulling.clone()));
        tasks.spawn(turns::consumer::consume(
            Arc::clone(&state),
            stop_pulling.clone(),
            hard_stop.clone(),
            turns.clone(),
        ));
        tasks.close();
        let models: Vec<&str> = state.providers.all().iter().map(|m| m.id()).collect();
        info!(pod_id = %state.pod_id, bus = state.bus.adapter(), store = state.store.adapter(), blob = state.blob.adapter(), ?models, "worker started");
        Ok(Worker {
            state,
            stop_pulling,
            hard_stop,
            stop_listening,
            background: tasks,
            turns,
        })
    }

    /// The models this worker serves, default first: `(id, name)`.
    pub fn models(&self) -> Vec<(String, String)> {
        self.state
            .providers
            .all()
            .iter()
            .map(|m| (m.id().to_owned(), m.provider.name().to_owned()))
            .collect()
    }

    /// Graceful shutdown: stop taking messages, let turns in flight finish
    /// within `grace`, hand the rest back to the queue for other workers.
    pub async fn shutdown(&self, grace: Duration) {
        info!("worker stopping: no new turns");
        self.stop_pulling.cancel();
        self.background.wait().await;
        self.turns.close();
        if tokio::time::timeout(grace, self.turns.wait()).await.is_err() {
            warn!("turns still running after the grace period; handing them back");
            self.hard_stop.cancel();
            self.turns.wait().await;
        }
        self.stop_listening.cancel();
        // The last turns' frames may still sit in the bus client's buffer:
        // out before the process ends, or the user never sees them.
        match tokio::time::timeout(FLUSH_GRACE, self.state.bus.flush()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => warn!("frames not flushed at shutdown: {e}"),
            Err(_) => warn!(grace = ?FLUSH_GRACE, "frames not flushed at shutdown: the bus is unreachable"),
        }
        self.state.notifications.shutdown(NOTIFY_GRACE.min(grace)).await;
    }
}

/// How long shutdown waits for the bus to take the last frames (NATS may
/// be gone: a pod stopping with the rest of the system).
const FLUSH_GRACE: Duration = Duration::from_secs(2);

/// How long shutdown waits for notifications still being sent.
const NOTIFY_GRACE: Duration = Duration::from_secs(5);

/// Tells the admins each time a provider's circuit breaker opens.
fn watch_breakers(providers: &Providers, notifications: &Arc<Notifications>, pod_id: &str) {
    for model in providers.all() {
        let notifications = Arc::clone(notifications);
        let pod_id = pod_id.to_owned();
        model.breaker.on_open(Arc::new(move |opened: Opened| {
            let alert = Alert::new(
                EventKind::LlmFailure,
                format!("model provider {} keeps failing: its circuit breaker opened", opened.provider),
                format!(
                    "Provider: {}\nFailed requests in a row: {}\nRequests refused (or sent to its fallback) for: {}\nLast error: {}",
                    opened.provider,
                    opened.failures,
                    humantime::format_duration(opened.open_for),
                    opened.last_error
                ),
                pod_id.as_str(),
            )
            .affecting(u64::from(opened.failures));
            notifications.notify(alert);
        }));
    }
}
