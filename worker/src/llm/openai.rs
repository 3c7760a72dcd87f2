//! OpenAI Chat Completions over `reqwest`, streamed as server-sent events.
//!
//! Works with any OpenAI-compatible endpoint (vLLM, Ollama, LiteLLM,
//! Azure OpenAI — its v1 route as it is, its classic deployment route with
//! `azure_deployment` — the project's `mock-llm`). Streaming asks for usage
//! with `stream_options.include_usage` (unless `stream_usage = false`);
//! each `data:` event carries `choices[0].delta.content`, the last choice
//! its `finish_reason` (`length` and `content_filter` become
//! [`LlmEvent::Finish`]), the last chunk `usage`, and `[DONE]` ends the
//! stream. With `stream = false` the whole answer comes in one response.
//! The token limit goes as `max_tokens` or `max_completion_tokens`
//! (`max_tokens_field`); no `temperature` goes unless one is configured.
//!
//! A message with images becomes an array of parts (its text, then one
//! `image_url` part per image, inline as a `data:` URL); one without keeps
//! its plain string. With `audio_output` the request asks for
//! `modalities: ["text","audio"]`: the answer's text then comes as
//! `audio.transcript` and its sound as base64 `audio.data` pieces. OpenAI
//! streams audio only as `pcm16` (24 kHz, 16-bit, mono), so a streamed
//! `wav` answer is asked as `pcm16` and wrapped into one WAV at the end.

use async_trait::async_trait;
use base64::Engine as _;
use chatbox_shared::config::ProviderConfig;
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};

use super::http::Endpoint;
use super::sse::{Decoder, SseEvent};
use super::{Attachment, ChatMessage, Cut, LlmError, LlmEvent, LlmProvider, LlmRequest, LlmStream, http};

/// The sample rate of OpenAI's `pcm16` audio.
pub(super) const PCM16_RATE: u32 = 24_000;

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
    /// `stop`, `length`, `content_filter`, `tool_calls`; null until the
    /// last chunk of a stream.
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Content {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    audio: Option<AudioPart>,
}

/// `delta.audio` / `message.audio`: the spoken answer and its transcript.
#[derive(Deserialize)]
struct AudioPart {
    #[serde(default)]
    transcript: Option<String>,
    /// Base64 audio bytes.
    #[serde(default)]
    data: Option<String>,
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
        let route = chat_route(&config);
        Ok(OpenAiProvider {
            api: Endpoint::new(config, &route)?,
        })
    }

    /// The audio format asked of the provider, and what the answer's audio
    /// becomes; `None` without `audio_output`.
    fn speech(&self, stream: bool) -> Option<(&str, AudioSink)> {
        let audio = self.api.config.audio_output.as_ref()?;
        Some(match audio.format.as_str() {
            "wav" if stream => ("pcm16", AudioSink::Wav(Vec::new())),
            format => (format, AudioSink::Pass(format.to_owned())),
        })
    }

    fn body(&self, request: &LlmRequest, stream: bool) -> Value {
        let mut messages = Vec::with_capacity(request.messages.len() + 1);
        if let Some(system) = self.api.config.system_prompt.as_deref().filter(|s| !s.is_empty()) {
            messages.push(json!({ "role": "system", "content": system }));
        }
        messages.extend(
            request
                .messages
                .iter()
                .map(|m| json!({ "role": m.role.as_str(), "content": content_of(m) })),
        );
        let model = self.model();
        let mut body = json!({ "model": model, "messages": messages, "stream": stream });
        if stream && self.api.config.stream_usage {
            body["stream_options"] = json!({ "include_usage": true });
        }
        if let (Some(audio), Some((format, _))) = (&self.api.config.audio_output, self.speech(stream)) {
            body["modalities"] = json!(["text", "audio"]);
            body["audio"] = json!({ "voice": audio.voice, "format": format });
        }
        if let Some(max) = self.api.config.max_tokens {
            body[self.api.config.max_tokens_field.as_str()] = json!(max);
        }
        // Unset, no temperature goes: the model's default, and no refusal
        // from the models that take none (OpenAI's reasoning models).
        if let Some(t) = self.api.config.temperature {
            body["temperature"] = json!(t);
        }
        if let Some(user) = &request.user {
            body["user"] = json!(user);
        }
        body
    }
}

