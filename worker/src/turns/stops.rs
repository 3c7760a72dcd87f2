//! Stopping answers: the user's `stop`, or the user leaving for good.
//!
//! Every worker listens on `chat.stop.*` (plain NATS, not the session's
//! queue, where a stop would wait behind the very answer it is meant to
//! stop). A turn registers while it streams; a stop for its session
//! cancels every answer to a message received before the stop. A stop
//! that arrives just before its turn registers (the message was still
//! queued) is remembered for a short while, so that turn stops at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chatbox_shared::bus::Subscription;
use chatbox_shared::envelope::{StopAnswer, StopReason};
use chatbox_shared::namespace::Subjects;
use chatbox_shared::protocol::Timestamp;
use futures_util::StreamExt;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// How long a stop is remembered for a turn that has not started yet.
const REMEMBER: Duration = Duration::from_secs(30);

/// The answers streaming on this worker, by session.
#[derive(Default)]
pub(crate) struct Stops {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    running: HashMap<String, Vec<Running>>,
    recent: HashMap<String, (StopAnswer, Instant)>,
    next_key: u64,
}

struct Running {
    key: u64,
    received_at: Timestamp,
    token: CancellationToken,
    reason: Arc<Mutex<Option<StopReason>>>,
}

/// A turn's registration; dropping it unregisters.
pub(crate) struct Registration {
    stops: Arc<Stops>,
    session_id: String,
    key: u64,
    /// Cancelled when the answer is to stop.
    pub token: CancellationToken,
    reason: Arc<Mutex<Option<StopReason>>>,
}

impl Registration {
    /// Why the answer was stopped, once it was.
    pub(crate) fn reason(&self) -> Option<StopReason> {
        *self.reason.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut inner = self.stops.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(list) = inner.running.get_mut(&self.session_id) {
            list.retain(|r| r.key != self.key);
            if list.is_empty() {
                inner.running.remove(&self.session_id);
            }
        }
    }
}

impl Stops {
    /// Registers the answer to a message of `session_id` received at
    /// `received_at`.
    pub(crate) fn register(self: &Arc<Self>, session_id: &str, received_at: Timestamp) -> Registration {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.next_key += 1;
        let key = inner.next_key;
        let token = CancellationToken::new();
        let reason = Arc::new(Mutex::new(None));
        if let Some((stop, _)) = inner.recent.get(session_id)
            && received_at <= stop.at
        {
            *reason.lock().unwrap_or_else(PoisonError::into_inner) = Some(stop.reason);
            token.cancel();
        }
        inner
            .running
            .entry(session_id.to_owned())
            .or_default()
            .push(Running {
                key,
                received_at,
                token: token.clone(),
                reason: Arc::clone(&reason),
            });
        Registration {
            stops: Arc::clone(self),
            session_id: session_id.to_owned(),
            key,
            token,
            reason,
        }
    }

    /// Stops the answers `stop` names; returns how many were running here.
    pub(crate) fn stop(&self, stop: StopAnswer) -> usize {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        inner
            .recent
            .retain(|_, (_, at)| now.duration_since(*at) < REMEMBER);
        let mut stopped = 0;
        for r in inner.running.get(&stop.session_id).into_iter().flatten() {
            if r.received_at <= stop.at && !r.token.is_cancelled() {
                *r.reason.lock().unwrap_or_else(PoisonError::into_inner) = Some(stop.reason);
                r.token.cancel();
                stopped += 1;
            }
        }
        inner.recent.insert(stop.session_id.clone(), (stop, now));
        stopped
    }
}

/// Listens for stops until `cancel`.
pub(crate) async fn listen(
    stops: Arc<Stops>,
    subjects: Subjects,
    mut subscription: Subscription,
    cancel: CancellationToken,
) {
    loop {
        let message = tokio::select! {
            _ = cancel.cancelled() => return,
            message = subscription.next() => match message {
                Some(m) => m,
                None => {
                    warn!("the stop subscription ended");
                    return;
                }
            },
        };
        let stop = match serde_json::from_slice::<StopAnswer>(&message.payload) {
            Ok(stop) if subjects.session_of_stop(&message.subject) == Some(stop.session_id.as_str()) => stop,
            Ok(_) => {
                warn!(subject = %message.subject, "a stop names another session than its subject; ignored");
                continue;
            }
            Err(e) => {
                warn!(subject = %message.subject, "unreadable stop; ignored: {e}");
                continue;
            }
        };
        let (session_id, reason) = (stop.session_id.clone(), stop.reason);
        let stopped = stops.stop(stop);
        debug!(%session_id, ?reason, stopped, "stop");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stop(at: u64) -> StopAnswer {
        StopAnswer {
            session_id: "s".into(),
            user_id: "u".into(),
            reason: StopReason::User,
            at: Timestamp::from_millis(at),
        }
    }

    #[test]
    fn a_stop_cancels_answers_to_earlier_messages_only() {
        let stops = Arc::new(Stops::default());
        let early = stops.register("s", Timestamp::from_millis(10));
        let late = stops.register("s", Timestamp::from_millis(30));
        let other = stops.register("t", Timestamp::from_millis(10));
        assert_eq!(stops.stop(stop(20)), 1);
        assert!(early.token.is_cancelled());
        assert_eq!(early.reason(), Some(StopReason::User));
        assert!(!late.token.is_cancelled() && !other.token.is_cancelled());
        assert_eq!(late.reason(), None);
    }

    #[test]
    fn a_stop_that_comes_first_stops_its_turn_when_it_registers() {
        let stops = Arc::new(Stops::default());
        assert_eq!(stops.stop(stop(20)), 0);
        assert!(
            stops
                .register("s", Timestamp::from_millis(15))
                .token
                .is_cancelled()
        );
        assert!(
            !stops
                .register("s", Timestamp::from_millis(25))
                .token
                .is_cancelled()
        );
        drop(stops.register("s", Timestamp::from_millis(1)));
        assert!(
            stops
                .inner
                .lock()
                .unwrap()
                .running
                .get("s")
                .is_none_or(Vec::is_empty)
        );
    }
}
