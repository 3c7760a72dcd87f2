//! The user's HTTP API (the user's own JWT, as `Authorization: Bearer` or
//! `?token=`): their sessions and a session's history, for pages that load
//! them without a socket.
//!
//! | method and path | answer |
//! |---|---|
//! | `GET /chat/models` | the models the user may pick, default first |
//! | `GET /chat/sessions?limit=&cursor=` | the user's sessions, most recently active first |
//! | `GET /chat/sessions/{id}/messages?limit=&cursor=` | a session's messages in order (`cursor` = the last `seq` held) |
//! | `PATCH /chat/sessions/{id}` `{"name": …}` | the renamed session |
//! | `POST /chat/sessions/{id}/end` | the ended session (its socket is closed) |
//! | `POST /chat/uploads?session_id=` `{"name","size","content_type","purpose"}` | 201: an upload slot (file id, signed PUT URL) |
//!
//! Errors are the seed's error body: 401 for a bad token, 404
//! `SESSION_NOT_FOUND` for a session that is not the user's, 429
//! `RATE_LIMITED` for history and renames faster than the user's limit
//! ([`crate::rate_limit::RequestLimiters`]), 503 when no worker answers.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chatbox_shared::auth::{AuthError, Identity};
use chatbox_shared::coordinator::RequestKind;
use chatbox_shared::envelope::{
    EndSession, ListSessions, ModelList, RenameSession, SessionHistory, UploadSlotRequest, rpc,
};
use chatbox_shared::protocol::sessions::{HistoryPage, SessionPage, SessionSummary};
use chatbox_shared::protocol::uploads::{UploadRequest, UploadSlot};
use chatbox_shared::protocol::{ErrorCode, ErrorInfo};
use serde::Deserialize;

use crate::credentials::Credentials;
use crate::http_error::respond;
use crate::metrics;
use crate::rpc_client;
use crate::state::GatewayState;

/// Query of the endpoints.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct PageQuery {
    /// A token, for clients that cannot set headers.
    pub token: Option<String>,
    /// Page size (1 to 100).
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Body of `PATCH /chat/sessions/{id}`.
#[derive(Debug, Deserialize)]
pub(crate) struct Rename {
    /// The new name.
    pub name: String,
}

/// An error answered with the seed's error body.
pub(crate) struct ApiError(ErrorInfo);

impl From<ErrorInfo> for ApiError {
    fn from(info: ErrorInfo) -> Self {
        ApiError(info)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        respond(self.0)
    }
}

pub(crate) type Answer<T> = Result<Json<T>, ApiError>;

pub(crate) fn query<Q>(query: Result<Query<Q>, QueryRejection>) -> Result<Q, ApiError> {
    query.map(|Query(q)| q).map_err(|e| {
        ApiError(ErrorInfo::new(
            ErrorCode::InvalidField,
            format!("invalid query string: {e}"),
        ))
    })
}

pub(crate) fn authenticate(
    state: &GatewayState,
    headers: &HeaderMap,
    query_token: Option<&str>,
) -> Result<Identity, ApiError> {
    let credentials = Credentials::from_request(headers, query_token);
    let identity = match credentials.token.as_deref() {
        None => Err(AuthError::Missing),
        Some(token) => state.validator.validate(token),
    };
    identity.map_err(|e| {
        metrics::auth_failure(e.reason());
        ApiError(ErrorInfo::new(e.code(), e.to_string()))
    })
}

pub(crate) fn page_limit(limit: Option<usize>, default: usize) -> Result<usize, ApiError> {
    match limit {
        None => Ok(default),
        Some(n) if (1..=100).contains(&n) => Ok(n),
        Some(_) => Err(ApiError(ErrorInfo::new(
            ErrorCode::InvalidField,
            "limit must be from 1 to 100",
        ))),
    }
}

