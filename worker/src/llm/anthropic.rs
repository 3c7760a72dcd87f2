//! Anthropic Messages over `reqwest` (`POST /v1/messages`, `x-api-key`,
//! `anthropic-version`).
//!
//! The API wants the conversation to alternate user and assistant turns,
//! starting with the user, and the system prompt apart: consecutive
//! messages of one role are joined, leading assistant messages dropped,
//! system messages moved to `system`. `max_tokens` is required (4096 when
//! the configuration names none). A stream is `message_start` (input
//! tokens), `content_block_start`, `ping`s, `content_block_delta`s of
//! text, `content_block_stop`, `message_delta` (output tokens and the
//! `stop_reason`), `message_stop`; an `error` event ends it early. The
//! `stop_reason` (of `message_delta`, or of the whole message) says how it
//! ended: `max_tokens` and `model_context_window_exceeded` cut the answer
//! at a limit, `refusal` is the model declining (both an
//! [`LlmEvent::Finish`]); `end_turn` and `stop_sequence` end it complete,
//! and so do `tool_use` and `pause_turn`, which come only with tools,
//! which chatbox does not send. A message with images
//! becomes content blocks: each image (`source.type = "base64"`), then its
//! text; one without keeps its plain string.

use async_trait::async_trait;
use chatbox_shared::config::ProviderConfig;
use futures_util::StreamExt;
use serde_json::{Value, json};

use super::http::Endpoint;
use super::sse::{Decoder, SseEvent};
use super::{Attachment, ChatRole, Cut, LlmError, LlmEvent, LlmProvider, LlmRequest, LlmStream, http};

/// `anthropic-version` when the configuration names none.
pub(super) const DEFAULT_VERSION: &str = "2023-06-01";
/// `max_tokens` when the configuration names none (the API requires one):
/// enough for any ordinary answer, and what every Claude model can write
/// (the oldest, Claude 3 Haiku, stops at 4096).
pub(super) const DEFAULT_MAX_TOKENS: u32 = 4096;

/// An Anthropic Messages provider.
pub struct AnthropicProvider {
    api: Endpoint,
}

impl AnthropicProvider {
    /// A provider for one configuration entry.
    pub fn new(config: ProviderConfig) -> Result<Self, String> {
        Ok(AnthropicProvider {
            api: Endpoint::new(config, "messages")?,
        })
    }

    fn body(&self, request: &LlmRequest) -> Value {
        let mut system: Vec<&str> = self
            .api
            .config
            .system_prompt
            .as_deref()
            .filter(|s| !s.is_empty())
            .into_iter()
            .collect();
        let mut turns: Vec<Turn> = Vec::with_capacity(request.messages.len());
        for m in &request.messages {
            match m.role {
                ChatRole::System => system.push(&m.content),
                role => match turns.last_mut() {
                    Some(last) if last.role == role => {
                        if !m.content.is_empty() {
                            if !last.text.is_empty() {
                                last.text.push_str("\n\n");
                            }
                            last.text.push_str(&m.content);
                        }
                        last.attachments.extend(&m.attachments);
                    }
                    None if role == ChatRole::Assistant => {}
                    _ => turns.push(Turn {
                        role,
                        text: m.content.clone(),
                        attachments: m.attachments.iter().collect(),
                    }),
                },
            }
        }
        let messages: Vec<Value> = turns.iter().map(Turn::to_json).collect();
        let model = self.model();
        let mut body = json!({
            "model": model,
            "max_tokens": self.api.config.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
            "messages": messages,
            "stream": self.api.config.stream,
        });
        if !system.is_empty() {
            body["system"] = json!(system.join("\n\n"));
        }
        if let Some(t) = self.api.config.temperature {
            body["temperature"] = json!(t);
        }
        if let Some(user) = &request.user {
            body["metadata"] = json!({ "user_id": user });
        }
        body
    }
}

/// One turn of the conversation: consecutive messages of one role.
struct Turn<'a> {
    role: ChatRole,
    text: String,
    attachments: Vec<&'a Attachment>,
}

