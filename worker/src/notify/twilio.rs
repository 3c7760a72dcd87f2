//! SMS through Twilio's Messages API: `POST
//! {base_url}/2010-04-01/Accounts/{AccountSid}/Messages.json` with HTTP
//! Basic auth (account SID and auth token) and the form fields `To`,
//! `From` and `Body`. Twilio answers 201 with the message; an error comes
//! as JSON (`code`, `message`, `more_info`), which becomes the reason
//! people read in the log.

use async_trait::async_trait;
use chatbox_shared::config::notifications::TwilioConfig;
use serde::Deserialize;

use super::{Message, Notifier, NotifyError, http};

/// Sends SMS through Twilio.
pub(super) struct TwilioNotifier {
    config: TwilioConfig,
    client: reqwest::Client,
    url: String,
}

/// Twilio's error body.
#[derive(Debug, Deserialize)]
struct TwilioError {
    code: Option<u64>,
    message: Option<String>,
    more_info: Option<String>,
}

impl TwilioNotifier {
    /// A notifier for the account in `config`.
    pub(super) fn new(config: &TwilioConfig, client: reqwest::Client) -> Self {
        TwilioNotifier {
            url: format!(
                "{}/2010-04-01/Accounts/{}/Messages.json",
                config.base_url.trim_end_matches('/'),
                config.account_sid
            ),
            config: config.clone(),
            client,
        }
    }
}

#[async_trait]
impl Notifier for TwilioNotifier {
    fn adapter(&self) -> &'static str {
        "twilio"
    }

    async fn send(&self, to: &str, message: &Message) -> Result<(), NotifyError> {
        let form = [
            ("To", to),
            ("From", self.config.from_number.as_str()),
            ("Body", message.short.as_str()),
        ];
        let request = self
            .client
            .post(&self.url)
            .timeout(self.config.timeout)
            .basic_auth(&self.config.account_sid, Some(self.config.auth_token.expose()))
            .form(&form);
        http::send("twilio", request, |status, _, text| error_message(status, text)).await
    }
}

/// A readable reason from a Twilio error answer: `HTTP 400, Twilio error
/// 21211: The 'To' number … is not a valid phone number. (https://…)`.
fn error_message(status: u16, body: &str) -> String {
    match serde_json::from_str::<TwilioError>(body) {
        Ok(TwilioError {
            code,
            message: Some(message),
            more_info,
        }) => {
            let mut text = format!("HTTP {status}");
            if let Some(code) = code {
                text.push_str(&format!(", Twilio error {code}"));
            }
            text.push_str(&format!(": {message}"));
            if let Some(more) = more_info {
                text.push_str(&format!(" ({more})"));
            }
            text
        }
        _ => format!("HTTP {status}: {}", http::excerpt(body)),
    }
}

#[cfg(test)]
mod tests {
    use super::error_message;

    #[test]
    fn twilio_errors_read_well() {
        let body = r#"{"code": 21211, "message": "The 'To' number 5551234 is not a valid phone number.", "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400}"#;
        assert_eq!(
            error_message(400, body),
            "HTTP 400, Twilio error 21211: The 'To' number 5551234 is not a valid phone number. (https://www.twilio.com/docs/errors/21211)"
        );
        assert_eq!(
            error_message(502, "<html>bad gateway</html>"),
            "HTTP 502: <html>bad gateway</html>"
        );
    }
}
