//! The users' message rate limit, decided in the gateway against tokens
//! leased from the shared bucket (docs/ARCHITECTURE.md, *Decisions*: leased in batches).
//!
//! The token bucket of each user lives in the coordinator, shared by every
//! pod. Asking it for every message costs a Redis script call per message,
//! so a [`MessageLimiter`] takes tokens in small batches instead — a
//! *lease* — and spends them locally:
//!
//! * a message takes a token of the user's lease while it has one and has
//!   not expired ([`lease_ttl`]: a quarter of the window, at most 1 s);
//! * otherwise the limiter leases more: 1 token for a user who sends now
//!   and then, twice the last lease for a user who spent it before it
//!   expired, as many as there are messages of the user waiting, never
//!   more than [`batch_size`] — so tokens a user does not spend are few;
//! * a refusal is remembered until the bucket has a token again: refused
//!   messages cost no call;
//! * concurrent messages of one user wait for one call, not one each.
//!
//! Tokens are taken from the bucket before they are spent, so the limit
//! holds across pods: in any stretch of time a user gets at most
//! `min(G × (batch − 1), ⌈capacity × lease_ttl / window⌉)` messages more than
//! the exact bucket would give, with `G` gateways (docs/CONFIGURATION.md).
//! Leased tokens a pod does not spend before the lease expires are lost,
//! so a user may be refused that many tokens early.
//!
//! Entries of users whose lease and refusal have run out are swept by
//! [`sweep_loop`], so memory follows the users active in the last seconds.
//!
//! The same leasing limits other requests, each kind from a bucket of its
//! own ([`RequestLimiters`], `chatbox.session_rate_limit` and
//! `chatbox.request_rate_limit`): opening a socket (which opens, restores
//! or starts a session — a burst of connects cannot mint sessions), and
//! `get_history` and `rename_session`, over the socket or HTTP. A refusal
//! is a `RATE_LIMITED` error with `retry_after`, like a message's.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chatbox_shared::coordinator::{Admission, Coordinator, CoordinatorError, RateLimit, RequestKind};
use chatbox_shared::periodic::{FirstPass, every};
use chatbox_shared::protocol::{ErrorCode, ErrorInfo};
use metrics::{Counter, counter};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The most tokens one lease takes.
const MAX_BATCH: u32 = 8;

/// How often entries that ran out are swept.
const SWEEP_PERIOD: Duration = Duration::from_secs(5);

/// The lease size for `limit`: a quarter of the bucket, 1 to [`MAX_BATCH`].
pub(crate) fn batch_size(limit: RateLimit) -> u32 {
    (limit.capacity / 4).clamp(1, MAX_BATCH)
}

/// How long leased tokens may be spent: a quarter of the window, at most 1 s.
pub(crate) fn lease_ttl(limit: RateLimit) -> Duration {
    (limit.window / 4).clamp(Duration::from_millis(1), Duration::from_secs(1))
}

/// The decision on one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Send it.
    Allowed,
    /// Too fast: a token is back after `retry_after`.
    Limited { retry_after: Duration },
}

/// Per-user leases of the message bucket (or of one kind of request's),
/// on one gateway.
pub(crate) struct MessageLimiter {
    coordinator: Arc<dyn Coordinator>,
    /// The bucket's kind; `None`: messages.
    kind: Option<RequestKind>,
    limit: RateLimit,
    batch: u32,
    ttl: Duration,
    users: Mutex<HashMap<String, Arc<UserEntry>>>,
    /// `chatbox_gateway_rate_limit_leases_total`: calls to the coordinator.
    leases: Counter,
    /// `chatbox_gateway_rate_limit_local_total`: messages decided without one.
    local: Counter,
}

/// One user's lease, and the messages of theirs waiting for it.
#[derive(Default)]
struct UserEntry {
    lease: tokio::sync::Mutex<Lease>,
    waiting: AtomicU32,
}

/// Counts a message waiting for its user's lease while it lives.
struct Waiting<'a>(&'a AtomicU32);

