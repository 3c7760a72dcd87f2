//! Socket liveness, for the whole pod at once.
//!
//! One task, instead of a timer per socket: every `ping_period` it asks
//! each socket to send a WebSocket ping, and a socket whose client has
//! been silent for `pong_wait` (no frame at all: no message, ping or pong)
//! is told why and closed. The check runs at least three times per
//! `pong_wait`, so a silent client is closed within a third of it late.
//! Each pass also samples the depth of the sockets' send queues.

use chatbox_shared::periodic::{FirstPass, every};
use std::sync::Arc;
use std::time::Duration;

use chatbox_shared::protocol::outbound::StatusReason;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::connection::{admin_close_order, status_order};
use crate::metrics;
use crate::registry::unix_now;
use crate::state::GatewayState;

/// Token expiry is checked at least this often, so a socket outlives its
/// token (plus the leeway) by at most this much.
const TOKEN_CHECK_EVERY: Duration = Duration::from_secs(1);

/// Pings and reaps sockets until cancelled.
pub(crate) async fn keepalive_loop(state: Arc<GatewayState>, cancel: CancellationToken) {
    let ws = &state.config.chatbox.websocket;
    let (ping_period, pong_wait) = (ws.ping_period, ws.pong_wait);
    let leeway = state.config.chatbox.auth.leeway;
    let check_every = ping_period
        .min(pong_wait / 3)
        .min(TOKEN_CHECK_EVERY)
        .max(Duration::from_millis(10));
    let mut since_ping = Duration::ZERO;
    every(check_every, FirstPass::AfterPeriod, &cancel, || {
        since_ping += check_every;
        let ping = since_ping >= ping_period;
        if ping {
            since_ping = Duration::ZERO;
        }
        let now = state.clock.elapsed();
        let unix = unix_now();
        let (mut queued, mut deepest) = (0, 0);
        for conn in state.registry.all() {
            let depth = conn.queue.len();
            queued += depth;
            deepest = deepest.max(depth);
            if conn.token_expiry.passed(unix, leeway) {
                info!(conn_id = conn.conn_id, user_id = %conn.user_id, "token expired; closing the socket");
                conn.close(status_order(&state, &conn.session_id, StatusReason::TokenExpired));
            } else if conn.liveness.silent_for(now) >= pong_wait {
                debug!(conn_id = conn.conn_id, "client silent for too long");
                conn.close(status_order(&state, &conn.session_id, StatusReason::IdleTimeout));
            } else if ping {
                conn.queue.request_ping();
            }
        }
        for conn in state.admins.all() {
            let depth = conn.queue.len();
            queued += depth;
            deepest = deepest.max(depth);
            if conn.token_expiry.passed(unix, leeway) {
                info!(conn_id = conn.conn_id, admin_id = %conn.admin.admin_id, "admin token expired; closing the socket");
                conn.close(admin_close_order(&state, StatusReason::TokenExpired));
            } else if conn.liveness.silent_for(now) >= pong_wait {
                debug!(conn_id = conn.conn_id, "admin client silent for too long");
                conn.close(admin_close_order(&state, StatusReason::IdleTimeout));
            } else if ping {
                conn.queue.request_ping();
            }
        }
        metrics::send_queues(queued, deepest);
        std::future::ready(())
    })
    .await;
}
