//! The Anthropic Messages wire format (`POST /v1/messages`): headers
//! `x-api-key` and `anthropic-version`, a body with `model`, `max_tokens`,
//! alternating `messages` and an optional `system`; the answer is one
//! message object or the real event stream (`message_start`,
//! `content_block_start`, `ping`, `content_block_delta`…,
//! `content_block_stop`, `message_delta`, `message_stop`). Errors are
//! `{"type":"error","error":{"type","message"}}` (`error.type` scripted by
//! `error-code`). Image blocks are checked (media type, base64) and
//! counted. The answer ends with the scripted `stop_reason` (`wire.rs`).

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::stats::{LastRequest, Outcome, StreamGuard};
use super::{
    Behaviour, MockState, StreamPlan, Tracked, answer_pieces, failure_response, paced, sse_response, tokens,
};

/// An error in Anthropic's format.
pub(crate) fn error(status: StatusCode, message: &str) -> Response {
    typed_error(status, message, None)
}

/// An error in Anthropic's format whose `error.type` is the scripted
/// `error-code`, else the one the Errors reference gives the status.
fn typed_error(status: StatusCode, message: &str, code: Option<&str>) -> Response {
    let kind = code.unwrap_or(match status.as_u16() {
        400 | 422 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        500..=599 => "api_error",
        _ => "invalid_request_error",
    });
    let body = json!({ "type": "error", "error": { "type": kind, "message": message } });
    (status, axum::Json(body)).into_response()
}

fn invalid(message: &str) -> Response {
    error(StatusCode::BAD_REQUEST, message)
}

/// The text of a content: a string, or its text blocks joined.
fn text_of(content: &Value) -> Result<String, String> {
    match content {
        Value::String(s) => Ok(s.clone()),
        Value::Array(blocks) => Ok(blocks
            .iter()
            .filter(|b| b["type"] == "text")
            .filter_map(|b| b["text"].as_str())
            .collect::<Vec<_>>()
            .join(" ")),
        _ => Err("content: must be a string or an array of blocks".to_owned()),
    }
}

/// The media types Anthropic reads images in.
const IMAGE_TYPES: [&str; 4] = ["image/jpeg", "image/png", "image/gif", "image/webp"];

/// The image blocks of message `i`'s content, each as its media type
/// (inline base64) or its URL; what the real API refuses is refused.
fn images_of(i: usize, content: &Value) -> Result<Vec<String>, String> {
    use base64::Engine as _;
    let blocks = content.as_array().map(Vec::as_slice).unwrap_or_default();
    let mut images = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        if block["type"] != "image" {
            continue;
        }
        let at = format!("messages.{i}.content.{j}.image.source");
        let source = &block["source"];
        match source["type"].as_str() {
            Some("base64") => {
                let media_type = source["media_type"].as_str().unwrap_or_default();
                if !IMAGE_TYPES.contains(&media_type) {
                    return Err(format!(
                        "{at}.base64.media_type: Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'"
                    ));
                }
                let data = source["data"].as_str().unwrap_or_default();
                if base64::engine::general_purpose::STANDARD.decode(data).is_err() {
                    return Err(format!("{at}.base64.data: the image data is not valid base64"));
                }
                images.push(media_type.to_owned());
            }
            Some("url") => images.push(source["url"].as_str().unwrap_or_default().to_owned()),
            _ => return Err(format!("{at}: Input tag does not match 'base64' or 'url'")),
        }
    }
    Ok(images)
}

/// `POST /v1/messages`
pub(crate) async fn messages(
    State(state): State<Arc<MockState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut tracked = Tracked::new(&headers);
    let result = handle(&state, &headers, &body, &mut tracked).await;
    tracked.settle(&state.stats, result)
}

