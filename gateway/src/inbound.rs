//! Client frames, once read: validated, answered or handed to the workers.
//!
//! A `ping` is answered at once, and so is a `reauth` (a fresh token that
//! keeps the socket open past the first one's expiry: [`crate::reauth`]). A `user_message`, `file_upload`,
//! `voice_message`, `model_select` or `help_request` is rate-limited (a token bucket shared by every pod, spent from leases: [`crate::rate_limit`]),
//! the session's `chat.out` subscription is made sure of, and the message
//! goes to `chat.in.<sid>` — accepted only once JetStream has stored it,
//! de-duplicated by the client's message id, so a client that resends
//! after an error never gets two answers. A `stop` goes to every worker at
//! once on `chat.stop.<sid>`. A `request_upload` is answered by a worker
//! with an upload slot (the file's bytes never pass here). Every refusal is an `error` frame with a
//! code and a sentence; the socket stays open.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chatbox_shared::bus::Headers;
use chatbox_shared::coordinator::RequestKind;
use chatbox_shared::envelope::{
    Audience, EndSession, ForwardedClaims, InboundBody, InboundEnvelope, ListSessions, RenameSession,
    SessionHistory, StopAnswer, StopReason, UploadSlotRequest, headers, rpc,
};
use chatbox_shared::ids::{answer_id, new_message_id};
use chatbox_shared::protocol::sessions::{HistoryPage, SessionPage, SessionSummary};
use chatbox_shared::protocol::uploads::{UploadRequest, UploadSlot};
use chatbox_shared::protocol::{
    ClientCommand, ClientFrame, ErrorCode, ErrorInfo, MessageType, ProtocolError, Sender, Timestamp,
    outbound, parse_client_frame,
};
use chatbox_shared::telemetry::propagation;
use tracing::{Instrument, debug, info_span, warn};

use crate::metrics;
use crate::rate_limit::Verdict;
use crate::reauth::{self, Expected};
use crate::registry::ConnHandle;
use crate::rpc_client;
use crate::state::GatewayState;

/// What a connection knows about itself while it handles frames.
pub(crate) struct ConnContext {
    /// The gateway.
    pub state: Arc<GatewayState>,
    /// The socket as the rest of the pod sees it (user, session, queue).
    pub conn: Arc<ConnHandle>,
    /// The user's display name, from the token.
    pub user_name: Option<String>,
    /// The user's token claims that go to the models with each message.
    pub claims: ForwardedClaims,
    /// When the last typing indicator was forwarded.
    pub last_typing: Option<Instant>,
}

impl ConnContext {
    fn send_error(&self, info: ErrorInfo) {
        metrics::protocol_error(info.code.as_str());
        let frame = outbound::error(Some(&self.conn.session_id), info).to_json();
        self.conn.queue.push(frame);
    }
}

/// Work that outlives the read of a frame; the connection keeps writing
/// while it runs but reads no further frame.
pub(crate) type Pending = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The frame, parsed and checked: valid, not an admin's command, and
/// about this connection's session (or, for requests about sessions, any
/// of the user's). A refused frame is answered with its error.
fn checked_frame(ctx: &ConnContext, text: &str) -> Option<ClientFrame> {
    let frame = match parse_client_frame(text, &ctx.state.limits) {
        Ok(frame) => frame,
        Err(ProtocolError { code, message }) => {
            debug!(%code, "refused a frame: {message}");
            ctx.send_error(ErrorInfo::new(code, message));
            return None;
        }
    };
    ctx.state.metrics.message_in(frame.command.kind());
    if frame.command.kind().is_admin_only() {
        ctx.send_error(ErrorInfo::new(
            ErrorCode::NotAllowed,
            format!(
                "`{}` is for admin consoles, on /chat/admin/ws with an admin token",
                frame.command.kind()
            ),
        ));
        return None;
    }
    let names_any_session = matches!(
        frame.command,
        ClientCommand::GetHistory { .. } | ClientCommand::RenameSession { .. }
    );
    if let Some(sid) = &frame.session_id
        && !names_any_session
        && *sid != ctx.conn.session_id
    {
        ctx.send_error(ErrorInfo::new(
            ErrorCode::InvalidField,
            "session_id does not match this connection's session; reconnect with ?session_id= to switch",
        ));
        return None;
    }
    Some(frame)
}

