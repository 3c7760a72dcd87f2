//! `[chatbox.llm]`: the language models workers ask (`[[chatbox.llm.providers]]`,
//! the first being the default, each with an optional fallback), the
//! built-in demo model that answers when none is configured, how much
//! history goes along as context, and how failing providers are retried
//! and cut off (`[chatbox.llm.retry]`, `[chatbox.llm.breaker]`).
//!
//! A provider's API key comes from `LLM_PROVIDER_<ID>_API_KEY` (see
//! [`env::provider_key_name`](super::env::provider_key_name)), which wins
//! over `apiKey` in the file. Checked for the worker and the all-in-one:
//! ids are unique, fallbacks name other providers and never go round in a
//! circle, and only OpenAI-compatible providers transcribe or speak.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::problems::Problems;
use super::{Secret, duration};

pub use super::provider_wire::TokenLimitField;

/// `[chatbox.llm]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LlmConfig {
    /// `[[chatbox.llm.providers]]`; the first is the default model. With
    /// none, the built-in demo model answers.
    pub providers: Vec<ProviderConfig>,
    /// `[chatbox.llm.demo]`
    pub demo: DemoConfig,
    /// Tokens of earlier messages sent with each request, newest first,
    /// as context (the user's new message always goes).
    pub context_tokens: u64,
    /// The provider that turns voice messages into text (its
    /// `transcription_model` is used); empty: the first provider that has
    /// a `transcription_model`.
    pub transcription: String,
    /// `[chatbox.llm.retry]`
    pub retry: RetryConfig,
    /// `[chatbox.llm.breaker]`
    pub breaker: BreakerConfig,
}

impl Default for LlmConfig {
    fn default() -> Self {
        LlmConfig {
            providers: Vec::new(),
            demo: DemoConfig::default(),
            context_tokens: 3000,
            transcription: String::new(),
            retry: RetryConfig::default(),
            breaker: BreakerConfig::default(),
        }
    }
}

/// `[chatbox.llm.retry]`: how a failed model request is tried again —
/// only while nothing of the answer has reached the user.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryConfig {
    /// Attempts per provider, the first included.
    pub attempts: u32,
    /// Wait before the second attempt; doubled for each one after, with
    /// jitter.
    #[serde(with = "duration")]
    pub base_delay: Duration,
    /// Longest wait between attempts.
    #[serde(with = "duration")]
    pub max_delay: Duration,
    /// Longest `Retry-After` honoured; a provider that asks for more is
    /// treated as failing (the fallback answers, or the user is told when
    /// to try again).
    #[serde(with = "duration")]
    pub max_retry_after: Duration,
    /// Ask a provider again after it let its `first_token_timeout` pass:
    /// off, a slow model (a reasoning model thinking) is not sent a second,
    /// paid, request; the fallback answers instead.
    pub slow_first_token: bool,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            attempts: 3,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(20),
            slow_first_token: false,
        }
    }
}

/// `[chatbox.llm.breaker]`: one circuit breaker per provider and worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerConfig {
    /// Failed requests in a row that open the breaker.
    pub failure_threshold: u32,
    /// How long an open breaker refuses requests before it lets a probe
    /// through (half-open).
    #[serde(with = "duration")]
    pub open_for: Duration,
    /// Requests let through at once while half-open.
    pub half_open_probes: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failure_threshold: 5,
            open_for: Duration::from_secs(30),
            half_open_probes: 1,
        }
    }
}

/// The kind of API a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// OpenAI Chat Completions, or any compatible endpoint.
    Openai,
    /// Anthropic Messages.
    Anthropic,
    /// Dify chat-messages.
    Dify,
}

