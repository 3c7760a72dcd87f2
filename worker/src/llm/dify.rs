//! A Dify chat app over `reqwest` (`POST /v1/chat-messages`, Bearer key).
//!
//! Dify keeps the conversation on its side: a request carries only the
//! user's newest message (`query`) and the `conversation_id` Dify gave the
//! session's first answer, which the turn keeps with that answer (see
//! [`LlmEvent::Conversation`]). A conversation Dify no longer knows (404)
//! is started afresh. The app's prompt and model are configured in Dify.
//! Streams are `data:` lines whose JSON names the event: `message` or
//! `agent_message` (text), `message_end` (usage), `error`; other events
//! (`ping`, workflow and agent progress) are skipped; `message_file` (a
//! file the app made, such as a chart) becomes [`LlmEvent::File`], its URL
//! made absolute against the endpoint's origin (Dify may send `/files/…`).
//! The newest user message's images go as `files` by `remote_url`: Dify
//! fetches them itself, so images without a URL cannot go. An answer
//! dropped before its end is stopped upstream
//! (`POST /chat-messages/{task_id}/stop`) so the app stops spending tokens.

use std::time::Duration;

use async_trait::async_trait;
use chatbox_shared::config::ProviderConfig;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tracing::debug;

use super::http::Endpoint;
use super::sse::{Decoder, SseEvent};
use super::{Attachment, ChatRole, LlmError, LlmEvent, LlmProvider, LlmRequest, LlmStream, http};

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
        let mut body = json!({
            "inputs": {},
            "query": request.question(),
            "response_mode": if self.api.config.stream { "streaming" } else { "blocking" },
            "user": request.user.as_deref().unwrap_or(ANONYMOUS),
            "conversation_id": conversation_id.unwrap_or_default(),
        });
        let files = self.files(request);
        if !files.is_empty() {
            body["files"] = Value::Array(files);
        }
        let call = self
            .api
            .post()
            .bearer_auth(self.api.config.api_key.expose())
            .json(&body);
        self.api.send(call).await
    }
}

impl DifyProvider {
    /// The `files` of the newest user message (Dify takes the query and
    /// its files; earlier ones it has seen already).
    fn files(&self, request: &LlmRequest) -> Vec<Value> {
        let newest = request.messages.iter().rev().find(|m| m.role == ChatRole::User);
        let mut files = Vec::new();
        for attachment in newest.into_iter().flat_map(|m| &m.attachments) {
            match attachment {
                Attachment::Image { url: Some(url), .. } => files.push(json!({
                    "type": "image", "transfer_method": "remote_url", "url": url,
                })),
                Attachment::Image { media_type, .. } => {
                    debug!(provider = %self.api.config.id, %media_type, "an image without a URL cannot go to Dify; left out");
                }
            }
        }
        files
    }
}

/// `url` made absolute: a relative one is resolved against the origin of
/// `endpoint`.
fn absolute(endpoint: &str, url: &str) -> String {
    if reqwest::Url::parse(url).is_ok() {
        return url.to_owned();
    }
    reqwest::Url::parse(endpoint)
        .and_then(|base| base.join("/")?.join(url))
        .map_or_else(|_| url.to_owned(), String::from)
}

/// The media type of a Dify file of `kind` (`image`, `audio`, `video`,
/// `document`…) at `url`: from its extension when known, else the kind's
/// family.
fn media_type(kind: Option<&str>, url: &str) -> Option<String> {
    let path = url.split(['?', '#']).next().unwrap_or_default();
    let name = path.rsplit('/').next().unwrap_or_default();
    let extension = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    let known = match extension.as_deref() {
        Some("png") => Some("image/png"),
        Some("jpg" | "jpeg") => Some("image/jpeg"),
        Some("gif") => Some("image/gif"),
        Some("webp") => Some("image/webp"),
        Some("svg") => Some("image/svg+xml"),
        Some("pdf") => Some("application/pdf"),
        Some("mp3") => Some("audio/mpeg"),
        Some("wav") => Some("audio/wav"),
        Some("mp4") => Some("video/mp4"),
        _ => None,
    };
    known.map(str::to_owned).or_else(|| match kind {
        Some(family @ ("image" | "audio" | "video")) => Some(format!("{family}/*")),
        _ => None,
    })
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
                endpoint: self.api.config.endpoint.clone(),
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
    /// Against which relative file URLs are resolved.
    endpoint: String,
    /// Stops the task upstream if the stream is dropped before its end.
    stop: Stopper,
}

