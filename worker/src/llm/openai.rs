//! OpenAI Chat Completions over `reqwest`, streamed as server-sent events.
//!
//! Works with any OpenAI-compatible endpoint (vLLM, Ollama, LiteLLM, the
//! project's `chatbox mock-llm`). Streaming asks for usage with
//! `stream_options.include_usage`; each `data:` event carries
//! `choices[0].delta.content`, the last ones carry `usage`, and `[DONE]`
//! ends the stream. With `stream = false` the whole answer comes in one
//! response.

use std::time::Duration;

use async_trait::async_trait;
use chatbox_shared::config::ProviderConfig;
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::json;

use super::sse::{SseEvent, SseParser};
use super::{LlmError, LlmEvent, LlmProvider, LlmRequest, LlmStream, http_client};

/// An OpenAI-compatible provider.
pub struct OpenAiProvider {
    config: ProviderConfig,
    client: reqwest::Client,
    url: String,
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
}

impl OpenAiProvider {
    /// A provider for one configuration entry.
    pub fn new(config: ProviderConfig) -> Result<Self, String> {
        let client = http_client(config.connect_timeout)?;
        let url = format!("{}/chat/completions", config.endpoint.trim_end_matches('/'));
        Ok(OpenAiProvider { config, client, url })
    }

    fn body(&self, request: &LlmRequest, stream: bool) -> serde_json::Value {
        let mut messages = Vec::with_capacity(request.messages.len() + 1);
        if let Some(system) = self.config.system_prompt.as_deref().filter(|s| !s.is_empty()) {
            messages.push(json!({ "role": "system", "content": system }));
        }
        messages.extend(
            request
                .messages
                .iter()
                .map(|m| json!({ "role": m.role.as_str(), "content": m.content })),
        );
        let model = if self.config.model.is_empty() {
            &self.config.id
        } else {
            &self.config.model
        };
        let mut body = json!({ "model": model, "messages": messages, "stream": stream });
        if stream {
            body["stream_options"] = json!({ "include_usage": true });
        }
        if let Some(max) = self.config.max_tokens {
            body["max_tokens"] = json!(max);
        }
        if let Some(t) = self.config.temperature {
            body["temperature"] = json!(t);
        }
        if let Some(user) = &request.user {
            body["user"] = json!(user);
        }
        body
    }
}

fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let value = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

async fn status_error(response: reqwest::Response) -> LlmError {
    let status = response.status().as_u16();
    let retry_after = retry_after(&response);
    let text = response.text().await.unwrap_or_default();
    let message = serde_json::from_str::<Chunk>(&text)
        .ok()
        .and_then(|c| c.error)
        .map(|e| e.message)
        .unwrap_or_else(|| text.chars().take(300).collect());
    LlmError::Status {
        status,
        message,
        retry_after,
    }
}

fn events_of(chunk: Chunk, out: &mut Vec<Result<LlmEvent, LlmError>>) {
    if let Some(error) = chunk.error {
        out.push(Err(LlmError::Protocol(format!("error event: {}", error.message))));
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
    fn id(&self) -> &str {
        &self.config.id
    }

    fn name(&self) -> &str {
        if self.config.name.is_empty() {
            &self.config.id
        } else {
            &self.config.name
        }
    }

    fn first_token_timeout(&self) -> Duration {
        self.config.first_token_timeout
    }

    fn idle_timeout(&self) -> Duration {
        self.config.idle_timeout
    }

    async fn stream(&self, request: LlmRequest) -> Result<LlmStream, LlmError> {
        let mut call = self
            .client
            .post(&self.url)
            .json(&self.body(&request, self.config.stream));
        for (name, value) in &self.config.headers {
            call = call.header(name.as_str(), value.as_str());
        }
        if !self.config.api_key.is_empty() {
            call = call.bearer_auth(self.config.api_key.expose());
        }
        let response = call.send().await.map_err(|e| {
            if e.is_timeout() {
                LlmError::Timeout("connect")
            } else {
                LlmError::Connect(e.without_url().to_string())
            }
        })?;
        if !response.status().is_success() {
            return Err(status_error(response).await);
        }
        if !self.config.stream {
            let chunk: Chunk = response
                .json()
                .await
                .map_err(|e| LlmError::Protocol(e.without_url().to_string()))?;
            let mut events = Vec::new();
            events_of(chunk, &mut events);
            return Ok(futures_util::stream::iter(events).boxed());
        }

        let bytes = response.bytes_stream();
        let stream = futures_util::stream::unfold(
            (bytes, SseParser::new(), Vec::<SseEvent>::new(), false),
            |(mut bytes, mut parser, mut pending, mut done)| async move {
                loop {
                    if done {
                        return None;
                    }
                    if !pending.is_empty() {
                        let event = pending.remove(0);
                        if event.data.trim() == "[DONE]" {
                            done = true;
                            continue;
                        }
                        let mut out = Vec::new();
                        match serde_json::from_str::<Chunk>(&event.data) {
                            Ok(chunk) => events_of(chunk, &mut out),
                            Err(e) => out.push(Err(LlmError::Protocol(format!(
                                "bad event {:?}: {e}",
                                event.data
                            )))),
                        }
                        if out.is_empty() {
                            continue;
                        }
                        return Some((futures_util::stream::iter(out), (bytes, parser, pending, done)));
                    }
                    match bytes.next().await {
                        Some(Ok(data)) => {
                            if let Err(e) = parser.feed(&data, &mut pending) {
                                let out = vec![Err(LlmError::Protocol(e))];
                                return Some((
                                    futures_util::stream::iter(out),
                                    (bytes, parser, pending, true),
                                ));
                            }
                        }
                        Some(Err(e)) => {
                            let out = vec![Err(LlmError::Connect(format!(
                                "stream interrupted: {}",
                                e.without_url()
                            )))];
                            return Some((futures_util::stream::iter(out), (bytes, parser, pending, true)));
                        }
                        None => {
                            // The body ended without `[DONE]`: the answer is
                            // cut off.
                            let out = vec![Err(LlmError::Protocol("the stream ended before [DONE]".into()))];
                            return Some((futures_util::stream::iter(out), (bytes, parser, pending, true)));
                        }
                    }
                }
            },
        )
        .flatten()
        .boxed();
        Ok(stream)
    }
}