/// One `[[chatbox.llm.providers]]` entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// The model id users select (`model_id`).
    pub id: String,
    /// The name users see.
    #[serde(default)]
    pub name: String,
    /// The API it speaks.
    #[serde(rename = "type")]
    pub kind: ProviderKind,
    /// Base URL, like `https://api.openai.com/v1`.
    pub endpoint: String,
    /// API key (`LLM_PROVIDER_<ID>_API_KEY` overrides it). Never logged.
    #[serde(default, rename = "apiKey", alias = "api_key")]
    pub api_key: Secret,
    /// The provider's model name.
    #[serde(default)]
    pub model: String,
    /// Stream the answer (`false` waits for the whole answer).
    #[serde(default = "default_true")]
    pub stream: bool,
    /// Upper bound on answer tokens.
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// Sampling temperature.
    #[serde(default)]
    pub temperature: Option<f32>,
    /// A system prompt put before the conversation (OpenAI, Anthropic;
    /// a Dify app has its own).
    #[serde(default)]
    pub system_prompt: Option<String>,
    /// Another provider's id: it answers when this one is failing or its
    /// breaker is open (and its own fallback after it).
    #[serde(default)]
    pub fallback: Option<String>,
    /// The API version: Anthropic's `anthropic-version` header; for an
    /// OpenAI-compatible provider the `api-version` query (Azure OpenAI).
    #[serde(default)]
    pub api_version: Option<String>,
    /// The speech-to-text model of an OpenAI-compatible provider
    /// (`/audio/transcriptions`), like `whisper-1`.
    #[serde(default)]
    pub transcription_model: Option<String>,
    /// The model accepts image inputs: users' pictures are sent to it.
    #[serde(default)]
    pub vision: bool,
    /// Ask for a spoken answer as well as text (OpenAI audio models such as
    /// `gpt-4o-audio-preview`; `modalities: ["text","audio"]`).
    #[serde(default)]
    pub audio_output: Option<AudioOutput>,
    /// Dify: values of the app's input variables, sent as `inputs` with
    /// every message, like `{ plan = "free", locale = "en" }`.
    #[serde(default)]
    pub inputs: BTreeMap<String, serde_json::Value>,
    /// Dify: input variables taken from the user's token, input name →
    /// claim name, like `{ plan = "tier" }`. The gateway forwards only the
    /// claims named here; a token without the claim leaves the input's
    /// value in `inputs`, if it has one.
    #[serde(default)]
    pub inputs_from_claims: BTreeMap<String, String>,
    /// Extra HTTP headers sent with every request (gateways and proxies
    /// that want their own headers).
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
    /// Connect timeout.
    #[serde(default = "default_connect_timeout", with = "duration")]
    pub connect_timeout: Duration,
    /// Longest wait for the first token.
    #[serde(default = "default_first_token_timeout", with = "duration")]
    pub first_token_timeout: Duration,
    /// Longest silence between two chunks.
    #[serde(default = "default_idle_timeout", with = "duration")]
    pub idle_timeout: Duration,
    /// OpenAI-compatible: the request field that carries `max_tokens`
    /// (OpenAI's reasoning models want `max_completion_tokens`).
    #[serde(default)]
    pub max_tokens_field: TokenLimitField,
    /// OpenAI-compatible: ask a stream for its token usage
    /// (`stream_options.include_usage`); off for servers that refuse
    /// `stream_options` (usage is then estimated).
    #[serde(default = "default_true")]
    pub stream_usage: bool,
    /// Azure OpenAI's classic route: the deployment that answers
    /// (`{endpoint}/openai/deployments/{azure_deployment}/chat/completions`,
    /// with `api_version` as the `api-version` query).
    #[serde(default)]
    pub azure_deployment: Option<String>,
    /// OpenAI-compatible: the header that carries the API key as it is,
    /// instead of `Authorization: Bearer` (Azure: `api-key`, the default
    /// with `azure_deployment`).
    #[serde(default)]
    pub api_key_header: Option<String>,
}

/// `audio_output` of a provider: the voice and file format of spoken
/// answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AudioOutput {
    /// The provider's voice, like `alloy`.
    pub voice: String,
    /// `wav`, `mp3`, `flac`, `opus` or `pcm16` (raw 24 kHz 16-bit mono).
    pub format: String,
}

impl Default for AudioOutput {
    fn default() -> Self {
        AudioOutput {
            voice: "alloy".into(),
            format: "wav".into(),
        }
    }
}

/// The `audio_output.format`s OpenAI knows.
const AUDIO_FORMATS: [&str; 5] = ["wav", "mp3", "flac", "opus", "pcm16"];

fn default_true() -> bool {
    true
}
fn default_connect_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_first_token_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_idle_timeout() -> Duration {
    Duration::from_secs(30)
}

