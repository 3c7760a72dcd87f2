//! The in-process bus of the all-in-one: the same semantics as the NATS
//! adapter, inside one process.
//!
//! Core messaging is a subject table (exact subjects in a hash map,
//! wildcard patterns in a short list) feeding bounded channels; like NATS, a
//! subscriber that falls too far behind loses messages rather than stalling
//! the publisher. The inbound queue keeps one FIFO per subject and hands
//! out only the head of each, so deliveries are session-ordered by
//! construction.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::sync::{Notify, mpsc};

use super::subject::{has_wildcard, subject_matches};
use super::{
    Bus, BusError, BusMessage, DeliveryBatch, DeliveryControl, Enqueued, Headers, InboundDelivery,
    InboundQueue, InboundSource, Subscription,
};

/// Settings of the in-process bus.
#[derive(Debug, Clone)]
pub struct MemoryBusOptions {
    /// Messages a subscriber may fall behind before it loses messages.
    pub subscription_capacity: usize,
    /// How long an inbound message id is remembered for de-duplication.
    pub dedupe_window: Duration,
}

impl Default for MemoryBusOptions {
    fn default() -> Self {
        MemoryBusOptions {
            subscription_capacity: 1024,
            dedupe_window: Duration::from_secs(120),
        }
    }
}

/// The in-process [`Bus`].
#[derive(Clone)]
pub struct MemoryBus {
    inner: Arc<Inner>,
}

struct Inner {
    options: MemoryBusOptions,
    next_id: AtomicU64,
    subs: Mutex<SubTable>,
    queue: Mutex<QueueState>,
    queue_changed: Notify,
}

#[derive(Default)]
struct SubTable {
    exact: HashMap<String, Vec<SubEntry>>,
    wildcard: Vec<(String, SubEntry)>,
    round_robin: usize,
}

struct SubEntry {
    id: u64,
    group: Option<String>,
    tx: mpsc::Sender<BusMessage>,
}

#[derive(Default)]
struct QueueState {
    subjects: HashMap<String, SubjectQueue>,
    ready: VecDeque<String>,
    seen: HashMap<String, Instant>,
    seen_order: VecDeque<(Instant, String)>,
    next_entry: u64,
}

#[derive(Default)]
struct SubjectQueue {
    entries: VecDeque<QueueEntry>,
    busy: bool,
}

struct QueueEntry {
    id: u64,
    headers: Headers,
    payload: Bytes,
    deliveries: u64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves plain data behind;
    // carrying on is safer than poisoning every later publish.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl MemoryBus {
    /// A new, empty bus.
    pub fn new(options: MemoryBusOptions) -> Self {
        MemoryBus {
            inner: Arc::new(Inner {
                options,
                next_id: AtomicU64::new(1),
                subs: Mutex::new(SubTable::default()),
                queue: Mutex::new(QueueState::default()),
                queue_changed: Notify::new(),
            }),
        }
    }

    fn add_subscription(&self, pattern: String, group: Option<String>) -> Subscription {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(self.inner.options.subscription_capacity.max(1));
        let entry = SubEntry { id, group, tx };
        {
            let mut subs = lock(&self.inner.subs);
            if has_wildcard(&pattern) {
                subs.wildcard.push((pattern.clone(), entry));
            } else {
                subs.exact.entry(pattern.clone()).or_default().push(entry);
            }
        }
        Subscription::new(MemorySubscription {
            rx,
            guard: Unsubscribe {
                inner: Arc::clone(&self.inner),
                id,
                pattern,
            },
        })
    }
}

