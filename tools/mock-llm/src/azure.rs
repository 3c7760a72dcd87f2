//! Azure OpenAI's two chat routes, answering in the OpenAI format
//! (`openai.rs`) once their own checks pass:
//!
//! - the classic deployment route,
//!   `POST /openai/deployments/{deployment}/chat/completions?api-version=…`:
//!   the deployment names the model (the body's `model` is not needed),
//!   `api-version` is required (without it Azure answers 404 "Resource not
//!   found") and the key comes in the `api-key` header;
//! - the v1 route, `POST /openai/v1/chat/completions`: no `api-version`
//!   needed, the key in `api-key` or as `Authorization: Bearer`.
//!
//! A missing key, or one other than `--api-key` when that is set, is a 401
//! in Azure's shape: `{"error":{"code":"401","message":…}}`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::openai::{self, Route};
use crate::{MockState, Tracked};

/// An error in Azure's own shape (its gateway answers before the model).
fn azure_error(status: StatusCode, message: &str) -> Response {
    let body = json!({ "error": { "code": status.as_u16().to_string(), "message": message } });
    (status, axum::Json(body)).into_response()
}

/// The key given in `api-key`, or (v1 only) as a bearer token.
fn key_of(headers: &HeaderMap, bearer_too: bool) -> Option<&str> {
    let api_key = headers.get("api-key").and_then(|v| v.to_str().ok());
    let bearer = || {
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
    };
    api_key.or_else(|| bearer_too.then(bearer).flatten())
}

/// Whether a key was given, and is `--api-key` when that is set.
fn key_ok(state: &MockState, given: Option<&str>) -> bool {
    match (given, &state.defaults.api_key) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(given), Some(want)) => given == want,
    }
}

const DENIED: &str = "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.";

/// `POST /openai/deployments/{deployment}/chat/completions`
pub(crate) async fn deployment_chat(
    State(state): State<Arc<MockState>>,
    Path(deployment): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut tracked = Tracked::new(&headers);
    let result = match query.get("api-version") {
        None => Err(azure_error(StatusCode::NOT_FOUND, "Resource not found")),
        Some(_) if !key_ok(&state, key_of(&headers, false)) => {
            Err(azure_error(StatusCode::UNAUTHORIZED, DENIED))
        }
        Some(_) => {
            openai::answer(
                &state,
                &headers,
                &body,
                &mut tracked,
                Route::Deployment(deployment),
            )
            .await
        }
    };
    tracked.settle(&state.stats, result)
}

/// `POST /openai/v1/chat/completions`
pub(crate) async fn v1_chat(
    State(state): State<Arc<MockState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut tracked = Tracked::new(&headers);
    let result = if key_ok(&state, key_of(&headers, true)) {
        openai::answer(&state, &headers, &body, &mut tracked, Route::Direct).await
    } else {
        Err(azure_error(StatusCode::UNAUTHORIZED, DENIED))
    };
    tracked.settle(&state.stats, result)
}
