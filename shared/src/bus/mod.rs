//! The `Bus` port: how gateways and workers talk (docs/ARCHITECTURE.md#ports-and-adapters, #nats-subjects).
//!
//! Two transports sit behind one trait:
//!
//! * **core messaging** — publish, subscribe, queue-subscribe and
//!   request/reply, at most once, for `chat.out`, `chat.ctl` and `chat.rpc`;
//! * the **inbound queue** — durable, at least once, de-duplicated by a
//!   message id, for `chat.in`. Its deliveries are *session-ordered*: a
//!   delivery's [`InboundDelivery::wait_turn`] resolves only once every
//!   earlier message of the same subject has been settled, so messages of
//!   one session are processed one at a time, in order, however many
//!   workers pull, while two sessions never wait on each other.
//!
//! Adapters: [`NatsBus`] (NATS core + JetStream) for the scaled roles
//! and [`MemoryBus`] for the all-in-one; [`MeteredBus`] wraps either to
//! time it. One conformance suite
//! (`shared/tests/bus_conformance.rs`) runs against both.

mod memory;
mod metered;
mod nats;
mod subject;

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};

pub use memory::{MemoryBus, MemoryBusOptions};
pub use metered::MeteredBus;
pub use nats::{NatsBus, NatsOptions};

/// Message headers: a few short name/value pairs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<(String, String)>);

impl Headers {
    /// No headers.
    pub const fn new() -> Self {
        Headers(Vec::new())
    }

    /// Adds a header (builder style).
    pub fn with(mut self, name: &str, value: impl Into<String>) -> Self {
        self.insert(name, value);
        self
    }

    /// Sets a header, replacing an earlier value of the same name.
    pub fn insert(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        match self.0.iter_mut().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
            Some(slot) => slot.1 = value,
            None => self.0.push((name.to_owned(), value)),
        }
    }

    /// A header's value (names compare case-insensitively).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every header.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A message received from core messaging.
#[derive(Debug, Clone)]
pub struct BusMessage {
    /// Where it was published.
    pub subject: String,
    /// Where to send the reply, for requests.
    pub reply: Option<String>,
    /// Its headers.
    pub headers: Headers,
    /// Its payload.
    pub payload: Bytes,
}

/// Why a bus operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BusError {
    /// The transport is not connected.
    #[error("message bus is not connected: {0}")]
    Disconnected(String),
    /// Nobody listens on the subject of a request.
    #[error("no one answers on {subject}")]
    NoResponders { subject: String },
    /// A request got no reply in time.
    #[error("no reply on {subject} within {timeout:?}")]
    Timeout { subject: String, timeout: Duration },
    /// The inbound queue refused or lost an operation.
    #[error("inbound queue: {0}")]
    Queue(String),
    /// Anything else the transport reported.
    #[error("message bus: {0}")]
    Other(String),
}

/// A stream of messages from a subscription; unsubscribes when dropped.
pub struct Subscription(Pin<Box<dyn Stream<Item = BusMessage> + Send>>);

impl Subscription {
    /// Wraps any stream of messages.
    pub fn new(stream: impl Stream<Item = BusMessage> + Send + 'static) -> Self {
        Subscription(Box::pin(stream))
    }
}

impl Stream for Subscription {
    type Item = BusMessage;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<BusMessage>> {
        self.0.as_mut().poll_next(cx)
    }
}

/// The result of putting a message on the inbound queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enqueued {
    /// The queue had already accepted a message with the same id; this one
    /// was dropped as a duplicate.
    pub duplicate: bool,
}

/// How an adapter settles one inbound delivery.
#[async_trait]
pub trait DeliveryControl: Send + Sync {
    /// Resolves once every earlier message of the same subject is settled.
    async fn wait_turn(&self) -> Result<(), BusError>;
    /// Tells the queue the message is still being worked on.
    async fn progress(&self) -> Result<(), BusError>;
    /// Done: the queue forgets the message.
    async fn ack(&self) -> Result<(), BusError>;
    /// Not done: deliver it again, after `delay` if given.
    async fn nak(&self, delay: Option<Duration>) -> Result<(), BusError>;
}

/// One message from the inbound queue, to be settled with [`ack`](Self::ack)
/// or [`nak`](Self::nak). A delivery dropped unsettled is delivered again.
pub struct InboundDelivery {
    /// The subject (`chat.in.<sid>`).
    pub subject: String,
    /// Its headers.
    pub headers: Headers,
    /// Its payload.
    pub payload: Bytes,
    /// How many times it has been delivered, this time included.
    pub delivery_count: u64,
    /// The message's place in the queue: the same on every delivery of
    /// it, so a consumer can tell a second delivery of a message it is
    /// still running (its progress reports were late) from a new message.
    pub queue_id: u64,
    control: Box<dyn DeliveryControl>,
}

impl InboundDelivery {
    /// Builds a delivery; for adapters.
    pub fn new(
        subject: String,
        headers: Headers,
        payload: Bytes,
        delivery_count: u64,
        queue_id: u64,
        control: Box<dyn DeliveryControl>,
    ) -> Self {
        InboundDelivery {
            subject,
            headers,
            payload,
            delivery_count,
            queue_id,
            control,
        }
    }

