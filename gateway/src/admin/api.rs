//! The admin HTTP API (a token with the admin role, as `Authorization:
//! Bearer` or `?token=`; 401 without a valid token, 403 `FORBIDDEN`
//! without the role — property 61: docs/PROPERTIES.md#p61). Every call is logged with the admin's
//! id.
//!
//! | method and path | answer |
//! |---|---|
//! | `GET /chat/admin/sessions?user_id=&status=active\|ended&help_requested=&admin_assisted=&from=&to=&sort=start_time\|last_activity\|tokens\|response_time&order=asc\|desc&limit=&cursor=` | every user's sessions, with where each live one is connected, who assists and who watches |
//! | `GET /chat/admin/sessions/{id}?messages=` | one session, its latest messages and its takeovers (the audit log) |
//! | `GET /chat/admin/metrics?from=&to=&buckets=` | session metrics over the period (default: the last 24 hours), and per bucket for charts with `buckets` (1–200) |
//! | `POST /chat/admin/takeover/{id}` | takes the session over (the admin then writes over `/chat/admin/ws`, within the grace period) |
//! | `DELETE /chat/admin/takeover/{id}` | hands it back |
//!
//! Times are RFC 3339 (`2026-11-24T10:00:00Z`).

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use chatbox_shared::envelope::rpc;
use chatbox_shared::protocol::admin::{
    AdminMetrics, AdminSessionDetail, AdminSessionList, AdminSessionsQuery, AdminSort, MAX_METRICS_BUCKETS,
    MetricsQuery, Order, SessionStatus,
};
use chatbox_shared::protocol::{ErrorCode, ErrorInfo, Timestamp};
use serde::Deserialize;
use tracing::info;

use crate::admin::takeover::{self, Admin, TakeoverState};
use crate::metrics;
use crate::rpc_client;
use crate::state::GatewayState;
use crate::user_api::{Answer, ApiError, authenticate, page_limit, query};

/// Query of `GET /chat/admin/sessions`, as written.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct SessionsParams {
    token: Option<String>,
    user_id: Option<String>,
    status: Option<String>,
    help_requested: Option<String>,
    admin_assisted: Option<String>,
    from: Option<String>,
    to: Option<String>,
    sort: Option<String>,
    order: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

/// Query of the other admin endpoints.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct AdminParams {
    token: Option<String>,
    from: Option<String>,
    to: Option<String>,
    messages: Option<usize>,
    buckets: Option<u32>,
}

fn invalid(message: String) -> ApiError {
    ApiError::from(ErrorInfo::new(ErrorCode::InvalidField, message))
}

/// The admin a request comes from: a valid token with the admin role.
fn authorize(
    state: &GatewayState,
    headers: &HeaderMap,
    token: Option<&str>,
    action: &str,
) -> Result<Admin, ApiError> {
    let identity = authenticate(state, headers, token)?;
    let role = &state.config.chatbox.auth.admin_role;
    if !identity.has_role(role) {
        metrics::auth_failure("not_admin");
        info!(user_id = %identity.user_id, action, "admin API refused: no admin role");
        return Err(ApiError::from(ErrorInfo::new(
            ErrorCode::Forbidden,
            format!("this needs a token with the `{role}` role"),
        )));
    }
    let admin = Admin::from_identity(&identity);
    info!(admin_id = %admin.admin_id, action, "admin action");
    Ok(admin)
}

fn time(value: Option<&str>, name: &str) -> Result<Option<Timestamp>, ApiError> {
    value
        .map(|v| {
            Timestamp::parse(v).ok_or_else(|| {
                invalid(format!(
                    "{name} must be an RFC 3339 time like 2026-11-24T10:00:00Z"
                ))
            })
        })
        .transpose()
}

fn flag(value: Option<&str>, name: &str) -> Result<Option<bool>, ApiError> {
    match value {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(_) => Err(invalid(format!("{name} must be true or false"))),
    }
}

