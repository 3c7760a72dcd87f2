//! What the HTTP adapters share: the `reqwest` client, sending a request
//! with the provider's extra headers, and reading an error answer —
//! whichever of the providers' error shapes it has, with its code and what
//! its headers say of trying again ([`RetryHints`]) — into an [`LlmError`].
//!
//! The client reads `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` and
//! `NO_PROXY` (and their lower-case forms) when it is built, and trusts
//! the system's CA certificates (`/etc/ssl/certs`, or only `SSL_CERT_FILE`
//! / `SSL_CERT_DIR` when set): rustls with the platform verifier.

use std::time::{Duration, SystemTime};

use chatbox_shared::config::ProviderConfig;
use serde_json::Value;

use super::LlmError;
use super::retry_hints::RetryHints;

/// A `reqwest` client with the process's TLS provider, for provider calls
/// (and the notification services' HTTP APIs).
pub(crate) fn client(connect_timeout: Duration) -> Result<reqwest::Client, String> {
    // Any provider will do; ring is the one compiled in. Installing twice
    // is harmless (the second attempt reports the first).
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .user_agent(concat!("chatbox/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// Where a provider is reached: its configuration, an HTTP client, and the
/// URL of the route its adapter calls.
#[derive(Clone)]
pub(super) struct Endpoint {
    /// The provider's configuration entry.
    pub config: ProviderConfig,
    client: reqwest::Client,
    url: String,
}

impl Endpoint {
    /// The provider's route `path` under its configured endpoint.
    pub(super) fn new(config: ProviderConfig, path: &str) -> Result<Self, String> {
        let client = client(config.connect_timeout)?;
        let url = url(&config, path);
        Ok(Endpoint { config, client, url })
    }

    /// A POST to the route.
    pub(super) fn post(&self) -> reqwest::RequestBuilder {
        self.client.post(&self.url)
    }

    /// A POST to another route of the provider.
    pub(super) fn post_to(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.post(url(&self.config, path))
    }

    /// Adds the configured extra headers and sends; an HTTP error status
    /// becomes [`LlmError::Status`].
    pub(super) async fn send(
        &self,
        mut call: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, LlmError> {
        for (name, value) in &self.config.headers {
            call = call.header(name.as_str(), value.as_str());
        }
        let response = call.send().await.map_err(transport_error)?;
        if response.status().is_success() {
            Ok(response)
        } else {
            Err(status_error(response).await)
        }
    }
}

/// `endpoint` + `path`, with exactly one `/` between them.
fn url(config: &ProviderConfig, path: &str) -> String {
    format!(
        "{}/{}",
        config.endpoint.trim_end_matches('/'),
        path.trim_start_matches('/')
    )
}

/// A failure of the connection itself.
pub(super) fn transport_error(e: reqwest::Error) -> LlmError {
    if e.is_timeout() {
        LlmError::Timeout("connect")
    } else if e.is_decode() || e.is_body() {
        LlmError::Connect(format!("the answer broke off: {}", with_causes(e.without_url())))
    } else {
        LlmError::Connect(with_causes(e.without_url()))
    }
}

/// An error with the errors that caused it, `a: b: c`: reqwest's own
/// words ("error sending request") do not say that a certificate was
/// refused or a proxy unreachable; its causes do.
fn with_causes(e: reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        let said = c.to_string();
        // Layers often repeat the words of the one beneath.
        if !text.ends_with(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        cause = c.source();
    }
    text
}

/// The provider's own words from an error body: OpenAI and Anthropic
/// put them in `error.message`, Dify in `message`.
pub(super) fn error_message(body: &str) -> String {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let from_json = parsed.as_ref().and_then(|v| {
        v.pointer("/error/message")
            .or_else(|| v.get("message"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    });
    from_json.unwrap_or_else(|| body.chars().take(300).collect())
}

/// The provider's own name for an error: OpenAI's `error.code` (a
/// string; some servers send a number, which says nothing more than the
/// status), else `error.type` (Anthropic's only name, OpenAI's broader
/// one), else Dify's `code`.
pub(super) fn error_code(body: &str) -> Option<String> {
    let parsed: Value = serde_json::from_str(body).ok()?;
    ["/error/code", "/error/type", "/code"]
        .iter()
        .find_map(|at| parsed.pointer(at).and_then(Value::as_str))
        .map(str::to_owned)
}

async fn status_error(response: reqwest::Response) -> LlmError {
    let status = response.status().as_u16();
    let hints = RetryHints::read(response.headers(), SystemTime::now());
    let text = response.text().await.unwrap_or_default();
    LlmError::Status {
        status,
        message: error_message(&text),
        retry_after: hints.after,
        code: error_code(&text),
        should_retry: hints.should_retry,
    }
}

/// Reads a whole JSON answer (non-streaming mode).
pub(super) async fn json(response: reqwest::Response) -> Result<Value, LlmError> {
    let bytes = response.bytes().await.map_err(transport_error)?;
    serde_json::from_slice(&bytes).map_err(|e| LlmError::Protocol(format!("the answer is not JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::{LlmError, error_code, error_message, transport_error};

    #[test]
    fn error_messages_are_read_from_each_providers_shape() {
        assert_eq!(
            error_message(r#"{"error":{"message":"bad key","type":"x"}}"#),
            "bad key"
        );
        assert_eq!(
            error_message(r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#),
            "Overloaded"
        );
        assert_eq!(
            error_message(r#"{"code":"not_found","message":"Conversation Not Exists.","status":404}"#),
            "Conversation Not Exists."
        );
        assert_eq!(error_message("<html>502</html>"), "<html>502</html>");
    }

    #[test]
    fn error_codes_are_read_from_each_providers_shape() {
        let quota = r#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#;
        assert_eq!(error_code(quota).as_deref(), Some("insufficient_quota"));
        let spend =
            r#"{"error":{"message":"m","type":"insufficient_quota","code":"project_spend_limit_exceeded"}}"#;
        assert_eq!(error_code(spend).as_deref(), Some("project_spend_limit_exceeded"));
        let numbered = r#"{"error":{"message":"m","type":"rate_limit_error","code":429}}"#;
        assert_eq!(error_code(numbered).as_deref(), Some("rate_limit_error"));
        let anthropic = r#"{"type":"error","error":{"type":"billing_error","message":"m"}}"#;
        assert_eq!(error_code(anthropic).as_deref(), Some("billing_error"));
        let dify = r#"{"code":"not_found","message":"Conversation Not Exists.","status":404}"#;
        assert_eq!(error_code(dify).as_deref(), Some("not_found"));
        assert_eq!(error_code("<html>502</html>"), None);
    }

    #[tokio::test]
    async fn a_connection_failure_says_what_beneath_it_failed() {
        // A port nobody listens on: reqwest's "error sending request" alone
        // would not say the connection was refused.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let client = super::client(std::time::Duration::from_secs(2)).unwrap();
        let e = client
            .post(format!("http://127.0.0.1:{port}/v1/chat/completions"))
            .send()
            .await
            .unwrap_err();
        match transport_error(e) {
            LlmError::Connect(said) => {
                assert!(said.starts_with("error sending request: "), "{said}");
                assert!(said.to_lowercase().contains("connect"), "{said}");
            }
            other => panic!("{other:?}"),
        }
    }
}
