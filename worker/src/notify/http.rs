//! What the HTTP notifiers (SES, Twilio) share: sending one request and
//! turning a refusal into a reason people can read.

use reqwest::header::HeaderMap;

use super::NotifyError;

/// Sends `request` to `service`; a status other than 2xx is a refusal,
/// whose reason `explain` reads from the status, headers and body.
pub(super) async fn send(
    service: &'static str,
    request: reqwest::RequestBuilder,
    explain: impl FnOnce(u16, &HeaderMap, &str) -> String,
) -> Result<(), NotifyError> {
    let response = request.send().await.map_err(|e| NotifyError::Unreachable {
        service,
        message: e.to_string(),
    })?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let headers = response.headers().clone();
    let text = response.text().await.unwrap_or_default();
    Err(NotifyError::Refused {
        service,
        message: explain(status.as_u16(), &headers, &text),
    })
}

/// At most the first 300 characters of an answer nobody could parse.
pub(super) fn excerpt(body: &str) -> String {
    body.chars().take(300).collect()
}