/// The route under the endpoint: `chat/completions`, or Azure OpenAI's
/// classic `openai/deployments/{deployment}/chat/completions`; with an
/// `api_version`, its `api-version` query (checked URL-safe at start).
fn chat_route(config: &ProviderConfig) -> String {
    let path = match &config.azure_deployment {
        Some(deployment) => format!("openai/deployments/{deployment}/chat/completions"),
        None => "chat/completions".to_owned(),
    };
    match &config.api_version {
        Some(version) => format!("{path}?api-version={version}"),
        None => path,
    }
}

/// Adds the API key: as it is in the configured header (Azure's
/// `api-key`), else as `Authorization: Bearer`; none when there is none.
fn with_key(config: &ProviderConfig, call: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    let key = config.api_key.expose();
    match config.key_header() {
        _ if key.is_empty() => call,
        Some(header) => call.header(header, key),
        None => call.bearer_auth(key),
    }
}

/// The end a finish reason tells of: `length` and `content_filter` cut the
/// answer; `stop` (and `tool_calls`, which chatbox never asks for) end it
/// complete.
fn cut_of(finish_reason: &str) -> Option<Cut> {
    match finish_reason {
        "length" => Some(Cut::Length),
        "content_filter" => Some(Cut::ContentFilter),
        _ => None,
    }
}

/// A message's `content`: its text, or with images an array of parts.
fn content_of(m: &ChatMessage) -> Value {
    if m.attachments.is_empty() {
        return json!(m.content);
    }
    let mut parts = Vec::with_capacity(m.attachments.len() + 1);
    if !m.content.is_empty() {
        parts.push(json!({ "type": "text", "text": m.content }));
    }
    for attachment in &m.attachments {
        match attachment {
            Attachment::Image { media_type, .. } => parts.push(json!({
                "type": "image_url",
                "image_url": { "url": format!("data:{media_type};base64,{}", attachment.base64()) },
            })),
        }
    }
    Value::Array(parts)
}

/// What becomes of the audio pieces of an answer.
enum AudioSink {
    /// Each piece is an [`LlmEvent::Audio`] of this format.
    Pass(String),
    /// `pcm16` pieces gathered, to be sent as one WAV at the end.
    Wav(Vec<u8>),
}

impl AudioSink {
    /// Takes one base64 piece.
    fn take(&mut self, base64: &str, out: &mut Vec<Result<LlmEvent, LlmError>>) -> Result<(), LlmError> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(base64.trim())
            .map_err(|e| LlmError::Protocol(format!("audio data is not base64: {e}")))?;
        match self {
            AudioSink::Pass(format) => out.push(Ok(LlmEvent::Audio {
                data: bytes.into(),
                format: format.clone(),
            })),
            AudioSink::Wav(pcm) => pcm.extend_from_slice(&bytes),
        }
        Ok(())
    }

    /// The gathered WAV, once the answer has ended.
    fn finish(&mut self, out: &mut Vec<Result<LlmEvent, LlmError>>) {
        if let AudioSink::Wav(pcm) = self
            && !pcm.is_empty()
        {
            out.push(Ok(LlmEvent::Audio {
                data: wav_of_pcm16(pcm, PCM16_RATE).into(),
                format: "wav".into(),
            }));
            pcm.clear();
        }
    }
}

/// 16-bit mono little-endian samples at `rate` Hz as a WAV file.
pub(super) fn wav_of_pcm16(pcm: &[u8], rate: u32) -> Vec<u8> {
    let len = u32::try_from(pcm.len()).unwrap_or(u32::MAX - 36);
    let mut wav = Vec::with_capacity(pcm.len() + 44);
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + len).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes()); // fmt chunk size
    wav.extend_from_slice(&1u16.to_le_bytes()); // PCM
    wav.extend_from_slice(&1u16.to_le_bytes()); // mono
    wav.extend_from_slice(&rate.to_le_bytes());
    wav.extend_from_slice(&(rate * 2).to_le_bytes()); // bytes per second
    wav.extend_from_slice(&2u16.to_le_bytes()); // bytes per frame
    wav.extend_from_slice(&16u16.to_le_bytes()); // bits per sample
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&len.to_le_bytes());
    wav.extend_from_slice(pcm);
    wav
}

