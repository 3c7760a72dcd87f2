//! The NATS adapter of the bus: core NATS for `chat.out`, `chat.ctl` and
//! `chat.rpc`; JetStream for the inbound queue (`chat.in.>`).
//!
//! The inbound stream uses work-queue retention, so a message lives until
//! a worker acks it; one durable pull consumer is shared by every worker.
//! Session order across workers comes from the stream itself: a delivery
//! waits ([`DeliveryControl::wait_turn`]) until the first message the stream
//! still holds for its subject is itself — every earlier message of the
//! session has been acked. A worker that dies mid-turn never acks, so its
//! message is redelivered after the ack wait and the session resumes.
//!
//! Written for nats-server 2.9 (Debian's): nothing here needs 2.10 or
//! later. Direct get (`allow_direct`) and `next_by_subj` are 2.9 features.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, AckKind, consumer, stream};
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::Notify;

use super::{
    Bus, BusError, BusMessage, DeliveryBatch, DeliveryControl, Enqueued, Headers, InboundDelivery,
    InboundQueue, InboundSource, Subscription,
};
use crate::namespace::Subjects;

/// Settings of the NATS adapter.
#[derive(Debug, Clone)]
pub struct NatsOptions {
    /// Server URL(s), comma separated.
    pub url: String,
    /// Connection name shown by the server (the pod id).
    pub name: String,
    /// Subject and stream names.
    pub subjects: Subjects,
    /// How long to wait for the first connection.
    pub connect_timeout: Duration,
    /// How long a delivery may go without ack or progress before JetStream
    /// hands it to another worker.
    pub ack_wait: Duration,
    /// Deliveries the consumer may have outstanding across all workers.
    pub max_ack_pending: i64,
    /// How long the inbound stream keeps an unprocessed message.
    pub stream_max_age: Duration,
    /// Window in which JetStream drops a repeated message id.
    pub duplicate_window: Duration,
    /// Stream replicas (1 for a single server).
    pub replicas: usize,
}

/// The NATS [`Bus`].
#[derive(Clone)]
pub struct NatsBus {
    client: async_nats::Client,
    js: jetstream::Context,
    options: Arc<NatsOptions>,
    /// Wakes local deliveries waiting for their turn on a subject when a
    /// local delivery of that subject is acked.
    turn_waiters: Arc<Mutex<HashMap<String, Arc<Notify>>>>,
}

fn other(e: impl std::fmt::Display) -> BusError {
    BusError::Other(e.to_string())
}

fn queue_err(e: impl std::fmt::Display) -> BusError {
    BusError::Queue(e.to_string())
}

fn to_nats_headers(headers: &Headers) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in headers.iter() {
        map.insert(name, value);
    }
    map
}

fn from_nats_headers(map: Option<&HeaderMap>) -> Headers {
    let mut headers = Headers::new();
    if let Some(map) = map {
        for (name, values) in map.iter() {
            if let Some(v) = values.first() {
                headers.insert(name.as_ref(), v.as_str());
            }
        }
    }
    headers
}

fn from_nats_message(m: async_nats::Message) -> BusMessage {
    BusMessage {
        headers: from_nats_headers(m.headers.as_ref()),
        subject: m.subject.to_string(),
        reply: m.reply.map(|r| r.to_string()),
        payload: m.payload,
    }
}

