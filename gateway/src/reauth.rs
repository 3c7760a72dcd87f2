//! `reauth`: a fresh token over an open socket.
//!
//! A socket lives no longer than its token: the keepalive closes it (4401
//! `token expired`) once `exp` plus the auth leeway has passed. A client
//! that holds a newer token sends it as `{"type":"reauth","token":"…"}`
//! first. The token is checked like the one the socket opened with, and
//! must name the same user (`sub`) — for an admin socket, an admin still.
//! The answer is `reauthenticated` with the new expiry, or an `error`
//! (`TOKEN_EXPIRED`, `INVALID_TOKEN`, `FORBIDDEN`) that leaves the socket on
//! its old token.

use chatbox_shared::protocol::{ErrorCode, ErrorInfo, Message, MessageType, outbound};
use tracing::info;

use crate::metrics;
use crate::registry::TokenExpiry;
use crate::state::GatewayState;

/// Whom the fresh token must name.
pub(crate) enum Expected<'a> {
    /// The user the socket belongs to.
    User(&'a str),
    /// The admin on an admin socket, who must still have the admin role.
    Admin(&'a str),
}

/// Checks `token` for the socket whose token expires at `expiry`; moves
/// the expiry when it is accepted. Returns the answer to send.
pub(crate) fn check(
    state: &GatewayState,
    expected: Expected<'_>,
    expiry: &TokenExpiry,
    request_id: Option<&str>,
    token: &str,
) -> Message {
    match validate(state, &expected, token) {
        Ok(expires_at) => {
            expiry.renew(expires_at);
            metrics::reauth("accepted");
            outbound::reply(
                MessageType::Reauthenticated,
                request_id,
                None,
                serde_json::json!({ "expires_at": expires_at }),
            )
        }
        Err((reason, info)) => {
            metrics::reauth(reason);
            metrics::protocol_error(info.code.as_str());
            outbound::error_reply(request_id, None, info)
        }
    }
}

fn validate(
    state: &GatewayState,
    expected: &Expected<'_>,
    token: &str,
) -> Result<u64, (&'static str, ErrorInfo)> {
    let identity = state.validator.validate(token).map_err(|e| {
        metrics::auth_failure(e.reason());
        (e.reason(), ErrorInfo::new(e.code(), e.to_string()))
    })?;
    let (user_id, admin) = match expected {
        Expected::User(user_id) => (*user_id, false),
        Expected::Admin(admin_id) => (*admin_id, true),
    };
    if identity.user_id != user_id {
        info!(user_id, "reauth refused: the new token names another user");
        return Err((
            "other_user",
            ErrorInfo::new(
                ErrorCode::Forbidden,
                "the new token names another user; a socket keeps the user it opened with (connect again to switch)",
            ),
        ));
    }
    let admin_role = &state.config.chatbox.auth.admin_role;
    if admin && !identity.has_role(admin_role) {
        return Err((
            "not_admin",
            ErrorInfo::new(
                ErrorCode::Forbidden,
                format!("the new token lacks the `{admin_role}` role this admin socket needs"),
            ),
        ));
    }
    Ok(identity.expires_at)
}
