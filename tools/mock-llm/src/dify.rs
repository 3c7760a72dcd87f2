//! The Dify chat-app wire format (`POST /v1/chat-messages`): a `query`
//! from a `user`, in a conversation the server keeps (a new one when
//! `conversation_id` is empty), with the app's `inputs` (recorded; those a
//! script says the app requires are checked as Dify checks them). The
//! answer is `data: {json}` events with the event name inside (`message`
//! or `agent_message` per chunk, a scripted `message_file`, then
//! `message_end` with the usage) or, in blocking mode, one JSON object.
//! Scripted, as Dify apps behave: output moderation (`message_replace`),
//! a pause filled with `event: ping` (no data, as Dify sends it), an
//! agent's tool call (`agent_thought` around the pause), a chatflow's
//! `workflow_*` and `node_*` events. The request's `files` are checked as
//! Dify checks them and recorded.
//! `POST /v1/chat-messages/{task_id}/stop` ends a running stream early.
//! Errors are `{"code","message","status"}`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::script::DifyScript;
use super::stats::{LastRequest, Outcome, StreamGuard};
use super::{
    Behaviour, Interlude, MockState, StreamPlan, Tracked, failure_response, paced_with, pieces_of,
    sse_response, tokens, unix_now, uuidish,
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
        inputs: Some(request["inputs"].clone()),
        ..LastRequest::default()
    };
    state.stats.last_request(&behaviour.key, last.to_json());
    if let Some(missing) = missing_input(&behaviour.dify, &request["inputs"]) {
        return Err(invalid(&format!("{missing} is required in input form")));
    }
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

    let mut pieces = pieces_of(
        format!("You said: {question}. (turn {turn}) "),
        behaviour.chunks,
        behaviour.chunk_bytes,
    );
    if let Some(kept) = behaviour.dify.replace_after {
        // Moderation stops the answer where it flags it.
        pieces.truncate(kept);
    }
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

    let agent = request["inputs"]["agent"].as_bool().unwrap_or(false) || behaviour.dify.agent_tool.is_some();
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
    let plan = with_app_events(plan, &ids, &behaviour.dify);
    let pause = pause(&ids, &behaviour.dify, &question);
    Ok(sse_response(Body::from_stream(paced_with(
        plan, pause, &behaviour, guard,
    ))))
}

/// The first input the script requires that the request lacks (absent,
/// null or empty, as Dify's `_validate_inputs` sees it).
fn missing_input<'a>(script: &'a DifyScript, inputs: &Value) -> Option<&'a str> {
    script
        .require_inputs
        .iter()
        .find(|name| match &inputs[name.as_str()] {
            Value::Null => true,
            Value::String(s) => s.is_empty(),
            _ => false,
        })
        .map(String::as_str)
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

/// The preset reply of the mock app's output moderation.
pub(crate) const MODERATED: &str = "Sorry, this answer was withheld by the app's content moderation.";

/// The plan with what the script adds around the text: the chatflow's
/// workflow and node events (Dify API reference, Advanced Chat App → Send
/// Chat Message → `workflow_started`, `node_started`, `node_finished`,
/// `workflow_finished`) and moderation's `message_replace` (Chat App →
/// Send Chat Message → `message_replace`).
fn with_app_events(mut plan: StreamPlan, ids: &Ids, script: &DifyScript) -> StreamPlan {
    let mut before_end = Vec::new();
    if script.replace_after.is_some() {
        before_end.push(data(&json!({
            "event": "message_replace",
            "task_id": ids.task_id,
            "message_id": ids.message_id,
            "conversation_id": ids.conversation_id,
            "answer": MODERATED,
            "created_at": unix_now(),
        })));
    }
    if script.workflow {
        let run = uuidish();
        let node = |event: &str, node_id: &str, kind: &str, title: &str, index: u32| {
            let mut data_ = json!({
                "id": uuidish(), "node_id": node_id, "node_type": kind, "title": title,
                "index": index, "inputs": {}, "created_at": unix_now(),
            });
            if event == "node_finished" {
                data_["status"] = json!("succeeded");
                data_["outputs"] = json!({});
                data_["elapsed_time"] = json!(0.1);
            }
            data(&json!({ "event": event, "task_id": ids.task_id, "workflow_run_id": run, "data": data_ }))
        };
        let workflow = |event: &str| {
            let mut data_ = json!({ "id": run, "workflow_id": "mock-workflow", "created_at": unix_now() });
            if event == "workflow_finished" {
                data_["status"] = json!("succeeded");
                data_["outputs"] = json!({});
                data_["total_steps"] = json!(2);
                data_["finished_at"] = json!(unix_now());
            } else {
                data_["sequence_number"] = json!(1);
            }
            data(&json!({ "event": event, "task_id": ids.task_id, "workflow_run_id": run, "data": data_ }))
        };
        let head = [
            workflow("workflow_started"),
            node("node_started", "start", "start", "Start", 1),
            node("node_finished", "start", "start", "Start", 1),
            node("node_started", "llm", "llm", "LLM", 2),
        ];
        plan.head.splice(0..0, head);
        before_end.push(node("node_finished", "llm", "llm", "LLM", 2));
        before_end.push(workflow("workflow_finished"));
    }
    plan.tail.splice(0..0, before_end);
    plan
}

/// The pause the script asks for, after `pause_after` text chunks: an
/// agent's tool call (`agent_thought` naming the tool before it, with the
/// tool's observation after it: Agent → Send Chat Message →
/// `agent_thought`) and a gap in which Dify only pings (`event: ping`,
/// every `ping_every`; Send Chat Message → `ping`).
fn pause(ids: &Ids, script: &DifyScript, question: &str) -> Vec<Interlude> {
    let mut events = Vec::new();
    let thought = |thought: &str, observation: &str, tool: &str| {
        data(&json!({
            "event": "agent_thought",
            "id": uuidish(),
            "task_id": ids.task_id,
            "message_id": ids.message_id,
            "position": 1,
            "thought": thought,
            "observation": observation,
            "tool": tool,
            "tool_input": json!({ tool: { "query": question } }).to_string(),
            "created_at": unix_now(),
            "message_files": [],
            "conversation_id": ids.conversation_id,
        }))
    };
    if let Some(tool) = &script.agent_tool {
        events.push((Duration::ZERO, thought(&format!("I will ask {tool}."), "", tool)));
    }
    let mut waited = Duration::ZERO;
    while waited < script.ping_gap {
        let wait = script.ping_every.min(script.ping_gap - waited);
        waited += wait;
        events.push((wait, "event: ping\n\n".to_owned()));
    }
    if let Some(tool) = &script.agent_tool {
        events.push((Duration::ZERO, thought("", &format!("{tool} found it."), tool)));
    }
    vec![Interlude {
        after: script.pause_after,
        events,
    }]
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