impl NatsBus {
    /// Connects to NATS, waiting up to `connect_timeout` for the first
    /// connection; later disconnections are retried in the background.
    pub async fn connect(options: NatsOptions) -> Result<Self, BusError> {
        let connect = async_nats::ConnectOptions::new()
            .name(&options.name)
            .connection_timeout(options.connect_timeout)
            .request_timeout(Some(Duration::from_secs(5)))
            .event_callback(|event| async move {
                match event {
                    async_nats::Event::Connected => tracing::info!("connected to NATS"),
                    async_nats::Event::Disconnected => tracing::warn!("disconnected from NATS; reconnecting"),
                    async_nats::Event::SlowConsumer(sid) => {
                        tracing::warn!(subscription = sid, "NATS subscription too slow; messages dropped");
                        metrics::counter!("chatbox_bus_slow_consumers_total").increment(1);
                    }
                    other => tracing::info!(event = %other, "NATS event"),
                }
            })
            .connect(options.url.as_str());
        let client = tokio::time::timeout(options.connect_timeout, connect)
            .await
            .map_err(|_| {
                BusError::Disconnected(format!(
                    "could not reach NATS at {} within {:?}",
                    options.url, options.connect_timeout
                ))
            })?
            .map_err(|e| {
                BusError::Disconnected(format!("could not connect to NATS at {}: {e}", options.url))
            })?;
        let js = jetstream::new(client.clone());
        Ok(NatsBus {
            client,
            js,
            options: Arc::new(options),
            turn_waiters: Arc::default(),
        })
    }

    /// Creates the inbound stream, or updates it to the configured settings.
    pub async fn ensure_inbound_stream(&self) -> Result<(), BusError> {
        let o = &self.options;
        let config = stream::Config {
            name: o.subjects.inbound_stream(),
            subjects: vec![o.subjects.inbound_all()],
            retention: stream::RetentionPolicy::WorkQueue,
            storage: stream::StorageType::File,
            max_age: o.stream_max_age,
            duplicate_window: o.duplicate_window,
            num_replicas: o.replicas,
            allow_direct: true,
            description: Some("chatbox: accepted client messages awaiting a worker".into()),
            ..Default::default()
        };
        self.js.create_or_update_stream(config).await.map_err(|e| {
            queue_err(format!(
                "cannot create or update stream {}: {e}",
                o.subjects.inbound_stream()
            ))
        })?;
        Ok(())
    }

    /// Deletes the inbound stream (tests clean up their namespace with it).
    pub async fn delete_inbound_stream(&self) -> Result<(), BusError> {
        self.js
            .delete_stream(self.options.subjects.inbound_stream())
            .await
            .map(|_| ())
            .map_err(queue_err)
    }

    /// Messages the inbound consumer has not yet had acked: (waiting to be
    /// delivered, delivered but not acked).
    pub async fn inbound_backlog(&self) -> Result<(u64, u64), BusError> {
        let stream = self
            .js
            .get_stream(self.options.subjects.inbound_stream())
            .await
            .map_err(queue_err)?;
        let mut consumer: consumer::PullConsumer = stream
            .get_consumer(&self.options.subjects.inbound_consumer())
            .await
            .map_err(queue_err)?;
        let info = consumer.info().await.map_err(queue_err)?;
        Ok((info.num_pending, info.num_ack_pending as u64))
    }

    /// The ack wait the workers' consumer holds deliveries for, as the
    /// server has it.
    pub async fn inbound_ack_wait(&self) -> Result<Duration, BusError> {
        let stream = self
            .js
            .get_stream(self.options.subjects.inbound_stream())
            .await
            .map_err(queue_err)?;
        let consumer: consumer::PullConsumer = stream
            .get_consumer(&self.options.subjects.inbound_consumer())
            .await
            .map_err(queue_err)?;
        Ok(consumer.cached_info().config.ack_wait)
    }

    fn waiter(&self, subject: &str) -> Arc<Notify> {
        let mut map = self.turn_waiters.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(map.entry(subject.to_owned()).or_default())
    }

    fn wake_waiters(&self, subject: &str) {
        let waiter = {
            let mut map = self.turn_waiters.lock().unwrap_or_else(|p| p.into_inner());
            // Dropping the entry is fine: a waiter holds its own Arc and
            // re-registers on its next loop.
            map.remove(subject)
        };
        if let Some(w) = waiter {
            w.notify_waiters();
        }
    }
}

