//! One socket, from upgrade to close.
//!
//! Set-up: ask a worker to open or restore the session (`chat.rpc`), take
//! the session's ownership lock, close whatever socket held it before (the
//! kill switch), join the session's fan-out and say `connection_status`.
//!
//! Then one task per socket runs a loop that
//! * writes everything queued for the socket in one flush,
//! * reads client frames — one at a time: while a message is being
//!   accepted (rate limit, `chat.in`), reading pauses but writing goes on,
//! * sends WebSocket pings when the pod's keepalive asks for them,
//! * closes on order (kill switch, lost lock, slow consumer, idle client,
//!   expired token, shutdown), after a last `connection_status` that says
//!   why.
//!
//! On the way out it leaves the fan-out and releases the lock — only if it
//! still holds it — and lets the user's active session linger for the
//! reconnect timeout.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use bytes::Bytes;
use chatbox_shared::auth::Identity;
use chatbox_shared::bus::Headers;
use chatbox_shared::coordinator::{OwnerToken, RequestKind};
use chatbox_shared::envelope::{Control, KillReason, OpenSession, OpenedSession, StopReason, rpc};
use chatbox_shared::ids::is_valid_session_id;
use chatbox_shared::protocol::outbound::{self, StatusReason};
use chatbox_shared::protocol::{ErrorCode, ErrorInfo};
use futures_util::SinkExt;
use futures_util::future::OptionFuture;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::inbound::{self, ConnContext, Pending};
use crate::metrics;
use crate::registry::{ConnHandle, Liveness, TokenExpiry};
use crate::rpc_client;
use crate::send_queue::{CloseOrder, SendQueue};
use crate::session_hub::ListenerRole;
use crate::state::{ConnectionSlot, GatewayState};

/// How a socket ended, for logs and the disconnect metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    ClientClosed,
    ReadError,
    WriteError,
    TooLarge,
    Ordered(StatusReason),
}

impl Exit {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Exit::ClientClosed => "client_closed",
            Exit::ReadError => "read_error",
            Exit::WriteError => "write_error",
            Exit::TooLarge => "message_too_large",
            Exit::Ordered(reason) => reason.as_str(),
        }
    }
}

/// Runs a socket to its end. The socket comes boxed so the connection's
/// future — which lives as long as the socket — stays small.
pub(crate) fn run(
    state: Arc<GatewayState>,
    socket: Box<WebSocket>,
    identity: Identity,
    requested_session: SessionRequest,
    remote: SocketAddr,
    slot: ConnectionSlot,
) -> impl std::future::Future<Output = ()> + Send {
    let conn_id = state.next_conn_id.fetch_add(1, Ordering::Relaxed);
    let span = info_span!(
        "connection",
        pod_id = %state.pod_id,
        conn_id,
        user_id = %identity.user_id,
        session_id = tracing::field::Empty,
        %remote,
    );
    serve(state, socket, identity, requested_session, conn_id, slot).instrument(span)
}

async fn serve(
    state: Arc<GatewayState>,
    mut socket: Box<WebSocket>,
    identity: Identity,
    requested_session: SessionRequest,
    conn_id: u64,
    _slot: ConnectionSlot,
) {
    // Set-up and tear-down run once each; boxed, their state does not
    // weigh on what an idle socket costs.
    let conn = match Box::pin(join_session(&state, &identity, requested_session, conn_id)).await {
        Ok(conn) => conn,
        Err(info) => {
            Box::pin(refuse_socket(&mut socket, &state, info)).await;
            metrics::disconnect("open_failed");
            return;
        }
    };
    let mut ctx = ConnContext {
        state: Arc::clone(&state),
        conn: Arc::clone(&conn),
        user_name: identity.name,
        claims: identity.claims,
        last_typing: None,
    };
    let exit = socket_loop(&state, &mut socket, &mut ctx).await;
    drop(socket);
    Box::pin(leave_session(&state, &conn)).await;
    metrics::disconnect(exit.label());
    info!(reason = exit.label(), "disconnected");
}

