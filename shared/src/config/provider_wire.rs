//! How an OpenAI-compatible provider is spoken to on the wire, beyond its
//! endpoint and key: which field carries the token limit
//! (`max_tokens_field`), whether a stream asks for usage (`stream_usage`),
//! Azure OpenAI's classic deployment route (`azure_deployment` with
//! `api_version` as the `api-version` query) and the header that carries
//! the key (`api_key_header`). Checked at start, each problem naming its
//! key: these settings mean nothing to the Anthropic and Dify formats, and
//! what goes into a URL must be safe there as it is.

use serde::{Deserialize, Serialize};

use super::llm::{ProviderConfig, ProviderKind};
use super::problems::Problems;

/// The request field that carries a provider's `max_tokens`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenLimitField {
    /// `max_tokens`: what every OpenAI-compatible server knows.
    #[default]
    MaxTokens,
    /// `max_completion_tokens`: OpenAI's newer name, which its reasoning
    /// models require (they refuse `max_tokens`).
    MaxCompletionTokens,
}

impl TokenLimitField {
    /// The field's name in the request body.
    pub const fn as_str(self) -> &'static str {
        match self {
            TokenLimitField::MaxTokens => "max_tokens",
            TokenLimitField::MaxCompletionTokens => "max_completion_tokens",
        }
    }
}

/// The header Azure OpenAI reads its key from.
const AZURE_KEY_HEADER: &str = "api-key";

impl ProviderConfig {
    /// The header that carries the API key as it is, if not
    /// `Authorization: Bearer`: `api_key_header`, else `api-key` on Azure's
    /// classic route.
    pub fn key_header(&self) -> Option<&str> {
        self.api_key_header
            .as_deref()
            .or(self.azure_deployment.as_ref().map(|_| AZURE_KEY_HEADER))
    }

    /// The wire settings are for OpenAI-compatible providers, and safe in
    /// a URL or header as they are.
    pub(super) fn check_wire(&self, key: &str, p: &mut Problems) {
        let openai = self.kind == ProviderKind::Openai;
        p.check(
            openai || self.max_tokens_field == TokenLimitField::MaxTokens,
            &format!("{key}.max_tokens_field"),
            || "only an OpenAI-compatible provider has max_completion_tokens".into(),
        );
        p.check(
            openai || self.stream_usage,
            &format!("{key}.stream_usage"),
            || "only an OpenAI-compatible provider sends stream_options".into(),
        );
        if let Some(header) = &self.api_key_header {
            let key = format!("{key}.api_key_header");
            p.check(openai, &key, || {
                "only an OpenAI-compatible provider takes its key in another header".into()
            });
            p.check(is_header_name(header), &key, || {
                format!("{header:?} is not an HTTP header name")
            });
        }
        if openai && let Some(version) = &self.api_version {
            p.check(is_url_safe(version), &format!("{key}.api_version"), || {
                format!("{version:?} must be letters, digits, '.', '_' or '-' (like \"2024-10-21\")")
            });
        }
        let Some(deployment) = &self.azure_deployment else {
            return;
        };
        let deployment_key = format!("{key}.azure_deployment");
        p.check(openai, &deployment_key, || {
            "only an OpenAI-compatible provider has an Azure deployment".into()
        });
        p.check(is_url_safe(deployment), &deployment_key, || {
            format!("{deployment:?} must be 1 or more letters, digits, '.', '_' or '-'")
        });
        p.check(self.api_version.is_some(), &format!("{key}.api_version"), || {
            "Azure's deployment route needs the api-version query: set api_version, like \"2024-10-21\""
                .into()
        });
        p.check(
            endpoint_path(&self.endpoint).is_empty(),
            &format!("{key}.endpoint"),
            || {
                format!(
                    "{:?}: with azure_deployment the endpoint is the resource URL, like \"https://NAME.openai.azure.com\" (chatbox adds /openai/deployments/…)",
                    self.endpoint
                )
            },
        );
        p.check(
            self.transcription_model.is_none(),
            &format!("{key}.transcription_model"),
            || {
                "transcription goes to another Azure deployment: use the v1 route (endpoint \"https://NAME.openai.azure.com/openai/v1\", no azure_deployment) for a provider that transcribes".into()
            },
        );
    }
}

