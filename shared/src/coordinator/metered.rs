//! The `Coordinator` port, timed: every call of any adapter is recorded in
//! `chatbox_coordinator_operation_seconds{adapter, op, outcome}` (see
//! [`crate::telemetry::PortTimings`]) — Redis latency per operation.

use std::time::Duration;

use super::{
    ActiveSession, AdminClaim, AdminHolder, Admission, Coordinator, CoordinatorError, LiveState,
    NotifyAdmission, OwnerClaim, OwnerToken, PodBeat, RateLimit, Renewal, RequestKind, Suppressed, Watcher,
};
use crate::protocol::Timestamp;

crate::metered_port! {
    /// A coordinator whose calls are timed.
    MeteredCoordinator: Coordinator, "chatbox_coordinator_operation_seconds";
    async fn activate_session(&self, user_id: &str, candidate: &str) -> Result<ActiveSession, CoordinatorError>;
    async fn active_session(&self, user_id: &str) -> Result<Option<String>, CoordinatorError>;
    async fn switch_active_session(&self, user_id: &str, session_id: &str) -> Result<Option<String>, CoordinatorError>;
    async fn clear_active_session(&self, user_id: &str, session_id: &str) -> Result<bool, CoordinatorError>;
    async fn linger_active_session(&self, user_id: &str, session_id: &str, ttl: Option<Duration>) -> Result<bool, CoordinatorError>;
    async fn claim_owner(&self, session_id: &str, pod_id: &str, conn_id: u64, ttl: Duration) -> Result<OwnerClaim, CoordinatorError>;
    async fn renew_owners(&self, renewals: &[Renewal], ttl: Duration) -> Result<Vec<bool>, CoordinatorError>;
    async fn release_owner(&self, session_id: &str, token: &OwnerToken) -> Result<bool, CoordinatorError>;
    async fn owner(&self, session_id: &str) -> Result<Option<OwnerToken>, CoordinatorError>;
    async fn admit_message(&self, user_id: &str, limit: RateLimit, want: u32) -> Result<Admission, CoordinatorError>;
    async fn admit_request(&self, kind: RequestKind, user_id: &str, limit: RateLimit, want: u32) -> Result<Admission, CoordinatorError>;
    async fn claim_admin(&self, session_id: &str, admin_id: &str, admin_name: &str, since: Timestamp, ttl: Duration) -> Result<AdminClaim, CoordinatorError>;
    async fn renew_admins(&self, held: &[(String, String)], ttl: Duration) -> Result<Vec<bool>, CoordinatorError>;
    async fn release_admin(&self, session_id: &str, admin_id: &str) -> Result<Option<AdminHolder>, CoordinatorError>;
    async fn admin_holder(&self, session_id: &str) -> Result<Option<AdminHolder>, CoordinatorError>;
    async fn watch(&self, session_id: &str, watcher: &Watcher, ttl: Duration) -> Result<(), CoordinatorError>;
    async fn unwatch(&self, session_id: &str, admin_id: &str) -> Result<(), CoordinatorError>;
    async fn live_state(&self, session_ids: &[String]) -> Result<Vec<LiveState>, CoordinatorError>;
    async fn pods(&self) -> Result<Vec<PodBeat>, CoordinatorError>;
    async fn admit_notification(&self, key: &str, limit: RateLimit, affected: &str) -> Result<NotifyAdmission, CoordinatorError>;
    async fn take_suppressed(&self, key: &str) -> Result<Option<Suppressed>, CoordinatorError>;
    async fn heartbeat(&self, pod_id: &str, info: &str, ttl: Duration) -> Result<(), CoordinatorError>;
    async fn check(&self) -> Result<(), CoordinatorError>;
}