/// `GET /chat/models`
pub(crate) async fn models(
    State(state): State<Arc<GatewayState>>,
    headers: HeaderMap,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Answer<ModelList> {
    let q = query(q)?;
    let identity = authenticate(&state, &headers, q.token.as_deref())?;
    Ok(Json(
        rpc_client::call(&state, rpc::LIST_MODELS, &identity.user_id, &()).await?,
    ))
}

/// `GET /chat/sessions`
pub(crate) async fn list(
    State(state): State<Arc<GatewayState>>,
    headers: HeaderMap,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Answer<SessionPage> {
    let q = query(q)?;
    let identity = authenticate(&state, &headers, q.token.as_deref())?;
    let request = ListSessions {
        user_id: identity.user_id.clone(),
        limit: page_limit(q.limit, 20)?,
        cursor: q.cursor,
    };
    Ok(Json(
        rpc_client::call(&state, rpc::LIST_SESSIONS, &identity.user_id, &request).await?,
    ))
}

/// `GET /chat/sessions/{id}/messages`
pub(crate) async fn history(
    State(state): State<Arc<GatewayState>>,
    Path(session_id): Path<String>,
    headers: HeaderMap,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Answer<HistoryPage> {
    let q = query(q)?;
    let identity = authenticate(&state, &headers, q.token.as_deref())?;
    state
        .requests
        .admit(RequestKind::History, &identity.user_id)
        .await?;
    let request = SessionHistory {
        user_id: identity.user_id.clone(),
        session_id,
        limit: page_limit(q.limit, 50)?,
        cursor: q.cursor,
    };
    Ok(Json(
        rpc_client::call(&state, rpc::SESSION_HISTORY, &identity.user_id, &request).await?,
    ))
}

/// `PATCH /chat/sessions/{id}`
pub(crate) async fn rename(
    State(state): State<Arc<GatewayState>>,
    Path(session_id): Path<String>,
    headers: HeaderMap,
    q: Result<Query<PageQuery>, QueryRejection>,
    body: Result<Json<Rename>, JsonRejection>,
) -> Answer<SessionSummary> {
    let q = query(q)?;
    let identity = authenticate(&state, &headers, q.token.as_deref())?;
    let Json(body) = body.map_err(|e| {
        ApiError(ErrorInfo::new(
            ErrorCode::InvalidMessage,
            format!("expected a JSON body like {{\"name\":\"…\"}}: {e}"),
        ))
    })?;
    state
        .requests
        .admit(RequestKind::Rename, &identity.user_id)
        .await?;
    let request = RenameSession {
        user_id: identity.user_id.clone(),
        session_id,
        name: body.name,
    };
    Ok(Json(
        rpc_client::call(&state, rpc::RENAME_SESSION, &identity.user_id, &request).await?,
    ))
}

/// Query of `POST /chat/uploads`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct UploadQuery {
    /// A token, for clients that cannot set headers.
    pub token: Option<String>,
    /// The session the file is for.
    pub session_id: Option<String>,
}

/// `POST /chat/uploads`: an upload slot, rate-limited like messages.
pub(crate) async fn upload_slot(
    State(state): State<Arc<GatewayState>>,
    headers: HeaderMap,
    q: Result<Query<UploadQuery>, QueryRejection>,
    body: Result<Json<UploadRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<UploadSlot>), ApiError> {
    let q = query(q)?;
    let identity = authenticate(&state, &headers, q.token.as_deref())?;
    let Some(session_id) = q.session_id else {
        return Err(ApiError(ErrorInfo::new(
            ErrorCode::MissingField,
            "?session_id= is required: the conversation the file is for",
        )));
    };
    let Json(upload) = body.map_err(|e| {
        ApiError(ErrorInfo::new(
            ErrorCode::InvalidMessage,
            format!("expected a JSON body like {{\"name\":\"photo.png\",\"size\":1234,\"content_type\":\"image/png\"}}: {e}"),
        ))
    })?;
    let upload = upload
        .validated()
        .map_err(|e| ApiError(ErrorInfo::new(e.code, e.message)))?;
    crate::inbound::admit(&state, &identity.user_id).await?;
    let request = UploadSlotRequest {
        user_id: identity.user_id.clone(),
        session_id,
        upload,
    };
    let slot = rpc_client::call(&state, rpc::UPLOAD_SLOT, &identity.user_id, &request).await?;
    Ok((StatusCode::CREATED, Json(slot)))
}

/// `POST /chat/sessions/{id}/end`
pub(crate) async fn end(
    State(state): State<Arc<GatewayState>>,
    Path(session_id): Path<String>,
    headers: HeaderMap,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Answer<SessionSummary> {
    let q = query(q)?;
    let identity = authenticate(&state, &headers, q.token.as_deref())?;
    let request = EndSession {
        user_id: identity.user_id.clone(),
        session_id,
    };
    Ok(Json(
        rpc_client::call(&state, rpc::END_SESSION, &identity.user_id, &request).await?,
    ))
}
