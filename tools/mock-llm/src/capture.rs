//! The requests the mock received, as they came: `GET /mock/requests`
//! (optionally `?key=K`: those whose `x-mock-key` header is `K`) lists the
//! last [`KEPT`], oldest first, each with when it arrived (Unix
//! milliseconds), its method, request target, path and query, every
//! header, its JSON body (others: `null`, with their size) and the status
//! it was answered with. Tests read what a client really sent — a field,
//! a header, a route — and the gaps between retries. `POST /mock/reset`
//! forgets them. The `/mock/` routes themselves are not recorded.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::MockState;

/// How many requests are kept.
const KEPT: usize = 500;

/// The largest JSON body read for the record (bigger ones pass unread).
const MAX_JSON: usize = 64 * 1024 * 1024;

/// One request as received.
struct Entry {
    id: u64,
    at_ms: u64,
    method: String,
    target: String,
    path: String,
    query: Option<String>,
    headers: serde_json::Map<String, Value>,
    body: Value,
    body_bytes: Option<usize>,
    status: Option<u16>,
}

impl Entry {
    fn to_json(&self) -> Value {
        json!({
            "at_ms": self.at_ms,
            "method": self.method,
            "target": self.target,
            "path": self.path,
            "query": self.query,
            "headers": self.headers,
            "body": self.body,
            "body_bytes": self.body_bytes,
            "status": self.status,
        })
    }
}

/// The requests kept.
#[derive(Default)]
pub(crate) struct Captured {
    entries: Mutex<(u64, VecDeque<Entry>)>,
}

impl Captured {
    fn with<R>(&self, f: impl FnOnce(&mut (u64, VecDeque<Entry>)) -> R) -> R {
        f(&mut self.entries.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Keeps `entry`, returning its id.
    fn push(&self, mut entry: Entry) -> u64 {
        self.with(|(next, entries)| {
            *next += 1;
            entry.id = *next;
            if entries.len() == KEPT {
                entries.pop_front();
            }
            entries.push_back(entry);
            *next
        })
    }

    fn answered(&self, id: u64, status: u16) {
        self.with(|(_, entries)| {
            if let Some(entry) = entries.iter_mut().find(|e| e.id == id) {
                entry.status = Some(status);
            }
        });
    }

    /// Forgets every request.
    pub(crate) fn reset(&self) {
        self.with(|(_, entries)| entries.clear());
    }
}

/// Records each request (its body read once and handed on), then its status.
pub(crate) async fn record(State(state): State<Arc<MockState>>, request: Request, next: Next) -> Response {
    if request.uri().path().starts_with("/mock/") {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let json_body = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    let (body, recorded, body_bytes) = if json_body {
        match axum::body::to_bytes(body, MAX_JSON).await {
            Ok(bytes) => {
                let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let size = bytes.len();
                (Body::from(bytes), value, Some(size))
            }
            Err(e) => {
                let message = format!("cannot read the body: {e}");
                return (StatusCode::BAD_REQUEST, message).into_response();
            }
        }
    } else {
        (body, Value::Null, None)
    };
    let headers = parts
        .headers
        .keys()
        .map(|name| {
            let values: Vec<&str> = parts
                .headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            (name.as_str().to_owned(), Value::from(values.join(", ")))
        })
        .collect();
    let id = state.captured.push(Entry {
        id: 0,
        at_ms: unix_millis(),
        method: parts.method.to_string(),
        target: parts.uri.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers,
        body: recorded,
        body_bytes,
        status: None,
    });
    let response = next.run(Request::from_parts(parts, body)).await;
    state.captured.answered(id, response.status().as_u16());
    response
}

/// `GET /mock/requests` filters.
#[derive(Deserialize)]
pub(crate) struct Filter {
    key: Option<String>,
}

/// `GET /mock/requests`
pub(crate) async fn requests(
    State(state): State<Arc<MockState>>,
    Query(filter): Query<Filter>,
) -> axum::Json<Value> {
    let listed: Vec<Value> = state.captured.with(|(_, entries)| {
        entries
            .iter()
            .filter(|e| {
                filter
                    .key
                    .as_deref()
                    .is_none_or(|key| e.headers.get("x-mock-key").and_then(Value::as_str) == Some(key))
            })
            .map(Entry::to_json)
            .collect()
    });
    axum::Json(json!({ "requests": listed }))
}

/// Milliseconds since the Unix epoch.
fn unix_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
