//! The `LlmProvider` port: stream a completion from a language model.
//!
//! Adapters, one per wire format: [`OpenAiProvider`] (OpenAI Chat
//! Completions and every compatible endpoint: vLLM, Ollama, LiteLLM),
//! [`AnthropicProvider`] (Messages), [`DifyProvider`] (a Dify chat app)
//! and [`demo::DemoProvider`], the built-in model of the all-in-one.
//! [`http`] and [`sse`] are what the HTTP adapters share; a
//! [`Transcriber`] turns voice into text. [`Providers`] holds the
//! configured set, each behind its circuit [`breaker`], and [`dispatch()`]
//! starts an answer with [`retry`] and fallbacks.

mod anthropic;
mod breaker;
mod demo;
mod dify;
mod dispatch;
mod http;
mod openai;
mod refusal;
mod retry;
mod retry_hints;
mod sse;
mod transcription;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chatbox_shared::config::{LlmConfig, ProviderConfig, ProviderKind};
use chatbox_shared::envelope::ModelInfo;
use futures_util::stream::BoxStream;

use self::breaker::Breaker;

pub use anthropic::AnthropicProvider;
pub use breaker::BreakerState;
pub(crate) use breaker::Opened;
pub use dify::DifyProvider;
pub use dispatch::{Started, dispatch};
pub(crate) use http::client as http_client;
pub use openai::OpenAiProvider;
pub use refusal::Refusal;
pub use transcription::{Audio, Transcriber};
pub(crate) use transcription::{READABLE_FORMATS, readable as transcription_reads};

/// Who wrote a message of the conversation sent to the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatRole {
    System,
    User,
    Assistant,
}

impl ChatRole {
    /// The name OpenAI-style APIs use.
    pub const fn as_str(self) -> &'static str {
        match self {
            ChatRole::System => "system",
            ChatRole::User => "user",
            ChatRole::Assistant => "assistant",
        }
    }
}

/// Something the user attached that the model sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attachment {
    /// An image, sent inline (base64 on the wire); `url` is a signed
    /// download URL the provider may fetch instead (Dify).
    Image {
        media_type: String,
        data: bytes::Bytes,
        url: Option<String>,
    },
}

impl Attachment {
    /// An `Image`'s bytes as base64 (standard alphabet, padded).
    pub fn base64(&self) -> String {
        use base64::Engine as _;
        match self {
            Attachment::Image { data, .. } => base64::engine::general_purpose::STANDARD.encode(data),
        }
    }
}

/// One message of the conversation sent to the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    /// Who wrote it.
    pub role: ChatRole,
    /// What it says.
    pub content: String,
    /// What the user attached (images), in order.
    pub attachments: Vec<Attachment>,
}

impl ChatMessage {
    /// A message of text alone.
    pub fn text(role: ChatRole, content: impl Into<String>) -> Self {
        ChatMessage {
            role,
            content: content.into(),
            attachments: Vec::new(),
        }
    }
}

/// A completion request.
#[derive(Debug, Clone, Default)]
pub struct LlmRequest {
    /// The conversation, oldest first, ending with the user's message.
    pub messages: Vec<ChatMessage>,
    /// An opaque, stable id of the end user, for the provider's abuse checks.
    pub user: Option<String>,
    /// The provider's own conversation this session continues (Dify keeps
    /// the context on its side), from an earlier [`LlmEvent::Conversation`].
    pub conversation_id: Option<String>,
    /// The user's token claims the configuration forwards (Dify fills
    /// inputs from them: `inputs_from_claims`).
    pub claims: chatbox_shared::envelope::ForwardedClaims,
}

impl LlmRequest {
    /// The user's newest message.
    pub(crate) fn question(&self) -> &str {
        self.messages
            .iter()
            .rev()
            .find(|m| m.role == ChatRole::User)
            .map_or("", |m| m.content.as_str())
    }
}

/// Something the model streamed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LlmEvent {
    /// More text of the answer.
    Delta(String),
    /// Token counts, as the provider reports them.
    Usage {
        prompt_tokens: u64,
        completion_tokens: u64,
    },
    /// The provider's conversation id, to continue it next turn.
    Conversation(String),
    /// Spoken answer audio (decoded bytes, in order), with its format
    /// (`wav`, `mp3`, `pcm16`…).
    Audio { data: bytes::Bytes, format: String },
    /// A file the provider produced, at a URL (Dify `message_file`).
    File { url: String, media_type: Option<String> },
    /// The whole answer so far is replaced by this text (Dify's output
    /// moderation: `message_replace`).
    Replace(String),
    /// How the provider said the answer ended, when it said: cut at the
    /// token limit, or by its content filter. An answer that ends without
    /// one is complete.
    Finish(Cut),
    /// The provider is working before or between its text (an agent
    /// calling a tool), naming the tool when it does.
    Working(Option<String>),
    /// The provider is alive but has nothing to say yet (a ping, a
    /// workflow step): it keeps the answer's idle timer from running out.
    KeepAlive,
}

