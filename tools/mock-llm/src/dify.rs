//! The Dify chat-app wire format (`POST /v1/chat-messages`): a `query`
//! from a `user`, in a conversation the server keeps (a new one when
//! `conversation_id` is empty). The answer is `data: {json}` events with
//! the event name inside (`message` or `agent_message` per chunk, a
//! scripted `message_file`, then `message_end` with the usage) or, in
//! blocking mode, one JSON object. The request's `files` are checked as
//! Dify checks them and recorded.
//! `POST /v1/chat-messages/{task_id}/stop` ends a running stream early.
//! Errors are `{"code","message","status"}`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::stats::{LastRequest, Outcome, StreamGuard};
use super::{
    Behaviour, MockState, StreamPlan, Tracked, failure_response, paced, pieces_of, sse_response, tokens,
    unix_now, uuidish,
};

/// Conversations and running streams.
#[derive(Default)]
pub(crate) struct DifyState {
    /// Turns so far, per conversation id.
    conversations: Mutex<HashMap<String, u32>>,
    /// Stop tokens of the running streams, per task id.
    tasks: Arc<Mutex<HashMap<String, CancellationToken>>>,
}

impl DifyState {
    pub(crate) fn reset(&self) {
        self.conversations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

/// An error in Dify's format.
pub(crate) fn error(status: StatusCode, message: &str) -> Response {
    let code = match status.as_u16() {
        400 => "invalid_param",
        401 => "unauthorized",
        404 => "not_found",
        413 => "request_too_large",
        429 => "too_many_requests",
        _ => "internal_server_error",
    };
    coded(status, code, message)
}

fn coded(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({ "code": code, "message": message, "status": status.as_u16() });
    (status, axum::Json(body)).into_response()
}

fn invalid(message: &str) -> Response {
    error(StatusCode::BAD_REQUEST, message)
}

fn unauthorized() -> Response {
    error(StatusCode::UNAUTHORIZED, "Access token is invalid or missing.")
}

fn non_empty(value: &Value) -> Option<&str> {
    value.as_str().filter(|s| !s.trim().is_empty())
}

/// The request's `files`, refused where Dify refuses them.
fn files_of(request: &Value) -> Result<Vec<Value>, String> {
    let files = match &request["files"] {
        Value::Null => return Ok(Vec::new()),
        Value::Array(files) => files,
        _ => return Err("files must be a list".to_owned()),
    };
    for file in files {
        let kind = file["type"].as_str().unwrap_or_default();
        if !["document", "image", "audio", "video", "custom"].contains(&kind) {
            return Err(format!("Invalid file type {kind:?}"));
        }
        match file["transfer_method"].as_str() {
            Some("remote_url") if non_empty(&file["url"]).is_none() => {
                return Err("Invalid file url".to_owned());
            }
            Some("local_file") if non_empty(&file["upload_file_id"]).is_none() => {
                return Err("Invalid upload file id".to_owned());
            }
            Some("remote_url" | "local_file") => {}
            other => return Err(format!("Invalid transfer method {other:?}")),
        }
    }
    Ok(files.clone())
}

/// `POST /v1/chat-messages`
pub(crate) async fn chat_messages(
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
        return Err(unauthorized());
    }
    let request: Value =
        serde_json::from_slice(body).map_err(|e| invalid(&format!("invalid request body: {e}")))?;
    if !(request["inputs"].is_object() || request["inputs"].is_null()) {
        return Err(invalid("inputs must be an object"));
    }
    let query = non_empty(&request["query"]).ok_or_else(|| invalid("query is required"))?;
    let user = non_empty(&request["user"]).ok_or_else(|| invalid("user is required"))?;
    let streaming = match request["response_mode"].as_str() {
        Some("streaming") => true,
        Some("blocking") | None => false,
        Some(other) => {
            return Err(invalid(&format!(
                "response_mode must be streaming or blocking, not {other:?}"
            )));
        }
    };
    let given = non_empty(&request["conversation_id"]).map(str::to_owned);
    if let Some(id) = &given {
        let known = state
            .dify
            .conversations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(id);
        if !known {
            return Err(coded(
                StatusCode::NOT_FOUND,
                "not_found",
                "Conversation Not Exists.",
            ));
        }
    }
    let files = files_of(&request).map_err(|e| invalid(&e))?;
    let (behaviour, question) =
        Behaviour::resolve(&state.defaults, headers, query).map_err(|e| invalid(&e))?;
    let seen = tracked.count(&state.stats, &behaviour.key);
    let last = LastRequest {
        format: "dify",
        messages: vec![("user".to_owned(), query.to_owned())],
        user: Some(user.to_owned()),
        conversation_id: given.clone(),
        query: Some(query.to_owned()),
        stream: streaming,
        files,
        ..LastRequest::default()
    };
    state.stats.last_request(&behaviour.key, last.to_json());
    if let Some(failure) = behaviour.failure(seen) {
        return Err(failure_response(&behaviour, failure, error).await);
    }

    let (conversation_id, turn) = {
        let mut conversations = state.dify.conversations.lock().unwrap_or_else(|e| e.into_inner());
        match given {
            Some(id) => {
                let turn = conversations.entry(id.clone()).or_insert(0);
                *turn += 1;
                let turn = *turn;
                (id, turn)
            }
            None => {
                let id = format!("conv-{}", uuidish());
                conversations.insert(id.clone(), 1);
                state.stats.conversation();
                (id, 1)
            }
        }
    };
    state.stats.completion(1);

    let pieces = pieces_of(
        format!("You said: {question}. (turn {turn}) "),
        behaviour.chunks,
        behaviour.chunk_bytes,
    );
    let prompt_tokens = tokens(query);
    let completion_tokens = tokens(&pieces.concat());
    let usage = (!behaviour.usage_absent).then(|| {
        json!({
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "latency": behaviour.latency.as_secs_f64(),
        })
    });
    let metadata = match usage {
        Some(usage) => json!({ "usage": usage }),
        None => json!({}),
    };
    let ids = Ids {
        task_id: uuidish(),
        message_id: uuidish(),
        conversation_id,
    };
    if !streaming {
        if !behaviour.latency.is_zero() {
            tokio::time::sleep(behaviour.latency).await;
        }
        let body = json!({
            "event": "message",
            "task_id": ids.task_id,
            "id": ids.message_id,
            "message_id": ids.message_id,
            "conversation_id": ids.conversation_id,
            "mode": "chat",
            "answer": pieces.concat(),
            "metadata": metadata,
            "created_at": unix_now(),
        });
        state.stats.outcome(&behaviour.key, Outcome::Completed);
        return Ok(axum::Json(body).into_response());
    }

    let agent = request["inputs"]["agent"].as_bool().unwrap_or(false);
    let stop = CancellationToken::new();
    let tasks = state.dify.tasks.clone();
    tasks
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(ids.task_id.clone(), stop.clone());
    let task_id = ids.task_id.clone();
    let guard = StreamGuard::new(state.stats.clone(), behaviour.key.clone()).on_drop(move || {
        tasks.lock().unwrap_or_else(|e| e.into_inner()).remove(&task_id);
    });
    let plan = plan(&ids, pieces, agent, behaviour.file_url.as_deref(), metadata, stop);
    Ok(sse_response(Body::from_stream(paced(plan, &behaviour, guard))))
}

struct Ids {
    task_id: String,
    message_id: String,
    conversation_id: String,
}

fn data(value: &Value) -> String {
    format!("data: {value}\n\n")
}

fn plan(
    ids: &Ids,
    pieces: Vec<String>,
    agent: bool,
    file_url: Option<&str>,
    metadata: Value,
    stop: CancellationToken,
) -> StreamPlan {
    let created_at = unix_now();
    let name = if agent { "agent_message" } else { "message" };
    let texts = pieces
        .into_iter()
        .map(|answer| {
            data(&json!({
                "event": name,
                "task_id": ids.task_id,
                "id": ids.message_id,
                "message_id": ids.message_id,
                "conversation_id": ids.conversation_id,
                "answer": answer,
                "created_at": created_at,
            }))
        })
        .collect();
    let end = data(&json!({
        "event": "message_end",
        "task_id": ids.task_id,
        "id": ids.message_id,
        "message_id": ids.message_id,
        "conversation_id": ids.conversation_id,
        "metadata": metadata,
    }));
    let mut tail = Vec::new();
    if let Some(url) = file_url {
        tail.push(data(&json!({
            "event": "message_file",
            "id": uuidish(),
            "type": "image",
            "belongs_to": "assistant",
            "url": url,
            "conversation_id": ids.conversation_id,
        })));
    }
    tail.push(end.clone());
    StreamPlan {
        head: Vec::new(),
        texts,
        tail,
        malformed: format!(
            "data: {{\"event\":\"{name}\",\"task_id\":\"{}\",\"answer\":\n\n",
            ids.task_id
        ),
        error_event: data(&json!({
            "event": "error",
            "task_id": ids.task_id,
            "message_id": ids.message_id,
            "status": 500,
            "code": "mock_error",
            "message": "mock stream error",
        })),
        stop: Some((stop, vec![end])),
    }
}

/// `POST /v1/chat-messages/{task_id}/stop`: ends that stream early (with
/// `message_end`); unknown tasks succeed too, as in Dify.
pub(crate) async fn stop(
    State(state): State<Arc<MockState>>,
    Path(task_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !state.authorized(&headers) {
        return unauthorized();
    }
    let token = state
        .dify
        .tasks
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&task_id)
        .cloned();
    if let Some(token) = token {
        token.cancel();
    }
    state.stats.stopped();
    axum::Json(json!({ "result": "success" })).into_response()
}