/// Handles a text frame; returns the work still to do, if any.
pub(crate) fn handle_text(ctx: &mut ConnContext, text: &str) -> Option<Pending> {
    let frame = checked_frame(ctx, text)?;
    match frame.command {
        ClientCommand::Ping => {
            ctx.conn.queue.push(outbound::pong().to_json());
            None
        }
        ClientCommand::Reauth { id, token } => {
            let expected = Expected::User(&ctx.conn.user_id);
            let answer = reauth::check(
                &ctx.state,
                expected,
                &ctx.conn.token_expiry,
                id.as_deref(),
                &token,
            );
            ctx.conn.queue.push(answer.to_json());
            None
        }
        ClientCommand::UserMessage {
            id,
            content,
            model_id,
            metadata,
        } => Some(Box::pin(accept(
            AcceptArgs::new(ctx),
            id,
            InboundBody::UserMessage {
                content,
                model_id,
                metadata,
            },
        ))),
        ClientCommand::ModelSelect { id, model_id } => Some(Box::pin(accept(
            AcceptArgs::new(ctx),
            id,
            InboundBody::ModelSelect { model_id },
        ))),
        ClientCommand::Stop { .. } => {
            stop_answer(ctx, StopReason::User);
            None
        }
        ClientCommand::TypingIndicator { active } => {
            typing(ctx, active);
            None
        }
        ClientCommand::FileUpload { id, file_id, content } => Some(Box::pin(accept(
            AcceptArgs::new(ctx),
            id,
            InboundBody::FileUpload { file_id, content },
        ))),
        ClientCommand::VoiceMessage { id, file_id } => Some(Box::pin(accept(
            AcceptArgs::new(ctx),
            id,
            InboundBody::VoiceMessage { file_id },
        ))),
        ClientCommand::RequestUpload { id, upload } => {
            Some(Box::pin(request_upload(AcceptArgs::new(ctx), id, upload)))
        }
        ClientCommand::HelpRequest { id, content } => Some(Box::pin(accept(
            AcceptArgs::new(ctx),
            id,
            InboundBody::HelpRequest { content },
        ))),
        // Refused above.
        ClientCommand::Watch { .. }
        | ClientCommand::Unwatch { .. }
        | ClientCommand::Takeover { .. }
        | ClientCommand::Release { .. } => None,
        command @ (ClientCommand::ListSessions { .. }
        | ClientCommand::GetHistory { .. }
        | ClientCommand::RenameSession { .. }
        | ClientCommand::EndSession { .. }) => Some(Box::pin(session_request(AcceptArgs::new(ctx), command))),
    }
}

/// Answers `request_upload` with an upload slot from a worker. Slots count
/// against the user's message rate: each one is a file to come.
async fn request_upload(args: AcceptArgs, request_id: Option<String>, upload: UploadRequest) {
    let state = &args.state;
    let conn = &args.conn;
    let sid = conn.session_id.as_str();
    let frame = match admit(state, &conn.user_id).await {
        Err(info) => outbound::error_reply(request_id.as_deref(), Some(sid), info),
        Ok(()) => {
            let request = UploadSlotRequest {
                user_id: conn.user_id.clone(),
                session_id: sid.to_owned(),
                upload,
            };
            let answer: Result<UploadSlot, _> =
                rpc_client::call(state, rpc::UPLOAD_SLOT, &conn.user_id, &request).await;
            match answer {
                Ok(slot) => {
                    let mut m = outbound::reply(
                        MessageType::UploadSlot,
                        request_id.as_deref(),
                        Some(sid),
                        json(&slot),
                    );
                    m.file_id = Some(slot.file_id);
                    m
                }
                Err(info) => {
                    metrics::protocol_error(info.code.as_str());
                    outbound::error_reply(request_id.as_deref(), Some(sid), info)
                }
            }
        }
    };
    conn.queue.push(frame.to_json());
}

/// Page size of `list_sessions` when the client names none.
const DEFAULT_SESSIONS_PAGE: usize = 20;
/// Page size of `get_history` when the client names none.
const DEFAULT_HISTORY_PAGE: usize = 50;