/// Opens or restores the session (within the user's rate of socket
/// opens), takes its ownership lock, closes the socket that held it
/// before, and joins the session's fan-out.
async fn join_session(
    state: &GatewayState,
    identity: &Identity,
    requested_session: SessionRequest,
    conn_id: u64,
) -> Result<Arc<ConnHandle>, ErrorInfo> {
    state
        .requests
        .admit(RequestKind::SessionOpen, &identity.user_id)
        .await
        .inspect_err(|info| debug!(code = %info.code, "socket open refused: {}", info.message))?;
    let opened = open_session(state, identity, requested_session)
        .await
        .inspect_err(|info| {
            warn!(code = %info.code, "cannot open a session: {}", info.message);
        })?;
    let session_id = opened.session_id.clone();
    tracing::Span::current().record("session_id", session_id.as_str());

    let ttl = state.config.chatbox.gateway.owner_ttl;
    let claim = state
        .coordinator
        .claim_owner(&session_id, &state.pod_id, conn_id, ttl)
        .await
        .map_err(|e| {
            metrics::coordinator_error("claim_owner");
            warn!("cannot take the session's ownership lock: {e}");
            ErrorInfo::new(
                ErrorCode::ServiceUnavailable,
                "the chat service is not available right now; reconnect shortly",
            )
            .retry_after(Duration::from_secs(2))
        })?;
    if let Some(previous) = &claim.previous {
        kill(state, &session_id, previous).await;
    }
    if let Some(previous_session) = &opened.previous_session_id {
        match state.coordinator.owner(previous_session).await {
            Ok(Some(owner)) => kill(state, previous_session, &owner).await,
            Ok(None) => {}
            Err(e) => {
                metrics::coordinator_error("owner");
                warn!(
                    previous_session,
                    "cannot find the owner of the user's previous session: {e}"
                );
            }
        }
    }

    let queue = Arc::new(SendQueue::new(state.config.chatbox.websocket.send_queue_limit));
    let conn = Arc::new(ConnHandle {
        conn_id,
        user_id: identity.user_id.clone(),
        session_id,
        queue: Arc::clone(&queue),
        owner: claim.token,
        active_confirmed: AtomicBool::new(false),
        liveness: Liveness::at(state.clock.elapsed()),
        token_expiry: TokenExpiry::at(identity.expires_at),
    });
    state.registry.insert(conn_id, Arc::clone(&conn));
    if state.shutdown.is_cancelled() {
        // Shutdown began while this socket was being set up, after the
        // drain closed the registered ones.
        conn.close(shutdown_order(state, &conn.session_id));
    }
    if displaced(state, &conn).await {
        conn.close(kill_order(state, &conn.session_id));
    }
    state
        .hub
        .join(&conn.session_id, conn_id, ListenerRole::User, Arc::clone(&queue));
    if opened.restored {
        // An answer may be streaming for this session right now.
        if let Err(e) = state.hub.attach(&conn.session_id).await {
            metrics::bus_error("subscribe");
            warn!("cannot listen to the restored session: {e}");
        }
    }
    let status = if opened.restored {
        StatusReason::Restored
    } else {
        StatusReason::NewSession
    };
    let mut hello =
        outbound::connection_status(&conn.session_id, status, state.config.chatbox.reconnect_timeout);
    hello.model_id = Some(opened.model_id);
    hello.data = Some(serde_json::json!({ "models": opened.models }));
    queue.push(hello.to_json());
    state.metrics.connects.increment(1);
    info!(restored = opened.restored, "connected");
    Ok(conn)
}

/// Whether a newer socket of the user made another session the active one
/// while this one was being set up. Sockets opened at once (a burst of
/// `new_session=true`) each end the session before theirs; the newer one
/// closes the older one's socket by its lock, but it finds no lock, or no
/// registered socket, if the older one has not got that far yet. So each
/// socket looks once it is registered: of two sockets, either the newer
/// finds the older registered and closes it, or the older sees the newer
/// session active here — exactly one stays open, on the live session.
async fn displaced(state: &GatewayState, conn: &ConnHandle) -> bool {
    match state.coordinator.active_session(&conn.user_id).await {
        Ok(Some(active)) => active != conn.session_id,
        // Forgotten (a Redis restart): nothing newer to give way to.
        Ok(None) => false,
        Err(e) => {
            metrics::coordinator_error("active_session");
            warn!("cannot check that the session is still the user's active one: {e}");
            false
        }
    }
}

