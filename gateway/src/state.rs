//! Everything a gateway's handlers and tasks share, in one place.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chatbox_shared::auth::TokenValidator;
use chatbox_shared::bus::Bus;
use chatbox_shared::config::Config;
use chatbox_shared::coordinator::Coordinator;
use chatbox_shared::namespace::Subjects;
use chatbox_shared::protocol::InboundLimits;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admin::AdminRegistry;
use crate::metrics::GatewayMetrics;
use crate::origin::OriginPolicy;
use crate::rate_limit::{MessageLimiter, RequestLimiters};
use crate::registry::ConnectionRegistry;
use crate::session_hub::SessionHub;

/// The shared state of one gateway.
pub(crate) struct GatewayState {
    /// The whole configuration.
    pub config: Arc<Config>,
    /// This pod's id.
    pub pod_id: String,
    /// The bus port.
    pub bus: Arc<dyn Bus>,
    /// The coordinator port.
    pub coordinator: Arc<dyn Coordinator>,
    /// The users' message rate limit, leased from the coordinator.
    pub limiter: Arc<MessageLimiter>,
    /// The users' rate limits of socket opens, history and renames.
    pub requests: Arc<RequestLimiters>,
    /// Token checks.
    pub validator: Arc<TokenValidator>,
    /// Subject names.
    pub subjects: Subjects,
    /// Limits on client frames.
    pub limits: InboundLimits,
    /// The origin check.
    pub origins: OriginPolicy,
    /// Open user sockets.
    pub registry: ConnectionRegistry,
    /// Open admin sockets.
    pub admins: AdminRegistry,
    /// Session fan-out.
    pub hub: SessionHub,
    /// Metrics.
    pub metrics: Arc<GatewayMetrics>,
    /// Sockets counted against `max_connections`, upgrades in progress included.
    pub open: AtomicU64,
    /// The next connection id.
    pub next_conn_id: AtomicU64,
    /// Cancelled when the pod shuts down: new sockets are refused.
    pub shutdown: CancellationToken,
    /// The gateway's monotonic clock (socket liveness is kept against it).
    pub clock: tokio::time::Instant,
    /// Every connection task, so shutdown can wait for them.
    pub connections: TaskTracker,
}

/// A place counted against `max_connections`, given back when dropped.
pub(crate) struct ConnectionSlot {
    state: Arc<GatewayState>,
}

impl ConnectionSlot {
    /// Takes a place, if one is free.
    pub(crate) fn acquire(state: &Arc<GatewayState>) -> Option<Self> {
        let max = state.config.chatbox.max_connections;
        let taken = state.open.fetch_add(1, Ordering::AcqRel) + 1;
        if taken > max {
            state.open.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        state.metrics.connections.increment(1.0);
        Some(ConnectionSlot {
            state: Arc::clone(state),
        })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.state.open.fetch_sub(1, Ordering::AcqRel);
        self.state.metrics.connections.decrement(1.0);
    }
}
