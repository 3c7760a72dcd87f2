//! The OpenAI Chat Completions wire format: JSON in, server-sent events
//! out (`chat.completion.chunk` objects, a usage chunk when
//! `stream_options.include_usage` is set, then `data: [DONE]`), or one
//! `chat.completion` object. Errors are `{"error":{"message","type","code"}}`.
//! Message content is a string or an array of parts; the question is the
//! text parts of the last user message, and `image_url` parts are counted.
//! The answer ends with the scripted `finish_reason` (`wire.rs`); a failure
//! carries the scripted `error.code`; `stream_options` is refused, when
//! scripted, as servers that do not know it refuse it. Azure's
//! routes (`azure.rs`) answer through [`answer`].
//! With `modalities` containing `audio` the answer is spoken (`speech.rs`):
//! its text comes as `audio.transcript`, its sound as base64 `audio.data`.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use base64::Engine as _;

use super::stats::{LastRequest, Outcome, StreamGuard};
use super::{
    Behaviour, MockState, StreamPlan, Tracked, answer_pieces, failure_response, paced, speech, sse_response,
    tokens,
};

#[derive(Deserialize)]
pub(crate) struct ChatRequest {
    #[serde(default)]
    model: String,
    #[serde(default)]
    messages: Vec<ChatMessage>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default)]
    max_tokens: Option<u64>,
    #[serde(default)]
    max_completion_tokens: Option<u64>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    modalities: Vec<String>,
    #[serde(default)]
    audio: Option<AudioParam>,
}

/// The `audio` parameter: how a spoken answer should sound.
#[derive(Deserialize)]
struct AudioParam {
    voice: String,
    format: String,
}