#[async_trait]
impl Bus for NatsBus {
    fn adapter(&self) -> &'static str {
        "nats"
    }

    async fn publish(&self, subject: String, headers: Headers, payload: Bytes) -> Result<(), BusError> {
        let result = if headers.is_empty() {
            self.client.publish(subject, payload).await
        } else {
            self.client
                .publish_with_headers(subject, to_nats_headers(&headers), payload)
                .await
        };
        result.map_err(other)
    }

    async fn subscribe(&self, subject: String) -> Result<Subscription, BusError> {
        let sub = self.client.subscribe(subject).await.map_err(other)?;
        Ok(Subscription::new(sub.map(from_nats_message)))
    }

    async fn queue_subscribe(&self, subject: String, group: String) -> Result<Subscription, BusError> {
        let sub = self.client.queue_subscribe(subject, group).await.map_err(other)?;
        Ok(Subscription::new(sub.map(from_nats_message)))
    }

    async fn request(
        &self,
        subject: String,
        headers: Headers,
        payload: Bytes,
        timeout: Duration,
    ) -> Result<BusMessage, BusError> {
        let request = async_nats::Request::new()
            .payload(payload)
            .headers(to_nats_headers(&headers))
            .timeout(Some(timeout));
        match self.client.send_request(subject.clone(), request).await {
            Ok(reply) => Ok(from_nats_message(reply)),
            Err(e) => Err(match e.kind() {
                async_nats::RequestErrorKind::NoResponders => BusError::NoResponders { subject },
                async_nats::RequestErrorKind::TimedOut => BusError::Timeout { subject, timeout },
                _ => other(e),
            }),
        }
    }

    async fn flush(&self) -> Result<(), BusError> {
        self.client.flush().await.map_err(other)
    }

    async fn enqueue(
        &self,
        subject: String,
        dedupe_id: String,
        headers: Headers,
        payload: Bytes,
    ) -> Result<Enqueued, BusError> {
        let publish = jetstream::message::PublishMessage::build()
            .payload(payload)
            .headers(to_nats_headers(&headers))
            .message_id(dedupe_id);
        let ack = self
            .js
            .send_publish(subject, publish)
            .await
            .map_err(queue_err)?
            .await
            .map_err(queue_err)?;
        Ok(Enqueued {
            duplicate: ack.duplicate,
        })
    }

    async fn inbound(&self) -> Result<InboundQueue, BusError> {
        let o = &self.options;
        let stream = self
            .js
            .get_stream(o.subjects.inbound_stream())
            .await
            .map_err(|e| {
                queue_err(format!(
                    "stream {} is not available: {e}",
                    o.subjects.inbound_stream()
                ))
            })?;
        let config = consumer::pull::Config {
            durable_name: Some(o.subjects.inbound_consumer()),
            description: Some("chatbox workers".into()),
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: o.ack_wait,
            max_ack_pending: o.max_ack_pending,
            max_deliver: -1,
            ..Default::default()
        };
        let mut consumer: consumer::PullConsumer = stream
            .get_or_create_consumer(&o.subjects.inbound_consumer(), config.clone())
            .await
            .map_err(queue_err)?;
        let held = &consumer.cached_info().config;
        if held.ack_wait != config.ack_wait || held.max_ack_pending != config.max_ack_pending {
            // A consumer made by an earlier version or setting: the workers'
            // ack wait is what their progress reports are timed by.
            tracing::info!(
                consumer = %o.subjects.inbound_consumer(),
                ack_wait = ?config.ack_wait,
                max_ack_pending = config.max_ack_pending,
                "updating the inbound consumer to this worker's settings"
            );
            consumer = stream.create_consumer(config).await.map_err(|e| {
                queue_err(format!(
                    "cannot update consumer {} to ack wait {:?}: {e}",
                    o.subjects.inbound_consumer(),
                    o.ack_wait
                ))
            })?;
        }
        Ok(InboundQueue::new(NatsInbound {
            bus: self.clone(),
            stream,
            consumer,
        }))
    }

    async fn check(&self) -> Result<(), BusError> {
        match self.client.connection_state() {
            async_nats::connection::State::Connected => Ok(()),
            state => Err(BusError::Disconnected(format!("NATS connection is {state}"))),
        }
    }
}

