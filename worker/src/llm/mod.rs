//! The `LlmProvider` port: stream a completion from a language model.
//!
//! Adapters: [`openai::OpenAiProvider`] (OpenAI Chat Completions and every
//! compatible endpoint: vLLM, Ollama, LiteLLM) and [`demo::DemoProvider`],
//! the built-in model of the all-in-one. [`Providers`] holds the configured
//! set and picks one per turn.

pub mod demo;
pub mod openai;
pub mod sse;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chatbox_shared::config::{LlmConfig, ProviderKind};
use futures_util::stream::BoxStream;

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

/// One message of the conversation sent to the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    /// Who wrote it.
    pub role: ChatRole,
    /// What it says.
    pub content: String,
}

/// A completion request.
#[derive(Debug, Clone)]
pub struct LlmRequest {
    /// The conversation, oldest first, ending with the user's message.
    pub messages: Vec<ChatMessage>,
    /// An opaque, stable id of the end user, for the provider's abuse checks.
    pub user: Option<String>,
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
}

/// A stream of model events; dropping it cancels the request upstream.
pub type LlmStream = BoxStream<'static, Result<LlmEvent, LlmError>>;

/// Why a completion failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LlmError {
    /// The provider could not be reached.
    #[error("cannot reach the model provider: {0}")]
    Connect(String),
    /// The provider answered with an HTTP error.
    #[error("the model provider answered HTTP {status}: {message}")]
    Status {
        status: u16,
        message: String,
        retry_after: Option<Duration>,
    },
    /// The provider took too long.
    #[error("the model provider did not answer in time ({0})")]
    Timeout(&'static str),
    /// The provider answered something this client cannot read.
    #[error("the model provider sent something unreadable: {0}")]
    Protocol(String),
}

/// A language model backend.
#[async_trait]
pub trait LlmProvider: Send + Sync {
    /// The model id users select (`model_id`).
    fn id(&self) -> &str;
    /// The name users see.
    fn name(&self) -> &str;
    /// Longest wait for the first event.
    fn first_token_timeout(&self) -> Duration;
    /// Longest silence between two events.
    fn idle_timeout(&self) -> Duration;
    /// Starts a completion.
    async fn stream(&self, request: LlmRequest) -> Result<LlmStream, LlmError>;
}

/// A rough token count for providers that report none: about four
/// characters per token for English text.
pub fn estimate_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

/// The configured providers; the first is the default.
pub struct Providers {
    list: Vec<Arc<dyn LlmProvider>>,
}

impl Providers {
    /// Builds the providers from configuration; with none configured, the
    /// demo model answers.
    pub fn from_config(config: &LlmConfig) -> Result<Self, String> {
        let mut list: Vec<Arc<dyn LlmProvider>> = Vec::new();
        for provider in &config.providers {
            match provider.kind {
                ProviderKind::Openai => list.push(Arc::new(openai::OpenAiProvider::new(provider.clone())?)),
                other => {
                    return Err(format!(
                        "provider {:?}: type {other:?} is not supported yet",
                        provider.id
                    ));
                }
            }
        }
        if list.is_empty() {
            list.push(Arc::new(demo::DemoProvider::new(config.demo.chunk_delay)));
        }
        Ok(Providers { list })
    }

    /// The provider for `model_id`, or the default one.
    pub fn select(&self, model_id: Option<&str>) -> Option<Arc<dyn LlmProvider>> {
        match model_id {
            None => self.list.first().cloned(),
            Some(id) => self.list.iter().find(|p| p.id() == id).cloned(),
        }
    }

    /// Every provider, default first.
    pub fn all(&self) -> &[Arc<dyn LlmProvider>] {
        &self.list
    }
}

/// A `reqwest` client for provider calls, with the process's TLS provider.
pub fn http_client(connect_timeout: Duration) -> Result<reqwest::Client, String> {
    // Any provider will do; ring is the one compiled in. Installing twice
    // is harmless (the second attempt reports the first).
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .user_agent(concat!("chatbox/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}