fn sessions_query(p: SessionsParams) -> Result<AdminSessionsQuery, ApiError> {
    let status = match p.status.as_deref() {
        None | Some("all") => None,
        Some("active") => Some(SessionStatus::Active),
        Some("ended") => Some(SessionStatus::Ended),
        Some(_) => return Err(invalid("status must be active, ended or all".into())),
    };
    let sort = match p.sort.as_deref() {
        None | Some("start_time") => AdminSort::StartTime,
        Some("last_activity") => AdminSort::LastActivity,
        Some("tokens") => AdminSort::Tokens,
        Some("response_time") => AdminSort::ResponseTime,
        Some(_) => {
            return Err(invalid(
                "sort must be start_time, last_activity, tokens or response_time".into(),
            ));
        }
    };
    let order = match p.order.as_deref() {
        None | Some("desc") => Order::Desc,
        Some("asc") => Order::Asc,
        Some(_) => return Err(invalid("order must be asc or desc".into())),
    };
    Ok(AdminSessionsQuery {
        user_id: p.user_id.filter(|u| !u.is_empty()),
        status,
        help_requested: flag(p.help_requested.as_deref(), "help_requested")?,
        admin_assisted: flag(p.admin_assisted.as_deref(), "admin_assisted")?,
        from: time(p.from.as_deref(), "from")?,
        to: time(p.to.as_deref(), "to")?,
        sort,
        order,
        limit: page_limit(p.limit, 50)?,
        cursor: p.cursor,
    })
}

/// `GET /chat/admin/sessions`
pub(crate) async fn sessions(
    State(state): State<Arc<GatewayState>>,
    headers: HeaderMap,
    q: Result<Query<SessionsParams>, QueryRejection>,
) -> Answer<AdminSessionList> {
    let mut q = query(q)?;
    let admin = authorize(&state, &headers, q.token.take().as_deref(), "list_sessions")?;
    let request = sessions_query(q)?;
    Ok(Json(
        rpc_client::call(&state, rpc::ADMIN_SESSIONS, &admin.admin_id, &request).await?,
    ))
}

/// `GET /chat/admin/sessions/{id}`
pub(crate) async fn session(
    State(state): State<Arc<GatewayState>>,
    Path(session_id): Path<String>,
    headers: HeaderMap,
    q: Result<Query<AdminParams>, QueryRejection>,
) -> Answer<AdminSessionDetail> {
    let q = query(q)?;
    let admin = authorize(&state, &headers, q.token.as_deref(), "view_session")?;
    let messages = q.messages.unwrap_or(state.config.chatbox.admin.watch_messages);
    if messages > 500 {
        return Err(invalid("messages must be at most 500".into()));
    }
    Ok(Json(
        takeover::session_detail(&state, &admin, &session_id, messages).await?,
    ))
}

/// `GET /chat/admin/metrics`
pub(crate) async fn session_metrics(
    State(state): State<Arc<GatewayState>>,
    headers: HeaderMap,
    q: Result<Query<AdminParams>, QueryRejection>,
) -> Answer<AdminMetrics> {
    let q = query(q)?;
    let admin = authorize(&state, &headers, q.token.as_deref(), "metrics")?;
    let to = time(q.to.as_deref(), "to")?.unwrap_or_else(Timestamp::now);
    let from = time(q.from.as_deref(), "from")?
        .unwrap_or_else(|| Timestamp::from_millis(to.as_millis().saturating_sub(DAY.as_millis() as u64)));
    if from >= to {
        return Err(invalid("from must be before to".into()));
    }
    if let Some(n) = q.buckets
        && !(1..=MAX_METRICS_BUCKETS).contains(&n)
    {
        return Err(invalid(format!(
            "buckets must be between 1 and {MAX_METRICS_BUCKETS}"
        )));
    }
    let request = MetricsQuery {
        from,
        to,
        buckets: q.buckets,
    };
    Ok(Json(
        rpc_client::call(&state, rpc::ADMIN_METRICS, &admin.admin_id, &request).await?,
    ))
}

const DAY: Duration = Duration::from_secs(24 * 3600);

/// `POST /chat/admin/takeover/{id}`
pub(crate) async fn take_over(
    State(state): State<Arc<GatewayState>>,
    Path(session_id): Path<String>,
    headers: HeaderMap,
    q: Result<Query<AdminParams>, QueryRejection>,
) -> Answer<TakeoverState> {
    let q = query(q)?;
    let admin = authorize(&state, &headers, q.token.as_deref(), "takeover")?;
    let taken = takeover::take_over(&state, &admin, &session_id).await?;
    takeover::publish_presence(&state, &session_id).await;
    Ok(Json(taken))
}

/// `DELETE /chat/admin/takeover/{id}`
pub(crate) async fn release(
    State(state): State<Arc<GatewayState>>,
    Path(session_id): Path<String>,
    headers: HeaderMap,
    q: Result<Query<AdminParams>, QueryRejection>,
) -> Answer<TakeoverState> {
    let q = query(q)?;
    let admin = authorize(&state, &headers, q.token.as_deref(), "release")?;
    let released = takeover::release(&state, &admin, &session_id).await?;
    for conn in state.admins.all() {
        if conn.admin.admin_id == admin.admin_id {
            conn.set_held(&session_id, false);
        }
    }
    takeover::publish_presence(&state, &session_id).await;
    Ok(Json(released))
}