#[derive(Deserialize)]
struct ChatMessage {
    #[serde(default)]
    role: String,
    #[serde(default)]
    content: Value,
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

/// An error in OpenAI's format.
pub(crate) fn error(status: StatusCode, message: &str) -> Response {
    coded_error(status, message, None)
}

/// An error in OpenAI's format with the scripted `error-code`: it is
/// `error.code`, and for the quota codes `error.type` is
/// `insufficient_quota`, as OpenAI sends them.
fn coded_error(status: StatusCode, message: &str, code: Option<&str>) -> Response {
    let kind = match (status.as_u16(), code) {
        (_, Some(code)) if QUOTA_CODES.contains(&code) => "insufficient_quota",
        (400 | 404 | 413 | 422, _) => "invalid_request_error",
        (401 | 403, _) => "authentication_error",
        (429, _) => "rate_limit_error",
        _ => "server_error",
    };
    let code = code.map_or_else(|| json!(status.as_u16()), |c| json!(c));
    let body = json!({ "error": { "message": message, "type": kind, "param": null, "code": code } });
    (status, axum::Json(body)).into_response()
}

/// The `error.code`s of a spent quota (OpenAI's error codes guide).
const QUOTA_CODES: [&str; 5] = [
    "insufficient_quota",
    "credit_balance_exhausted",
    "organization_spend_limit_exceeded",
    "project_spend_limit_exceeded",
    "organization_usage_limit_exceeded",
];

/// `choices[].finish_reason` values (OpenAI API reference, the chat
/// completion chunk object).
const FINISH_REASONS: [&str; 5] = ["stop", "length", "content_filter", "tool_calls", "function_call"];

/// Where a chat request came in: OpenAI's own route (or Azure's v1 route,
/// which is the same), or an Azure deployment, which names the model.
pub(crate) enum Route {
    Direct,
    Deployment(String),
}

/// What a server that does not know `stream_options` answers: an Azure
/// API version from before it (400, `Unrecognized request argument
/// supplied`), or a FastAPI server that forbids unknown fields (422).
fn stream_options_refused(status: u16) -> Response {
    if status == 422 {
        let body = json!({ "detail": [{
            "type": "extra_forbidden", "loc": ["body", "stream_options"],
            "msg": "Extra inputs are not permitted", "input": { "include_usage": true },
        }] });
        return (StatusCode::UNPROCESSABLE_ENTITY, axum::Json(body)).into_response();
    }
    error(
        StatusCode::BAD_REQUEST,
        "Unrecognized request argument supplied: stream_options",
    )
}

/// The text of a message content: a string, or its text parts joined.
pub(crate) fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter(|p| p["type"] == "text")
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join(" "),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The images of a message content, each as its media type (a `data:`
/// URL) or its URL; an `image_url` part without a URL, or with bad base64,
/// is refused as OpenAI refuses it.
fn images_of(content: &Value) -> Result<Vec<String>, String> {
    let parts = content.as_array().map(Vec::as_slice).unwrap_or_default();
    let mut images = Vec::new();
    for part in parts.iter().filter(|p| p["type"] == "image_url") {
        let url = part["image_url"]["url"]
            .as_str()
            .ok_or_else(|| "Missing required parameter: 'messages[].content[].image_url.url'.".to_owned())?;
        let Some(data) = url.strip_prefix("data:") else {
            images.push(url.to_owned());
            continue;
        };
        let (meta, payload) = data.split_once(',').unwrap_or((data, ""));
        let media_type = meta.split(';').next().unwrap_or_default();
        if meta.ends_with(";base64") && base64::engine::general_purpose::STANDARD.decode(payload).is_err() {
            return Err("Invalid base64 image_url.".to_owned());
        }
        images.push(media_type.to_owned());
    }
    Ok(images)
}

/// `POST /v1/chat/completions`
pub(crate) async fn chat_completions(
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
    if !state.authorized(headers) {
        return Err(error(StatusCode::UNAUTHORIZED, "invalid API key"));
    }
    answer(state, headers, body, tracked, Route::Direct).await
}

/// Answers a chat request whose key was checked (by its route).
pub(crate) async fn answer(
    state: &Arc<MockState>,
    headers: &HeaderMap,
    body: &[u8],
    tracked: &mut Tracked,
    route: Route,
) -> Result<Response, Response> {
    let mut request: ChatRequest = serde_json::from_slice(body)
        .map_err(|e| error(StatusCode::BAD_REQUEST, &format!("invalid request body: {e}")))?;
    if let Route::Deployment(deployment) = route {
        request.model = deployment;
    }
    if request.messages.is_empty() {
        return Err(error(StatusCode::BAD_REQUEST, "messages must not be empty"));
    }
    let texts: Vec<(String, String)> = request
        .messages
        .iter()
        .map(|m| (m.role.clone(), content_text(&m.content)))
        .collect();
    let last_user = texts
        .iter()
        .rev()
        .find(|(role, _)| role == "user")
        .map(|(_, text)| text.as_str())
        .unwrap_or_default();
    let (behaviour, question) = Behaviour::resolve(&state.defaults, headers, last_user)
        .map_err(|e| error(StatusCode::BAD_REQUEST, &e))?;
    if let (Some(status), Some(_)) = (behaviour.wire.reject_stream_options, &request.stream_options) {
        return Err(stream_options_refused(status));
    }
    let finish = behaviour
        .wire
        .finish_or("stop", &FINISH_REASONS)
        .map_err(|e| error(StatusCode::BAD_REQUEST, &e))?
        .to_owned();
    let mut images = Vec::new();
    for m in &request.messages {
        images.extend(images_of(&m.content).map_err(|e| error(StatusCode::BAD_REQUEST, &e))?);
    }
    let spoken = request.modalities.iter().any(|m| m == "audio");
    let audio = match (&request.audio, spoken) {
        (Some(param), true) => Some(
            speech::audio(&param.format, request.stream).map_err(|e| error(StatusCode::BAD_REQUEST, &e))?,
        ),
        (None, true) => {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "Missing required parameter: 'audio'.",
            ));
        }
        (_, false) => None,
    };
    let seen = tracked.count(&state.stats, &behaviour.key);
    let last = LastRequest {
        format: "openai",
        model: Some(request.model.clone()),
        system: texts
            .iter()
            .find(|(role, _)| role == "system" || role == "developer")
            .map(|(_, t)| t.clone()),
        messages: texts.clone(),
        max_tokens: request.max_completion_tokens.or(request.max_tokens),
        temperature: request.temperature,
        user: request.user.clone(),
        stream: request.stream,
        images,
        audio: request
            .audio
            .as_ref()
            .filter(|_| spoken)
            .map(|a| json!({ "voice": a.voice, "format": a.format })),
        ..LastRequest::default()
    };
    state.stats.last_request(&behaviour.key, last.to_json());
    if let Some(failure) = behaviour.failure(seen) {
        let code = behaviour.wire.error_code.as_deref();
        let coded = |status, message: &str| coded_error(status, message, code);
        return Err(failure_response(&behaviour, failure, coded).await);
    }
    state.stats.completion(request.messages.len());

