//! What an admin does to a session, the same over the admin socket and
//! over HTTP: take it over, release it, and tell every watching admin who
//! is there (`presence`). Every action is logged with the admin's id.

use std::sync::Arc;

use bytes::Bytes;
use chatbox_shared::auth::Identity;
use chatbox_shared::bus::Headers;
use chatbox_shared::coordinator::{AdminClaim, AdminHolder};
use chatbox_shared::envelope::{
    Audience, InboundBody, InboundEnvelope, StopAnswer, StopReason, TakeoverEnd, headers, rpc,
};
use chatbox_shared::protocol::admin::{AdminSessionDetail, AdminSessionRequest, Presence};
use chatbox_shared::protocol::{ErrorCode, ErrorInfo, MessageType, Sender, Timestamp, outbound};
use serde::Serialize;
use tracing::{info, warn};

use crate::state::GatewayState;
use crate::{inbound, metrics, rpc_client};

/// An admin, from their token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Admin {
    /// Their user id (`sub`).
    pub admin_id: String,
    /// The name users see ("assisted by <name>"): the token's `name`, else
    /// the id.
    pub admin_name: String,
}

impl Admin {
    /// The admin a token names.
    pub(crate) fn from_identity(identity: &Identity) -> Self {
        Admin {
            admin_id: identity.user_id.clone(),
            admin_name: identity
                .name
                .clone()
                .filter(|n| !n.trim().is_empty())
                .unwrap_or_else(|| identity.user_id.clone()),
        }
    }
}

/// A takeover as its admin hears about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct TakeoverState {
    /// The session.
    pub session_id: String,
    /// The admin holding it.
    pub admin_id: String,
    /// Their name.
    pub admin_name: String,
    /// When it began.
    pub since: Timestamp,
    /// `true` when the admin already held it (another tab, a reconnect).
    pub resumed: bool,
}

impl TakeoverState {
    fn new(session_id: &str, holder: AdminHolder, resumed: bool) -> Self {
        TakeoverState {
            session_id: session_id.to_owned(),
            admin_id: holder.admin_id,
            admin_name: holder.admin_name,
            since: holder.since,
            resumed,
        }
    }
}

fn unavailable() -> ErrorInfo {
    ErrorInfo::new(
        ErrorCode::ServiceUnavailable,
        "the chat service cannot reach its coordinator right now; try again shortly",
    )
    .retry_after(std::time::Duration::from_secs(2))
}

/// A session's detail with its `messages` latest messages.
pub(crate) async fn session_detail(
    state: &GatewayState,
    admin: &Admin,
    session_id: &str,
    messages: usize,
) -> Result<AdminSessionDetail, ErrorInfo> {
    let request = AdminSessionRequest {
        session_id: session_id.to_owned(),
        messages,
    };
    rpc_client::call(state, rpc::ADMIN_SESSION, &admin.admin_id, &request).await
}

/// Takes a session over: the takeover lock, a stop for the answer that may
/// be streaming, and `admin_join` on the session's queue. The same admin
/// taking it again resumes their takeover.
pub(crate) async fn take_over(
    state: &GatewayState,
    admin: &Admin,
    session_id: &str,
) -> Result<TakeoverState, ErrorInfo> {
    let detail = session_detail(state, admin, session_id, 1).await?;
    if !detail.session.summary.is_active {
        return Err(ErrorInfo::new(
            ErrorCode::SessionEnded,
            "this session has ended; there is no one to assist",
        ));
    }
    let now = Timestamp::now();
    let grace = state.config.chatbox.admin.takeover_grace;
    let claim = state
        .coordinator
        .claim_admin(session_id, &admin.admin_id, &admin.admin_name, now, grace)
        .await
        .map_err(|e| {
            metrics::coordinator_error("claim_admin");
            warn!(session_id, admin_id = %admin.admin_id, "cannot take the takeover lock: {e}");
            unavailable()
        })?;
    let holder = match claim {
        AdminClaim::HeldBy(holder) => {
            info!(session_id, admin_id = %admin.admin_id, holder = %holder.admin_id, "takeover refused: another admin assists");
            return Err(ErrorInfo::new(
                ErrorCode::SessionLocked,
                format!(
                    "{} ({}) has been assisting this session since {}; one admin at a time",
                    holder.admin_name, holder.admin_id, holder.since
                ),
            ));
        }
        AdminClaim::Resumed(holder) => {
            info!(session_id, admin_id = %admin.admin_id, "takeover resumed");
            return Ok(TakeoverState::new(session_id, holder, true));
        }
        AdminClaim::Taken(holder) => holder,
    };
    // Stop the answer streaming now (it is kept, marked `admin_takeover`);
    // the join waits in the session's queue behind it.
    stop_answer(state, session_id, &admin.admin_id, now);
    let join = InboundBody::AdminJoin {
        admin_id: holder.admin_id.clone(),
        admin_name: holder.admin_name.clone(),
        since: holder.since,
    };
    let message_id = holder.join_message_id(session_id);
    if let Err(info) =
        inbound::enqueue(state, &admin_envelope(state, admin, session_id, message_id, join)).await
    {
        // Without its join the takeover would be invisible: give it back.
        // If even that fails, the lock lapses after `takeover_grace`.
        if let Err(e) = state.coordinator.release_admin(session_id, &admin.admin_id).await {
            warn!(
                session_id,
                "cannot give back the takeover lock; it lapses by itself: {e}"
            );
        }
        return Err(info);
    }
    state.metrics.takeovers.increment(1);
    info!(session_id, admin_id = %admin.admin_id, admin_name = %admin.admin_name, "session taken over");
    Ok(TakeoverState::new(session_id, holder, false))
}