impl Decoder for ChatDecoder {
    fn decode(&mut self, event: SseEvent, out: &mut Vec<Result<LlmEvent, LlmError>>) -> bool {
        let v: Value = match event.json() {
            Ok(v) => v,
            Err(e) => {
                out.push(Err(e));
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
            // The user's own files are echoed too; only the app's are news.
            "message_file" if v.get("belongs_to").and_then(Value::as_str) != Some("user") => {
                if let Some(url) = text(&v, "url") {
                    let url = absolute(&self.endpoint, &url);
                    let media_type = media_type(v.get("type").and_then(Value::as_str), &url);
                    out.push(Ok(LlmEvent::File { url, media_type }));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::ChatMessage;

    fn provider() -> DifyProvider {
        let config = serde_json::from_value(json!({
            "id": "dify", "type": "dify", "endpoint": "https://dify.example/v1"
        }))
        .unwrap();
        DifyProvider::new(config).unwrap()
    }

    fn image(url: Option<&str>) -> Attachment {
        Attachment::Image {
            media_type: "image/png".into(),
            data: bytes::Bytes::from_static(b"png"),
            url: url.map(str::to_owned),
        }
    }

    #[test]
    fn only_the_newest_user_messages_images_with_a_url_go_as_files() {
        let old = ChatMessage {
            attachments: vec![image(Some("https://s3.example/old.png"))],
            ..ChatMessage::text(ChatRole::User, "before")
        };
        let new = ChatMessage {
            attachments: vec![image(Some("https://s3.example/new.png?sig=1")), image(None)],
            ..ChatMessage::text(ChatRole::User, "now")
        };
        let request = LlmRequest {
            messages: vec![old, ChatMessage::text(ChatRole::Assistant, "ok"), new],
            ..LlmRequest::default()
        };
        assert_eq!(
            provider().files(&request),
            vec![
                json!({ "type": "image", "transfer_method": "remote_url", "url": "https://s3.example/new.png?sig=1" })
            ]
        );
        assert!(provider().files(&LlmRequest::default()).is_empty());
    }

    #[test]
    fn message_files_become_file_events_with_absolute_urls() {
        let mut decoder = ChatDecoder {
            conversation: Some("c".into()),
            endpoint: "https://dify.example/v1".into(),
            stop: Stopper {
                api: provider().api,
                user: "u".into(),
                task_id: Some("t".into()),
            },
        };
        let mut out = Vec::new();
        for (belongs_to, kind, url) in [
            ("assistant", "image", "/files/tools/abc.png?timestamp=1&sign=x"),
            ("assistant", "document", "https://cdn.example/report"),
            ("user", "image", "https://s3.example/mine.png"),
        ] {
            let data = json!({ "event": "message_file", "id": "f", "type": kind, "belongs_to": belongs_to,
                               "url": url, "conversation_id": "c" });
            assert!(!decoder.decode(
                SseEvent {
                    event: None,
                    data: data.to_string()
                },
                &mut out
            ));
        }
        decoder.stop.task_id = None;
        assert_eq!(
            out.into_iter()
                .map(|e| e.map_err(|e| e.to_string()))
                .collect::<Vec<_>>(),
            vec![
                Ok(LlmEvent::File {
                    url: "https://dify.example/files/tools/abc.png?timestamp=1&sign=x".into(),
                    media_type: Some("image/png".into()),
                }),
                Ok(LlmEvent::File {
                    url: "https://cdn.example/report".into(),
                    media_type: None,
                }),
            ]
        );
        assert_eq!(media_type(Some("image"), "/files/x"), Some("image/*".into()));
        assert_eq!(absolute("not a url", "/files/x"), "/files/x");
    }
}