/// Letters, digits, `.`, `_`, `-`: safe in a URL path or query unescaped.
fn is_url_safe(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// An HTTP header name (RFC 9110 token).
fn is_header_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(
                    c,
                    '!' | '#' | '$' | '%' | '&' | '\'' | '*' | '+' | '-' | '.' | '^' | '_' | '`' | '|' | '~'
                )
        })
}

/// The path of an `http(s)://host[:port]/path` URL, without its slashes at
/// the ends.
fn endpoint_path(endpoint: &str) -> &str {
    let rest = endpoint
        .strip_prefix("https://")
        .or_else(|| endpoint.strip_prefix("http://"))
        .unwrap_or(endpoint);
    rest.find('/').map_or("", |at| rest[at..].trim_matches('/'))
}

#[cfg(test)]
mod tests {
    use crate::config::Role;
    use crate::config::tests::load;

    use super::TokenLimitField;

    fn provider(kind: &str, endpoint: &str, extra: &str) -> String {
        format!(
            "[[chatbox.llm.providers]]\nid = \"m\"\ntype = \"{kind}\"\nendpoint = \"{endpoint}\"\n{extra}"
        )
    }

    fn problem(file: &str) -> String {
        load(Some(file), &[], Role::AllInOne).unwrap_err().to_string()
    }

    #[test]
    fn openai_wire_settings_are_read_with_their_defaults() {
        let plain = load(
            Some(&provider("openai", "https://api.openai.com/v1", "")),
            &[],
            Role::AllInOne,
        )
        .unwrap();
        let p = &plain.chatbox.llm.providers[0];
        assert_eq!(p.max_tokens_field, TokenLimitField::MaxTokens);
        assert!(p.stream_usage && p.azure_deployment.is_none() && p.key_header().is_none());

        let azure = provider(
            "openai",
            "https://res.openai.azure.com/",
            "azure_deployment = \"gpt-4o-prod\"\napi_version = \"2024-10-21\"\nmax_tokens_field = \"max_completion_tokens\"\nstream_usage = false\n",
        );
        let config = load(Some(&azure), &[], Role::AllInOne).unwrap();
        let p = &config.chatbox.llm.providers[0];
        assert_eq!(p.max_tokens_field.as_str(), "max_completion_tokens");
        assert!(!p.stream_usage);
        assert_eq!(p.key_header(), Some("api-key"), "Azure's header by default");
        let own = provider(
            "openai",
            "https://gw.example/v1",
            "api_key_header = \"x-gateway-key\"\n",
        );
        let config = load(Some(&own), &[], Role::AllInOne).unwrap();
        assert_eq!(
            config.chatbox.llm.providers[0].key_header(),
            Some("x-gateway-key")
        );
    }

    #[test]
    fn each_bad_wire_setting_is_named() {
        let err = problem(&provider(
            "anthropic",
            "https://api.anthropic.com/v1",
            "max_tokens_field = \"max_completion_tokens\"\nstream_usage = false\napi_key_header = \"k\"\n",
        ));
        for key in ["max_tokens_field", "stream_usage", "api_key_header"] {
            assert!(
                err.contains(&format!("chatbox.llm.providers[0].{key}")),
                "{key}: {err}"
            );
        }
        let err = problem(&provider(
            "openai",
            "https://res.openai.azure.com/openai",
            "azure_deployment = \"a/b\"\ntranscription_model = \"whisper\"\n",
        ));
        assert!(err.contains("providers[0].azure_deployment: \"a/b\""), "{err}");
        assert!(
            err.contains("providers[0].api_version: Azure's deployment route"),
            "{err}"
        );
        assert!(
            err.contains("providers[0].endpoint: \"https://res.openai.azure.com/openai\""),
            "{err}"
        );
        assert!(err.contains("providers[0].transcription_model"), "{err}");
        let err = problem(&provider(
            "openai",
            "https://gw.example/v1",
            "api_version = \"2024 10\"\napi_key_header = \"bad header\"\n",
        ));
        assert!(err.contains("providers[0].api_version: \"2024 10\""), "{err}");
        assert!(
            err.contains("providers[0].api_key_header: \"bad header\""),
            "{err}"
        );
        let err = problem(&provider(
            "openai",
            "https://gw.example/v1",
            "max_tokens_field = \"max_output_tokens\"\n",
        ));
        assert!(err.contains("max_output_tokens"), "{err}");
    }
}