impl<'a> Waiting<'a> {
    fn new(count: &'a AtomicU32) -> Self {
        count.fetch_add(1, Ordering::AcqRel);
        Waiting(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl MessageLimiter {
    /// A limiter of `limit` over the coordinator's buckets.
    pub(crate) fn new(coordinator: Arc<dyn Coordinator>, limit: RateLimit) -> Self {
        Self::with_kind(coordinator, None, limit)
    }

    /// A limiter of `limit` over the buckets of requests of `kind`.
    pub(crate) fn for_requests(
        coordinator: Arc<dyn Coordinator>,
        kind: RequestKind,
        limit: RateLimit,
    ) -> Self {
        Self::with_kind(coordinator, Some(kind), limit)
    }

    fn with_kind(coordinator: Arc<dyn Coordinator>, kind: Option<RequestKind>, limit: RateLimit) -> Self {
        // The lease counters measure messages only.
        let (leases, local) = match kind {
            None => (
                counter!("chatbox_gateway_rate_limit_leases_total"),
                counter!("chatbox_gateway_rate_limit_local_total"),
            ),
            Some(_) => (Counter::noop(), Counter::noop()),
        };
        MessageLimiter {
            coordinator,
            kind,
            limit,
            batch: batch_size(limit),
            ttl: lease_ttl(limit),
            users: Mutex::default(),
            leases,
            local,
        }
    }

    /// The limit it enforces.
    pub(crate) fn limit(&self) -> RateLimit {
        self.limit
    }

    /// Decides on one message of `user_id`; an error when the coordinator
    /// had to be asked and could not answer (the caller decides to fail open).
    pub(crate) async fn admit(&self, user_id: &str) -> Result<Verdict, CoordinatorError> {
        let entry = self.entry(user_id);
        let waiting = Waiting::new(&entry.waiting);
        let mut lease = entry.lease.lock().await;
        let queued = entry.waiting.load(Ordering::Acquire);
        drop(waiting);
        let now = Instant::now();
        if let Some(verdict) = lease.spend(now) {
            self.local.increment(1);
            return Ok(verdict);
        }
        let want = lease.next_want(now, queued, self.ttl, self.batch);
        self.leases.increment(1);
        let answer = match self.kind {
            None => self.coordinator.admit_message(user_id, self.limit, want).await?,
            Some(kind) => {
                self.coordinator
                    .admit_request(kind, user_id, self.limit, want)
                    .await?
            }
        };
        Ok(lease.record(answer, now, self.ttl))
    }

    /// Forgets the users whose lease and refusal have run out.
    pub(crate) fn sweep(&self) {
        let now = Instant::now();
        self.users().retain(|_, entry| {
            // Held elsewhere (a message in progress), or still deciding.
            Arc::strong_count(entry) > 1 || entry.lease.try_lock().map_or(true, |l| l.is_live(now))
        });
    }

    /// Users with an entry, for tests and gauges.
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.users().len()
    }

    fn entry(&self, user_id: &str) -> Arc<UserEntry> {
        let mut users = self.users();
        if let Some(entry) = users.get(user_id) {
            return Arc::clone(entry);
        }
        let entry = Arc::new(UserEntry::default());
        users.insert(user_id.to_owned(), Arc::clone(&entry));
        entry
    }

    fn users(&self) -> MutexGuard<'_, HashMap<String, Arc<UserEntry>>> {
        // A panic while the map was held left it whole: keep using it.
        self.users
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Sweeps the limiters' entries every few seconds until cancelled.
pub(crate) async fn sweep_loop(
    limiter: Arc<MessageLimiter>,
    requests: Arc<RequestLimiters>,
    cancel: CancellationToken,
) {
    every(SWEEP_PERIOD, FirstPass::AfterPeriod, &cancel, || {
        limiter.sweep();
        for limiter in requests.all() {
            limiter.sweep();
        }
        std::future::ready(())
    })
    .await;
}

/// The limiters of requests other than messages, one bucket per kind.
pub(crate) struct RequestLimiters {
    session_open: MessageLimiter,
    history: MessageLimiter,
    rename: MessageLimiter,
    /// `chatbox_gateway_requests_rate_limited_total{kind}`, by kind.
    refused: [Counter; 3],
}

impl RequestLimiters {
    /// `session_rate` socket opens and `request_rate` requests of each
    /// other kind per `window`.
    pub(crate) fn new(
        coordinator: &Arc<dyn Coordinator>,
        session_rate: u32,
        request_rate: u32,
        window: Duration,
    ) -> Self {
        let limiter = |kind, capacity| {
            MessageLimiter::for_requests(Arc::clone(coordinator), kind, RateLimit { capacity, window })
        };
        let refused = |kind: RequestKind| counter!("chatbox_gateway_requests_rate_limited_total", "kind" => kind.as_str());
        RequestLimiters {
            session_open: limiter(RequestKind::SessionOpen, session_rate),
            history: limiter(RequestKind::History, request_rate),
            rename: limiter(RequestKind::Rename, request_rate),
            refused: [
                refused(RequestKind::SessionOpen),
                refused(RequestKind::History),
                refused(RequestKind::Rename),
            ],
        }
    }

    fn of(&self, kind: RequestKind) -> (&MessageLimiter, &Counter) {
        match kind {
            RequestKind::SessionOpen => (&self.session_open, &self.refused[0]),
            RequestKind::History => (&self.history, &self.refused[1]),
            RequestKind::Rename => (&self.rename, &self.refused[2]),
        }
    }

    fn all(&self) -> [&MessageLimiter; 3] {
        [&self.session_open, &self.history, &self.rename]
    }

    /// Takes a token for `user_id`'s request of `kind`; the error to send
    /// when there is none. A coordinator that cannot answer lets it through.
    pub(crate) async fn admit(&self, kind: RequestKind, user_id: &str) -> Result<(), ErrorInfo> {
        let (limiter, refused) = self.of(kind);
        match limiter.admit(user_id).await {
            Ok(Verdict::Allowed) => Ok(()),
            Ok(Verdict::Limited { retry_after }) => {
                refused.increment(1);
                let limit = limiter.limit();
                let what = match kind {
                    RequestKind::SessionOpen => "opening conversations",
                    RequestKind::History => "asking for history",
                    RequestKind::Rename => "renaming conversations",
                };
                Err(ErrorInfo::new(
                    ErrorCode::RateLimited,
                    format!(
                        "you are {what} too fast (at most {} per {}); wait a moment",
                        limit.capacity,
                        humantime::format_duration(limit.window)
                    ),
                )
                .retry_after(retry_after))
            }
            Err(e) => {
                crate::metrics::coordinator_error("admit_request");
                tracing::warn!(
                    kind = kind.as_str(),
                    "rate limit unavailable, request allowed: {e}"
                );
                Ok(())
            }
        }
    }
}

/// The local state of one user's lease.
#[derive(Debug, Default)]
struct Lease {
    /// Tokens of the current lease not spent yet.
    left: u32,
    /// Tokens the current lease got (0: none, or the bucket was empty).
    granted: u32,
    /// When the current lease's tokens stop counting.
    expires: Option<Instant>,
    /// Until when the bucket is known to be empty.
    limited_until: Option<Instant>,
}

impl Lease {
    /// The decision, if it can be made without the coordinator.
    fn spend(&mut self, now: Instant) -> Option<Verdict> {
        if let Some(until) = self.limited_until.filter(|until| now < *until) {
            return Some(Verdict::Limited {
                retry_after: until - now,
            });
        }
        if self.left > 0 && self.expires.is_some_and(|e| now < e) {
            self.left -= 1;
            return Some(Verdict::Allowed);
        }
        None
    }

    /// How many tokens to lease now, with `queued` messages (this one
    /// included) waiting: as many as the user spent of the last lease (twice
    /// that if they spent it all before it expired), 1 after a pause.
    fn next_want(&self, now: Instant, queued: u32, ttl: Duration, batch: u32) -> u32 {
        let spent = self.granted - self.left;
        let pace = match self.expires {
            Some(expires) if now < expires => spent.saturating_mul(2),
            Some(expires) if now < expires + ttl => spent,
            _ => 1,
        };
        pace.max(queued).clamp(1, batch)
    }

    /// Takes the coordinator's answer to a lease asked for at `asked`.
    fn record(&mut self, answer: Admission, asked: Instant, ttl: Duration) -> Verdict {
        match answer {
            Admission::Allowed { granted } => {
                *self = Lease {
                    left: granted.saturating_sub(1),
                    granted,
                    // From the asking: tokens are never spent later than
                    // `ttl` after the bucket gave them.
                    expires: Some(asked + ttl),
                    limited_until: None,
                };
                Verdict::Allowed
            }
            Admission::Limited { retry_after } => {
                *self = Lease {
                    limited_until: Some(asked + retry_after),
                    ..Lease::default()
                };
                Verdict::Limited { retry_after }
            }
        }
    }

    /// Whether it still holds tokens or a refusal.
    fn is_live(&self, now: Instant) -> bool {
        self.expires.is_some_and(|e| now < e) || self.limited_until.is_some_and(|u| now < u)
    }
}

#[cfg(test)]
mod tests {
    use chatbox_shared::coordinator::MemoryCoordinator;
    use chatbox_shared::namespace::Namespace;

    use super::*;

    fn limiter(capacity: u32, window: Duration) -> MessageLimiter {
        let coordinator = Arc::new(MemoryCoordinator::new(Namespace::default().keys()));
        MessageLimiter::new(coordinator, RateLimit { capacity, window })
    }

    async fn allowed(l: &MessageLimiter, user: &str, n: usize) -> usize {
        let mut allowed = 0;
        for _ in 0..n {
            if l.admit(user).await.unwrap() == Verdict::Allowed {
                allowed += 1;
            }
        }
        allowed
    }

    #[test]
    fn batches_and_leases_are_sized_from_the_limit() {
        let limit = |capacity, secs| RateLimit {
            capacity,
            window: Duration::from_secs(secs),
        };
        assert_eq!(batch_size(limit(100, 60)), 8);
        assert_eq!(batch_size(limit(12, 60)), 3);
        assert_eq!(batch_size(limit(2, 60)), 1);
        assert_eq!(lease_ttl(limit(100, 60)), Duration::from_secs(1));
        assert_eq!(lease_ttl(limit(100, 2)), Duration::from_millis(500));
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_gets_the_bucket_exactly_with_few_leases() {
        let l = limiter(20, Duration::from_secs(3600));
        assert_eq!(allowed(&l, "ann", 30).await, 20, "the bucket, no more");
        assert_eq!(allowed(&l, "bob", 3).await, 3, "per user");
    }

    #[tokio::test(start_paused = true)]
    async fn leases_grow_while_spent_and_shrink_after_a_pause() {
        let mut lease = Lease::default();
        let ttl = Duration::from_secs(1);
        let t0 = Instant::now();
        assert_eq!(lease.next_want(t0, 1, ttl, 8), 1, "a first message leases one");
        lease.record(Admission::Allowed { granted: 1 }, t0, ttl);
        assert_eq!(lease.spend(t0), None, "spent");
        assert_eq!(
            lease.next_want(t0, 1, ttl, 8),
            2,
            "spent before it expired: twice"
        );
        lease.record(Admission::Allowed { granted: 6 }, t0, ttl);
        for _ in 0..5 {
            assert_eq!(lease.spend(t0), Some(Verdict::Allowed));
        }
        assert_eq!(lease.next_want(t0, 1, ttl, 8), 8, "never more than the batch");
        lease.record(Admission::Allowed { granted: 8 }, t0, ttl);
        assert_eq!(lease.spend(t0), Some(Verdict::Allowed));
        let expired = t0 + ttl;
        assert_eq!(lease.spend(expired), None, "an expired lease is not spent");
        assert_eq!(lease.next_want(expired, 1, ttl, 8), 2, "as many as were spent");
        assert_eq!(
            lease.next_want(expired, 5, ttl, 8),
            5,
            "one for each message waiting"
        );
        assert_eq!(lease.next_want(expired + ttl, 1, ttl, 8), 1, "after a pause, one");
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_is_kept_until_a_token_is_back() {
        let window = Duration::from_secs(60);
        let l = limiter(2, window);
        assert_eq!(allowed(&l, "ann", 2).await, 2);
        let Verdict::Limited { retry_after } = l.admit("ann").await.unwrap() else {
            panic!("the third message is refused")
        };
        assert!(
            retry_after > Duration::ZERO && retry_after <= window,
            "{retry_after:?}"
        );
        tokio::time::advance(retry_after / 2).await;
        let Verdict::Limited { retry_after: sooner } = l.admit("ann").await.unwrap() else {
            panic!("still refused, from the remembered answer")
        };
        assert!(sooner < retry_after);
        tokio::time::advance(sooner + Duration::from_millis(10)).await;
        assert_eq!(l.admit("ann").await.unwrap(), Verdict::Allowed, "a token is back");
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_messages_of_one_user_share_a_lease() {
        let l = Arc::new(limiter(100, Duration::from_secs(3600)));
        // Six messages arrive while the user's lease is busy.
        let entry = l.entry("ann");
        let busy = entry.lease.lock().await;
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..6 {
            let l = Arc::clone(&l);
            tasks.spawn(async move { l.admit("ann").await.unwrap() });
        }
        while entry.waiting.load(Ordering::Acquire) < 6 {
            tokio::task::yield_now().await;
        }
        drop(busy);
        let verdicts = tasks.join_all().await;
        assert_eq!(verdicts, [Verdict::Allowed; 6]);
        assert_eq!(
            l.coordinator.admit_message("ann", l.limit(), 100).await.unwrap(),
            Admission::Allowed { granted: 94 },
            "one lease of six tokens served them all"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn users_whose_lease_ran_out_are_swept() {
        let l = limiter(100, Duration::from_secs(60));
        allowed(&l, "ann", 1).await;
        allowed(&l, "bob", 1).await;
        l.sweep();
        assert_eq!(l.tracked(), 2, "leases still held");
        tokio::time::advance(lease_ttl(l.limit()) * 2).await;
        allowed(&l, "bob", 1).await;
        l.sweep();
        assert_eq!(l.tracked(), 1, "only bob is left");
    }
}
