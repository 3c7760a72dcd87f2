//! The chatbox gateway: WebSockets in, NATS out, Redis for who owns what.
//!
//! A gateway keeps nothing that matters in memory beyond its open sockets:
//! sessions live in the workers' store, ownership and routes in the
//! coordinator. Any gateway can serve any user, so gateways scale and
//! restart freely behind a plain load balancer.
//!
//! Rooms: [`upgrade`] (checks before a socket opens), [`connection`] (one
//! socket's life), [`inbound`] (client frames), [`send_queue`] (outbound
//! frames of one socket), [`session_hub`] (`chat.out` fan-out),
//! [`registry`] (sockets of this pod), [`control`] (`chat.ctl`: kill
//! switch, attach), [`ownership`] (lock renewal), [`keepalive`] (pings
//! and idle sockets, expired tokens), [`reauth`] (a fresh token over an
//! open socket), [`pod_heartbeat`], [`user_api`] (sessions over HTTP),
//! [`rpc_client`] (asking workers), [`admin`] (admins watching and taking
//! over sessions), [`cors`], [`pages`] (the chat page and the admin
//! console).
//!
//! They share one [`state::GatewayState`]; the rest of the world sees only
//! [`Gateway`]: a process builds the ports ([`GatewayDeps`]: the bus and
//! the coordinator, NATS and Redis in the scaled roles), starts a gateway,
//! serves its [`Gateway::router`], and drains it with
//! [`Gateway::shutdown`]:
//!
//! ```
//! use std::net::SocketAddr;
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! use chatbox_gateway::{Gateway, GatewayDeps};
//! use chatbox_shared::auth::TokenValidator;
//! use chatbox_shared::bus::{MemoryBus, MemoryBusOptions};
//! use chatbox_shared::config::Config;
//! use chatbox_shared::coordinator::MemoryCoordinator;
//! use chatbox_shared::namespace::Namespace;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Arc::new(Config::default());
//! let namespace = Namespace::default();
//! let validator = TokenValidator::new("a JWT secret of at least 32 bytes", &config.chatbox.auth)?;
//! let gateway = Gateway::start(GatewayDeps {
//!     bus: Arc::new(MemoryBus::new(MemoryBusOptions::default())),
//!     coordinator: Arc::new(MemoryCoordinator::new(namespace.keys())),
//!     validator: Arc::new(validator),
//!     pod_id: "gateway-1".into(),
//!     config,
//!     namespace,
//! })
//! .await?;
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let app = gateway.router().into_make_service_with_connect_info::<SocketAddr>();
//! let server = tokio::spawn(async move { axum::serve(listener, app).await });
//! // ... until SIGTERM:
//! gateway.shutdown(Duration::from_secs(10)).await;
//! server.abort();
//! # Ok(())
//! # }
//! ```

mod admin;
mod connection;
mod control;
mod cors;
mod credentials;
mod delivered;
mod http_error;
mod inbound;
mod keepalive;
mod metrics;
mod origin;
mod ownership;
mod pages;
mod pod_heartbeat;
mod rate_limit;
mod reauth;
mod registry;
mod rpc_client;
mod send_queue;
mod session_hub;
mod state;
mod upgrade;
mod user_api;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, patch, post};
use chatbox_shared::auth::TokenValidator;
use chatbox_shared::bus::{Bus, BusError};
use chatbox_shared::config::Config;
use chatbox_shared::coordinator::{Coordinator, RateLimit};
use chatbox_shared::namespace::Namespace;
use chatbox_shared::protocol::InboundLimits;
use chatbox_shared::protocol::outbound::StatusReason;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::admin::AdminRegistry;
use crate::metrics::GatewayMetrics;
use crate::origin::OriginPolicy;
use crate::rate_limit::{MessageLimiter, RequestLimiters};
use crate::registry::ConnectionRegistry;
use crate::session_hub::SessionHub;
use crate::state::GatewayState;

/// How long shutdown waits for the bus to take the last messages (NATS
/// may be gone: a pod stopping with the rest of the system).
const FLUSH_GRACE: Duration = Duration::from_secs(2);

/// What a gateway is built from.
pub struct GatewayDeps {
    /// The whole configuration.
    pub config: Arc<Config>,
    /// This pod's id.
    pub pod_id: String,
    /// The bus port.
    pub bus: Arc<dyn Bus>,
    /// The coordinator port.
    pub coordinator: Arc<dyn Coordinator>,
    /// Token checks.
    pub validator: Arc<TokenValidator>,
    /// The deployment's namespace.
    pub namespace: Namespace,
}

/// A running gateway.
pub struct Gateway {
    state: Arc<GatewayState>,
    background: TaskTracker,
    background_cancel: CancellationToken,
}

