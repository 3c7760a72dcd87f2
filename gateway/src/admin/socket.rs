//! `GET /chat/admin/ws`: one admin console's socket.
//!
//! Refused like a user socket (shutdown, origin, token, room), and with
//! 403 `FORBIDDEN` for a token without the admin role. Frames name the
//! session they are about (`session_id`):
//!
//! | frame | does | answer |
//! |---|---|---|
//! | `watch` | joins the session's fan-out, records the admin as watching | `session_state` (the session, its latest messages, its takeovers), then every frame of the session |
//! | `unwatch` | leaves it | `presence` |
//! | `takeover` | takes the session over (watching it if not yet) | `takeover`, then `admin_join` through the session |
//! | `release` | hands it back | `release`, then `admin_leave` through the session |
//! | `user_message` | text for the user of a session the admin has taken over | the message, echoed through the session |
//! | `typing_indicator` | the admin's typing, shown to the user | — |
//! | `ping` | — | `pong` |
//! | `reauth` | a fresh admin token for this socket (same admin) | `reauthenticated`, or an `error` |
//!
//! When the socket closes the admin stops watching; takeovers it held
//! outlive it for the grace period (a reconnecting admin resumes them).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use chatbox_shared::bus::Headers;
use chatbox_shared::coordinator::Watcher;
use chatbox_shared::envelope::{Audience, InboundBody, headers};
use chatbox_shared::ids::new_message_id;
use chatbox_shared::protocol::admin::Presence;
use chatbox_shared::protocol::outbound::StatusReason;
use chatbox_shared::protocol::{
    ClientCommand, ErrorCode, ErrorInfo, MessageType, ProtocolError, Sender, outbound, parse_client_frame,
};
use serde::Deserialize;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::admin::AdminConn;
use crate::admin::takeover::{self, Admin};
use crate::connection::{FrameHandler, admin_close_order, socket_loop};
use crate::http_error::refuse;
use crate::inbound::{self, Pending};
use crate::metrics;
use crate::reauth::{self, Expected};
use crate::send_queue::SendQueue;
use crate::session_hub::ListenerRole;
use crate::state::{ConnectionSlot, GatewayState};
use crate::upgrade::{authenticate, prepare, refuse_early};

/// Query of `/chat/admin/ws`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct AdminParams {
    /// A token, for clients that can set neither headers nor subprotocols.
    pub token: Option<String>,
}

/// The `/chat/admin/ws` handler.
pub(crate) async fn handle(
    State(state): State<Arc<GatewayState>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(params): Query<AdminParams>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    if let Some(refusal) = refuse_early(&state, remote, &headers) {
        return refusal;
    }
    let (identity, credentials) = match authenticate(&state, remote, &headers, params.token.as_deref()) {
        Ok(found) => found,
        Err(refusal) => return *refusal,
    };
    let admin_role = &state.config.chatbox.auth.admin_role;
    if !identity.has_role(admin_role) {
        metrics::refused("forbidden");
        metrics::auth_failure("not_admin");
        info!(%remote, user_id = %identity.user_id, "admin socket refused: no admin role");
        return refuse(
            ErrorCode::Forbidden,
            format!("the admin console needs a token with the `{admin_role}` role"),
            None,
        );
    }
    let (upgrade, slot) = match prepare(&state, upgrade, &credentials, "/chat/admin/ws") {
        Ok(ready) => ready,
        Err(refusal) => return *refusal,
    };
    let admin = Admin::from_identity(&identity);
    let expires_at = identity.expires_at;
    let state_for_socket = Arc::clone(&state);
    upgrade.on_upgrade(move |socket| {
        let state = state_for_socket;
        let tracker = state.connections.clone();
        tracker.track_future(run(state, socket, admin, remote, slot, expires_at))
    })
}

async fn run(
    state: Arc<GatewayState>,
    mut socket: WebSocket,
    admin: Admin,
    remote: SocketAddr,
    _slot: ConnectionSlot,
    expires_at: u64,
) {
    let conn_id = state.next_conn_id.fetch_add(1, Ordering::Relaxed);
    let span =
        info_span!("admin_connection", pod_id = %state.pod_id, conn_id, admin_id = %admin.admin_id, %remote);
    async move {
        let queue = Arc::new(SendQueue::new(state.config.chatbox.websocket.send_queue_limit));
        let conn = Arc::new(AdminConn::new(
            conn_id,
            admin,
            Arc::clone(&queue),
            state.clock.elapsed(),
            expires_at,
        ));
        state.admins.insert(conn_id, Arc::clone(&conn));
        state.metrics.admin_connections.increment(1.0);
        if state.shutdown.is_cancelled() {
            conn.close(admin_close_order(&state, StatusReason::ServerShutdown));
        }
        info!("admin connected");
        let mut handler = AdminContext {
            state: Arc::clone(&state),
            conn: Arc::clone(&conn),
        };
        let exit = socket_loop(&state, &mut socket, &mut handler).await;
        drop(socket);
        state.admins.remove(conn_id);
        state.metrics.admin_connections.decrement(1.0);
        for session_id in conn.watching() {
            stop_watching(&state, &conn, &session_id).await;
        }
        let held = conn.held();
        if !held.is_empty() {
            info!(?held, grace = ?state.config.chatbox.admin.takeover_grace, "admin gone; takeovers end unless they come back within the grace period");
        }
        metrics::disconnect(exit.label());
        info!(reason = exit.label(), "admin disconnected");
    }
    .instrument(span)
    .await
}

