//! Scripting of what the providers' references describe beyond a plain
//! answer: how an answer ends (`finish`: OpenAI's `finish_reason`,
//! Anthropic's `stop_reason`), what a failure says of trying again
//! (`retry-after-ms`, `Retry-After` as an HTTP date, `x-should-retry`),
//! the provider's own error code (`error-code`: OpenAI's
//! `insufficient_quota`…, Anthropic's `billing_error`…), and a server that
//! refuses `stream_options` (`reject-stream-options`). Set like every key
//! of `script.rs`: `x-mock-<key>` headers or `[[mock <key>=…]]` directives.

use std::time::{Duration, SystemTime};

use axum::http::{HeaderName, HeaderValue, header};
use axum::response::Response;

/// The keys, as header names without `x-mock-`.
pub(crate) const WIRE_KEYS: [&str; 6] = [
    "finish",
    "retry-after-ms",
    "retry-after-date",
    "should-retry",
    "error-code",
    "reject-stream-options",
];

/// The scripted wire behaviour of one request.
#[derive(Debug, Clone, Default)]
pub(crate) struct Wire {
    /// How the answer ends (the format checks the name).
    pub finish: Option<String>,
    /// `retry-after-ms` sent with a failure.
    pub retry_after_ms: Option<u64>,
    /// `Retry-After` sent with a failure as the HTTP date this many seconds
    /// ahead (rounded up to a whole second).
    pub retry_after_date: Option<u64>,
    /// `x-should-retry` sent with a failure.
    pub should_retry: Option<bool>,
    /// The provider's error code in a failure's body.
    pub error_code: Option<String>,
    /// Refuse a request that carries `stream_options` with this status.
    pub reject_stream_options: Option<u16>,
}

fn num(key: &str, value: &str) -> Result<u64, String> {
    value
        .trim()
        .parse()
        .map_err(|_| format!("mock scripting: invalid value {value:?} for {key}"))
}

/// A lower-case name of letters, digits and `_`, like a reference's codes.
fn code(key: &str, value: &str) -> Result<String, String> {
    let value = value.trim();
    if value.is_empty()
        || !value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(format!(
            "mock scripting: {key} must be a name like content_filter, not {value:?}"
        ));
    }
    Ok(value.to_owned())
}

impl Wire {
    /// Applies one of [`WIRE_KEYS`].
    pub(crate) fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        match key {
            "finish" => self.finish = Some(code(key, value)?),
            "retry-after-ms" => self.retry_after_ms = Some(num(key, value)?),
            "retry-after-date" => self.retry_after_date = Some(num(key, value)?),
            "should-retry" => {
                self.should_retry = Some(match value.trim() {
                    "true" => true,
                    "false" => false,
                    other => {
                        return Err(format!(
                            "mock scripting: should-retry must be true or false, not {other:?}"
                        ));
                    }
                });
            }
            "error-code" => self.error_code = Some(code(key, value)?),
            "reject-stream-options" => {
                let status = num(key, value)?;
                if !matches!(status, 400 | 422) {
                    return Err(format!(
                        "mock scripting: reject-stream-options must be 400 or 422, not {status}"
                    ));
                }
                self.reject_stream_options = u16::try_from(status).ok();
            }
            other => return Err(format!("mock scripting: {other:?} is not a wire key")),
        }
        Ok(())
    }

    /// The finish reason to send: the scripted one if the format knows it
    /// (`known`, the reference's list), else `default`; an unknown name is
    /// a 400 message.
    pub(crate) fn finish_or<'a>(&'a self, default: &'a str, known: &[&str]) -> Result<&'a str, String> {
        match self.finish.as_deref() {
            None => Ok(default),
            Some(name) if known.contains(&name) => Ok(name),
            Some(name) => Err(format!(
                "mock scripting: finish {name:?} is not one of {}",
                known.join(", ")
            )),
        }
    }

    /// Adds the scripted retry headers to a failure: `retry-after-ms`,
    /// `Retry-After` as a date (replacing a number), `x-should-retry`.
    pub(crate) fn add_retry_headers(&self, response: &mut Response) {
        let headers = response.headers_mut();
        if let Some(ms) = self.retry_after_ms {
            headers.insert(HeaderName::from_static("retry-after-ms"), HeaderValue::from(ms));
        }
        if let Some(seconds) = self.retry_after_date {
            let date = whole_seconds_ahead(SystemTime::now(), seconds);
            if let Ok(value) = HeaderValue::from_str(&httpdate::fmt_http_date(date)) {
                headers.insert(header::RETRY_AFTER, value);
            }
        }
        if let Some(retry) = self.should_retry {
            headers.insert(
                HeaderName::from_static("x-should-retry"),
                HeaderValue::from_static(if retry { "true" } else { "false" }),
            );
        }
    }
}

/// `now + seconds`, rounded up to a whole second (an HTTP date has no
/// fractions), so the wait it asks is never shorter than `seconds`.
fn whole_seconds_ahead(now: SystemTime, seconds: u64) -> SystemTime {
    let since = now.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let up = since.as_secs() + u64::from(since.subsec_nanos() > 0);
    SystemTime::UNIX_EPOCH + Duration::from_secs(up + seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_checked() {
        let mut w = Wire::default();
        w.set("finish", "content_filter").unwrap();
        w.set("should-retry", "false").unwrap();
        w.set("reject-stream-options", "422").unwrap();
        assert_eq!(w.finish.as_deref(), Some("content_filter"));
        assert_eq!(
            (w.should_retry, w.reject_stream_options),
            (Some(false), Some(422))
        );
        for (key, bad) in [
            ("finish", "Length!"),
            ("should-retry", "yes"),
            ("reject-stream-options", "500"),
            ("retry-after-ms", "soon"),
            ("error-code", ""),
        ] {
            assert!(w.set(key, bad).is_err(), "{key}={bad}");
        }
        assert_eq!(
            w.finish_or("stop", &["stop", "content_filter"]),
            Ok("content_filter")
        );
        assert!(
            w.finish_or("end_turn", &["end_turn"])
                .unwrap_err()
                .contains("end_turn")
        );
    }

    #[test]
    fn a_date_asks_at_least_the_seconds_given() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_250);
        let date = whole_seconds_ahead(now, 2);
        assert_eq!(
            date.duration_since(SystemTime::UNIX_EPOCH).unwrap(),
            Duration::from_secs(1_700_000_003)
        );
        assert!(date.duration_since(now).unwrap() >= Duration::from_secs(2));
    }
}