/// Answers a request about sessions with a worker's help.
async fn session_request(args: AcceptArgs, command: ClientCommand) {
    let state = &args.state;
    let conn = &args.conn;
    let user_id = conn.user_id.clone();
    let (request_id, session_id, result) = match command {
        ClientCommand::ListSessions { id, page } => {
            let request = ListSessions {
                user_id: user_id.clone(),
                limit: page.limit.unwrap_or(DEFAULT_SESSIONS_PAGE),
                cursor: page.cursor,
            };
            let answer: Result<SessionPage, _> =
                rpc_client::call(state, rpc::LIST_SESSIONS, &user_id, &request).await;
            (
                id,
                None,
                answer.map(|page| (MessageType::SessionList, json(&page), None)),
            )
        }
        ClientCommand::GetHistory { id, session_id, page } => {
            let session_id = session_id.unwrap_or_else(|| conn.session_id.clone());
            if let Err(info) = state.requests.admit(RequestKind::History, &user_id).await {
                return refuse_request(conn, id, &session_id, info);
            }
            let request = SessionHistory {
                user_id: user_id.clone(),
                session_id: session_id.clone(),
                limit: page.limit.unwrap_or(DEFAULT_HISTORY_PAGE),
                cursor: page.cursor,
            };
            let answer: Result<HistoryPage, _> =
                rpc_client::call(state, rpc::SESSION_HISTORY, &user_id, &request).await;
            (
                id,
                Some(session_id),
                answer.map(|page| (MessageType::History, json(&page), None)),
            )
        }
        ClientCommand::RenameSession { id, session_id, name } => {
            let session_id = session_id.unwrap_or_else(|| conn.session_id.clone());
            if let Err(info) = state.requests.admit(RequestKind::Rename, &user_id).await {
                return refuse_request(conn, id, &session_id, info);
            }
            let request = RenameSession {
                user_id: user_id.clone(),
                session_id: session_id.clone(),
                name,
            };
            let answer: Result<SessionSummary, _> =
                rpc_client::call(state, rpc::RENAME_SESSION, &user_id, &request).await;
            let renamed = answer.map(|s| (MessageType::SessionRenamed, json(&s), Some(s.name)));
            (id, Some(session_id), renamed)
        }
        ClientCommand::EndSession { id } => {
            let request = EndSession {
                user_id: user_id.clone(),
                session_id: conn.session_id.clone(),
            };
            // The worker closes this socket (with a `connection_status` that
            // says the session ended); only a failure needs an answer here.
            let answer: Result<SessionSummary, _> =
                rpc_client::call(state, rpc::END_SESSION, &user_id, &request).await;
            match answer {
                Ok(_) => return,
                Err(e) => (id, Some(conn.session_id.clone()), Err(e)),
            }
        }
        _ => return,
    };
    let frame = match result {
        Ok((kind, data, content)) => {
            let mut m = outbound::reply(kind, request_id.as_deref(), session_id.as_deref(), data);
            m.content = content;
            m
        }
        Err(info) => {
            metrics::protocol_error(info.code.as_str());
            outbound::error_reply(request_id.as_deref(), session_id.as_deref(), info)
        }
    };
    conn.queue.push(frame.to_json());
}

/// Answers a request refused by its rate limit.
fn refuse_request(conn: &ConnHandle, request_id: Option<String>, session_id: &str, info: ErrorInfo) {
    metrics::protocol_error(info.code.as_str());
    let frame = outbound::error_reply(request_id.as_deref(), Some(session_id), info);
    conn.queue.push(frame.to_json());
}

fn json<T: serde::Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or_default()
}

/// Answers a binary frame: the protocol is JSON text.
pub(crate) fn refuse_binary(ctx: &ConnContext) {
    ctx.send_error(ErrorInfo::new(
        ErrorCode::InvalidMessage,
        "binary frames are not part of the protocol; send JSON text frames",
    ));
}

/// What accepting a message needs, owned, so the work can outlive the read.
struct AcceptArgs {
    state: Arc<GatewayState>,
    conn: Arc<ConnHandle>,
    user_name: Option<String>,
    claims: ForwardedClaims,
}

impl AcceptArgs {
    fn new(ctx: &ConnContext) -> Self {
        AcceptArgs {
            state: Arc::clone(&ctx.state),
            conn: Arc::clone(&ctx.conn),
            user_name: ctx.user_name.clone(),
            claims: ctx.claims.clone(),
        }
    }

    fn send_error(&self, info: ErrorInfo) {
        metrics::protocol_error(info.code.as_str());
        let frame = outbound::error(Some(&self.conn.session_id), info).to_json();
        self.conn.queue.push(frame);
    }
}

/// Hands a message for the session's queue to the workers: rate-limited,
/// stored by JetStream before it counts as accepted.
async fn accept(args: AcceptArgs, client_id: Option<String>, body: InboundBody) {
    let message_id = client_id.clone().unwrap_or_else(new_message_id);
    let span = info_span!("accept_message", message_id = %message_id);
    async move {
        let state = &args.state;
        if let Err(info) = admit(state, &args.conn.user_id).await {
            args.send_error(info);
            return;
        }
        if let Err(e) = state.hub.attach(&args.conn.session_id).await {
            metrics::bus_error("subscribe");
            warn!("cannot listen for the answer: {e}");
        }
        let envelope = InboundEnvelope {
            session_id: args.conn.session_id.clone(),
            user_id: args.conn.user_id.clone(),
            user_name: args.user_name.clone(),
            claims: args.claims.clone(),
            sender: Sender::User,
            message_id,
            client_id,
            body,
            received_at: Timestamp::now(),
            gateway: state.pod_id.clone(),
        };
        match enqueue(state, &envelope).await {
            Ok(()) if envelope.body.is_answered() => {
                // Durable now: the user hears so at once, however long the
                // turn waits for a worker.
                let sid = envelope.session_id.as_str();
                let answer = answer_id(sid, &envelope.message_id);
                let queued = outbound::queued(sid, envelope.client_id.as_deref(), &answer);
                args.conn.queue.push(queued.to_json());
            }
            Ok(()) => {}
            Err(info) => args.send_error(info),
        }
    }
    .instrument(span)
    .await
}