/// `[chatbox.llm.demo]`: the built-in model of the all-in-one.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DemoConfig {
    /// Pause between streamed words, so streaming is visible.
    #[serde(with = "duration")]
    pub chunk_delay: Duration,
}

impl Default for DemoConfig {
    fn default() -> Self {
        DemoConfig {
            chunk_delay: Duration::from_millis(25),
        }
    }
}

impl LlmConfig {
    /// Some context goes with each request.
    pub(super) fn check_context(&self, p: &mut Problems) {
        p.check(self.context_tokens > 0, "chatbox.llm.context_tokens", || {
            "must be at least 1".into()
        });
    }

    /// Providers, their fallbacks, transcription, retries and the breaker.
    pub(super) fn check(&self, p: &mut Problems) {
        let mut seen = std::collections::HashSet::new();
        for (i, provider) in self.providers.iter().enumerate() {
            let key = format!("chatbox.llm.providers[{i}]");
            p.check(
                crate::ids::is_valid_id(&provider.id) && seen.insert(provider.id.as_str()),
                &key,
                || {
                    format!(
                        "id {:?} must be unique and 1 to 64 letters, digits, '-', '_', '.' or ':'",
                        provider.id
                    )
                },
            );
            p.check(
                provider.endpoint.starts_with("http://") || provider.endpoint.starts_with("https://"),
                &key,
                || format!("endpoint {:?} must be an http(s) URL", provider.endpoint),
            );
            if let Some(fallback) = &provider.fallback {
                p.check(
                    self.providers.iter().any(|q| &q.id == fallback) && *fallback != provider.id,
                    &format!("{key}.fallback"),
                    || format!("{fallback:?} is not the id of another configured provider"),
                );
            }
            p.check(
                provider.transcription_model.is_none() || provider.kind == ProviderKind::Openai,
                &format!("{key}.transcription_model"),
                || "only an OpenAI-compatible provider transcribes audio".into(),
            );
            provider.check_wire(&key, p);
            if let Some(audio) = &provider.audio_output {
                let key = format!("{key}.audio_output");
                p.check(provider.kind == ProviderKind::Openai, &key, || {
                    "only an OpenAI-compatible provider speaks its answers".into()
                });
                p.check(!audio.voice.trim().is_empty(), &format!("{key}.voice"), || {
                    "must name a voice".into()
                });
                p.check(
                    AUDIO_FORMATS.contains(&audio.format.as_str()),
                    &format!("{key}.format"),
                    || format!("{:?} is not one of {}", audio.format, AUDIO_FORMATS.join(", ")),
                );
                // OpenAI streams audio as pcm16 only; the adapter wraps
                // that in a WAV itself, but cannot make mp3, flac or opus.
                p.check(
                    !provider.stream || matches!(audio.format.as_str(), "wav" | "pcm16"),
                    &format!("{key}.format"),
                    || {
                        format!(
                            "{:?} audio cannot be streamed (OpenAI streams only pcm16): use wav or pcm16, or stream = false",
                            audio.format
                        )
                    },
                );
            }
            check_inputs(provider, &key, p);
        }
        if let Some(cycle) = fallback_cycle(&self.providers) {
            p.check(false, "chatbox.llm.providers", || {
                format!("the fallbacks go round in a circle: {cycle}")
            });
        }
        let transcription = &self.transcription;
        p.check(
            transcription.is_empty()
                || self
                    .providers
                    .iter()
                    .any(|q| &q.id == transcription && q.transcription_model.is_some()),
            "chatbox.llm.transcription",
            || format!("{transcription:?} is not a configured provider with a transcription_model"),
        );
        let r = &self.retry;
        p.check(r.attempts > 0, "chatbox.llm.retry.attempts", || {
            "must be at least 1".into()
        });
        p.check(
            r.base_delay <= r.max_delay,
            "chatbox.llm.retry.base_delay",
            || "must not be longer than chatbox.llm.retry.max_delay".into(),
        );
        let b = &self.breaker;
        p.check(
            b.failure_threshold > 0,
            "chatbox.llm.breaker.failure_threshold",
            || "must be at least 1".into(),
        );
        p.positive(b.open_for, "chatbox.llm.breaker.open_for");
        p.check(
            b.half_open_probes > 0,
            "chatbox.llm.breaker.half_open_probes",
            || "must be at least 1".into(),
        );
    }
}

