//! A Dify chat app over `reqwest` (`POST /v1/chat-messages`, Bearer key).
//!
//! Dify keeps the conversation on its side: a request carries only the
//! user's newest message (`query`) and the `conversation_id` Dify gave the
//! session's first answer, which the turn keeps with that answer (see
//! [`LlmEvent::Conversation`]). A conversation Dify no longer knows (404)
//! is started afresh. The app's prompt and model are configured in Dify;
//! its input variables (`inputs`) are the provider's fixed `inputs`, then
//! those `inputs_from_claims` fills from the user's token claims (which the
//! gateway forwards with the message). The newest user message's images go
//! as `files` by `remote_url`: Dify fetches them itself, so images without
//! a URL cannot go. An answer dropped before its end is stopped upstream
//! (`POST /chat-messages/{task_id}/stop`) so the app stops spending tokens.
//!
//! The stream's events (Dify API reference, *Send Chat Message* → Response
//! → ChunkChatCompletionResponse; `event: ping` comes without data), as
//! this adapter reads them:
//!
//! | Dify event | model event |
//! |---|---|
//! | `message`, `agent_message` | [`LlmEvent::Delta`] (the `answer` piece); a `message` after `agent_message`s is the whole answer again (a *New Agent* app closes so): skipped when it matches, else [`LlmEvent::Replace`] |
//! | `message_replace` | [`LlmEvent::Replace`] with its `answer`, then [`LlmEvent::Finish`]`(`[`Cut::ContentFilter`]`)`: output moderation replaced the answer |
//! | `agent_thought` | [`LlmEvent::Working`] naming its `tool` (`;`-separated list shown with commas), or without a tool when it has a `thought` and no text came yet; otherwise [`LlmEvent::KeepAlive`]; the same tool twice in a row is said once |
//! | `message_file` | [`LlmEvent::File`], its URL made absolute against the endpoint's origin (Dify may send `/files/…`); the user's own files, echoed, are skipped |
//! | `message_end` | [`LlmEvent::Usage`] from `metadata.usage`; the answer is complete |
//! | `error` | [`LlmError::Upstream`] with its `code` and `message`: the answer breaks off |
//! | `ping`, `workflow_started`, `node_started`, `node_finished`, `workflow_finished`, `tts_message`, `tts_message_end`, and any event Dify adds later | [`LlmEvent::KeepAlive`]: Dify is alive, the idle timer starts again |
//!
//! Dify's spoken answer (`tts_message`, base64 MP3) is not kept: its last
//! pieces come after `message_end`, which ends the answer.
//!
//! [`Cut::ContentFilter`]: super::Cut::ContentFilter

use std::time::Duration;

use async_trait::async_trait;
use chatbox_shared::config::ProviderConfig;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tracing::debug;

