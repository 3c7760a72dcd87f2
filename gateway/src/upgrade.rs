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
use axum::http::header::{HOST, ORIGIN};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use chatbox_shared::auth::{AuthError, Identity};
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
pub(crate) struct ConnectParams {
    /// A token, for clients that can set neither headers nor subprotocols.
    pub token: Option<String>,
    /// The session to resume.
    pub session_id: Option<String>,
    /// `true` starts a new session, ending the active one.
    #[serde(default)]
    pub new_session: bool,
}

/// The `/chat/ws` handler.
pub(crate) async fn handle(
    State(state): State<Arc<GatewayState>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    query: Result<Query<ConnectParams>, QueryRejection>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    if let Some(refusal) = refuse_early(&state, remote, &headers) {
        return refusal;
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
    let (identity, credentials) = match authenticate(&state, remote, &headers, params.token.as_deref()) {
        Ok(found) => found,
        Err(refusal) => return *refusal,
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
    let (upgrade, slot) = match prepare(&state, upgrade, &credentials, "/chat/ws") {
        Ok(ready) => ready,
        Err(refusal) => return *refusal,
    };
    debug!(%remote, user_id = %identity.user_id, "upgrading");
    let state_for_socket = Arc::clone(&state);
    upgrade.on_upgrade(move |socket| {
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

/// The first checks of every socket (user or admin): the pod is not
/// shutting down (503) and the browser origin is allowed (403).
pub(crate) fn refuse_early(
    state: &GatewayState,
    remote: SocketAddr,
    headers: &HeaderMap,
) -> Option<Response> {
    if state.shutdown.is_cancelled() {
        metrics::refused("shutting_down");
        return Some(refuse(
            ErrorCode::ServerShutdown,
            "this server is shutting down; connect again to reach another one",
            Some(Duration::from_secs(1)),
        ));
    }
    let origin = headers.get(ORIGIN).and_then(|v| v.to_str().ok());
    let host = headers.get(HOST).and_then(|v| v.to_str().ok());
    if !state.origins.allows(origin, host) {
        metrics::refused("origin");
        info!(%remote, origin = origin.unwrap_or_default(), "socket refused: origin not allowed");
        return Some(refuse(
            ErrorCode::OriginNotAllowed,
            "this page's origin is not allowed to open chat connections",
            None,
        ));
    }
    None
}

/// The token (header, subprotocol or `?token=`), validated (401 if not).
pub(crate) fn authenticate(
    state: &GatewayState,
    remote: SocketAddr,
    headers: &HeaderMap,
    query_token: Option<&str>,
) -> Result<(Identity, Credentials), Box<Response>> {
    let credentials = Credentials::from_request(headers, query_token);
    let identity = match credentials.token.as_deref() {
        None => Err(AuthError::Missing),
        Some(token) => state.validator.validate(token),
    };
    match identity {
        Ok(identity) => Ok((identity, credentials)),
        Err(e) => {
            metrics::refused("unauthorized");
            metrics::auth_failure(e.reason());
            info!(%remote, reason = e.reason(), "socket refused: {e}");
            Err(Box::new(refuse(e.code(), e.to_string(), None)))
        }
    }
}

/// The last checks — a WebSocket request (400), room on the pod (503 with
/// `Retry-After`) — and the upgrade set up with the socket limits and the
/// subprotocol the client offered.
pub(crate) fn prepare(
    state: &Arc<GatewayState>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    credentials: &Credentials,
    path: &str,
) -> Result<(WebSocketUpgrade, ConnectionSlot), Box<Response>> {
    let mut upgrade = upgrade.map_err(|e| {
        metrics::refused("not_websocket");
        Box::new(refuse(
            ErrorCode::InvalidMessage,
            format!("{path} speaks WebSocket only: {e}"),
            None,
        ))
    })?;
    let Some(slot) = ConnectionSlot::acquire(state) else {
        metrics::refused("connection_limit");
        return Err(Box::new(refuse(
            ErrorCode::ConnectionLimit,
            "this server holds as many connections as it may; try again shortly",
            Some(Duration::from_secs(5)),
        )));
    };
    if credentials.offers_protocol {
        upgrade.set_selected_protocol(HeaderValue::from_static(PROTOCOL));
    }
    let ws = &state.config.chatbox.websocket;
    let upgrade = upgrade
        .read_buffer_size(ws.read_buffer_size)
        .write_buffer_size(ws.write_buffer_size)
        .max_message_size(ws.max_message_size)
        .max_frame_size(ws.max_frame_size);
    Ok((upgrade, slot))
}