/// Takes a token for the sender's message from their lease of the bucket
/// shared by every pod ([`crate::rate_limit`]); the error to send when
/// there is none.
pub(crate) async fn admit(state: &GatewayState, sender_id: &str) -> Result<(), ErrorInfo> {
    match state.limiter.admit(sender_id).await {
        Ok(Verdict::Allowed) => Ok(()),
        Ok(Verdict::Limited { retry_after }) => {
            state.metrics.rate_limited.increment(1);
            let limit = state.limiter.limit();
            Err(ErrorInfo::new(
                ErrorCode::RateLimited,
                format!(
                    "you are sending messages too fast (at most {} per {}); wait a moment",
                    limit.capacity,
                    humantime::format_duration(limit.window)
                ),
            )
            .retry_after(retry_after))
        }
        Err(e) => {
            // Fail open: a coordinator hiccup should not silence chat.
            metrics::coordinator_error("admit_message");
            warn!("rate limit unavailable, message allowed: {e}");
            Ok(())
        }
    }
}

/// Puts a message on its session's queue (`chat.in.<sid>`), de-duplicated
/// by its id: accepted once JetStream has stored it.
pub(crate) async fn enqueue(state: &GatewayState, envelope: &InboundEnvelope) -> Result<(), ErrorInfo> {
    let unavailable = || {
        ErrorInfo::new(
            ErrorCode::ServiceUnavailable,
            "your message could not be accepted right now; send it again (with the same id)",
        )
        .retry_after(Duration::from_secs(1))
    };
    let payload = serde_json::to_vec(envelope).map_err(|_| unavailable())?;
    let sid = envelope.session_id.as_str();
    let mut headers = Headers::new()
        .with(headers::SESSION, sid)
        .with(headers::USER, envelope.user_id.as_str());
    propagation::inject_current(&mut headers);
    let started = tokio::time::Instant::now();
    match state
        .bus
        .enqueue(
            state.subjects.inbound(sid),
            format!("{sid}:{}", envelope.message_id),
            headers,
            Bytes::from(payload),
        )
        .await
    {
        Ok(enqueued) => {
            state
                .metrics
                .enqueue_seconds
                .record(started.elapsed().as_secs_f64());
            if enqueued.duplicate {
                debug!("duplicate message id; already accepted");
            }
            Ok(())
        }
        Err(e) => {
            metrics::bus_error("enqueue");
            warn!(kind = envelope.body.kind(), "message not accepted: {e}");
            Err(unavailable())
        }
    }
}

/// Stops the answer streaming to the connection's session, wherever it
/// runs: every worker hears `chat.stop.<sid>`.
pub(crate) fn stop_answer(ctx: &ConnContext, reason: StopReason) {
    let stop = StopAnswer {
        session_id: ctx.conn.session_id.clone(),
        user_id: ctx.conn.user_id.clone(),
        reason,
        at: Timestamp::now(),
    };
    let Ok(payload) = serde_json::to_vec(&stop) else {
        return;
    };
    let subject = ctx.state.subjects.stop(&ctx.conn.session_id);
    let state = Arc::clone(&ctx.state);
    let headers = Headers::new().with(headers::SESSION, ctx.conn.session_id.as_str());
    tokio::spawn(async move {
        if let Err(e) = state.bus.publish(subject, headers, Bytes::from(payload)).await {
            metrics::bus_error("publish");
            warn!("cannot stop the answer: {e}");
        }
    });
}

/// Forwards the user's typing state to admins watching; at most one per
/// second per socket.
fn typing(ctx: &mut ConnContext, active: bool) {
    let now = Instant::now();
    if ctx
        .last_typing
        .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
        && active
    {
        return;
    }
    ctx.last_typing = Some(now);
    let frame = outbound::typing(&ctx.conn.session_id, Sender::User, active).to_json();
    let headers = Headers::new()
        .with(headers::TYPE, MessageType::TypingIndicator.as_str())
        .with(headers::AUDIENCE, Audience::Admins.as_str());
    let state = Arc::clone(&ctx.state);
    let subject = state.subjects.outbound(&ctx.conn.session_id);
    tokio::spawn(async move {
        if let Err(e) = state.bus.publish(subject, headers, frame).await {
            metrics::bus_error("publish");
            debug!("typing indicator not forwarded: {e}");
        }
    });
}
