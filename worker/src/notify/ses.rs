//! E-mail through Amazon SES: the v2 API's `SendEmail`
//! (`POST /v2/email/outbound-emails`), a JSON body, signed with AWS
//! Signature Version 4 by the `aws-sigv4` crate and sent over the
//! worker's `reqwest` client.
//!
//! Why not `aws-sdk-sesv2`: one API call does not pay for a whole SDK. The
//! SDK brings its own HTTP stack and runtime (`aws-smithy-runtime`,
//! `aws-runtime`, a hyper client) and generated code for every SES
//! operation: minutes of compilation on a two-core build, on every cold
//! build. `aws-sigv4` (with `aws-credential-types`) is the SDK's own signer
//! and nothing else: about ten small crates, which compiled in well under
//! a minute here, and the request goes out on the `reqwest` client the
//! worker already has. So SES is always compiled and tested, with no cargo feature to forget.

use std::time::SystemTime;

use async_trait::async_trait;
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use chatbox_shared::config::NotificationsConfig;
use chatbox_shared::config::notifications::SesConfig;
use lettre::message::Mailbox;
use serde_json::{Value, json};

use super::{Message, Notifier, NotifyError, http};
use crate::notify::smtp::mailboxes;

/// The route of `SendEmail` under the SES endpoint.
const SEND_EMAIL: &str = "/v2/email/outbound-emails";

/// Sends e-mail through Amazon SES.
pub(super) struct SesNotifier {
    config: SesConfig,
    client: reqwest::Client,
    url: String,
    from: Mailbox,
    reply_to: Option<Mailbox>,
}

impl SesNotifier {
    /// A notifier for the account and region in `config.ses`.
    pub(super) fn new(config: &NotificationsConfig, client: reqwest::Client) -> Result<Self, String> {
        let (from, reply_to) = mailboxes(config)?;
        Ok(SesNotifier {
            url: format!("{}{SEND_EMAIL}", config.ses.base_url()),
            config: config.ses.clone(),
            client,
            from,
            reply_to,
        })
    }

    /// The `SendEmail` request body.
    fn body(&self, to: &str, message: &Message) -> Value {
        let mut body = json!({
            "FromEmailAddress": self.from.to_string(),
            "Destination": { "ToAddresses": [to] },
            "Content": { "Simple": {
                "Subject": { "Data": message.subject, "Charset": "UTF-8" },
                "Body": { "Text": { "Data": message.body, "Charset": "UTF-8" } },
            }},
        });
        if let Some(reply_to) = &self.reply_to {
            body["ReplyToAddresses"] = json!([reply_to.email.to_string()]);
        }
        body
    }

    /// The SigV4 headers (`authorization`, `x-amz-date`) for a POST of
    /// `body` with `content_type`.
    fn sign(&self, content_type: &str, body: &[u8]) -> Result<Vec<(String, String)>, NotifyError> {
        let invalid =
            |e: &dyn std::fmt::Display| NotifyError::Invalid(format!("cannot sign the request: {e}"));
        let identity = Credentials::new(
            self.config.access_key_id.as_str(),
            self.config.secret_access_key.expose(),
            None,
            None,
            "chatbox-config",
        )
        .into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.config.region)
            .name("ses")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| invalid(&e))?
            .into();
        let request = SignableRequest::new(
            "POST",
            self.url.as_str(),
            std::iter::once(("content-type", content_type)),
            SignableBody::Bytes(body),
        )
        .map_err(|e| invalid(&e))?;
        let (instructions, _) = sign(request, &params).map_err(|e| invalid(&e))?.into_parts();
        Ok(instructions
            .headers()
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .collect())
    }
}

#[async_trait]
impl Notifier for SesNotifier {
    fn adapter(&self) -> &'static str {
        "ses"
    }

    async fn send(&self, to: &str, message: &Message) -> Result<(), NotifyError> {
        const JSON: &str = "application/json";
        let body =
            serde_json::to_vec(&self.body(to, message)).map_err(|e| NotifyError::Invalid(e.to_string()))?;
        let mut request = self
            .client
            .post(&self.url)
            .timeout(self.config.timeout)
            .header("content-type", JSON);
        for (name, value) in self.sign(JSON, &body)? {
            request = request.header(name, value);
        }
        http::send("ses", request.body(body), |status, headers, text| {
            let kind = headers
                .get("x-amzn-errortype")
                .and_then(|v| v.to_str().ok())
                .map(|v| v.split(':').next().unwrap_or(v));
            error_message(status, kind, text)
        })
        .await
    }
}

/// A readable reason from an SES error answer: `HTTP 400
/// MessageRejected: Email address is not verified.`
fn error_message(status: u16, kind: Option<&str>, body: &str) -> String {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let message = parsed
        .as_ref()
        .and_then(|v| v.get("message").or_else(|| v.get("Message")))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| http::excerpt(body));
    match kind {
        Some(kind) => format!("HTTP {status} {kind}: {message}"),
        None => format!("HTTP {status}: {message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::error_message;

    #[test]
    fn ses_errors_read_well() {
        assert_eq!(
            error_message(
                400,
                Some("MessageRejected"),
                r#"{"message":"Email address is not verified."}"#
            ),
            "HTTP 400 MessageRejected: Email address is not verified."
        );
        assert_eq!(error_message(503, None, "busy"), "HTTP 503: busy");
    }
}