/// Why a provider cut an answer short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// At its token limit (`max_tokens`, `max_completion_tokens`).
    Length,
    /// By its content filter or the model's refusal.
    ContentFilter,
}

/// A stream of model events; dropping it cancels the request upstream.
pub type LlmStream = BoxStream<'static, Result<LlmEvent, LlmError>>;

/// Why a completion failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LlmError {
    /// The provider could not be reached, or the connection broke.
    #[error("cannot reach the model provider: {0}")]
    Connect(String),
    /// The provider answered with an HTTP error.
    #[error("the model provider answered HTTP {status}: {message}")]
    Status {
        status: u16,
        message: String,
        /// When the provider said to come back (`retry-after-ms`,
        /// `Retry-After` in seconds or as a date).
        retry_after: Option<Duration>,
        /// The provider's own name for the error (`error.code`, else
        /// `error.type`; Dify's `code`).
        code: Option<String>,
        /// `x-should-retry`: whether the provider says trying again may
        /// work, when it says.
        should_retry: Option<bool>,
    },
    /// The provider reported an error inside the stream.
    #[error("the model provider reported {kind}: {message}")]
    Upstream { kind: String, message: String },
    /// The provider took too long.
    #[error("the model provider did not answer in time ({0})")]
    Timeout(&'static str),
    /// The provider answered something this client cannot read.
    #[error("the model provider sent something unreadable: {0}")]
    Protocol(String),
    /// The provider's circuit breaker is open: it failed too often lately.
    #[error("the model provider is failing; not tried again for {0:?}")]
    Open(Duration),
    /// The provider cannot do what was asked.
    #[error("{0}")]
    Unsupported(String),
}

/// What a [`LlmError::Timeout`] waited for when the first token never came.
pub(crate) const FIRST_TOKEN: &str = "first token";

impl LlmError {
    /// Whether trying again (later, or at another provider) may work: the
    /// provider or the network failed, not the request — and the provider
    /// does not refuse every request alike ([`Refusal`]).
    pub fn is_transient(&self) -> bool {
        if self.refusal().is_some() {
            return false;
        }
        match self {
            LlmError::Connect(_) | LlmError::Timeout(_) | LlmError::Protocol(_) | LlmError::Open(_) => true,
            LlmError::Status { status, .. } => matches!(status, 408 | 409 | 425 | 429 | 500..=599),
            LlmError::Upstream { kind, .. } => {
                !kind.contains("invalid_request") && !kind.contains("invalid_param")
            }
            LlmError::Unsupported(_) => false,
        }
    }

    /// Whether it says the provider is unwell (it counts towards its
    /// circuit breaker): transient failures — not a request the provider
    /// found wrong, not a [`Refusal`] (the provider is well, it says no),
    /// and not a first token slower than `first_token_timeout` (a slow
    /// model thinking is not an outage).
    pub fn counts_against_provider(&self) -> bool {
        match self {
            LlmError::Open(_) | LlmError::Unsupported(_) => false,
            LlmError::Timeout(what) if *what == FIRST_TOKEN => false,
            other => other.is_transient(),
        }
    }

    /// An error that waiting cannot fix, and why (quota, key, model).
    pub fn refusal(&self) -> Option<Refusal> {
        Refusal::of(self)
    }

    /// What the provider said of trying again (`x-should-retry`), if it did.
    pub fn should_retry(&self) -> Option<bool> {
        match self {
            LlmError::Status { should_retry, .. } => *should_retry,
            _ => None,
        }
    }

    /// Whether the first token did not come within `first_token_timeout`.
    pub fn is_slow_first_token(&self) -> bool {
        matches!(self, LlmError::Timeout(what) if *what == FIRST_TOKEN)
    }

    /// When the provider said to come back, if it did (never for a
    /// [`Refusal`]: coming back will not help).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            _ if self.refusal().is_some() => None,
            LlmError::Status { retry_after, .. } => *retry_after,
            LlmError::Open(left) => Some(*left),
            _ => None,
        }
    }

    /// A short label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            LlmError::Status { .. } if self.refusal().is_some() => "refused",
            LlmError::Connect(_) => "connect",
            LlmError::Status { status: 429, .. } => "rate_limited",
            LlmError::Status {
                status: 500..=599, ..
            } => "server_error",
            LlmError::Status { .. } => "refused",
            LlmError::Upstream { .. } => "stream_error",
            LlmError::Timeout(_) => "timeout",
            LlmError::Protocol(_) => "protocol",
            LlmError::Open(_) => "breaker_open",
            LlmError::Unsupported(_) => "unsupported",
        }
    }
}