/// An admin socket while it reads frames.
struct AdminContext {
    state: Arc<GatewayState>,
    conn: Arc<AdminConn>,
}

impl AdminContext {
    fn send_error(&self, request_id: Option<&str>, session_id: Option<&str>, info: ErrorInfo) {
        send_error(&self.conn, request_id, session_id, info);
    }
}

fn send_error(conn: &AdminConn, request_id: Option<&str>, session_id: Option<&str>, info: ErrorInfo) {
    metrics::protocol_error(info.code.as_str());
    conn.queue
        .push(outbound::error_reply(request_id, session_id, info).to_json());
}

impl FrameHandler for AdminContext {
    fn queue(&self) -> Arc<SendQueue> {
        Arc::clone(&self.conn.queue)
    }

    fn heard(&self, now: Duration) {
        self.conn.liveness.heard(now);
    }

    fn handle_text(&mut self, text: &str) -> Option<Pending> {
        let frame = match parse_client_frame(text, &self.state.limits) {
            Ok(frame) => frame,
            Err(ProtocolError { code, message }) => {
                debug!(%code, "refused a frame: {message}");
                self.send_error(None, None, ErrorInfo::new(code, message));
                return None;
            }
        };
        self.state.metrics.message_in(frame.command.kind());
        let state = Arc::clone(&self.state);
        let conn = Arc::clone(&self.conn);
        match frame.command {
            ClientCommand::Ping => {
                self.conn.queue.push(outbound::pong().to_json());
                None
            }
            ClientCommand::Reauth { id, token } => {
                let expected = Expected::Admin(&self.conn.admin.admin_id);
                let answer = reauth::check(
                    &self.state,
                    expected,
                    &self.conn.token_expiry,
                    id.as_deref(),
                    &token,
                );
                self.conn.queue.push(answer.to_json());
                None
            }
            ClientCommand::Watch { id, session_id } => Some(Box::pin(async move {
                watch(&state, &conn, id.as_deref(), &session_id).await;
            })),
            ClientCommand::Unwatch { id, session_id } => Some(Box::pin(async move {
                if stop_watching(&state, &conn, &session_id).await {
                    info!(session_id, "admin stopped watching");
                }
                reply(
                    &conn,
                    MessageType::Unwatch,
                    id.as_deref(),
                    &session_id,
                    serde_json::Value::Null,
                );
            })),
            ClientCommand::Takeover { id, session_id } => Some(Box::pin(async move {
                take_over(&state, &conn, id.as_deref(), &session_id).await;
            })),
            ClientCommand::Release { id, session_id } => Some(Box::pin(async move {
                match takeover::release(&state, &conn.admin, &session_id).await {
                    Ok(done) => {
                        conn.set_held(&session_id, false);
                        reply(
                            &conn,
                            MessageType::Release,
                            id.as_deref(),
                            &session_id,
                            json(&done),
                        );
                        takeover::publish_presence(&state, &session_id).await;
                    }
                    Err(info) => send_error(&conn, id.as_deref(), Some(&session_id), info),
                }
            })),
            ClientCommand::UserMessage { id, content, .. } => {
                let session_id = self.target(frame.session_id, id.as_deref())?;
                Some(Box::pin(say(state, conn, id, session_id, content)))
            }
            ClientCommand::TypingIndicator { active } => {
                if let Some(session_id) = self.target(frame.session_id, None) {
                    typing(&state, &conn.admin.admin_name, &session_id, active);
                }
                None
            }
            other => {
                self.send_error(
                    other.client_id(),
                    frame.session_id.as_deref(),
                    ErrorInfo::new(
                        ErrorCode::NotAllowed,
                        format!("`{}` is not available on admin sockets", other.kind()),
                    ),
                );
                None
            }
        }
    }

    fn refuse_binary(&self) {
        self.send_error(
            None,
            None,
            ErrorInfo::new(
                ErrorCode::InvalidMessage,
                "binary frames are not part of the protocol; send JSON text frames",
            ),
        );
    }

    fn closed_normally(&self) {}

    fn session_id(&self) -> Option<&str> {
        None
    }
}

impl AdminContext {
    /// The session an admin's message or typing is for: one they have
    /// taken over.
    fn target(&self, session_id: Option<String>, request_id: Option<&str>) -> Option<String> {
        let Some(session_id) = session_id else {
            self.send_error(
                request_id,
                None,
                ErrorInfo::new(
                    ErrorCode::MissingField,
                    "field `session_id` is required on admin sockets",
                ),
            );
            return None;
        };
        if !self.conn.holds(&session_id) {
            self.send_error(
                request_id,
                Some(&session_id),
                ErrorInfo::new(
                    ErrorCode::NotAllowed,
                    "take the session over before writing to its user",
                ),
            );
            return None;
        }
        Some(session_id)
    }
}

