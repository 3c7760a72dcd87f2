//! Speech to text through an OpenAI-compatible `/audio/transcriptions`
//! endpoint (OpenAI Whisper, a vLLM or LocalAI server, the project's `mock-llm`):
//! the audio goes up as a multipart form, the text comes back as JSON.
//!
//! The endpoint tells a file's format by its name: it reads FLAC, MP3,
//! MP4/M4A, MPEG, MPGA, Ogg, WAV and WebM (OpenAI API reference, Audio →
//! Create transcription → `file`), so a recording goes up as
//! `voice.<extension>` of its container ([`Audio::recording`]); raw AAC
//! (ADTS frames, no container) is not among them and is refused when it
//! is uploaded as a voice message.

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

/// The media types (as an upload's bytes show them) of the containers the
/// endpoint reads, with the file name each goes under: an MP4 container
/// is `voice.m4a` (Safari records `audio/mp4`), MPEG audio `voice.mp3`.
const READABLE: [(&str, &str); 6] = [
    ("audio/webm", "voice.webm"),
    ("audio/ogg", "voice.ogg"),
    ("audio/mp4", "voice.m4a"),
    ("audio/mpeg", "voice.mp3"),
    ("audio/wav", "voice.wav"),
    ("audio/flac", "voice.flac"),
];

/// The formats a voice message may be in, for people: what
/// [`READABLE`] lists.
pub(crate) const READABLE_FORMATS: &str = "WebM, Ogg, MP4 (M4A), MP3, WAV or FLAC audio";

/// Whether the endpoint reads audio of `media_type` (a canonical type, as
/// upload inspection stores it).
pub(crate) fn readable(media_type: &str) -> bool {
    READABLE.iter().any(|(t, _)| *t == media_type)
}

impl Audio {
    /// `bytes` of `media_type` (canonical) as the endpoint takes them: under
    /// the file name its format is read from; `None` for a format it does
    /// not read (raw AAC).
    pub fn recording(bytes: bytes::Bytes, media_type: &str) -> Option<Audio> {
        let (content_type, filename) = READABLE.iter().find(|(t, _)| *t == media_type)?;
        Some(Audio {
            bytes,
            filename: (*filename).to_owned(),
            content_type: (*content_type).to_owned(),
        })
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recordings_go_under_a_name_the_endpoint_reads() {
        let named = |media_type: &str| {
            Audio::recording(bytes::Bytes::from_static(b"x"), media_type)
                .map(|a| (a.filename, a.content_type))
        };
        assert_eq!(named("audio/mp4"), Some(("voice.m4a".into(), "audio/mp4".into())));
        assert_eq!(
            named("audio/webm"),
            Some(("voice.webm".into(), "audio/webm".into()))
        );
        assert_eq!(
            named("audio/mpeg"),
            Some(("voice.mp3".into(), "audio/mpeg".into()))
        );
        assert_eq!(named("audio/aac"), None, "raw AAC is not read");
        assert!(readable("audio/flac") && !readable("audio/aac"));
    }
}