/// Leaves the fan-out and gives the session back.
async fn leave_session(state: &GatewayState, conn: &ConnHandle) {
    state.hub.leave(&conn.session_id, conn.conn_id);
    state.registry.remove(conn.conn_id);
    release(state, &conn.user_id, &conn.session_id, &conn.owner).await;
}

/// What the socket loop needs from whoever reads a socket's frames: the
/// user's connection ([`ConnContext`]) or an admin's.
pub(crate) trait FrameHandler {
    /// The socket's outbound queue.
    fn queue(&self) -> Arc<SendQueue>;
    /// Records that the client was heard from at `now` (gateway clock).
    fn heard(&self, now: Duration);
    /// Handles a text frame; returns the work still to do, if any.
    fn handle_text(&mut self, text: &str) -> Option<Pending>;
    /// Answers a binary frame.
    fn refuse_binary(&self);
    /// The client closed with 1000: it is done, not about to reconnect.
    fn closed_normally(&self);
    /// The session named in errors sent on this socket.
    fn session_id(&self) -> Option<&str>;
}

impl FrameHandler for ConnContext {
    fn queue(&self) -> Arc<SendQueue> {
        Arc::clone(&self.conn.queue)
    }

    fn heard(&self, now: Duration) {
        self.conn.liveness.heard(now);
    }

    fn handle_text(&mut self, text: &str) -> Option<Pending> {
        inbound::handle_text(self, text)
    }

    fn refuse_binary(&self) {
        inbound::refuse_binary(self);
    }

    fn closed_normally(&self) {
        // An answer still streaming is stopped (and kept); any other close
        // may be followed by a reconnect.
        inbound::stop_answer(self, StopReason::Left);
    }

    fn session_id(&self) -> Option<&str> {
        Some(&self.conn.session_id)
    }
}

/// Reads and writes a socket until it closes; says how it ended.
pub(crate) async fn socket_loop(
    state: &GatewayState,
    socket: &mut WebSocket,
    handler: &mut impl FrameHandler,
) -> Exit {
    let write_wait = state.config.chatbox.websocket.write_wait;
    let queue = handler.queue();
    let mut out: Vec<Bytes> = Vec::new();
    let mut pending: Option<Pending> = None;
    loop {
        let drained = queue.drain_into(&mut out);
        if (!out.is_empty() || drained.ping)
            && let Err(e) = Box::pin(write_frames(socket, &mut out, drained.ping, write_wait)).await
        {
            debug!("write failed: {e}");
            return Exit::WriteError;
        }
        if let Some(order) = drained.close {
            Box::pin(send_close(socket, &order, write_wait)).await;
            return Exit::Ordered(order.reason);
        }
        tokio::select! {
            biased;
            _ = queue.ready() => {}
            Some(()) = OptionFuture::from(pending.as_mut()), if pending.is_some() => {
                pending = None;
            }
            frame = socket.recv(), if pending.is_none() => {
                let Some(frame) = frame else { return Exit::ClientClosed };
                handler.heard(state.clock.elapsed());
                match frame {
                    Ok(Message::Text(text)) => pending = handler.handle_text(text.as_str()),
                    Ok(Message::Binary(_)) => handler.refuse_binary(),
                    Ok(Message::Ping(_) | Message::Pong(_)) => {}
                    Ok(Message::Close(close)) => {
                        if close.is_some_and(|c| c.code == 1000) {
                            handler.closed_normally();
                        }
                        return Exit::ClientClosed;
                    }
                    Err(e) if is_too_large(&e) => {
                        Box::pin(refuse_too_large(socket, state, handler.session_id())).await;
                        return Exit::TooLarge;
                    }
                    Err(_) => return Exit::ReadError,
                }
            }
        }
    }
}

