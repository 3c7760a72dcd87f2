//! Asking workers: `chat.rpc.<method>` requests, answered by one worker of
//! the `workers` queue group, with errors already in the client protocol's
//! terms.

use std::time::Duration;

use bytes::Bytes;
use chatbox_shared::bus::Headers;
use chatbox_shared::envelope::{RpcReply, headers};
use chatbox_shared::protocol::{ErrorCode, ErrorInfo};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::warn;

use crate::metrics;
use crate::state::GatewayState;

/// The error when no worker answers.
pub(crate) fn unavailable() -> ErrorInfo {
    ErrorInfo::new(
        ErrorCode::ServiceUnavailable,
        "no chat worker is available right now; try again shortly",
    )
    .retry_after(Duration::from_secs(2))
}

/// Calls `method` for `user_id` and decodes the answer.
pub(crate) async fn call<Req, Resp>(
    state: &GatewayState,
    method: &str,
    user_id: &str,
    request: &Req,
) -> Result<Resp, ErrorInfo>
where
    Req: Serialize,
    Resp: DeserializeOwned,
{
    let payload = Bytes::from(serde_json::to_vec(request).map_err(|_| unavailable())?);
    let reply = state
        .bus
        .request(
            state.subjects.rpc(method),
            Headers::new().with(headers::USER, user_id),
            payload,
            state.config.chatbox.gateway.rpc_timeout,
        )
        .await
        .map_err(|e| {
            metrics::bus_error("rpc");
            warn!(method, "rpc failed: {e}");
            unavailable()
        })?;
    match serde_json::from_slice::<RpcReply<Resp>>(&reply.payload) {
        Ok(RpcReply::Ok(value)) => Ok(value),
        Ok(RpcReply::Error(e)) => Err(ErrorInfo::new(e.code, e.message)),
        Err(e) => {
            warn!(method, "unreadable rpc answer: {e}");
            Err(unavailable())
        }
    }
}
