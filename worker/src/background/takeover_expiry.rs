//! Takeovers whose admin is gone. A takeover lock outlives its admin's
//! socket by the grace period; when it has expired and the takeover is
//! still open in the audit log, the admin did not come back: the workers
//! put an `admin_leave` (reason `disconnected`) on the session's queue, so
//! the user is told and the assistant answers again. The leave carries the
//! takeover's own id, so however many workers notice, and even if the
//! admin's release raced it, the takeover ends once.

use chatbox_shared::periodic::{FirstPass, every};
use std::sync::Arc;

use bytes::Bytes;
use chatbox_shared::bus::Headers;
use chatbox_shared::coordinator::AdminHolder;
use chatbox_shared::envelope::{InboundBody, InboundEnvelope, TakeoverEnd, headers};
use chatbox_shared::protocol::{Sender, Timestamp};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::metrics;
use crate::state::WorkerState;
use crate::store::TakeoverRecord;

/// Open takeovers looked at per pass.
const BATCH: usize = 200;

/// Checks every `takeover_check_interval` until cancelled.
pub(super) async fn check_loop(state: Arc<WorkerState>, cancel: CancellationToken) {
    let period = state.config.chatbox.admin.takeover_check_interval;
    every(period, FirstPass::Now, &cancel, || async {
        check_once(&state).await;
    })
    .await;
}

/// One pass; returns how many takeovers were found abandoned.
async fn check_once(state: &WorkerState) -> usize {
    let open = match state.store.open_takeovers(BATCH).await {
        Ok(open) => open,
        Err(e) => {
            warn!("cannot list open takeovers: {e}");
            return 0;
        }
    };
    let mut abandoned = 0;
    for takeover in open {
        match state.coordinator.admin_holder(&takeover.session_id).await {
            Ok(Some(holder)) if holder.takeover_id(&takeover.session_id) == takeover.id => continue,
            Ok(_) => {}
            Err(e) => {
                metrics::coordinator_error("admin_holder");
                warn!("cannot check a takeover lock: {e}");
                return abandoned;
            }
        }
        abandoned += 1;
        end_abandoned(state, &takeover).await;
    }
    abandoned
}

async fn end_abandoned(state: &WorkerState, takeover: &TakeoverRecord) {
    let sid = takeover.session_id.as_str();
    let holder = AdminHolder {
        admin_id: takeover.admin.id.clone(),
        admin_name: takeover.admin.name.clone(),
        since: takeover.started_at,
    };
    let message_id = holder.leave_message_id(sid);
    let envelope = InboundEnvelope {
        session_id: sid.to_owned(),
        user_id: holder.admin_id.clone(),
        user_name: Some(holder.admin_name.clone()),
        claims: Default::default(),
        sender: Sender::Admin,
        message_id: message_id.clone(),
        client_id: None,
        body: InboundBody::AdminLeave {
            admin_id: holder.admin_id.clone(),
            admin_name: holder.admin_name.clone(),
            since: holder.since,
            reason: TakeoverEnd::Disconnected,
        },
        received_at: Timestamp::now(),
        gateway: state.pod_id.clone(),
    };
    let Ok(payload) = serde_json::to_vec(&envelope) else {
        return;
    };
    let headers = Headers::new()
        .with(headers::SESSION, sid)
        .with(headers::USER, holder.admin_id.as_str());
    match state
        .bus
        .enqueue(
            state.subjects.inbound(sid),
            format!("{sid}:{message_id}"),
            headers,
            Bytes::from(payload),
        )
        .await
    {
        Ok(_) => {
            info!(session_id = sid, admin_id = %holder.admin_id, "takeover abandoned (admin gone past the grace period); ending it")
        }
        Err(e) => {
            metrics::bus_error("enqueue");
            warn!(
                session_id = sid,
                "cannot end an abandoned takeover (next pass retries): {e}"
            );
        }
    }
}