/// A frame over `max_message_size` is fatal: the error, then close 1009.
async fn refuse_too_large(socket: &mut WebSocket, state: &GatewayState, session_id: Option<&str>) {
    let ws = &state.config.chatbox.websocket;
    metrics::protocol_error(ErrorCode::MessageTooLarge.as_str());
    let info = ErrorInfo::new(
        ErrorCode::MessageTooLarge,
        format!("frames are limited to {} bytes", ws.max_message_size),
    )
    .fatal();
    let frame = outbound::error(session_id, info).to_json();
    send_close_with(socket, Some(frame), 1009, "message too large", ws.write_wait).await;
}

async fn write_frames(
    socket: &mut WebSocket,
    batch: &mut Vec<Bytes>,
    ping: bool,
    write_wait: Duration,
) -> Result<(), String> {
    let write = async {
        if ping {
            socket
                .feed(Message::Ping(Bytes::new()))
                .await
                .map_err(|e| e.to_string())?;
        }
        for frame in batch.drain(..) {
            match Utf8Bytes::try_from(frame) {
                Ok(text) => socket
                    .feed(Message::Text(text))
                    .await
                    .map_err(|e| e.to_string())?,
                Err(_) => warn!("dropped an outbound frame that is not UTF-8"),
            }
        }
        socket.flush().await.map_err(|e| e.to_string())
    };
    match tokio::time::timeout(write_wait, write).await {
        Ok(result) => result,
        Err(_) => {
            batch.clear();
            Err(format!("write took longer than {write_wait:?}"))
        }
    }
}

async fn send_close(socket: &mut WebSocket, order: &CloseOrder, write_wait: Duration) {
    let (code, reason) = (order.reason.close_code(), order.reason.close_reason());
    send_close_with(socket, order.last_frame.clone(), code, reason, write_wait).await;
}