impl Inner {
    /// Hands `msg` to every matching subscriber (one per queue group) and
    /// returns how many received it.
    fn deliver(&self, msg: BusMessage) -> usize {
        let mut subs = lock(&self.subs);
        subs.round_robin = subs.round_robin.wrapping_add(1);
        let rr = subs.round_robin;
        let mut plain: Vec<&SubEntry> = Vec::new();
        let mut groups: Vec<(&str, Vec<&SubEntry>)> = Vec::new();
        let exact = subs.exact.get(&msg.subject).into_iter().flatten();
        let wild = subs
            .wildcard
            .iter()
            .filter(|(p, _)| subject_matches(p, &msg.subject))
            .map(|(_, e)| e);
        for entry in exact.chain(wild).filter(|e| !e.tx.is_closed()) {
            match &entry.group {
                None => plain.push(entry),
                Some(g) => match groups.iter_mut().find(|(name, _)| name == g) {
                    Some((_, members)) => members.push(entry),
                    None => groups.push((g, vec![entry])),
                },
            }
        }
        let chosen = groups.iter().map(|(_, members)| members[rr % members.len()]);
        let mut delivered = 0;
        for entry in plain.into_iter().chain(chosen) {
            match entry.tx.try_send(msg.clone()) {
                Ok(()) => delivered += 1,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::warn!(subject = %msg.subject, "in-process subscriber is too slow; message dropped");
                    delivered += 1;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        delivered
    }

    fn remove_subscription(&self, id: u64, pattern: &str) {
        let mut subs = lock(&self.subs);
        if has_wildcard(pattern) {
            subs.wildcard.retain(|(_, e)| e.id != id);
        } else if let Some(list) = subs.exact.get_mut(pattern) {
            list.retain(|e| e.id != id);
            if list.is_empty() {
                subs.exact.remove(pattern);
            }
        }
    }

    fn take_delivery(self: &Arc<Self>) -> Option<InboundDelivery> {
        let mut q = lock(&self.queue);
        let subject = q.ready.pop_front()?;
        let sq = q.subjects.get_mut(&subject)?;
        let head = sq.entries.front_mut()?;
        sq.busy = true;
        head.deliveries += 1;
        let delivery = InboundDelivery::new(
            subject.clone(),
            head.headers.clone(),
            head.payload.clone(),
            head.deliveries,
            head.id,
            Box::new(MemoryDelivery {
                inner: Arc::clone(self),
                subject,
                entry_id: head.id,
                settled: AtomicBool::new(false),
            }),
        );
        Some(delivery)
    }

    /// Releases the head of `subject`; `remove` drops it (ack), otherwise it
    /// becomes deliverable again (nak).
    fn settle(&self, subject: &str, entry_id: u64, remove: bool) {
        let mut q = lock(&self.queue);
        let Some(sq) = q.subjects.get_mut(subject) else {
            return;
        };
        if remove && sq.entries.front().is_some_and(|e| e.id == entry_id) {
            sq.entries.pop_front();
        }
        sq.busy = false;
        if sq.entries.is_empty() {
            q.subjects.remove(subject);
        } else {
            q.ready.push_back(subject.to_owned());
        }
        drop(q);
        self.queue_changed.notify_waiters();
    }
}

struct Unsubscribe {
    inner: Arc<Inner>,
    id: u64,
    pattern: String,
}

impl Drop for Unsubscribe {
    fn drop(&mut self) {
        self.inner.remove_subscription(self.id, &self.pattern);
    }
}

struct MemorySubscription {
    rx: mpsc::Receiver<BusMessage>,
    #[allow(dead_code)] // held for its Drop
    guard: Unsubscribe,
}

impl Stream for MemorySubscription {
    type Item = BusMessage;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<BusMessage>> {
        self.rx.poll_recv(cx)
    }
}

/// The consumer side: hands out heads of subjects, as many as asked for.
struct MemoryInbound {
    inner: Arc<Inner>,
}

#[async_trait]
impl InboundSource for MemoryInbound {
    async fn pull(&self, max: usize, wait: Duration) -> Result<DeliveryBatch, BusError> {
        let deadline = tokio::time::Instant::now() + wait;
        let state = (Arc::clone(&self.inner), max);
        let stream = futures_util::stream::unfold(state, move |(inner, left)| async move {
            if left == 0 {
                return None;
            }
            loop {
                let taken = {
                    let changed = inner.queue_changed.notified();
                    tokio::pin!(changed);
                    changed.as_mut().enable();
                    match inner.take_delivery() {
                        Some(delivery) => Some(delivery),
                        None => {
                            tokio::select! {
                                _ = changed => None,
                                _ = tokio::time::sleep_until(deadline) => return None,
                            }
                        }
                    }
                };
                if let Some(delivery) = taken {
                    return Some((Ok(delivery), (inner, left - 1)));
                }
            }
        });
        Ok(DeliveryBatch::new(stream))
    }
}

struct MemoryDelivery {
    inner: Arc<Inner>,
    subject: String,
    entry_id: u64,
    settled: AtomicBool,
}

impl MemoryDelivery {
    fn first_settle(&self) -> bool {
        !self.settled.swap(true, Ordering::AcqRel)
    }
}

#[async_trait]
impl DeliveryControl for MemoryDelivery {
    async fn wait_turn(&self) -> Result<(), BusError> {
        // Only the head of a subject is ever handed out.
        Ok(())
    }

    async fn progress(&self) -> Result<(), BusError> {
        Ok(())
    }

    async fn ack(&self) -> Result<(), BusError> {
        if self.first_settle() {
            self.inner.settle(&self.subject, self.entry_id, true);
        }
        Ok(())
    }

    async fn nak(&self, delay: Option<Duration>) -> Result<(), BusError> {
        if !self.first_settle() {
            return Ok(());
        }
        match delay {
            Some(delay) if !delay.is_zero() => {
                let inner = Arc::clone(&self.inner);
                let subject = self.subject.clone();
                let entry_id = self.entry_id;
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    inner.settle(&subject, entry_id, false);
                });
            }
            _ => self.inner.settle(&self.subject, self.entry_id, false),
        }
        Ok(())
    }
}