impl Gateway {
    /// Starts the gateway's background work: control messages, lock
    /// renewal, heartbeat. Serve [`Gateway::router`] to accept sockets.
    pub async fn start(deps: GatewayDeps) -> Result<Gateway, BusError> {
        let ws = &deps.config.chatbox.websocket;
        let origins = OriginPolicy::new(&ws.allowed_origins);
        if origins.allows_any() {
            warn!("WS_ALLOWED_ORIGINS is empty: any web page may open chat sockets (set it in production)");
        }
        let shutdown = CancellationToken::new();
        let metrics = Arc::new(GatewayMetrics::new());
        let subjects = deps.namespace.subjects();
        let limiter = Arc::new(MessageLimiter::new(
            Arc::clone(&deps.coordinator),
            RateLimit {
                capacity: deps.config.chatbox.rate_limit,
                window: deps.config.chatbox.rate_limit_window,
            },
        ));
        let requests = Arc::new(RequestLimiters::new(
            &deps.coordinator,
            deps.config.chatbox.session_rate_limit,
            deps.config.chatbox.request_rate_limit,
            deps.config.chatbox.rate_limit_window,
        ));
        let state = Arc::new(GatewayState {
            limits: InboundLimits {
                max_content_bytes: ws.max_content_bytes,
                ..InboundLimits::default()
            },
            origins,
            registry: ConnectionRegistry::default(),
            admins: AdminRegistry::default(),
            hub: SessionHub::new(
                Arc::clone(&deps.bus),
                subjects.clone(),
                deps.config.chatbox.gateway.out_idle_timeout,
                Arc::clone(&metrics),
                shutdown.child_token(),
            ),
            metrics,
            open: AtomicU64::new(0),
            next_conn_id: AtomicU64::new(1),
            shutdown,
            clock: tokio::time::Instant::now(),
            connections: TaskTracker::new(),
            subjects,
            config: deps.config,
            pod_id: deps.pod_id,
            bus: deps.bus,
            limiter,
            requests,
            coordinator: deps.coordinator,
            validator: deps.validator,
        });

        let orders = state.bus.subscribe(state.subjects.control(&state.pod_id)).await?;
        state.bus.flush().await?;
        let background = TaskTracker::new();
        let background_cancel = CancellationToken::new();
        background.spawn(control::serve(
            Arc::clone(&state),
            orders,
            background_cancel.clone(),
        ));
        background.spawn(ownership::renew_loop(
            Arc::clone(&state),
            background_cancel.clone(),
        ));
        background.spawn(admin::renewal::renew_loop(
            Arc::clone(&state),
            background_cancel.clone(),
        ));
        background.spawn(pod_heartbeat::beat_loop(
            Arc::clone(&state),
            background_cancel.clone(),
        ));
        background.spawn(keepalive::keepalive_loop(
            Arc::clone(&state),
            background_cancel.clone(),
        ));
        background.spawn(rate_limit::sweep_loop(
            Arc::clone(&state.limiter),
            Arc::clone(&state.requests),
            background_cancel.clone(),
        ));
        background.close();
        info!(pod_id = %state.pod_id, bus = state.bus.adapter(), coordinator = state.coordinator.adapter(), "gateway started");
        Ok(Gateway {
            state,
            background,
            background_cancel,
        })
    }

    /// The gateway's HTTP routes (`/chat/ws`, `/chat/admin/ws`, the user
    /// and admin APIs, with CORS per `CORS_ALLOWED_ORIGINS`, and the pages). Serve them
    /// with `into_make_service_with_connect_info::<SocketAddr>()`.
    pub fn router(&self) -> Router {
        let api = Router::new()
            .route("/chat/models", get(user_api::models))
            .route("/chat/sessions", get(user_api::list))
            .route("/chat/sessions/{id}", patch(user_api::rename))
            .route("/chat/sessions/{id}/messages", get(user_api::history))
            .route("/chat/sessions/{id}/end", post(user_api::end))
            .route("/chat/uploads", post(user_api::upload_slot))
            .route("/chat/admin/sessions", get(admin::api::sessions))
            .route("/chat/admin/sessions/{id}", get(admin::api::session))
            .route("/chat/admin/metrics", get(admin::api::session_metrics))
            .route(
                "/chat/admin/takeover/{id}",
                post(admin::api::take_over).delete(admin::api::release),
            );
        let api = match cors::layer(&self.state.config.chatbox.gateway.cors_allowed_origins) {
            Some(cors) => api.layer(cors),
            None => api,
        };
        let router = Router::new()
            .route("/chat/ws", get(upgrade::handle))
            .route("/chat/admin/ws", get(admin::socket::handle))
            .merge(api)
            .with_state(Arc::clone(&self.state));
        match pages::routes(&self.state.config.chatbox) {
            Some(pages) => router.merge(pages),
            None => router,
        }
    }

    /// Open sockets.
    pub fn connections(&self) -> usize {
        self.state.registry.len()
    }

    /// Whether shutdown has begun.
    pub fn is_draining(&self) -> bool {
        self.state.shutdown.is_cancelled()
    }

    /// Graceful shutdown: refuse new sockets, close every socket with 1001
    /// and a reconnect hint, release their locks, and wait up to `grace`.
    pub async fn shutdown(&self, grace: Duration) {
        let open = self.state.registry.len();
        info!(open, "closing sockets for shutdown");
        self.state.shutdown.cancel();
        for conn in self.state.registry.all() {
            conn.close(connection::shutdown_order(&self.state, &conn.session_id));
        }
        for conn in self.state.admins.all() {
            conn.close(connection::admin_close_order(
                &self.state,
                StatusReason::ServerShutdown,
            ));
        }
        self.state.connections.close();
        if tokio::time::timeout(grace, self.state.connections.wait())
            .await
            .is_err()
        {
            warn!(
                left = self.state.registry.len(),
                "sockets still open after the grace period"
            );
        }
        self.background_cancel.cancel();
        self.background.wait().await;
        // Stops and typing indicators may still sit in the bus client's
        // buffer: out before the process ends.
        match tokio::time::timeout(FLUSH_GRACE, self.state.bus.flush()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => warn!("messages not flushed at shutdown: {e}"),
            Err(_) => warn!(grace = ?FLUSH_GRACE, "messages not flushed at shutdown: the bus is unreachable"),
        }
    }
}