fn json<T: serde::Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or_default()
}

fn reply(
    conn: &AdminConn,
    kind: MessageType,
    request_id: Option<&str>,
    session_id: &str,
    data: serde_json::Value,
) {
    let data = if data.is_null() {
        serde_json::json!({})
    } else {
        data
    };
    conn.queue
        .push(outbound::reply(kind, request_id, Some(session_id), data).to_json());
}

/// Starts watching: the session's state first, then its live frames.
async fn watch(state: &GatewayState, conn: &AdminConn, request_id: Option<&str>, session_id: &str) -> bool {
    let messages = state.config.chatbox.admin.watch_messages;
    let detail = match takeover::session_detail(state, &conn.admin, session_id, messages).await {
        Ok(detail) => detail,
        Err(info) => {
            send_error(conn, request_id, Some(session_id), info);
            return false;
        }
    };
    if conn.start_watching(session_id) {
        state.hub.join(
            session_id,
            conn.conn_id,
            ListenerRole::Admin,
            Arc::clone(&conn.queue),
        );
        if let Err(e) = state.hub.attach(session_id).await {
            metrics::bus_error("subscribe");
            warn!(session_id, "cannot listen to the session: {e}");
        }
        let watcher = Watcher {
            admin_id: conn.admin.admin_id.clone(),
            admin_name: conn.admin.admin_name.clone(),
        };
        if let Err(e) = state
            .coordinator
            .watch(session_id, &watcher, state.config.chatbox.gateway.owner_ttl)
            .await
        {
            metrics::coordinator_error("watch");
            warn!(session_id, "cannot record the admin's presence: {e}");
        }
        info!(session_id, "admin watching");
    }
    let mut detail = detail;
    if let Ok(mut live) = state.coordinator.live_state(&[session_id.to_owned()]).await
        && let Some(live) = live.pop()
    {
        let presence = Presence::from(live);
        detail.session.watchers = presence.watchers;
        detail.session.assisting = presence.assisting;
    }
    reply(
        conn,
        MessageType::SessionState,
        request_id,
        session_id,
        json(&detail),
    );
    takeover::publish_presence(state, session_id).await;
    true
}

/// Stops watching; returns whether the socket watched the session.
async fn stop_watching(state: &GatewayState, conn: &AdminConn, session_id: &str) -> bool {
    if !conn.stop_watching(session_id) {
        return false;
    }
    state.hub.leave(session_id, conn.conn_id);
    if let Err(e) = state.coordinator.unwatch(session_id, &conn.admin.admin_id).await {
        metrics::coordinator_error("unwatch");
        warn!(
            session_id,
            "cannot clear the admin's presence (it expires by itself): {e}"
        );
    }
    takeover::publish_presence(state, session_id).await;
    true
}

async fn take_over(state: &GatewayState, conn: &AdminConn, request_id: Option<&str>, session_id: &str) {
    if !conn.watches(session_id) && !watch(state, conn, None, session_id).await {
        return;
    }
    match takeover::take_over(state, &conn.admin, session_id).await {
        Ok(taken) => {
            conn.set_held(session_id, true);
            reply(conn, MessageType::Takeover, request_id, session_id, json(&taken));
            takeover::publish_presence(state, session_id).await;
        }
        Err(info) => send_error(conn, request_id, Some(session_id), info),
    }
}

/// The admin's text for the user of a session they have taken over.
async fn say(
    state: Arc<GatewayState>,
    conn: Arc<AdminConn>,
    client_id: Option<String>,
    session_id: String,
    content: String,
) {
    if let Err(info) = inbound::admit(&state, &conn.admin.admin_id).await {
        send_error(&conn, client_id.as_deref(), Some(&session_id), info);
        return;
    }
    let message_id = client_id.clone().unwrap_or_else(new_message_id);
    let mut envelope = takeover::admin_envelope(
        &state,
        &conn.admin,
        &session_id,
        message_id,
        InboundBody::AdminMessage { content },
    );
    envelope.client_id = client_id;
    if let Err(info) = inbound::enqueue(&state, &envelope).await {
        send_error(&conn, envelope.client_id.as_deref(), Some(&session_id), info);
    }
}

/// Shows the admin's typing to the session's user, with their name.
fn typing(state: &Arc<GatewayState>, admin_name: &str, session_id: &str, active: bool) {
    let mut frame = outbound::typing(session_id, Sender::Admin, active);
    if let Some(metadata) = frame.metadata.as_mut() {
        metadata.insert("admin_name".to_owned(), admin_name.to_owned());
    }
    let frame = frame.to_json();
    let headers = Headers::new()
        .with(headers::TYPE, MessageType::TypingIndicator.as_str())
        .with(headers::AUDIENCE, Audience::All.as_str());
    let state = Arc::clone(state);
    let subject = state.subjects.outbound(session_id);
    tokio::spawn(async move {
        if let Err(e) = state.bus.publish(subject, headers, frame).await {
            metrics::bus_error("publish");
            debug!("admin typing indicator not forwarded: {e}");
        }
    });
}