/// Sends `last_frame` (if any), then a close frame, then waits briefly for
/// the client's close.
async fn send_close_with(
    socket: &mut WebSocket,
    last_frame: Option<Bytes>,
    code: u16,
    reason: &str,
    write_wait: Duration,
) {
    let close = async {
        if let Some(frame) = last_frame
            && let Ok(text) = Utf8Bytes::try_from(frame)
        {
            socket.feed(Message::Text(text)).await?;
        }
        socket
            .send(Message::Close(Some(CloseFrame {
                code,
                reason: Utf8Bytes::from(reason),
            })))
            .await
    };
    if !matches!(tokio::time::timeout(write_wait, close).await, Ok(Ok(()))) {
        return;
    }
    // The closing handshake: give the client a moment to read what is left
    // and answer with its own close, so the connection ends with a FIN
    // rather than a reset that could cut off the last frames. A client
    // that does not answer in time is simply let go.
    let _ = tokio::time::timeout(CLOSE_HANDSHAKE_WAIT, async {
        while let Some(Ok(message)) = socket.recv().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

/// How long a closing socket waits for the client's close frame.
const CLOSE_HANDSHAKE_WAIT: Duration = Duration::from_secs(1);

fn is_too_large(error: &axum::Error) -> bool {
    use std::error::Error as _;
    use tokio_tungstenite::tungstenite::Error as WsError;
    error
        .source()
        .and_then(|e| e.downcast_ref::<WsError>())
        .is_some_and(|e| matches!(e, WsError::Capacity(_)))
}

/// Sends an error and closes a socket that never got a session: 4004 for
/// a session that is not there (connect without it), 1013 otherwise (try
/// again later).
async fn refuse_socket(socket: &mut WebSocket, state: &GatewayState, info: ErrorInfo) {
    let (code, reason) = match info.code {
        ErrorCode::SessionNotFound => (4004, "session not found"),
        _ => (1013, "try again later"),
    };
    let frame = outbound::error(None, info).to_json();
    let write_wait = state.config.chatbox.websocket.write_wait;
    send_close_with(socket, Some(frame), code, reason, write_wait).await;
}

/// Which session a socket asks for.
#[derive(Debug, Clone, Default)]
pub(crate) struct SessionRequest {
    /// The session to resume (`?session_id=`).
    pub session_id: Option<String>,
    /// Start a new session (`?new_session=true`).
    pub new_session: bool,
}

/// Asks a worker for the session this socket belongs to.
async fn open_session(
    state: &GatewayState,
    identity: &Identity,
    requested: SessionRequest,
) -> Result<OpenedSession, ErrorInfo> {
    let request = OpenSession {
        user_id: identity.user_id.clone(),
        requested_session_id: requested.session_id,
        new_session: requested.new_session,
    };
    let opened: OpenedSession =
        rpc_client::call(state, rpc::OPEN_SESSION, &identity.user_id, &request).await?;
    if is_valid_session_id(&opened.session_id) {
        Ok(opened)
    } else {
        warn!("session.open answered an invalid session id");
        Err(rpc_client::unavailable())
    }
}

/// Closes the socket that held a session before this one (kill switch).
async fn kill(state: &GatewayState, session_id: &str, owner: &OwnerToken) {
    if owner.pod_id == state.pod_id {
        if let Some(conn) = state.registry.get(owner.conn_id) {
            state.metrics.kills.increment(1);
            conn.close(kill_order(state, session_id));
        }
        return;
    }
    let kill = Control::Kill {
        conn_id: owner.conn_id,
        session_id: session_id.to_owned(),
        reason: KillReason::ConnectedElsewhere,
    };
    let Ok(payload) = serde_json::to_vec(&kill) else {
        return;
    };
    if let Err(e) = state
        .bus
        .publish(
            state.subjects.control(&owner.pod_id),
            Headers::new(),
            Bytes::from(payload),
        )
        .await
    {
        metrics::bus_error("publish_control");
        warn!(pod = %owner.pod_id, "cannot send the kill switch: {e}");
    }
}

/// The close order of a socket at shutdown.
pub(crate) fn shutdown_order(state: &GatewayState, session_id: &str) -> CloseOrder {
    status_order(state, session_id, StatusReason::ServerShutdown)
}

/// A close order that tells the client why with a `connection_status`.
pub(crate) fn status_order(state: &GatewayState, session_id: &str, reason: StatusReason) -> CloseOrder {
    CloseOrder {
        reason,
        last_frame: Some(
            outbound::connection_status(session_id, reason, state.config.chatbox.reconnect_timeout).to_json(),
        ),
    }
}

/// A close order for an admin socket (which has no session of its own).
pub(crate) fn admin_close_order(state: &GatewayState, reason: StatusReason) -> CloseOrder {
    let mut status = outbound::connection_status("", reason, state.config.chatbox.reconnect_timeout);
    status.session_id = None;
    CloseOrder {
        reason,
        last_frame: Some(status.to_json()),
    }
}

/// The close order of a socket whose session was opened elsewhere.
pub(crate) fn kill_order(state: &GatewayState, session_id: &str) -> CloseOrder {
    status_order(state, session_id, StatusReason::ConnectedElsewhere)
}

/// Releases the lock if this socket still holds it, and lets the user's
/// active session linger for the reconnect timeout.
async fn release(state: &GatewayState, user_id: &str, session_id: &str, token: &OwnerToken) {
    match state.coordinator.release_owner(session_id, token).await {
        Ok(true) => {
            let linger = Some(state.config.chatbox.reconnect_timeout);
            if let Err(e) = state
                .coordinator
                .linger_active_session(user_id, session_id, linger)
                .await
            {
                metrics::coordinator_error("linger_active_session");
                warn!("cannot start the reconnect window: {e}");
            }
        }
        Ok(false) => debug!("ownership already moved on; nothing to release"),
        Err(e) => {
            metrics::coordinator_error("release_owner");
            warn!("cannot release the ownership lock (it expires by itself): {e}");
        }
    }
}