impl LlmConfig {
    /// The token claims some provider takes inputs from
    /// (`inputs_from_claims`): the gateway keeps these of a user's token and
    /// forwards them with each message, and no other.
    pub fn forwarded_claims(&self) -> BTreeSet<String> {
        self.providers
            .iter()
            .flat_map(|p| p.inputs_from_claims.values().cloned())
            .collect()
    }
}

/// A provider's `inputs` and `inputs_from_claims`: Dify's alone, named,
/// and values Dify takes (text, numbers, booleans, lists; not tables).
fn check_inputs(provider: &ProviderConfig, key: &str, p: &mut Problems) {
    let has_inputs = !provider.inputs.is_empty() || !provider.inputs_from_claims.is_empty();
    p.check(
        !has_inputs || provider.kind == ProviderKind::Dify,
        &format!("{key}.inputs"),
        || "only a Dify provider takes inputs".into(),
    );
    for (name, value) in &provider.inputs {
        p.check(
            !name.trim().is_empty() && !value.is_object(),
            &format!("{key}.inputs"),
            || format!("input {name:?} must be named and be text, a number, a boolean or a list"),
        );
    }
    for (name, claim) in &provider.inputs_from_claims {
        p.check(
            !name.trim().is_empty() && !claim.trim().is_empty(),
            &format!("{key}.inputs_from_claims"),
            || format!("input {name:?} must be named and name a claim, like {{ plan = \"tier\" }}"),
        );
    }
}

