//! `GET /chat/ws`: everything that happens before a socket opens.
//!
//! In order: the pod is not shutting down (503), the browser origin is
//! allowed (403), the token is valid (401), the pod has room (503 with
//! `Retry-After`), the query is sane (400). Every refusal carries the
//! seed's error body, so a client reads the same `error` object whether a
//! problem is found before or after the upgrade.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::header::ORIGIN;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use chatbox_shared::ids::is_valid_session_id;
use chatbox_shared::protocol::ErrorCode;
use serde::Deserialize;
use tracing::{debug, info};

use crate::connection::{self, SessionRequest};
use crate::credentials::{Credentials, PROTOCOL};
use crate::http_error::refuse;
use crate::metrics;
use crate::state::{ConnectionSlot, GatewayState};

/// Query parameters of `/chat/ws`.
#[derive(Debug, Default, Deserialize)]
pub struct ConnectParams {
    /// A token, for clients that can set neither headers nor subprotocols.
    pub token: Option<String>,
    /// The session to resume.
    pub session_id: Option<String>,
    /// `true` starts a new session, ending the active one.
    #[serde(default)]
    pub new_session: bool,
}

/// The `/chat/ws` handler.
pub async fn handle(
    State(state): State<Arc<GatewayState>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    query: Result<Query<ConnectParams>, QueryRejection>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    if state.shutdown.is_cancelled() {
        metrics::refused("shutting_down");
        return refuse(
            ErrorCode::ServerShutdown,
            "this server is shutting down; connect again to reach another one",
            Some(Duration::from_secs(1)),
        );
    }
    let origin = headers.get(ORIGIN).and_then(|v| v.to_str().ok());
    if !state.origins.allows(origin) {
        metrics::refused("origin");
        info!(%remote, origin = origin.unwrap_or_default(), "socket refused: origin not allowed");
        return refuse(
            ErrorCode::OriginNotAllowed,
            "this page's origin is not allowed to open chat connections",
            None,
        );
    }
    let Query(params) = match query {
        Ok(q) => q,
        Err(e) => {
            metrics::refused("bad_request");
            return refuse(
                ErrorCode::InvalidField,
                format!("invalid query string: {e}"),
                None,
            );
        }
    };
    let credentials = Credentials::from_request(&headers, params.token.as_deref());
    let identity = match credentials.token.as_deref() {
        None => Err(chatbox_shared::auth::AuthError::Missing),
        Some(token) => state.validator.validate(token),
    };
    let identity = match identity {
        Ok(identity) => identity,
        Err(e) => {
            metrics::refused("unauthorized");
            metrics::auth_failure(e.reason());
            info!(%remote, reason = e.reason(), "socket refused: {e}");
            return refuse(e.code(), e.to_string(), None);
        }
    };
    if let Some(sid) = &params.session_id
        && !is_valid_session_id(sid)
    {
        metrics::refused("bad_request");
        return refuse(
            ErrorCode::InvalidField,
            "session_id must be 1 to 64 letters, digits, '-' or '_'",
            None,
        );
    }
    let mut upgrade = match upgrade {
        Ok(u) => u,
        Err(e) => {
            metrics::refused("not_websocket");
            return refuse(
                ErrorCode::InvalidMessage,
                format!("/chat/ws speaks WebSocket only: {e}"),
                None,
            );
        }
    };
    let Some(slot) = ConnectionSlot::acquire(&state) else {
        metrics::refused("connection_limit");
        return refuse(
            ErrorCode::ConnectionLimit,
            "this server holds as many connections as it may; try again shortly",
            Some(Duration::from_secs(5)),
        );
    };
    debug!(%remote, user_id = %identity.user_id, "upgrading");
    let ws = &state.config.chatbox.websocket;
    if credentials.offers_protocol {
        upgrade.set_selected_protocol(HeaderValue::from_static(PROTOCOL));
    }
    let state_for_socket = Arc::clone(&state);
    upgrade
        .read_buffer_size(ws.read_buffer_size)
        .write_buffer_size(ws.write_buffer_size)
        .max_message_size(ws.max_message_size)
        .max_frame_size(ws.max_frame_size)
        .on_upgrade(move |socket| {
            let state = state_for_socket;
            let tracker = state.connections.clone();
            let requested = SessionRequest {
                session_id: params.session_id,
                new_session: params.new_session,
            };
            tracker.track_future(connection::run(
                state,
                Box::new(socket),
                identity,
                requested,
                remote,
                slot,
            ))
        })
}
