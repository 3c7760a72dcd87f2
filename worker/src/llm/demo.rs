//! The built-in demo model: with no provider configured, the all-in-one
//! still streams a useful answer — one that says how to connect a real
//! model.

use std::time::Duration;

use async_trait::async_trait;
use chatbox_shared::config::ProviderConfig;
use futures_util::StreamExt;

use super::{LlmError, LlmEvent, LlmProvider, LlmRequest, LlmStream, estimate_tokens};

/// The demo model.
pub(super) struct DemoProvider {
    config: ProviderConfig,
    chunk_delay: Duration,
}

impl DemoProvider {
    /// A demo model that pauses `chunk_delay` between words.
    pub(super) fn new(chunk_delay: Duration) -> Result<Self, String> {
        let config = serde_json::from_value(serde_json::json!({
            "id": "demo", "name": "Demo (built-in)", "type": "openai", "endpoint": "builtin:demo",
            "first_token_timeout": "10s", "idle_timeout": "10s",
        }))
        .map_err(|e| format!("the demo model's settings: {e}"))?;
        Ok(DemoProvider { config, chunk_delay })
    }
}

/// The demo model's answer to `question`.
pub(super) fn answer(question: &str) -> String {
    let quoted: String = question.chars().take(200).collect();
    format!(
        "Hello! I am chatbox's built-in demo model, so this answer is canned — but it streamed to you \
         through the real gateway, bus and worker. You said: \u{201c}{quoted}\u{201d}.\n\n\
         To talk to a real model, add a provider to the configuration file:\n\n\
         ```toml\n[[chatbox.llm.providers]]\nid = \"gpt-4o-mini\"\nname = \"GPT-4o mini\"\ntype = \"openai\"\n\
         endpoint = \"https://api.openai.com/v1\"\nmodel = \"gpt-4o-mini\"\n```\n\n\
         and set its key in the environment: `LLM_PROVIDER_GPT_4O_MINI_API_KEY=sk-...`. \
         Any OpenAI-compatible endpoint works, such as vLLM, Ollama or LiteLLM; so do Anthropic \
         (`type = \"anthropic\"`) and Dify apps (`type = \"dify\"`)."
    )
}

#[async_trait]
impl LlmProvider for DemoProvider {
    fn config(&self) -> &ProviderConfig {
        &self.config
    }

    async fn stream(&self, request: &LlmRequest) -> Result<LlmStream, LlmError> {
        let text = answer(request.question());
        let prompt_tokens: u64 = request.messages.iter().map(|m| estimate_tokens(&m.content)).sum();
        let completion_tokens = estimate_tokens(&text);
        let words: Vec<String> = text.split_inclusive(' ').map(str::to_owned).collect();
        let delay = self.chunk_delay;
        let deltas = futures_util::stream::iter(words).then(move |word| async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            Ok(LlmEvent::Delta(word))
        });
        let usage = futures_util::stream::once(async move {
            Ok(LlmEvent::Usage {
                prompt_tokens,
                completion_tokens,
            })
        });
        Ok(deltas.chain(usage).boxed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::{ChatMessage, ChatRole};

    #[tokio::test]
    async fn demo_streams_an_answer_that_explains_configuration() {
        let provider = DemoProvider::new(Duration::ZERO).unwrap();
        let request = LlmRequest {
            messages: vec![ChatMessage::text(ChatRole::User, "hi there")],
            ..LlmRequest::default()
        };
        let events: Vec<_> = provider.stream(&request).await.unwrap().collect().await;
        let text: String = events
            .iter()
            .filter_map(|e| match e {
                Ok(LlmEvent::Delta(d)) => Some(d.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(text, answer("hi there"));
        assert!(text.contains("[[chatbox.llm.providers]]"));
        assert!(events.len() > 10, "the answer streams in pieces");
        assert!(
            matches!(events.last(), Some(Ok(LlmEvent::Usage { completion_tokens, .. })) if *completion_tokens > 0)
        );
    }
}