/// The first chain of fallbacks that comes back to where it started, as
/// `a -> b -> a`.
fn fallback_cycle(providers: &[ProviderConfig]) -> Option<String> {
    let next = |id: &str| {
        providers
            .iter()
            .find(|p| p.id == id)
            .and_then(|p| p.fallback.as_deref())
    };
    for start in providers {
        let mut chain = vec![start.id.as_str()];
        let mut at = start.id.as_str();
        while let Some(n) = next(at) {
            if chain.contains(&n) {
                chain.push(n);
                return (n == start.id).then(|| chain.join(" -> "));
            }
            chain.push(n);
            at = n;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Role;
    use crate::config::tests::load;

    #[test]
    fn provider_keys_come_from_the_environment_and_never_show_in_debug() {
        let file = "[[chatbox.llm.providers]]\nid = \"openai-gpt4\"\ntype = \"openai\"\nendpoint = \"https://api.openai.com/v1\"\napiKey = \"from-file\"\nmodel = \"gpt-4\"\n";
        let c = load(
            Some(file),
            &[("LLM_PROVIDER_OPENAI_GPT4_API_KEY", "sk-env")],
            Role::AllInOne,
        )
        .unwrap();
        let provider = &c.chatbox.llm.providers[0];
        assert_eq!(provider.api_key.expose(), "sk-env");
        assert!(!format!("{c:?}").contains("sk-env"));
    }

    #[test]
    fn fallbacks_must_name_providers_and_not_go_round_in_circles() {
        let provider = |id: &str, kind: &str, fallback: &str| {
            format!(
                "[[chatbox.llm.providers]]\nid = \"{id}\"\ntype = \"{kind}\"\nendpoint = \"https://example.com/v1\"\nfallback = \"{fallback}\"\n"
            )
        };
        let good = provider("claude", "anthropic", "dify")
            + &provider("dify", "dify", "gpt")
            + "[[chatbox.llm.providers]]\nid = \"gpt\"\ntype = \"openai\"\nendpoint = \"https://example.com/v1\"\n";
        let config = load(Some(&good), &[], Role::AllInOne).unwrap();
        assert_eq!(config.chatbox.llm.providers[0].fallback.as_deref(), Some("dify"));

        let unknown = provider("claude", "anthropic", "nobody");
        let err = load(Some(&unknown), &[], Role::AllInOne).unwrap_err().to_string();
        assert!(
            err.contains("chatbox.llm.providers[0].fallback") && err.contains("\"nobody\""),
            "{err}"
        );

        let circle =
            provider("a", "openai", "b") + &provider("b", "dify", "c") + &provider("c", "anthropic", "a");
        let err = load(Some(&circle), &[], Role::AllInOne).unwrap_err().to_string();
        assert!(err.contains("a -> b -> c -> a"), "{err}");
    }

    #[test]
    fn dify_inputs_are_read_checked_and_their_claims_forwarded() {
        let provider = |kind: &str, id: &str, extra: &str| {
            format!(
                "[[chatbox.llm.providers]]\nid = \"{id}\"\ntype = \"{kind}\"\nendpoint = \"https://example.com/v1\"\n{extra}"
            )
        };
        let file = provider(
            "dify",
            "a",
            "inputs = { plan = \"free\", limit = 3, beta = true }\ninputs_from_claims = { plan = \"tier\", team = \"dept\" }\n",
        ) + &provider(
            "dify",
            "b",
            "inputs_from_claims = { locale = \"locale\", who = \"tier\" }\n",
        ) + &provider("openai", "c", "");
        let config = load(Some(&file), &[], Role::AllInOne).unwrap();
        let a = &config.chatbox.llm.providers[0];
        assert_eq!(a.inputs["plan"], serde_json::json!("free"));
        assert_eq!(a.inputs["limit"], serde_json::json!(3));
        assert_eq!(a.inputs_from_claims["team"], "dept");
        assert_eq!(
            config
                .chatbox
                .llm
                .forwarded_claims()
                .into_iter()
                .collect::<Vec<_>>(),
            ["dept", "locale", "tier"]
        );
        assert!(config.chatbox.llm.providers[2].inputs.is_empty());

        let err = load(
            Some(&provider("openai", "o", "inputs = { plan = \"x\" }\n")),
            &[],
            Role::AllInOne,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("providers[0].inputs") && err.contains("only a Dify"),
            "{err}"
        );
        let err = load(
            Some(&provider("dify", "d", "inputs = { plan = { a = 1 } }\n")),
            &[],
            Role::AllInOne,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("\"plan\""), "{err}");
        let err = load(
            Some(&provider("dify", "d", "inputs_from_claims = { plan = \"\" }\n")),
            &[],
            Role::AllInOne,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("inputs_from_claims"), "{err}");
    }

    #[test]
    fn vision_and_audio_output_are_read_with_defaults_and_checked() {
        let provider = |kind: &str, extra: &str| {
            format!(
                "[[chatbox.llm.providers]]\nid = \"m\"\ntype = \"{kind}\"\nendpoint = \"https://example.com/v1\"\n{extra}"
            )
        };
        let config = load(Some(&provider("openai", "")), &[], Role::AllInOne).unwrap();
        let plain = &config.chatbox.llm.providers[0];
        assert!(!plain.vision && plain.audio_output.is_none());

        let spoken = provider("openai", "vision = true\naudio_output = {}\n");
        let config = load(Some(&spoken), &[], Role::AllInOne).unwrap();
        let p = &config.chatbox.llm.providers[0];
        assert!(p.vision);
        assert_eq!(p.audio_output, Some(AudioOutput::default()));
        assert_eq!(
            p.audio_output
                .as_ref()
                .map(|a| (a.voice.as_str(), a.format.as_str())),
            Some(("alloy", "wav"))
        );
        let seeing = provider("anthropic", "vision = true\n");
        assert!(
            load(Some(&seeing), &[], Role::AllInOne)
                .unwrap()
                .chatbox
                .llm
                .providers[0]
                .vision
        );

        let err = load(
            Some(&provider("dify", "audio_output = {}\n")),
            &[],
            Role::AllInOne,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("chatbox.llm.providers[0].audio_output"), "{err}");
        let err = load(
            Some(&provider("openai", "audio_output = { format = \"ogg\" }\n")),
            &[],
            Role::AllInOne,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("audio_output.format") && err.contains("\"ogg\""),
            "{err}"
        );
        let mp3 = "audio_output = { voice = \"echo\", format = \"mp3\" }\n";
        let err = load(Some(&provider("openai", mp3)), &[], Role::AllInOne)
            .unwrap_err()
            .to_string();
        assert!(err.contains("stream = false"), "{err}");
        let whole = format!("stream = false\n{mp3}");
        assert!(load(Some(&provider("openai", &whole)), &[], Role::AllInOne).is_ok());
    }
}
