//! A circuit breaker per provider and worker.
//!
//! Closed: requests go through, failures in a row are counted; at
//! `failure_threshold` it opens. Open: requests are refused at once for
//! `open_for` (the fallback answers, or the user hears when to try
//! again). Then half-open: up to `half_open_probes` requests go through;
//! one success closes it, one failure opens it again. The state is the
//! gauge `chatbox_llm_breaker_state{provider}` (0 closed, 1 open, 2
//! half-open); whoever registered with [`Breaker::on_open`] hears each
//! time it opens (the worker tells the admins).

use std::fmt::Display;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use chatbox_shared::config::BreakerConfig;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::metrics;

/// Where a breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Requests go through.
    Closed { failures: u32 },
    /// Requests are refused until then.
    Open { until: Instant },
    /// Probes go through, this many at the moment.
    HalfOpen { probing: u32 },
}

impl BreakerState {
    fn gauge(self) -> (f64, &'static str) {
        match self {
            BreakerState::Closed { .. } => (0.0, "closed"),
            BreakerState::Open { .. } => (1.0, "open"),
            BreakerState::HalfOpen { .. } => (2.0, "half_open"),
        }
    }
}

/// A breaker just opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Opened {
    /// The provider.
    pub(crate) provider: String,
    /// The failed requests in a row that opened it.
    pub(crate) failures: u32,
    /// What the last of them said.
    pub(crate) last_error: String,
    /// How long it refuses requests before a probe.
    pub(crate) open_for: Duration,
}

/// Called each time a breaker opens.
pub(super) type OnOpen = Arc<dyn Fn(Opened) + Send + Sync>;

/// One provider's breaker.
pub struct Breaker {
    provider: String,
    config: BreakerConfig,
    state: Mutex<BreakerState>,
    on_open: OnceLock<OnOpen>,
}

/// Leave to send one request; say how it went with [`Permit::succeeded`]
/// or [`Permit::failed`]. Dropped without a verdict (the request was
/// cancelled, or failed through no fault of the provider), it only frees
/// its probe slot.
pub(crate) struct Permit {
    breaker: Arc<Breaker>,
    probe: bool,
}

impl Breaker {
    /// A closed breaker for `provider`.
    pub(crate) fn new(provider: &str, config: BreakerConfig) -> Self {
        metrics::breaker_state(provider, 0.0, None);
        Breaker {
            provider: provider.to_owned(),
            config,
            state: Mutex::new(BreakerState::Closed { failures: 0 }),
            on_open: OnceLock::new(),
        }
    }

    /// Calls `hook` each time the breaker opens (the first hook set stays).
    pub(crate) fn on_open(&self, hook: OnOpen) {
        // Set once, at start; a second hook is ignored, as documented.
        let _ = self.on_open.set(hook);
    }

    /// Where it stands now.
    pub fn state(&self) -> BreakerState {
        *self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Leave to send a request, or how long until the breaker lets one
    /// through.
    pub(crate) fn try_acquire(self: &Arc<Self>) -> Result<Permit, Duration> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let probe = match *state {
            BreakerState::Closed { .. } => false,
            BreakerState::Open { until } if now < until => return Err(until - now),
            BreakerState::Open { .. } => {
                self.set(&mut state, BreakerState::HalfOpen { probing: 1 });
                true
            }
            BreakerState::HalfOpen { probing } if probing < self.config.half_open_probes => {
                *state = BreakerState::HalfOpen { probing: probing + 1 };
                true
            }
            // Probes are out: come back once they report.
            BreakerState::HalfOpen { .. } => return Err(Duration::from_secs(1)),
        };
        Ok(Permit {
            breaker: Arc::clone(self),
            probe,
        })
    }

    fn set(&self, state: &mut BreakerState, to: BreakerState) {
        let (value, name) = to.gauge();
        if std::mem::discriminant(state) != std::mem::discriminant(&to) {
            metrics::breaker_state(&self.provider, value, Some(name));
            match to {
                BreakerState::Open { .. } => {
                    warn!(provider = %self.provider, open_for = ?self.config.open_for, "circuit breaker open: the provider keeps failing");
                }
                _ => info!(provider = %self.provider, state = name, "circuit breaker {name}"),
            }
        }
        *state = to;
    }