async fn handle(
    state: &Arc<MockState>,
    headers: &HeaderMap,
    body: &[u8],
    tracked: &mut Tracked,
) -> Result<Response, Response> {
    let key = headers.get("x-api-key").and_then(|v| v.to_str().ok());
    let key_ok = match (&state.defaults.api_key, key) {
        (_, None) => false,
        (None, Some(_)) => true,
        (Some(want), Some(given)) => want == given,
    };
    if !key_ok {
        return Err(error(StatusCode::UNAUTHORIZED, "invalid x-api-key"));
    }
    if headers.get("anthropic-version").is_none() {
        return Err(invalid("anthropic-version: header is required"));
    }
    let request: Value =
        serde_json::from_slice(body).map_err(|e| invalid(&format!("invalid request body: {e}")))?;
    let model = request["model"]
        .as_str()
        .ok_or_else(|| invalid("model: Field required"))?
        .to_owned();
    let max_tokens = request["max_tokens"]
        .as_u64()
        .ok_or_else(|| invalid("max_tokens: Field required"))?;
    let raw = request["messages"]
        .as_array()
        .ok_or_else(|| invalid("messages: Field required"))?;
    if raw.is_empty() {
        return Err(invalid("messages: at least one message is required"));
    }
    let mut messages = Vec::with_capacity(raw.len());
    let mut images = Vec::new();
    for (i, m) in raw.iter().enumerate() {
        images.extend(images_of(i, &m["content"]).map_err(|e| invalid(&e))?);
        let role = m["role"].as_str().unwrap_or_default();
        let want = if i % 2 == 0 { "user" } else { "assistant" };
        if role != want {
            return Err(invalid(&format!(
                "messages: roles must alternate between \"user\" and \"assistant\", starting with \"user\"; messages.{i}.role is {role:?}"
            )));
        }
        messages.push((role.to_owned(), text_of(&m["content"]).map_err(|e| invalid(&e))?));
    }
    let system = match &request["system"] {
        Value::Null => None,
        other => Some(text_of(other).map_err(|e| invalid(&e))?),
    };
    let stream = request["stream"].as_bool().unwrap_or(false);
    let last_user = messages
        .iter()
        .rev()
        .find(|(role, _)| role == "user")
        .map(|(_, text)| text.as_str())
        .unwrap_or_default();
    let (behaviour, question) =
        Behaviour::resolve(&state.defaults, headers, last_user).map_err(|e| invalid(&e))?;
    let stop_reason = behaviour
        .wire
        .finish_or("end_turn", &STOP_REASONS)
        .map_err(|e| invalid(&e))?
        .to_owned();
    let seen = tracked.count(&state.stats, &behaviour.key);
    let last = LastRequest {
        format: "anthropic",
        model: Some(model.clone()),
        messages: messages.clone(),
        system: system.clone(),
        max_tokens: Some(max_tokens),
        temperature: request["temperature"].as_f64(),
        user: request["metadata"]["user_id"].as_str().map(str::to_owned),
        stream,
        images,
        ..LastRequest::default()
    };
    state.stats.last_request(&behaviour.key, last.to_json());
    if let Some(failure) = behaviour.failure(seen) {
        let code = behaviour.wire.error_code.as_deref();
        let typed = |status, message: &str| typed_error(status, message, code);
        return Err(failure_response(&behaviour, failure, typed).await);
    }
    state.stats.completion(messages.len());

    let input_tokens =
        messages.iter().map(|(_, t)| tokens(t)).sum::<u64>() + system.as_deref().map_or(0, tokens);
    let pieces = answer_pieces(&question, behaviour.chunks, behaviour.chunk_bytes);
    let output_tokens = tokens(&pieces.concat());
    let id = format!("msg_mock{}", &super::uuidish().replace('-', "")[..20]);
    if !stream {
        if !behaviour.latency.is_zero() {
            tokio::time::sleep(behaviour.latency).await;
        }
        let mut body = json!({
            "id": id,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{ "type": "text", "text": pieces.concat() }],
            "stop_reason": stop_reason,
            "stop_sequence": stop_sequence(&stop_reason),
        });
        if !behaviour.usage_absent {
            body["usage"] = json!({ "input_tokens": input_tokens, "output_tokens": output_tokens });
        }
        state.stats.outcome(&behaviour.key, Outcome::Completed);
        return Ok(axum::Json(body).into_response());
    }
    let usage = (!behaviour.usage_absent).then_some((input_tokens, output_tokens));
    let plan = plan(&id, &model, pieces, usage, &stop_reason);
    let guard = StreamGuard::new(state.stats.clone(), behaviour.key.clone());
    Ok(sse_response(Body::from_stream(paced(plan, &behaviour, guard))))
}

fn event(name: &str, data: &Value) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

/// The `stop_reason` values of the Messages API reference.
const STOP_REASONS: [&str; 7] = [
    "end_turn",
    "max_tokens",
    "stop_sequence",
    "tool_use",
    "pause_turn",
    "refusal",
    "model_context_window_exceeded",
];

/// The `stop_sequence` that goes with a `stop_reason`: the one matched
/// when it is `stop_sequence` (the mock's own), else null.
fn stop_sequence(stop_reason: &str) -> Value {
    if stop_reason == "stop_sequence" {
        json!("\n\nEND")
    } else {
        Value::Null
    }
}

/// The event stream of a message; `usage` is `(input, output)` tokens;
/// `message_delta` carries `stop_reason`.
fn plan(
    id: &str,
    model: &str,
    pieces: Vec<String>,
    usage: Option<(u64, u64)>,
    stop_reason: &str,
) -> StreamPlan {
    let mut message = json!({
        "id": id, "type": "message", "role": "assistant", "model": model,
        "content": [], "stop_reason": null, "stop_sequence": null,
    });
    let mut delta = json!({
        "type": "message_delta",
        "delta": { "stop_reason": stop_reason, "stop_sequence": stop_sequence(stop_reason) },
    });
    if let Some((input, output)) = usage {
        message["usage"] = json!({ "input_tokens": input, "output_tokens": 1 });
        delta["usage"] = json!({ "output_tokens": output });
    }
    let head = vec![
        event(
            "message_start",
            &json!({ "type": "message_start", "message": message }),
        ),
        event(
            "content_block_start",
            &json!({ "type": "content_block_start", "index": 0, "content_block": { "type": "text", "text": "" } }),
        ),
        event("ping", &json!({ "type": "ping" })),
    ];
    let texts = pieces
        .into_iter()
        .map(|piece| {
            event(
                "content_block_delta",
                &json!({ "type": "content_block_delta", "index": 0, "delta": { "type": "text_delta", "text": piece } }),
            )
        })
        .collect();
    let tail = vec![
        event(
            "content_block_stop",
            &json!({ "type": "content_block_stop", "index": 0 }),
        ),
        event("message_delta", &delta),
        event("message_stop", &json!({ "type": "message_stop" })),
    ];
    StreamPlan {
        head,
        texts,
        tail,
        malformed:
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\n\n"
                .to_owned(),
        error_event: event(
            "error",
            &json!({ "type": "error", "error": { "type": "overloaded_error", "message": "Overloaded" } }),
        ),
        stop: None,
    }
}
