//! A Dify chat app over `reqwest` (`POST /v1/chat-messages`, Bearer key).
//!
//! Dify keeps the conversation on its side: a request carries only the
//! user's newest message (`query`) and the `conversation_id` Dify gave the
//! session's first answer, which the turn keeps with that answer (see
//! [`LlmEvent::Conversation`]). A conversation Dify no longer knows (404)
//! is started afresh. The app's prompt and model are configured in Dify.
//! Streams are `data:` lines whose JSON names the event: `message` or
//! `agent_message` (text), `message_end` (usage), `error`; other events
//! (`ping`, workflow and agent progress) are skipped. An answer dropped
//! before its end is stopped upstream (`POST /chat-messages/{task_id}/stop`)
//! so the app stops spending tokens.

use std::time::Duration;

use async_trait::async_trait;
use chatbox_shared::config::ProviderConfig;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tracing::debug;

use super::http::Endpoint;
use super::sse::{Decoder, SseEvent};
use super::{LlmError, LlmEvent, LlmProvider, LlmRequest, LlmStream, http};

/// The Dify `user` when the request names none.
const ANONYMOUS: &str = "chatbox";

/// A Dify chat app.
pub struct DifyProvider {
    api: Endpoint,
}

impl DifyProvider {
    /// A provider for one configuration entry.
    pub fn new(config: ProviderConfig) -> Result<Self, String> {
        Ok(DifyProvider {
            api: Endpoint::new(config, "chat-messages")?,
        })
    }

    async fn call(
        &self,
        request: &LlmRequest,
        conversation_id: Option<&str>,
    ) -> Result<reqwest::Response, LlmError> {
        let body = json!({
            "inputs": {},
            "query": request.question(),
            "response_mode": if self.api.config.stream { "streaming" } else { "blocking" },
            "user": request.user.as_deref().unwrap_or(ANONYMOUS),
            "conversation_id": conversation_id.unwrap_or_default(),
        });
        let call = self
            .api
            .post()
            .bearer_auth(self.api.config.api_key.expose())
            .json(&body);
        self.api.send(call).await
    }
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn usage(v: &Value) -> Option<LlmEvent> {
    let usage = v.pointer("/metadata/usage")?;
    Some(LlmEvent::Usage {
        prompt_tokens: usage.get("prompt_tokens")?.as_u64()?,
        completion_tokens: usage.get("completion_tokens")?.as_u64()?,
    })
}

#[async_trait]
impl LlmProvider for DifyProvider {
    fn config(&self) -> &ProviderConfig {
        &self.api.config
    }

    async fn stream(&self, request: &LlmRequest) -> Result<LlmStream, LlmError> {
        let known = request.conversation_id.as_deref();
        let response = match self.call(request, known).await {
            Err(LlmError::Status {
                status: 404, message, ..
            }) if known.is_some() => {
                debug!(provider = %self.api.config.id, "Dify no longer knows the conversation ({message}); starting a new one");
                self.call(request, None).await?
            }
            other => other?,
        };
        if !self.api.config.stream {
            let answer = http::json(response).await?;
            let mut events = Vec::new();
            if let Some(id) = text(&answer, "conversation_id") {
                events.push(Ok(LlmEvent::Conversation(id)));
            }
            if let Some(text) = text(&answer, "answer") {
                events.push(Ok(LlmEvent::Delta(text)));
            }
            events.extend(usage(&answer).map(Ok));
            return Ok(futures_util::stream::iter(events).boxed());
        }
        Ok(super::sse::decode(
            response,
            ChatDecoder {
                conversation: None,
                stop: Stopper {
                    api: self.api.clone(),
                    user: request.user.clone().unwrap_or_else(|| ANONYMOUS.to_owned()),
                    task_id: None,
                },
            },
        ))
    }
}

/// Reads chat-message events until `message_end`.
struct ChatDecoder {
    conversation: Option<String>,
    /// Stops the task upstream if the stream is dropped before its end.
    stop: Stopper,
}

impl Decoder for ChatDecoder {
    fn decode(&mut self, event: SseEvent, out: &mut Vec<Result<LlmEvent, LlmError>>) -> bool {
        let v: Value = match serde_json::from_str(&event.data) {
            Ok(v) => v,
            Err(e) => {
                let data: String = event.data.chars().take(200).collect();
                out.push(Err(LlmError::Protocol(format!("bad event {data:?}: {e}"))));
                return false;
            }
        };
        if self.stop.task_id.is_none() {
            self.stop.task_id = text(&v, "task_id");
        }
        if self.conversation.is_none()
            && let Some(id) = text(&v, "conversation_id")
        {
            self.conversation = Some(id.clone());
            out.push(Ok(LlmEvent::Conversation(id)));
        }
        match v.get("event").and_then(Value::as_str).unwrap_or_default() {
            "message" | "agent_message" => {
                if let Some(answer) = text(&v, "answer") {
                    out.push(Ok(LlmEvent::Delta(answer)));
                }
            }
            "message_end" => {
                out.extend(usage(&v).map(Ok));
                return true;
            }
            "error" => out.push(Err(LlmError::Upstream {
                kind: text(&v, "code").unwrap_or_else(|| "error".into()),
                message: text(&v, "message").unwrap_or_else(|| "no message".into()),
            })),
            _ => {}
        }
        false
    }

    fn finished(&mut self) {
        // Disarm: the task ended by itself.
        self.stop.task_id = None;
    }

    fn end_marker(&self) -> &'static str {
        "message_end"
    }
}

/// Asks Dify to stop a task whose answer nobody reads any more.
struct Stopper {
    api: Endpoint,
    user: String,
    task_id: Option<String>,
}

impl Drop for Stopper {
    fn drop(&mut self) {
        let (Some(task_id), Ok(runtime)) = (self.task_id.take(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        let call = self
            .api
            .post_to(&format!("chat-messages/{task_id}/stop"))
            .bearer_auth(self.api.config.api_key.expose())
            .timeout(Duration::from_secs(10))
            .json(&json!({ "user": self.user }));
        let api = self.api.clone();
        runtime.spawn(async move {
            let provider = &api.config.id;
            match api.send(call).await {
                Ok(_) => debug!(%provider, %task_id, "stopped the Dify task"),
                Err(e) => debug!(%provider, %task_id, "cannot stop the Dify task: {e}"),
            }
        });
    }
}