    /// Takes a verdict; returns the failures in a row if it opened the
    /// breaker.
    fn report(&self, probe: bool, ok: Option<bool>) -> Option<u32> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let open = BreakerState::Open {
            until: Instant::now() + self.config.open_for,
        };
        match (*state, ok) {
            (BreakerState::Closed { .. }, Some(true)) => *state = BreakerState::Closed { failures: 0 },
            (BreakerState::Closed { failures }, Some(false)) => {
                let failures = failures + 1;
                if failures >= self.config.failure_threshold {
                    self.set(&mut state, open);
                    return Some(failures);
                }
                *state = BreakerState::Closed { failures };
            }
            (BreakerState::HalfOpen { .. }, Some(true)) if probe => {
                self.set(&mut state, BreakerState::Closed { failures: 0 });
            }
            (BreakerState::HalfOpen { .. }, Some(false)) if probe => {
                self.set(&mut state, open);
                return Some(1);
            }
            (BreakerState::HalfOpen { probing }, None) if probe => {
                *state = BreakerState::HalfOpen {
                    probing: probing.saturating_sub(1),
                };
            }
            // A request from before the breaker opened: its verdict is
            // already counted.
            _ => {}
        }
        None
    }

    /// Counts a failure; tells the hook, outside the lock, if it opened
    /// the breaker.
    fn fail(&self, probe: bool, error: &dyn Display) {
        if let Some(failures) = self.report(probe, Some(false))
            && let Some(hook) = self.on_open.get()
        {
            hook(Opened {
                provider: self.provider.clone(),
                failures,
                last_error: error.to_string(),
                open_for: self.config.open_for,
            });
        }
    }

    /// Counts a failure seen outside a permit (an answer that broke off
    /// midway).
    pub(crate) fn record_failure(&self, error: &dyn Display) {
        self.fail(false, error);
    }
}

impl Permit {
    /// The request worked.
    pub(crate) fn succeeded(mut self) {
        self.breaker.report(std::mem::take(&mut self.probe), Some(true));
    }

    /// The request failed because of the provider, with `error`.
    pub(crate) fn failed(mut self, error: &dyn Display) {
        self.breaker.fail(std::mem::take(&mut self.probe), error);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if self.probe {
            // A probe given up without an outcome frees the half-open slot;
            // nothing opened, so there is nobody to tell.
            let _ = self.breaker.report(true, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(threshold: u32, probes: u32) -> Arc<Breaker> {
        Arc::new(Breaker::new(
            "test",
            BreakerConfig {
                failure_threshold: threshold,
                open_for: Duration::from_secs(30),
                half_open_probes: probes,
            },
        ))
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_failures_in_a_row_and_closes_after_a_good_probe() {
        let b = breaker(3, 1);
        b.try_acquire().unwrap().failed(&"HTTP 503");
        b.try_acquire().unwrap().failed(&"HTTP 503");
        b.try_acquire().unwrap().succeeded();
        assert_eq!(
            b.state(),
            BreakerState::Closed { failures: 0 },
            "a success resets the count"
        );
        for _ in 0..3 {
            b.try_acquire().unwrap().failed(&"HTTP 503");
        }
        let wait = b.try_acquire().err().expect("open breakers refuse");
        assert!(wait <= Duration::from_secs(30) && wait > Duration::from_secs(29));

        tokio::time::advance(Duration::from_secs(31)).await;
        let probe = b
            .try_acquire()
            .expect("a probe goes through once open_for has passed");
        assert!(matches!(b.state(), BreakerState::HalfOpen { probing: 1 }));
        assert!(b.try_acquire().is_err(), "one probe at a time");
        probe.succeeded();
        assert_eq!(b.state(), BreakerState::Closed { failures: 0 });
    }

    #[tokio::test(start_paused = true)]
    async fn the_hook_hears_each_opening_with_the_last_error() {
        let b = breaker(2, 1);
        let heard = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&heard);
        b.on_open(Arc::new(move |opened| sink.lock().unwrap().push(opened)));
        b.try_acquire().unwrap().failed(&"first");
        assert!(heard.lock().unwrap().is_empty());
        b.try_acquire().unwrap().failed(&"HTTP 500: boom");
        b.record_failure(&"late: already open");
        tokio::time::advance(Duration::from_secs(31)).await;
        b.try_acquire().unwrap().failed(&"probe failed");
        let heard = heard.lock().unwrap();
        assert_eq!(
            *heard,
            [
                Opened {
                    provider: "test".into(),
                    failures: 2,
                    last_error: "HTTP 500: boom".into(),
                    open_for: Duration::from_secs(30),
                },
                Opened {
                    provider: "test".into(),
                    failures: 1,
                    last_error: "probe failed".into(),
                    open_for: Duration::from_secs(30),
                },
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_opens_again_and_a_dropped_one_frees_its_slot() {
        let b = breaker(1, 1);
        b.try_acquire().unwrap().failed(&"HTTP 503");
        tokio::time::advance(Duration::from_secs(31)).await;
        drop(b.try_acquire().unwrap());
        assert!(matches!(b.state(), BreakerState::HalfOpen { probing: 0 }));
        b.try_acquire().unwrap().failed(&"HTTP 503");
        assert!(matches!(b.state(), BreakerState::Open { .. }));
        assert!(b.try_acquire().is_err());
    }
}