fn events_of(chunk: Chunk, audio: &mut AudioSink, out: &mut Vec<Result<LlmEvent, LlmError>>) {
    if let Some(error) = chunk.error {
        out.push(Err(LlmError::Upstream {
            kind: error.kind.unwrap_or_else(|| "error".into()),
            message: error.message,
        }));
        return;
    }
    for choice in chunk.choices {
        let cut = choice.finish_reason.as_deref().and_then(cut_of);
        let Some(content) = choice.delta.or(choice.message) else {
            out.extend(cut.map(|cut| Ok(LlmEvent::Finish(cut))));
            continue;
        };
        let spoken = content.audio.as_ref().and_then(|a| a.transcript.clone());
        for text in [content.content, spoken].into_iter().flatten() {
            if !text.is_empty() {
                out.push(Ok(LlmEvent::Delta(text)));
            }
        }
        if let Some(data) = content.audio.and_then(|a| a.data).filter(|d| !d.is_empty())
            && let Err(e) = audio.take(&data, out)
        {
            out.push(Err(e));
            return;
        }
        out.extend(cut.map(|cut| Ok(LlmEvent::Finish(cut))));
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
        let call = self.api.post().json(&self.body(request, self.api.config.stream));
        let response = self.api.send(with_key(&self.api.config, call)).await?;
        let stream = self.api.config.stream;
        // Without audio_output no audio is asked for; should some come,
        // it passes as it is.
        let mut audio = self
            .speech(stream)
            .map_or_else(|| AudioSink::Pass("wav".into()), |(_, sink)| sink);
        if !stream {
            let chunk: Chunk = serde_json::from_value(http::json(response).await?)
                .map_err(|e| LlmError::Protocol(format!("not a chat completion: {e}")))?;
            let mut events = Vec::new();
            events_of(chunk, &mut audio, &mut events);
            return Ok(futures_util::stream::iter(events).boxed());
        }
        Ok(super::sse::decode(response, ChunkDecoder { audio }))
    }
}

/// Reads `chat.completion.chunk` events until `[DONE]`.
struct ChunkDecoder {
    audio: AudioSink,
}

impl Decoder for ChunkDecoder {
    fn decode(&mut self, event: SseEvent, out: &mut Vec<Result<LlmEvent, LlmError>>) -> bool {
        if event.data.trim() == "[DONE]" {
            self.audio.finish(out);
            return true;
        }
        match event.json::<Chunk>() {
            Ok(chunk) => events_of(chunk, &mut self.audio, out),
            Err(e) => out.push(Err(e)),
        }
        false
    }

    fn end_marker(&self) -> &'static str {
        "[DONE]"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::ChatRole;

    fn provider(extra: Value) -> OpenAiProvider {
        let mut config = json!({ "id": "gpt", "type": "openai", "endpoint": "http://127.0.0.1:1/v1" });
        for (k, v) in extra.as_object().into_iter().flatten() {
            config[k] = v.clone();
        }
        OpenAiProvider::new(serde_json::from_value(config).unwrap()).unwrap()
    }

    fn png(text: &str) -> ChatMessage {
        ChatMessage {
            role: ChatRole::User,
            content: text.into(),
            attachments: vec![Attachment::Image {
                media_type: "image/png".into(),
                data: bytes::Bytes::from_static(b"\x89PNG"),
                url: Some("https://files.example/a.png".into()),
            }],
        }
    }

    fn request(messages: Vec<ChatMessage>) -> LlmRequest {
        LlmRequest {
            messages,
            ..LlmRequest::default()
        }
    }

    #[test]
    fn images_become_parts_and_plain_messages_stay_strings() {
        let body = provider(json!({})).body(
            &request(vec![
                ChatMessage::text(ChatRole::Assistant, "Hi"),
                png("what is this?"),
                png(""),
            ]),
            true,
        );
        let image = json!({ "type": "image_url", "image_url": { "url": "data:image/png;base64,iVBORw==" } });
        assert_eq!(
            body["messages"],
            json!([
                { "role": "assistant", "content": "Hi" },
                { "role": "user", "content": [{ "type": "text", "text": "what is this?" }, image] },
                { "role": "user", "content": [image] },
            ])
        );
        assert!(body.get("modalities").is_none() && body.get("audio").is_none());
    }

