//! CORS for the HTTP API (`CORS_ALLOWED_ORIGINS`), so an admin dashboard
//! or a host page on another origin can call it: the listed origins only,
//! credentials allowed, preflight `OPTIONS` answered. An empty list adds
//! no CORS headers at all (same origin only), as the seed specifies.

use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Method, header};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tracing::warn;

/// How long browsers may cache a preflight answer.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// The CORS layer for `origins`, or `None` when the list is empty.
pub(crate) fn layer(origins: &[String]) -> Option<CorsLayer> {
    let allowed: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| {
            let origin = o.trim().trim_end_matches('/');
            HeaderValue::from_str(origin)
                .inspect_err(|_| warn!(origin, "ignored an unusable CORS origin"))
                .ok()
        })
        .collect();
    if allowed.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(allowed))
            .allow_credentials(true)
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PATCH,
                Method::DELETE,
                Method::OPTIONS,
            ])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("x-request-id"),
            ])
            .expose_headers([header::RETRY_AFTER])
            .max_age(PREFLIGHT_MAX_AGE),
    )
}
