//! When to try a failed model request again: exponential backoff with
//! "equal jitter" (half the delay fixed, half random, so retries of many
//! turns spread out without ever coming back at once), and a provider's
//! `Retry-After` honoured when it asks for longer.

use std::time::Duration;

use chatbox_shared::config::RetryConfig;

/// The wait before attempt `attempt + 1`, after `attempt` failed (1-based),
/// at least `retry_after` when the provider named one.
pub(super) fn delay(config: &RetryConfig, attempt: u32, retry_after: Option<Duration>) -> Duration {
    let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
    let backoff = config.base_delay.saturating_mul(factor).min(config.max_delay);
    let half = backoff / 2;
    let jittered = half + half.mul_f64(rand::random::<f64>());
    retry_after.map_or(jittered, |asked| asked.max(jittered))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> RetryConfig {
        RetryConfig {
            attempts: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
            max_retry_after: Duration::from_secs(20),
            slow_first_token: false,
        }
    }

    #[test]
    fn delays_double_within_their_jitter_and_stop_at_the_cap() {
        let c = config();
        for _ in 0..200 {
            for (attempt, full) in [(1, 100), (2, 200), (3, 400), (4, 800), (5, 1000), (30, 1000)] {
                let d = delay(&c, attempt, None);
                let full = Duration::from_millis(full);
                assert!(
                    d >= full / 2 && d <= full,
                    "attempt {attempt}: {d:?} outside {full:?}/2..={full:?}"
                );
            }
        }
    }

    #[test]
    fn retry_after_is_honoured_when_longer() {
        let c = config();
        assert_eq!(delay(&c, 1, Some(Duration::from_secs(3))), Duration::from_secs(3));
        assert!(delay(&c, 5, Some(Duration::from_millis(1))) >= Duration::from_millis(500));
    }
}