    let prompt_tokens: u64 = texts.iter().map(|(_, t)| tokens(t)).sum();
    let pieces = answer_pieces(&question, behaviour.chunks, behaviour.chunk_bytes);
    let completion_tokens = tokens(&pieces.concat());
    let usage = (!behaviour.usage_absent).then(|| {
        json!({ "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens })
    });
    let model = if request.model.is_empty() {
        "mock".to_owned()
    } else {
        request.model
    };
    if !request.stream {
        if !behaviour.latency.is_zero() {
            tokio::time::sleep(behaviour.latency).await;
        }
        let mut body = json!({
            "id": "chatcmpl-mock",
            "object": "chat.completion",
            "created": 0,
            "model": model,
            "choices": [{ "index": 0, "message": { "role": "assistant", "content": pieces.concat() }, "finish_reason": finish }],
        });
        if let Some(audio) = &audio {
            body["choices"][0]["message"] = json!({
                "role": "assistant",
                "content": null,
                "refusal": null,
                "audio": {
                    "id": "audio_mock",
                    "data": base64::engine::general_purpose::STANDARD.encode(audio),
                    "expires_at": super::unix_now() + 3600,
                    "transcript": pieces.concat(),
                },
            });
        }
        if let Some(usage) = usage {
            body["usage"] = usage;
        }
        state.stats.outcome(&behaviour.key, Outcome::Completed);
        return Ok(axum::Json(body).into_response());
    }
    let include_usage = request.stream_options.is_some_and(|o| o.include_usage);
    let plan = plan(
        &model,
        pieces,
        audio.as_deref(),
        usage.filter(|_| include_usage),
        &finish,
    );
    let guard = StreamGuard::new(state.stats.clone(), behaviour.key.clone());
    Ok(sse_response(Body::from_stream(paced(plan, &behaviour, guard))))
}

fn chunk(model: &str, delta: Value, finish: Option<&str>) -> String {
    let body = json!({
        "id": "chatcmpl-mock",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": model,
        "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }],
    });
    format!("data: {body}\n\n")
}

/// The event stream: one chunk per piece (spoken: a transcript chunk and
/// an audio chunk), the finish chunk (with `finish`), the usage chunk when
/// asked, `[DONE]`.
fn plan(
    model: &str,
    pieces: Vec<String>,
    audio: Option<&[u8]>,
    usage: Option<Value>,
    finish: &str,
) -> StreamPlan {
    let sound = audio.map(|a| speech::pieces(a, pieces.len()));
    let texts = pieces
        .into_iter()
        .enumerate()
        .map(|(i, piece)| {
            let Some(sound) = &sound else {
                let delta = if i == 0 {
                    json!({ "role": "assistant", "content": piece })
                } else {
                    json!({ "content": piece })
                };
                return chunk(model, delta, None);
            };
            let mut delta = json!({ "audio": { "transcript": piece } });
            if i == 0 {
                delta = json!({ "role": "assistant", "content": null, "audio": { "id": "audio_mock", "transcript": piece } });
            }
            let mut events = chunk(model, delta, None);
            if let Some(data) = sound.get(i).filter(|d| !d.is_empty()) {
                let data = base64::engine::general_purpose::STANDARD.encode(data);
                events.push_str(&chunk(model, json!({ "audio": { "data": data } }), None));
            }
            events
        })
        .collect();
    let mut tail = vec![chunk(model, json!({}), Some(finish))];
    if let Some(usage) = usage {
        let body = json!({
            "id": "chatcmpl-mock",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": model,
            "choices": [],
            "usage": usage,
        });
        tail.push(format!("data: {body}\n\n"));
    }
    tail.push("data: [DONE]\n\n".to_owned());
    StreamPlan {
        head: Vec::new(),
        texts,
        tail,
        malformed: "data: {\"id\":\"chatcmpl-mock\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"delta\":\n\n".to_owned(),
        error_event: format!(
            "data: {}\n\n",
            json!({ "error": { "message": "mock stream error", "type": "server_error" } })
        ),
        stop: None,
    }
}

/// `GET /v1/models`
pub(crate) async fn models() -> impl IntoResponse {
    axum::Json(
        json!({ "object": "list", "data": [{ "id": "mock", "object": "model", "owned_by": "chatbox" }] }),
    )
}
