//! OpenAI Chat Completions over `reqwest`, streamed as server-sent events.
//!
//! Works with any OpenAI-compatible endpoint (vLLM, Ollama, LiteLLM, the
//! project's `chatbox mock-llm`). Streaming asks for usage with
//! `stream_options.include_usage`; each `data:` event carries
//! `choices[0].delta.content`, the last ones carry `usage`, and `[DONE]`
//! ends the stream. With `stream = false` the whole answer comes in one
//! response.

use async_trait::async_trait;
use chatbox_shared::config::ProviderConfig;
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::json;

use super::http::Endpoint;
use super::sse::{Decoder, SseEvent};
use super::{LlmError, LlmEvent, LlmProvider, LlmRequest, LlmStream, http};

/// An OpenAI-compatible provider.
pub struct OpenAiProvider {
    api: Endpoint,
}

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(default)]
    error: Option<ApiError>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    delta: Option<Content>,
    #[serde(default)]
    message: Option<Content>,
}

#[derive(Deserialize)]
struct Content {
    #[serde(default)]
    content: Option<String>,
}

#[derive(Deserialize)]
struct Usage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

#[derive(Deserialize)]
struct ApiError {
    #[serde(default)]
    message: String,
    #[serde(default, rename = "type")]
    kind: Option<String>,
}

impl OpenAiProvider {
    /// A provider for one configuration entry.
    pub fn new(config: ProviderConfig) -> Result<Self, String> {
        Ok(OpenAiProvider {
            api: Endpoint::new(config, "chat/completions")?,
        })
    }

    fn body(&self, request: &LlmRequest, stream: bool) -> serde_json::Value {
        let mut messages = Vec::with_capacity(request.messages.len() + 1);
        if let Some(system) = self.api.config.system_prompt.as_deref().filter(|s| !s.is_empty()) {
            messages.push(json!({ "role": "system", "content": system }));
        }
        messages.extend(
            request
                .messages
                .iter()
                .map(|m| json!({ "role": m.role.as_str(), "content": m.content })),
        );
        let model = self.model();
        let mut body = json!({ "model": model, "messages": messages, "stream": stream });
        if stream {
            body["stream_options"] = json!({ "include_usage": true });
        }
        if let Some(max) = self.api.config.max_tokens {
            body["max_tokens"] = json!(max);
        }
        if let Some(t) = self.api.config.temperature {
            body["temperature"] = json!(t);
        }
        if let Some(user) = &request.user {
            body["user"] = json!(user);
        }
        body
    }
}

fn events_of(chunk: Chunk, out: &mut Vec<Result<LlmEvent, LlmError>>) {
    if let Some(error) = chunk.error {
        out.push(Err(LlmError::Upstream {
            kind: error.kind.unwrap_or_else(|| "error".into()),
            message: error.message,
        }));
        return;
    }
    for choice in chunk.choices {
        let text = choice.delta.or(choice.message).and_then(|c| c.content);
        if let Some(text) = text.filter(|t| !t.is_empty()) {
            out.push(Ok(LlmEvent::Delta(text)));
        }
    }
    if let Some(usage) = chunk.usage {
        out.push(Ok(LlmEvent::Usage {
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
        }));
    }
}

#[async_trait]
impl LlmProvider for OpenAiProvider {
    fn config(&self) -> &ProviderConfig {
        &self.api.config
    }

    async fn stream(&self, request: &LlmRequest) -> Result<LlmStream, LlmError> {
        let mut call = self.api.post().json(&self.body(request, self.api.config.stream));
        if !self.api.config.api_key.is_empty() {
            call = call.bearer_auth(self.api.config.api_key.expose());
        }
        let response = self.api.send(call).await?;
        if !self.api.config.stream {
            let chunk: Chunk = serde_json::from_value(http::json(response).await?)
                .map_err(|e| LlmError::Protocol(format!("not a chat completion: {e}")))?;
            let mut events = Vec::new();
            events_of(chunk, &mut events);
            return Ok(futures_util::stream::iter(events).boxed());
        }
        Ok(super::sse::decode(response, ChunkDecoder))
    }
}

/// Reads `chat.completion.chunk` events until `[DONE]`.
struct ChunkDecoder;

impl Decoder for ChunkDecoder {
    fn decode(&mut self, event: SseEvent, out: &mut Vec<Result<LlmEvent, LlmError>>) -> bool {
        if event.data.trim() == "[DONE]" {
            return true;
        }
        match serde_json::from_str::<Chunk>(&event.data) {
            Ok(chunk) => events_of(chunk, out),
            Err(e) => out.push(Err(LlmError::Protocol(format!(
                "bad event {:?}: {e}",
                event.data
            )))),
        }
        false
    }

    fn end_marker(&self) -> &'static str {
        "[DONE]"
    }
}