    #[test]
    fn audio_output_asks_for_speech_and_streams_wav_as_pcm16() {
        let spoken = provider(json!({ "audio_output": { "voice": "echo" } }));
        let streamed = spoken.body(&request(vec![ChatMessage::text(ChatRole::User, "hi")]), true);
        assert_eq!(streamed["modalities"], json!(["text", "audio"]));
        assert_eq!(streamed["audio"], json!({ "voice": "echo", "format": "pcm16" }));
        let whole = spoken.body(&request(vec![ChatMessage::text(ChatRole::User, "hi")]), false);
        assert_eq!(whole["audio"], json!({ "voice": "echo", "format": "wav" }));
        let mp3 = provider(json!({ "stream": false, "audio_output": { "format": "mp3" } }));
        let body = mp3.body(&request(vec![ChatMessage::text(ChatRole::User, "hi")]), false);
        assert_eq!(body["audio"], json!({ "voice": "alloy", "format": "mp3" }));
    }

    fn decode_all(decoder: &mut ChunkDecoder, events: &[Value]) -> Vec<Result<LlmEvent, LlmError>> {
        let mut out = Vec::new();
        for data in events.iter().map(Value::to_string).chain(["[DONE]".to_owned()]) {
            decoder.decode(SseEvent { event: None, data }, &mut out);
        }
        out
    }

    fn audio_delta(audio: Value) -> Value {
        json!({ "choices": [{ "index": 0, "delta": { "audio": audio } }] })
    }

    #[test]
    fn transcripts_are_text_and_audio_pieces_are_decoded() {
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let events = [
            audio_delta(json!({ "id": "audio_1", "transcript": "Hel" })),
            audio_delta(json!({ "data": b64(&[1, 2]) })),
            audio_delta(json!({ "transcript": "lo" })),
            audio_delta(json!({ "data": b64(&[3, 4]) })),
        ];
        let mut pass = ChunkDecoder {
            audio: AudioSink::Pass("pcm16".into()),
        };
        let audio = |data: &'static [u8]| {
            Ok(LlmEvent::Audio {
                data: bytes::Bytes::from_static(data),
                format: "pcm16".into(),
            })
        };
        let out = decode_all(&mut pass, &events);
        assert_eq!(
            out.into_iter()
                .map(|e| e.map_err(|e| e.to_string()))
                .collect::<Vec<_>>(),
            vec![
                Ok(LlmEvent::Delta("Hel".into())),
                audio(&[1, 2]),
                Ok(LlmEvent::Delta("lo".into())),
                audio(&[3, 4]),
            ]
        );

        // Streamed wav: the pcm16 pieces come back as one WAV at the end.
        let mut wav = ChunkDecoder {
            audio: AudioSink::Wav(Vec::new()),
        };
        let out = decode_all(&mut wav, &events);
        match &out[..] {
            [
                Ok(LlmEvent::Delta(_)),
                Ok(LlmEvent::Delta(_)),
                Ok(LlmEvent::Audio { data, format }),
            ] => {
                assert_eq!(format, "wav");
                assert_eq!(&data[..4], b"RIFF");
                assert_eq!(&data[8..16], b"WAVEfmt ");
                assert_eq!(
                    u32::from_le_bytes([data[24], data[25], data[26], data[27]]),
                    PCM16_RATE
                );
                assert_eq!(&data[36..40], b"data");
                assert_eq!(&data[40..44], &4u32.to_le_bytes());
                assert_eq!(&data[44..], &[1, 2, 3, 4]);
            }
            other => panic!("{other:?}"),
        }

