//! HTTP refusals with the seed's error body, so a client reads the same
//! `error` object from HTTP as from the socket.

use std::time::Duration;

use axum::http::header::{CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chatbox_shared::protocol::{ErrorCode, ErrorInfo, outbound};

/// An HTTP response for `info`, with the status its code maps to.
pub(crate) fn respond(info: ErrorInfo) -> Response {
    let status = StatusCode::from_u16(info.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let retry_after = info.retry_after;
    let mut response = (status, outbound::error(None, info).to_json()).into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(ms) = retry_after
        && let Ok(v) = HeaderValue::from_str(&ms.div_ceil(1000).max(1).to_string())
    {
        headers.insert(RETRY_AFTER, v);
    }
    if status == StatusCode::UNAUTHORIZED {
        headers.insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer error=\"invalid_token\""),
        );
    }
    response
}

/// An HTTP refusal.
pub(crate) fn refuse(code: ErrorCode, message: impl Into<String>, retry_after: Option<Duration>) -> Response {
    let mut info = ErrorInfo::new(code, message);
    if let Some(after) = retry_after {
        info = info.retry_after(after);
    }
    respond(info)
}