/// Hands a session back to the assistant: the lock is released and
/// `admin_leave` goes on the session's queue.
pub(crate) async fn release(
    state: &GatewayState,
    admin: &Admin,
    session_id: &str,
) -> Result<TakeoverState, ErrorInfo> {
    let released = state
        .coordinator
        .release_admin(session_id, &admin.admin_id)
        .await
        .map_err(|e| {
            metrics::coordinator_error("release_admin");
            warn!(session_id, admin_id = %admin.admin_id, "cannot release the takeover lock: {e}");
            unavailable()
        })?;
    let Some(holder) = released else {
        return Err(ErrorInfo::new(
            ErrorCode::NotAllowed,
            "you are not assisting this session (it may have been released already)",
        ));
    };
    leave(state, admin, session_id, &holder, TakeoverEnd::Released).await?;
    info!(session_id, admin_id = %admin.admin_id, "session released");
    Ok(TakeoverState::new(session_id, holder, false))
}

/// Puts the end of a takeover on the session's queue. Its id is the
/// takeover's, so a release and a worker noticing the admin gone never
/// both end it.
async fn leave(
    state: &GatewayState,
    admin: &Admin,
    session_id: &str,
    holder: &AdminHolder,
    reason: TakeoverEnd,
) -> Result<(), ErrorInfo> {
    let body = InboundBody::AdminLeave {
        admin_id: holder.admin_id.clone(),
        admin_name: holder.admin_name.clone(),
        since: holder.since,
        reason,
    };
    let message_id = holder.leave_message_id(session_id);
    inbound::enqueue(state, &admin_envelope(state, admin, session_id, message_id, body)).await
}

/// An envelope from an admin for a session's queue.
pub(crate) fn admin_envelope(
    state: &GatewayState,
    admin: &Admin,
    session_id: &str,
    message_id: String,
    body: InboundBody,
) -> InboundEnvelope {
    InboundEnvelope {
        session_id: session_id.to_owned(),
        user_id: admin.admin_id.clone(),
        user_name: Some(admin.admin_name.clone()),
        claims: Default::default(),
        sender: Sender::Admin,
        message_id,
        client_id: None,
        body,
        received_at: Timestamp::now(),
        gateway: state.pod_id.clone(),
    }
}

fn stop_answer(state: &GatewayState, session_id: &str, admin_id: &str, at: Timestamp) {
    let stop = StopAnswer {
        session_id: session_id.to_owned(),
        user_id: admin_id.to_owned(),
        reason: StopReason::Takeover,
        at,
    };
    let Ok(payload) = serde_json::to_vec(&stop) else {
        return;
    };
    let headers = Headers::new().with(headers::SESSION, session_id);
    let subject = state.subjects.stop(session_id);
    let bus = Arc::clone(&state.bus);
    tokio::spawn(async move {
        if let Err(e) = bus.publish(subject, headers, Bytes::from(payload)).await {
            metrics::bus_error("publish");
            warn!("cannot stop the answer for the takeover: {e}");
        }
    });
}

/// Tells every admin watching a session (on any gateway) who is there now.
pub(crate) async fn publish_presence(state: &GatewayState, session_id: &str) {
    let live = match state.coordinator.live_state(&[session_id.to_owned()]).await {
        Ok(mut live) => live.pop().unwrap_or_default(),
        Err(e) => {
            metrics::coordinator_error("live_state");
            warn!(session_id, "cannot read the session's presence: {e}");
            return;
        }
    };
    let data = serde_json::to_value(Presence::from(live)).unwrap_or_default();
    let frame = outbound::reply(MessageType::Presence, None, Some(session_id), data).to_json();
    let headers = Headers::new()
        .with(headers::TYPE, MessageType::Presence.as_str())
        .with(headers::AUDIENCE, Audience::Admins.as_str());
    if let Err(e) = state
        .bus
        .publish(state.subjects.outbound(session_id), headers, frame)
        .await
    {
        metrics::bus_error("publish");
        warn!(session_id, "cannot publish the session's presence: {e}");
    }
}