impl Turn<'_> {
    /// The message: plain text, or with images its content blocks (the
    /// images first, as Anthropic advises, then the text).
    fn to_json(&self) -> Value {
        if self.attachments.is_empty() {
            return json!({ "role": self.role.as_str(), "content": self.text });
        }
        let mut blocks: Vec<Value> = self
            .attachments
            .iter()
            .map(|attachment| match attachment {
                Attachment::Image { media_type, .. } => json!({
                    "type": "image",
                    "source": { "type": "base64", "media_type": media_type, "data": attachment.base64() },
                }),
            })
            .collect();
        // The API refuses empty text blocks.
        if !self.text.is_empty() {
            blocks.push(json!({ "type": "text", "text": self.text }));
        }
        json!({ "role": self.role.as_str(), "content": blocks })
    }
}

/// The cut a `stop_reason` tells of, if it tells of one.
fn cut_of(stop_reason: &str) -> Option<Cut> {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => Some(Cut::Length),
        "refusal" => Some(Cut::ContentFilter),
        _ => None,
    }
}

/// A `stop_reason` at `pointer` of `v` as the event it makes, if any.
fn finish(v: &Value, pointer: &str) -> Option<Result<LlmEvent, LlmError>> {
    let cut = v.pointer(pointer).and_then(Value::as_str).and_then(cut_of)?;
    Some(Ok(LlmEvent::Finish(cut)))
}

fn uint(v: &Value, pointer: &str) -> Option<u64> {
    v.pointer(pointer).and_then(Value::as_u64)
}

fn upstream(v: &Value) -> LlmError {
    LlmError::Upstream {
        kind: v
            .pointer("/error/type")
            .and_then(Value::as_str)
            .unwrap_or("error")
            .to_owned(),
        message: v
            .pointer("/error/message")
            .and_then(Value::as_str)
            .unwrap_or("no message")
            .to_owned(),
    }
}

#[async_trait]
impl LlmProvider for AnthropicProvider {
    fn config(&self) -> &ProviderConfig {
        &self.api.config
    }

    async fn stream(&self, request: &LlmRequest) -> Result<LlmStream, LlmError> {
        let version = self.api.config.api_version.as_deref().unwrap_or(DEFAULT_VERSION);
        let call = self
            .api
            .post()
            .header("x-api-key", self.api.config.api_key.expose())
            .header("anthropic-version", version)
            .json(&self.body(request));
        let response = self.api.send(call).await?;
        if !self.api.config.stream {
            let message = http::json(response).await?;
            if message.get("type").and_then(Value::as_str) == Some("error") {
                return Err(upstream(&message));
            }
            let mut events = Vec::new();
            for block in message
                .get("content")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(text) = block
                    .get("text")
                    .and_then(Value::as_str)
                    .filter(|t| !t.is_empty())
                {
                    events.push(Ok(LlmEvent::Delta(text.to_owned())));
                }
            }
            if let (Some(input), Some(output)) = (
                uint(&message, "/usage/input_tokens"),
                uint(&message, "/usage/output_tokens"),
            ) {
                events.push(Ok(LlmEvent::Usage {
                    prompt_tokens: input,
                    completion_tokens: output,
                }));
            }
            events.extend(finish(&message, "/stop_reason"));
            return Ok(futures_util::stream::iter(events).boxed());
        }
        Ok(super::sse::decode(response, MessageDecoder::default()))
    }
}

/// Reads the Messages event stream until `message_stop`.
#[derive(Default)]
struct MessageDecoder {
    input_tokens: Option<u64>,
}

impl Decoder for MessageDecoder {
    fn decode(&mut self, event: SseEvent, out: &mut Vec<Result<LlmEvent, LlmError>>) -> bool {
        let v: Value = match event.json() {
            Ok(v) => v,
            Err(e) => {
                out.push(Err(e));
                return false;
            }
        };
        let kind = event
            .event
            .as_deref()
            .or_else(|| v.get("type").and_then(Value::as_str))
            .unwrap_or_default();
        match kind {
            "message_start" => self.input_tokens = uint(&v, "/message/usage/input_tokens"),
            "content_block_delta" => {
                if let Some(text) = v
                    .pointer("/delta/text")
                    .and_then(Value::as_str)
                    .filter(|t| !t.is_empty())
                {
                    out.push(Ok(LlmEvent::Delta(text.to_owned())));
                }
            }
            "message_delta" => {
                if let Some(output) = uint(&v, "/usage/output_tokens") {
                    // Newer streams repeat the input count here.
                    let input = uint(&v, "/usage/input_tokens").or(self.input_tokens);
                    out.push(Ok(LlmEvent::Usage {
                        prompt_tokens: input.unwrap_or_default(),
                        completion_tokens: output,
                    }));
                }
                out.extend(finish(&v, "/delta/stop_reason"));
            }
            "message_stop" => return true,
            "error" => out.push(Err(upstream(&v))),
            // ping, content_block_start/stop, and event types added later.
            _ => {}
        }
        false
    }