/// The consumer side: one JetStream pull request per [`InboundSource::pull`].
struct NatsInbound {
    bus: NatsBus,
    stream: stream::Stream,
    consumer: consumer::PullConsumer,
}

#[async_trait]
impl InboundSource for NatsInbound {
    async fn pull(&self, max: usize, wait: Duration) -> Result<DeliveryBatch, BusError> {
        // No idle heartbeat: the pull is short, and async-nats 0.51 stops
        // waking a batch's reader after an idle heartbeat.
        let messages = self
            .consumer
            .batch()
            .max_messages(max)
            .expires(wait)
            .messages()
            .await
            .map_err(queue_err)?;
        let (bus, stream) = (self.bus.clone(), self.stream.clone());
        let deliveries = messages.map(move |item| {
            let message = item.map_err(queue_err)?;
            let info = message.info().map_err(queue_err)?;
            let (stream_sequence, delivered) = (info.stream_sequence, info.delivered);
            let subject = message.subject.to_string();
            Ok(InboundDelivery::new(
                subject.clone(),
                from_nats_headers(message.headers.as_ref()),
                message.payload.clone(),
                u64::try_from(delivered).unwrap_or(1).max(1),
                stream_sequence,
                Box::new(NatsDelivery {
                    bus: bus.clone(),
                    stream: stream.clone(),
                    message,
                    subject,
                    stream_sequence,
                }),
            ))
        });
        Ok(DeliveryBatch::new(deliveries))
    }
}

struct NatsDelivery {
    bus: NatsBus,
    stream: stream::Stream,
    message: jetstream::Message,
    subject: String,
    stream_sequence: u64,
}

#[async_trait]
impl DeliveryControl for NatsDelivery {
    async fn wait_turn(&self) -> Result<(), BusError> {
        const FIRST_BACKOFF: Duration = Duration::from_millis(2);
        const MAX_BACKOFF: Duration = Duration::from_millis(200);
        let progress_every = self.bus.options.ack_wait / 3;
        let mut backoff = FIRST_BACKOFF;
        let mut last_progress = tokio::time::Instant::now();
        loop {
            let woken = self.bus.waiter(&self.subject);
            let notified = woken.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self
                .stream
                .direct_get_first_for_subject(self.subject.as_str())
                .await
            {
                Ok(first) if first.sequence < self.stream_sequence => {}
                Ok(_) => return Ok(()),
                Err(e) if matches!(e.kind(), stream::DirectGetErrorKind::NotFound) => return Ok(()),
                Err(e) => {
                    return Err(queue_err(format!(
                        "cannot read the head of {}: {e}",
                        self.subject
                    )));
                }
            }
            tokio::select! {
                _ = &mut notified => backoff = FIRST_BACKOFF,
                _ = tokio::time::sleep(backoff) => backoff = (backoff * 2).min(MAX_BACKOFF),
            }
            if last_progress.elapsed() >= progress_every {
                self.progress().await?;
                last_progress = tokio::time::Instant::now();
            }
        }
    }

    async fn progress(&self) -> Result<(), BusError> {
        self.message.ack_with(AckKind::Progress).await.map_err(queue_err)
    }

    async fn ack(&self) -> Result<(), BusError> {
        // A plain ack: the session's next message, if waiting here, is
        // woken and checks the stream again (it retries until the server
        // has processed the ack). A lost ack means one redelivery, which
        // the message id makes harmless.
        let result = self.message.ack().await.map_err(queue_err);
        self.bus.wake_waiters(&self.subject);
        result
    }

    async fn nak(&self, delay: Option<Duration>) -> Result<(), BusError> {
        self.message
            .ack_with(AckKind::Nak(delay))
            .await
            .map_err(queue_err)
    }
}