/// A language model backend.
#[async_trait]
pub trait LlmProvider: Send + Sync {
    /// Its configuration entry.
    fn config(&self) -> &ProviderConfig;

    /// The model id users select (`model_id`).
    fn id(&self) -> &str {
        &self.config().id
    }

    /// The name users see (the id when none is configured).
    fn name(&self) -> &str {
        let config = self.config();
        if config.name.is_empty() {
            &config.id
        } else {
            &config.name
        }
    }

    /// The provider's own model name (the id when none is configured).
    fn model(&self) -> &str {
        let config = self.config();
        if config.model.is_empty() {
            &config.id
        } else {
            &config.model
        }
    }

    /// Whether the model looks at images (`vision = true` in its
    /// configuration).
    fn accepts_images(&self) -> bool {
        self.config().vision
    }

    /// Longest wait for the first event.
    fn first_token_timeout(&self) -> Duration {
        self.config().first_token_timeout
    }

    /// Longest silence between two events.
    fn idle_timeout(&self) -> Duration {
        self.config().idle_timeout
    }

    /// Starts a completion.
    async fn stream(&self, request: &LlmRequest) -> Result<LlmStream, LlmError>;
}

/// A rough token count for providers that report none: about four
/// characters per token for English text.
pub(crate) fn estimate_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

/// A configured provider with its circuit breaker and fallback.
pub struct Model {
    /// The adapter.
    pub provider: Arc<dyn LlmProvider>,
    /// The kind of provider (`openai`, `anthropic`, `dify`, `demo`).
    pub kind: &'static str,
    /// Its breaker.
    pub breaker: Arc<Breaker>,
    /// The provider that answers when this one cannot.
    pub fallback: Option<String>,
}

impl Model {
    /// Its id (`model_id`).
    pub fn id(&self) -> &str {
        self.provider.id()
    }
}

/// The configured providers (never none: the demo model stands in); the
/// first is the default.
pub struct Providers {
    list: Vec<Model>,
    transcriber: Option<Transcriber>,
}

impl Providers {
    /// Builds the providers from configuration; with none configured, the
    /// demo model answers.
    pub fn from_config(config: &LlmConfig) -> Result<Self, String> {
        let mut list = Vec::new();
        for provider in &config.providers {
            let adapter: Arc<dyn LlmProvider> = match provider.kind {
                ProviderKind::Openai => Arc::new(openai::OpenAiProvider::new(provider.clone())?),
                ProviderKind::Anthropic => Arc::new(anthropic::AnthropicProvider::new(provider.clone())?),
                ProviderKind::Dify => Arc::new(dify::DifyProvider::new(provider.clone())?),
            };
            list.push(Model {
                kind: match provider.kind {
                    ProviderKind::Openai => "openai",
                    ProviderKind::Anthropic => "anthropic",
                    ProviderKind::Dify => "dify",
                },
                breaker: Arc::new(Breaker::new(&provider.id, config.breaker.clone())),
                fallback: provider.fallback.clone(),
                provider: adapter,
            });
        }
        if list.is_empty() {
            list.push(Model {
                kind: "demo",
                provider: Arc::new(demo::DemoProvider::new(config.demo.chunk_delay)?),
                breaker: Arc::new(Breaker::new("demo", config.breaker.clone())),
                fallback: None,
            });
        }
        let transcriber = config
            .providers
            .iter()
            .find(|p| {
                p.transcription_model.is_some()
                    && (config.transcription.is_empty() || p.id == config.transcription)
            })
            .map(|p| Transcriber::new(p.clone()))
            .transpose()?;
        Ok(Providers { list, transcriber })
    }

    /// The model `model_id`, or the default one.
    pub fn select(&self, model_id: Option<&str>) -> Option<&Model> {
        match model_id {
            None => self.list.first(),
            Some(id) => self.list.iter().find(|m| m.provider.id() == id),
        }
    }

    /// The model a session uses: its choice while that is still
    /// configured, else the default.
    pub(crate) fn for_session(&self, chosen: Option<&str>) -> Option<&Model> {
        chosen
            .and_then(|id| self.select(Some(id)))
            .or_else(|| self.select(None))
    }

    /// What users see of the models, default first.
    pub(crate) fn infos(&self) -> Vec<ModelInfo> {
        self.list
            .iter()
            .enumerate()
            .map(|(i, m)| ModelInfo {
                id: m.id().to_owned(),
                name: m.provider.name().to_owned(),
                provider: m.kind.to_owned(),
                default: i == 0,
            })
            .collect()
    }

    /// Every model, default first.
    pub fn all(&self) -> &[Model] {
        &self.list
    }

    /// The speech-to-text endpoint, if one is configured.
    pub(crate) fn transcriber(&self) -> Option<&Transcriber> {
        self.transcriber.as_ref()
    }
}