    fn end_marker(&self) -> &'static str {
        "message_stop"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::ChatMessage;
    use chatbox_shared::config::ProviderKind;

    fn provider() -> AnthropicProvider {
        let config: ProviderConfig = serde_json::from_value(json!({
            "id": "claude", "type": "anthropic", "endpoint": "http://127.0.0.1:1/v1",
            "system_prompt": "Be brief."
        }))
        .unwrap();
        assert_eq!(config.kind, ProviderKind::Anthropic);
        AnthropicProvider::new(config).unwrap()
    }

    fn msg(role: ChatRole, content: &str) -> ChatMessage {
        ChatMessage::text(role, content)
    }

    fn with_image(content: &str, media_type: &str, data: &'static [u8]) -> ChatMessage {
        ChatMessage {
            attachments: vec![Attachment::Image {
                media_type: media_type.into(),
                data: bytes::Bytes::from_static(data),
                url: None,
            }],
            ..msg(ChatRole::User, content)
        }
    }

    #[test]
    fn images_come_as_base64_blocks_before_the_text() {
        let request = LlmRequest {
            messages: vec![
                msg(ChatRole::User, "earlier"),
                msg(ChatRole::Assistant, "ok"),
                with_image("look", "image/png", b"png"),
                with_image("", "image/jpeg", b"jpg"),
            ],
            ..LlmRequest::default()
        };
        let body = provider().body(&request);
        assert_eq!(
            body["messages"],
            json!([
                { "role": "user", "content": "earlier" },
                { "role": "assistant", "content": "ok" },
                { "role": "user", "content": [
                    { "type": "image", "source": { "type": "base64", "media_type": "image/png", "data": "cG5n" } },
                    { "type": "image", "source": { "type": "base64", "media_type": "image/jpeg", "data": "anBn" } },
                    { "type": "text", "text": "look" },
                ] },
            ])
        );
    }

    #[test]
    fn the_conversation_is_shaped_as_the_messages_api_requires() {
        let request = LlmRequest {
            messages: vec![
                msg(ChatRole::Assistant, "Hello, how can I help?"),
                msg(ChatRole::User, "one"),
                msg(ChatRole::User, "two"),
                msg(ChatRole::System, "Answer in French."),
                msg(ChatRole::Assistant, "un, deux"),
                msg(ChatRole::User, "three"),
            ],
            user: Some("u-hash".into()),
            ..LlmRequest::default()
        };
        let body = provider().body(&request);
        assert_eq!(body["system"], "Be brief.\n\nAnswer in French.");
        assert_eq!(body["max_tokens"], DEFAULT_MAX_TOKENS);
        assert_eq!(body["metadata"]["user_id"], "u-hash");
        assert_eq!(
            body["messages"],
            json!([
                { "role": "user", "content": "one\n\ntwo" },
                { "role": "assistant", "content": "un, deux" },
                { "role": "user", "content": "three" },
            ])
        );
    }

    #[test]
    fn stop_reasons_cut_at_a_limit_or_refuse_or_end_complete() {
        let end = |reason: &str| {
            let mut decoder = MessageDecoder::default();
            let mut out = Vec::new();
            let delta = json!({ "type": "message_delta", "delta": { "stop_reason": reason, "stop_sequence": null }, "usage": { "output_tokens": 9 } });
            decoder.decode(
                SseEvent {
                    event: Some("message_delta".into()),
                    data: delta.to_string(),
                },
                &mut out,
            );
            out.into_iter()
                .filter_map(|e| match e {
                    Ok(LlmEvent::Finish(cut)) => Some(cut),
                    _ => None,
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(end("max_tokens"), [Cut::Length]);
        assert_eq!(end("model_context_window_exceeded"), [Cut::Length]);
        assert_eq!(end("refusal"), [Cut::ContentFilter]);
        for complete in ["end_turn", "stop_sequence", "tool_use", "pause_turn"] {
            assert!(end(complete).is_empty(), "{complete}");
        }
        let whole = json!({ "type": "message", "content": [], "stop_reason": "max_tokens" });
        assert!(matches!(
            finish(&whole, "/stop_reason"),
            Some(Ok(LlmEvent::Finish(Cut::Length)))
        ));
    }
}