    /// Waits until this message is the oldest unsettled one of its subject.
    pub async fn wait_turn(&self) -> Result<(), BusError> {
        self.control.wait_turn().await
    }

    /// Keeps the delivery from being handed to someone else while a long
    /// turn runs.
    pub async fn progress(&self) -> Result<(), BusError> {
        self.control.progress().await
    }

    /// Settles the message as done.
    pub async fn ack(self) -> Result<(), BusError> {
        self.control.ack().await
    }

    /// Asks for the message again, after `delay` if given.
    pub async fn nak(self, delay: Option<Duration>) -> Result<(), BusError> {
        self.control.nak(delay).await
    }
}

/// Up to `max` deliveries of one pull, as they arrive; the stream ends
/// when `max` have come or the pull's wait has run out.
pub struct DeliveryBatch(Pin<Box<dyn Stream<Item = Result<InboundDelivery, BusError>> + Send>>);

impl DeliveryBatch {
    /// Wraps any stream of deliveries; for adapters.
    pub fn new(stream: impl Stream<Item = Result<InboundDelivery, BusError>> + Send + 'static) -> Self {
        DeliveryBatch(Box::pin(stream))
    }
}

impl Stream for DeliveryBatch {
    type Item = Result<InboundDelivery, BusError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.as_mut().poll_next(cx)
    }
}

/// How an adapter hands out inbound deliveries: only on request, never
/// more than asked for, so a busy consumer holds no message it cannot
/// start (whose ack wait would run out while it waits).
#[async_trait]
pub trait InboundSource: Send + Sync {
    /// Asks for up to `max` deliveries, waiting up to `wait` for them.
    async fn pull(&self, max: usize, wait: Duration) -> Result<DeliveryBatch, BusError>;
}

/// The consumer side of the inbound queue: deliveries, competing with every
/// other consumer of the same queue.
pub struct InboundQueue {
    source: Box<dyn InboundSource>,
    /// The pull [`next`](Self::next) is reading, kept across cancellation.
    open: Option<DeliveryBatch>,
}

impl InboundQueue {
    /// A queue over an adapter's source.
    pub fn new(source: impl InboundSource + 'static) -> Self {
        InboundQueue {
            source: Box::new(source),
            open: None,
        }
    }

    /// Asks for up to `max` deliveries, waiting up to `wait` for them: a
    /// consumer asks for as many as it can start now.
    pub async fn pull(&mut self, max: usize, wait: Duration) -> Result<DeliveryBatch, BusError> {
        self.source.pull(max.max(1), wait).await
    }

    /// The next delivery, one at a time, however long it takes to come
    /// (`None` never: the signature matches a stream's for callers that
    /// read one delivery after another).
    pub async fn next(&mut self) -> Option<Result<InboundDelivery, BusError>> {
        // Long: a pull ends with the message it brings; only an idle
        // queue lets it expire.
        const ONE_PULL: Duration = Duration::from_secs(30);
        loop {
            if let Some(batch) = self.open.as_mut() {
                match batch.next().await {
                    Some(item) => return Some(item),
                    None => self.open = None,
                }
            }
            match self.source.pull(1, ONE_PULL).await {
                Ok(batch) => self.open = Some(batch),
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

/// The bus port.
#[async_trait]
pub trait Bus: Send + Sync + 'static {
    /// Which adapter this is, for logs (`"nats"`, `"memory"`).
    fn adapter(&self) -> &'static str;

    /// Publishes on core messaging (at most once).
    async fn publish(&self, subject: String, headers: Headers, payload: Bytes) -> Result<(), BusError>;

    /// Receives every message published on `subject` (wildcards `*` and `>`).
    async fn subscribe(&self, subject: String) -> Result<Subscription, BusError>;

    /// Receives a share of the messages on `subject`: each message goes to one
    /// member of `group`.
    async fn queue_subscribe(&self, subject: String, group: String) -> Result<Subscription, BusError>;

    /// Sends a request and waits for the first reply.
    async fn request(
        &self,
        subject: String,
        headers: Headers,
        payload: Bytes,
        timeout: Duration,
    ) -> Result<BusMessage, BusError>;

    /// Resolves once every earlier publish and subscription of this process
    /// has reached the server.
    async fn flush(&self) -> Result<(), BusError>;

    /// Puts a message on the durable inbound queue; `dedupe_id` identifies it
    /// for de-duplication. Resolves once the queue has stored it.
    async fn enqueue(
        &self,
        subject: String,
        dedupe_id: String,
        headers: Headers,
        payload: Bytes,
    ) -> Result<Enqueued, BusError>;

    /// Starts consuming the inbound queue.
    async fn inbound(&self) -> Result<InboundQueue, BusError>;

    /// Checks that the bus is usable, for readiness probes.
    async fn check(&self) -> Result<(), BusError>;
}

/// Replies to a request message; does nothing for a message without a
/// reply subject.
pub async fn respond(bus: &dyn Bus, request: &BusMessage, payload: Bytes) -> Result<(), BusError> {
    match &request.reply {
        Some(reply) => bus.publish(reply.clone(), Headers::new(), payload).await,
        None => Ok(()),
    }
}
