//! Speech to text through an OpenAI-compatible `/audio/transcriptions`
//! endpoint (OpenAI Whisper, a vLLM or LocalAI server, the project's `mock-llm`):
//! the audio goes up as a multipart form, the text comes back as JSON.

use std::time::Duration;

use chatbox_shared::config::ProviderConfig;
use serde_json::Value;

use super::LlmError;
use super::http::{self, Endpoint};

/// Longest a transcription may take.
const TIMEOUT: Duration = Duration::from_secs(120);

/// Recorded audio to transcribe.
#[derive(Debug, Clone)]
pub struct Audio {
    /// The bytes, as recorded (webm/opus, ogg, mp4/aac, wav, mp3).
    pub bytes: bytes::Bytes,
    /// A file name whose extension tells the format.
    pub filename: String,
    /// Its media type, like `audio/webm`.
    pub content_type: String,
}

/// A provider's transcription endpoint.
pub struct Transcriber {
    api: Endpoint,
    model: String,
}

impl Transcriber {
    /// The endpoint of a provider that has a `transcription_model`.
    pub fn new(config: ProviderConfig) -> Result<Self, String> {
        let model = config
            .transcription_model
            .clone()
            .ok_or_else(|| format!("provider {:?} has no transcription_model", config.id))?;
        Ok(Transcriber {
            api: Endpoint::new(config, "audio/transcriptions")?,
            model,
        })
    }

    /// The provider that transcribes.
    pub(crate) fn provider_id(&self) -> &str {
        &self.api.config.id
    }

    /// The text spoken in `audio`; `language` (ISO-639-1) helps when known.
    pub async fn transcribe(&self, audio: Audio, language: Option<&str>) -> Result<String, LlmError> {
        let result = self.request(audio, language).await;
        let outcome = result.as_ref().map_or_else(LlmError::kind, |_| "ok");
        crate::metrics::transcription(&self.api.config.id, outcome);
        result
    }

    async fn request(&self, audio: Audio, language: Option<&str>) -> Result<String, LlmError> {
        let file = reqwest::multipart::Part::stream(audio.bytes)
            .file_name(audio.filename)
            .mime_str(&audio.content_type)
            .map_err(|e| LlmError::Unsupported(format!("not a media type: {e}")))?;
        let mut form = reqwest::multipart::Form::new()
            .part("file", file)
            .text("model", self.model.clone())
            .text("response_format", "json");
        if let Some(language) = language {
            form = form.text("language", language.to_owned());
        }
        let mut call = self.api.post().timeout(TIMEOUT).multipart(form);
        if !self.api.config.api_key.is_empty() {
            call = call.bearer_auth(self.api.config.api_key.expose());
        }
        let answer = http::json(self.api.send(call).await?).await?;
        answer
            .get("text")
            .and_then(Value::as_str)
            .map(|t| t.trim().to_owned())
            .ok_or_else(|| LlmError::Protocol("the transcription has no text".into()))
    }
}