use super::http::Endpoint;
use super::sse::{Decoder, SseEvent};
use super::{Attachment, ChatRole, Cut, LlmError, LlmEvent, LlmProvider, LlmRequest, LlmStream, http};

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
            "inputs": self.inputs(request),
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
    /// The app's input variables: the fixed ones, then those filled from
    /// the user's claims (a claim the token lacks leaves the fixed value).
    fn inputs(&self, request: &LlmRequest) -> Value {
        let config = &self.api.config;
        let mut inputs: serde_json::Map<String, Value> = config
            .inputs
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (input, claim) in &config.inputs_from_claims {
            if let Some(value) = request.claims.get(claim) {
                inputs.insert(input.clone(), value.clone());
            }
        }
        Value::Object(inputs)
    }

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
        let stop = Stopper {
            api: self.api.clone(),
            user: request.user.clone().unwrap_or_else(|| ANONYMOUS.to_owned()),
            task_id: None,
        };
        Ok(super::sse::decode(
            response,
            ChatDecoder::new(self.api.config.endpoint.clone(), stop),
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
    /// The text of the `agent_message`s so far (a closing `message` may
    /// repeat it whole).
    agent_text: String,
    /// Whether any text came yet.
    texted: bool,
    /// The tool last said to be at work, so repeats say nothing new.
    working: Option<Option<String>>,
}

impl ChatDecoder {
    fn new(endpoint: String, stop: Stopper) -> Self {
        ChatDecoder {
            conversation: None,
            endpoint,
            stop,
            agent_text: String::new(),
            texted: false,
            working: None,
        }
    }

    /// What an `agent_thought` shows: the tool at work, or a thought
    /// before any text; a repeat of the last is only a sign of life.
    fn thought(&mut self, v: &Value) -> LlmEvent {
        let tool = text(v, "tool").map(|t| {
            t.split(';')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .collect::<Vec<_>>()
                .join(", ")
        });
        let tool = tool.filter(|t| !t.is_empty());
        let shown = if tool.is_some() {
            Some(tool)
        } else if !self.texted && text(v, "thought").is_some() {
            Some(None)
        } else {
            None
        };
        match shown {
            Some(working) if self.working.as_ref() != Some(&working) => {
                self.working = Some(working.clone());
                LlmEvent::Working(working)
            }
            _ => LlmEvent::KeepAlive,
        }
    }
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
        let name = v.get("event").and_then(Value::as_str).unwrap_or_default();
        match name {
            "agent_message" => {
                if let Some(answer) = text(&v, "answer") {
                    self.texted = true;
                    self.working = None;
                    self.agent_text.push_str(&answer);
                    out.push(Ok(LlmEvent::Delta(answer)));
                }
            }
            // A New Agent app closes with the whole answer in a `message`.
            "message" if !self.agent_text.is_empty() => match text(&v, "answer") {
                Some(answer) if answer != self.agent_text => {
                    self.agent_text = answer.clone();
                    out.push(Ok(LlmEvent::Replace(answer)));
                }
                _ => out.push(Ok(LlmEvent::KeepAlive)),
            },
            "message" => {
                if let Some(answer) = text(&v, "answer") {
                    self.texted = true;
                    self.working = None;
                    out.push(Ok(LlmEvent::Delta(answer)));
                }
            }
            // Output moderation flagged the answer: this replaces all of it.
            "message_replace" => {
                let answer = v.get("answer").and_then(Value::as_str).unwrap_or_default();
                self.texted = true;
                out.push(Ok(LlmEvent::Replace(answer.to_owned())));
                out.push(Ok(LlmEvent::Finish(Cut::ContentFilter)));
            }
            "agent_thought" => out.push(Ok(self.thought(&v))),
            // The user's own files are echoed too; only the app's are news.
            "message_file" if v.get("belongs_to").and_then(Value::as_str) != Some("user") => {
                match text(&v, "url") {
                    Some(url) => {
                        let url = absolute(&self.endpoint, &url);
                        let media_type = media_type(v.get("type").and_then(Value::as_str), &url);
                        out.push(Ok(LlmEvent::File { url, media_type }));
                    }
                    None => out.push(Ok(LlmEvent::KeepAlive)),
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
            // Workflow and node progress, speech, and whatever Dify adds:
            // nothing to show, but the app is alive.
            _ => out.push(Ok(LlmEvent::KeepAlive)),
        }
        false
    }

    /// `event: ping`, every 10 seconds while the app works.
    fn bare(&mut self, _name: &str, out: &mut Vec<Result<LlmEvent, LlmError>>) {
        out.push(Ok(LlmEvent::KeepAlive));
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

    /// A decoder in a conversation already known, its task disarmed.
    fn decoder() -> ChatDecoder {
        let stop = Stopper {
            api: provider().api,
            user: "u".into(),
            task_id: Some("t".into()),
        };
        let mut decoder = ChatDecoder::new("https://dify.example/v1".into(), stop);
        decoder.conversation = Some("c".into());
        decoder
    }

    /// The model events a run of Dify events becomes, and whether the last
    /// one ended the answer.
    fn events(decoder: &mut ChatDecoder, stream: &[Value]) -> (Vec<LlmEvent>, bool) {
        let mut out = Vec::new();
        let mut ended = false;
        for data in stream {
            ended = decoder.decode(
                SseEvent {
                    event: None,
                    data: data.to_string(),
                },
                &mut out,
            );
        }
        decoder.stop.task_id = None;
        let events = out.into_iter().map(|e| e.expect("no error")).collect();
        (events, ended)
    }

    #[test]
    fn moderation_replaces_the_answer_and_marks_it_filtered() {
        let (events, ended) = events(
            &mut decoder(),
            &[
                json!({ "event": "message", "answer": "Here is how to " }),
                json!({ "event": "message", "answer": "pick a lock" }),
                json!({ "event": "message_replace", "answer": "I cannot help with that." }),
                json!({ "event": "message_end", "metadata": {} }),
            ],
        );
        assert!(ended);
        assert_eq!(
            events,
            [
                LlmEvent::Delta("Here is how to ".into()),
                LlmEvent::Delta("pick a lock".into()),
                LlmEvent::Replace("I cannot help with that.".into()),
                LlmEvent::Finish(Cut::ContentFilter),
            ]
        );
    }

    #[test]
    fn progress_events_keep_the_answer_alive_and_agents_show_their_tools() {
        let mut decoder = decoder();
        let (events, ended) = events(
            &mut decoder,
            &[
                json!({ "event": "workflow_started", "data": {} }),
                json!({ "event": "node_started", "data": { "title": "LLM" } }),
                json!({ "event": "agent_thought", "thought": "", "tool": "" }),
                json!({ "event": "agent_thought", "thought": "I should look it up", "tool": "" }),
                json!({ "event": "agent_thought", "thought": "I should look it up", "tool": "google_search;dalle3" }),
                json!({ "event": "agent_thought", "thought": "", "tool": "google_search;dalle3", "observation": "…" }),
                json!({ "event": "agent_message", "answer": "Found it" }),
                json!({ "event": "agent_thought", "thought": "Found it", "tool": "" }),
                json!({ "event": "node_finished", "data": { "status": "succeeded" } }),
                json!({ "event": "workflow_finished", "data": { "status": "succeeded" } }),
                json!({ "event": "tts_message", "audio": "qqqq" }),
                json!({ "event": "something_new" }),
            ],
        );
        assert!(!ended);
        use LlmEvent::{Delta, KeepAlive, Working};
        assert_eq!(
            events,
            [
                KeepAlive,
                KeepAlive,
                KeepAlive,
                Working(None),
                Working(Some("google_search, dalle3".into())),
                KeepAlive,
                Delta("Found it".into()),
                KeepAlive,
                KeepAlive,
                KeepAlive,
                KeepAlive,
                KeepAlive,
            ]
        );
        let mut out = Vec::new();
        decoder.bare("ping", &mut out);
        assert_eq!(
            out.into_iter().map(Result::unwrap).collect::<Vec<_>>(),
            [KeepAlive]
        );
    }

    #[test]
    fn a_closing_message_that_repeats_the_agents_text_adds_nothing() {
        let (same, _) = events(
            &mut decoder(),
            &[
                json!({ "event": "agent_message", "answer": "One " }),
                json!({ "event": "agent_message", "answer": "two" }),
                json!({ "event": "message", "answer": "One two" }),
            ],
        );
        assert_eq!(same.last(), Some(&LlmEvent::KeepAlive));
        let (other, _) = events(
            &mut decoder(),
            &[
                json!({ "event": "agent_message", "answer": "One " }),
                json!({ "event": "message", "answer": "One two three" }),
            ],
        );
        assert_eq!(other.last(), Some(&LlmEvent::Replace("One two three".into())));
    }

    #[test]
    fn errors_in_the_stream_stay_errors() {
        let mut out = Vec::new();
        let data = json!({ "event": "error", "status": 400, "code": "completion_request_error", "message": "quota" });
        assert!(!decoder().decode(
            SseEvent {
                event: None,
                data: data.to_string()
            },
            &mut out
        ));
        match &out[..] {
            [Err(LlmError::Upstream { kind, message })] => {
                assert_eq!(
                    (kind.as_str(), message.as_str()),
                    ("completion_request_error", "quota")
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn inputs_are_the_fixed_ones_then_those_from_claims() {
        let config = serde_json::from_value(json!({
            "id": "dify", "type": "dify", "endpoint": "https://dify.example/v1",
            "inputs": { "plan": "free", "locale": "en", "limit": 3 },
            "inputs_from_claims": { "plan": "tier", "department": "dept" },
        }))
        .unwrap();
        let provider = DifyProvider::new(config).unwrap();
        let request = LlmRequest {
            claims: [
                ("tier".to_owned(), json!("gold")),
                ("other".to_owned(), json!("x")),
            ]
            .into(),
            ..LlmRequest::default()
        };
        assert_eq!(
            provider.inputs(&request),
            json!({ "plan": "gold", "locale": "en", "limit": 3 })
        );
        assert_eq!(
            provider.inputs(&LlmRequest::default()),
            json!({ "plan": "free", "locale": "en", "limit": 3 }),
            "a token without the claim leaves the fixed value"
        );
        assert_eq!(self::provider().inputs(&LlmRequest::default()), json!({}));
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
        let mut decoder = decoder();
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
        // The user's own file, echoed, is only a sign of life.
        assert_eq!(out.pop().map(Result::unwrap), Some(LlmEvent::KeepAlive));
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