        let mut bad = ChunkDecoder {
            audio: AudioSink::Pass("wav".into()),
        };
        let out = decode_all(&mut bad, &[audio_delta(json!({ "data": "not base64!" }))]);
        assert!(matches!(&out[..], [Err(LlmError::Protocol(_))]), "{out:?}");
    }

    #[test]
    fn a_whole_spoken_answer_has_its_transcript_and_audio() {
        let chunk: Chunk = serde_json::from_value(json!({
            "choices": [{ "index": 0, "message": { "role": "assistant", "content": null,
                "audio": { "id": "audio_1", "data": "UklGRg==", "transcript": "Hello", "expires_at": 1 } } }],
            "usage": { "prompt_tokens": 3, "completion_tokens": 5 },
        }))
        .unwrap();
        let mut out = Vec::new();
        events_of(chunk, &mut AudioSink::Pass("wav".into()), &mut out);
        assert_eq!(
            out.into_iter()
                .map(|e| e.map_err(|e| e.to_string()))
                .collect::<Vec<_>>(),
            vec![
                Ok(LlmEvent::Delta("Hello".into())),
                Ok(LlmEvent::Audio {
                    data: bytes::Bytes::from_static(b"RIFF"),
                    format: "wav".into()
                }),
                Ok(LlmEvent::Usage {
                    prompt_tokens: 3,
                    completion_tokens: 5
                }),
            ]
        );
    }

    #[test]
    fn length_and_content_filter_cut_the_answer_and_stop_ends_it() {
        let finish =
            |reason: &str| json!({ "choices": [{ "index": 0, "delta": {}, "finish_reason": reason }] });
        let text =
            json!({ "choices": [{ "index": 0, "delta": { "content": "Hi" }, "finish_reason": null }] });
        for (reason, want) in [
            ("length", Some(Cut::Length)),
            ("content_filter", Some(Cut::ContentFilter)),
            ("stop", None),
            ("tool_calls", None),
        ] {
            let mut decoder = ChunkDecoder {
                audio: AudioSink::Pass("wav".into()),
            };
            let out = decode_all(&mut decoder, &[text.clone(), finish(reason)]);
            let cuts: Vec<_> = out
                .iter()
                .filter_map(|e| match e {
                    Ok(LlmEvent::Finish(cut)) => Some(*cut),
                    _ => None,
                })
                .collect();
            assert_eq!(cuts, want.into_iter().collect::<Vec<_>>(), "{reason}");
            assert!(matches!(&out[0], Ok(LlmEvent::Delta(t)) if t == "Hi"), "{out:?}");
        }
        // A whole answer carries it beside its message.
        let chunk: Chunk = serde_json::from_value(json!({
            "choices": [{ "index": 0, "message": { "role": "assistant", "content": "Half" }, "finish_reason": "length" }],
        }))
        .unwrap();
        let mut out = Vec::new();
        events_of(chunk, &mut AudioSink::Pass("wav".into()), &mut out);
        assert_eq!(
            out.into_iter()
                .map(|e| e.map_err(|e| e.to_string()))
                .collect::<Vec<_>>(),
            vec![
                Ok(LlmEvent::Delta("Half".into())),
                Ok(LlmEvent::Finish(Cut::Length))
            ]
        );
    }

    #[test]
    fn the_token_limit_field_usage_and_temperature_go_as_configured() {
        let hi = || request(vec![ChatMessage::text(ChatRole::User, "hi")]);
        let plain = provider(json!({ "max_tokens": 300 })).body(&hi(), true);
        assert_eq!(plain["max_tokens"], 300);
        assert_eq!(plain["stream_options"], json!({ "include_usage": true }));
        assert!(
            plain.get("temperature").is_none(),
            "no temperature unless configured"
        );
        let reasoning = provider(json!({
            "max_tokens": 300, "max_tokens_field": "max_completion_tokens", "stream_usage": false,
        }))
        .body(&hi(), true);
        assert_eq!(reasoning["max_completion_tokens"], 300);
        assert!(reasoning.get("max_tokens").is_none() && reasoning.get("stream_options").is_none());
        let whole = provider(json!({})).body(&hi(), false);
        assert!(
            whole.get("stream_options").is_none(),
            "only a stream has stream_options"
        );
    }

    #[test]
    fn azure_routes_carry_the_deployment_and_the_api_version() {
        let config = |extra: Value| provider(extra).api.config;
        assert_eq!(chat_route(&config(json!({}))), "chat/completions");
        assert_eq!(
            chat_route(&config(
                json!({ "azure_deployment": "gpt-4o", "api_version": "2024-10-21" })
            )),
            "openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"
        );
        assert_eq!(
            chat_route(&config(json!({ "api_version": "preview" }))),
            "chat/completions?api-version=preview"
        );
    }
}
