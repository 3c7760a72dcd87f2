//! The OpenAI Chat Completions wire format: JSON in, server-sent events
//! out (`chat.completion.chunk` objects, a usage chunk when
//! `stream_options.include_usage` is set, then `data: [DONE]`).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::{Behaviour, MockState, answer_pieces};

#[derive(Deserialize)]
pub struct ChatRequest {
    #[serde(default)]
    model: String,
    #[serde(default)]
    messages: Vec<ChatMessage>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
}

#[derive(Deserialize)]
struct ChatMessage {
    #[serde(default)]
    role: String,
    #[serde(default)]
    content: serde_json::Value,
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

fn error(status: StatusCode, message: &str) -> Response {
    let body = json!({ "error": { "message": message, "type": "mock_error", "code": status.as_u16() } });
    (status, axum::Json(body)).into_response()
}

fn last_user_text(messages: &[ChatMessage]) -> String {
    messages
        .iter()
        .rev()
        .find(|m| m.role == "user")
        .map(|m| match &m.content {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .unwrap_or_default()
}

fn tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

/// `POST /v1/chat/completions`
pub async fn chat_completions(
    State(state): State<Arc<MockState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !state.authorized(&headers) {
        return error(StatusCode::UNAUTHORIZED, "invalid API key");
    }
    let request: ChatRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("invalid request body: {e}")),
    };
    if request.messages.is_empty() {
        return error(StatusCode::BAD_REQUEST, "messages must not be empty");
    }
    state.completions.fetch_add(1, Ordering::Relaxed);
    state
        .last_messages
        .store(request.messages.len() as u64, Ordering::Relaxed);
    let behaviour = state.behaviour(&headers);
    if let Some(status) = behaviour.fail_status {
        if !behaviour.latency.is_zero() {
            tokio::time::sleep(behaviour.latency).await;
        }
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = error(status, "mock failure");
        if status == StatusCode::TOO_MANY_REQUESTS {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        }
        return response;
    }
    let question = last_user_text(&request.messages);
    let prompt_tokens: u64 = request
        .messages
        .iter()
        .map(|m| tokens(&m.content.to_string()))
        .sum();
    let pieces = answer_pieces(&question, behaviour.chunks, behaviour.chunk_bytes);
    let completion_tokens = tokens(&pieces.concat());
    let model = if request.model.is_empty() {
        "mock".to_owned()
    } else {
        request.model
    };
    if !request.stream {
        if !behaviour.latency.is_zero() {
            tokio::time::sleep(behaviour.latency).await;
        }
        let body = json!({
            "id": "chatcmpl-mock",
            "object": "chat.completion",
            "created": 0,
            "model": model,
            "choices": [{ "index": 0, "message": { "role": "assistant", "content": pieces.concat() }, "finish_reason": "stop" }],
            "usage": { "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens },
        });
        return axum::Json(body).into_response();
    }
    let include_usage = request.stream_options.is_some_and(|o| o.include_usage);
    let events = sse_events(&model, pieces, include_usage, prompt_tokens, completion_tokens);
    let body = Body::from_stream(paced(events, behaviour));
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(body)
        .unwrap_or_else(|_| error(StatusCode::INTERNAL_SERVER_ERROR, "cannot build response"))
}

fn chunk(model: &str, delta: serde_json::Value, finish: Option<&str>) -> String {
    let body = json!({
        "id": "chatcmpl-mock",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": model,
        "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }],
    });
    format!("data: {body}\n\n")
}

/// The whole event stream; the first `pieces.len()` events carry text.
fn sse_events(
    model: &str,
    pieces: Vec<String>,
    include_usage: bool,
    prompt_tokens: u64,
    completion_tokens: u64,
) -> Vec<String> {
    let mut events: Vec<String> = pieces
        .into_iter()
        .enumerate()
        .map(|(i, piece)| {
            let delta = if i == 0 {
                json!({ "role": "assistant", "content": piece })
            } else {
                json!({ "content": piece })
            };
            chunk(model, delta, None)
        })
        .collect();
    events.push(chunk(model, json!({}), Some("stop")));
    if include_usage {
        let usage = json!({
            "id": "chatcmpl-mock",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": model,
            "choices": [],
            "usage": { "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens },
        });
        events.push(format!("data: {usage}\n\n"));
    }
    events.push("data: [DONE]\n\n".to_owned());
    events
}

/// Emits events with the requested pacing; a disconnect ends the body with
/// an error, which drops the connection mid-stream.
fn paced(
    events: Vec<String>,
    behaviour: Behaviour,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    futures_util::stream::unfold(
        (events.into_iter().enumerate(), behaviour),
        |(mut events, b)| async move {
            let (i, event) = events.next()?;
            let wait = if i == 0 { b.latency } else { b.chunk_delay };
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            if b.disconnect_after == Some(i) {
                return Some((Err(std::io::Error::other("mock disconnect")), (events, b)));
            }
            Some((Ok(Bytes::from(event)), (events, b)))
        },
    )
}

/// `GET /v1/models`
pub async fn models() -> impl IntoResponse {
    axum::Json(
        json!({ "object": "list", "data": [{ "id": "mock", "object": "model", "owned_by": "chatbox" }] }),
    )
}