impl Drop for MemoryDelivery {
    fn drop(&mut self) {
        if self.first_settle() {
            self.inner.settle(&self.subject, self.entry_id, false);
        }
    }
}

#[async_trait]
impl Bus for MemoryBus {
    fn adapter(&self) -> &'static str {
        "memory"
    }

    async fn publish(&self, subject: String, headers: Headers, payload: Bytes) -> Result<(), BusError> {
        self.inner.deliver(BusMessage {
            subject,
            reply: None,
            headers,
            payload,
        });
        Ok(())
    }

    async fn subscribe(&self, subject: String) -> Result<Subscription, BusError> {
        Ok(self.add_subscription(subject, None))
    }

    async fn queue_subscribe(&self, subject: String, group: String) -> Result<Subscription, BusError> {
        Ok(self.add_subscription(subject, Some(group)))
    }

    async fn request(
        &self,
        subject: String,
        headers: Headers,
        payload: Bytes,
        timeout: Duration,
    ) -> Result<BusMessage, BusError> {
        let inbox = format!("_INBOX.{}", self.inner.next_id.fetch_add(1, Ordering::Relaxed));
        let mut replies = self.add_subscription(inbox.clone(), None);
        let receivers = self.inner.deliver(BusMessage {
            subject: subject.clone(),
            reply: Some(inbox),
            headers,
            payload,
        });
        if receivers == 0 {
            return Err(BusError::NoResponders { subject });
        }
        match tokio::time::timeout(timeout, replies.next()).await {
            Ok(Some(reply)) => Ok(reply),
            Ok(None) => Err(BusError::Other("reply subscription closed".into())),
            Err(_) => Err(BusError::Timeout { subject, timeout }),
        }
    }

    async fn flush(&self) -> Result<(), BusError> {
        Ok(())
    }

    async fn enqueue(
        &self,
        subject: String,
        dedupe_id: String,
        headers: Headers,
        payload: Bytes,
    ) -> Result<Enqueued, BusError> {
        let now = Instant::now();
        let window = self.inner.options.dedupe_window;
        {
            let mut q = lock(&self.inner.queue);
            while let Some((at, _)) = q.seen_order.front() {
                if now.duration_since(*at) < window {
                    break;
                }
                if let Some((_, id)) = q.seen_order.pop_front() {
                    q.seen.remove(&id);
                }
            }
            if q.seen.contains_key(&dedupe_id) {
                return Ok(Enqueued { duplicate: true });
            }
            q.seen.insert(dedupe_id.clone(), now);
            q.seen_order.push_back((now, dedupe_id));
            q.next_entry += 1;
            let id = q.next_entry;
            let sq = q.subjects.entry(subject.clone()).or_default();
            let becomes_ready = sq.entries.is_empty() && !sq.busy;
            sq.entries.push_back(QueueEntry {
                id,
                headers,
                payload,
                deliveries: 0,
            });
            if becomes_ready {
                q.ready.push_back(subject);
            }
        }
        self.inner.queue_changed.notify_waiters();
        Ok(Enqueued { duplicate: false })
    }

    async fn inbound(&self) -> Result<InboundQueue, BusError> {
        Ok(InboundQueue::new(MemoryInbound {
            inner: Arc::clone(&self.inner),
        }))
    }

    async fn check(&self) -> Result<(), BusError> {
        Ok(())
    }
}
