//! What a provider's error answer says about trying again, in the headers
//! providers send: `retry-after-ms` (milliseconds, OpenAI and Azure),
//! `Retry-After` in seconds or as an HTTP date (RFC 9110 §10.2.3), and
//! `x-should-retry` (`true`: try again even if the status would not say
//! so; `false`: do not). Read as OpenAI's and Anthropic's own client
//! libraries read them: milliseconds first, then seconds, then a date; the
//! caller decides how long a wait it honours (`max_retry_after`).

use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, RETRY_AFTER};

/// The provider's word on trying again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct RetryHints {
    /// How long to wait first, if it said.
    pub after: Option<Duration>,
    /// Whether to try again at all, if it said.
    pub should_retry: Option<bool>,
}

impl RetryHints {
    /// The hints of an answer's `headers`, a date read against `now`.
    pub(super) fn read(headers: &HeaderMap, now: SystemTime) -> Self {
        let text = |name| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
        let seconds = |value: &str| {
            value
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s >= 0.0)
                .and_then(|s| Duration::try_from_secs_f64(s).ok())
        };
        let after = text("retry-after-ms")
            .and_then(|ms| seconds(ms).map(|d| d / 1000))
            .or_else(|| text(RETRY_AFTER.as_str()).and_then(seconds))
            .or_else(|| {
                let date = httpdate::parse_http_date(text(RETRY_AFTER.as_str())?).ok()?;
                // A date already past means "now".
                Some(date.duration_since(now).unwrap_or_default())
            });
        let should_retry = match text("x-should-retry") {
            Some("true") => Some(true),
            Some("false") => Some(false),
            _ => None,
        };
        RetryHints { after, should_retry }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hints(pairs: &[(&'static str, &str)], now: SystemTime) -> RetryHints {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(*name, value.parse().unwrap());
        }
        RetryHints::read(&headers, now)
    }

    #[test]
    fn milliseconds_then_seconds_then_a_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let after = |pairs: &[(&'static str, &str)]| hints(pairs, now).after;
        assert_eq!(after(&[("retry-after-ms", "3000")]), Some(Duration::from_secs(3)));
        assert_eq!(
            after(&[("retry-after-ms", "250.5"), ("retry-after", "9")]),
            Some(Duration::from_micros(250_500)),
            "milliseconds win"
        );
        assert_eq!(after(&[("retry-after", "2")]), Some(Duration::from_secs(2)));
        assert_eq!(after(&[("retry-after", "0.5")]), Some(Duration::from_millis(500)));
        let in_7s = httpdate::fmt_http_date(now + Duration::from_secs(7));
        assert_eq!(after(&[("retry-after", &in_7s)]), Some(Duration::from_secs(7)));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(7));
        assert_eq!(after(&[("retry-after", &past)]), Some(Duration::ZERO));
        for nonsense in ["soon", "-3", "NaN", "inf"] {
            assert_eq!(after(&[("retry-after", nonsense)]), None, "{nonsense}");
        }
        assert_eq!(
            after(&[("retry-after-ms", "x"), ("retry-after", "4")]),
            Some(Duration::from_secs(4)),
            "an unreadable header is passed over"
        );
        assert_eq!(after(&[]), None);
    }

    #[test]
    fn x_should_retry_is_true_false_or_unsaid() {
        let now = SystemTime::now();
        assert_eq!(hints(&[("x-should-retry", "true")], now).should_retry, Some(true));
        assert_eq!(
            hints(&[("x-should-retry", "false")], now).should_retry,
            Some(false)
        );
        assert_eq!(hints(&[("x-should-retry", "maybe")], now).should_retry, None);
        assert_eq!(hints(&[], now), RetryHints::default());
    }
}
