//! Session fan-out: which local sockets listen to which session, and the
//! `chat.out.<sid>` subscriptions that feed them.
//!
//! A gateway listens on `chat.out.<sid>` only while a session has
//! *interest*: from the moment its user sends a message (the subscription
//! is made before the message is published, on the same NATS connection,
//! so the server knows about it before any worker can answer), when a
//! restored session may have an answer in flight, or when a worker asks
//! over `chat.ctl` to attach before it publishes something unsolicited.
//! After `out_idle_timeout` without traffic the subscription is dropped —
//! unless an admin watches the session: then it lasts while they do.
//! An idle socket therefore costs no subscription, neither here nor on
//! the NATS server.
//!
//! Frames arrive as the exact bytes a client receives, alone or several
//! in one message ([`frame_batch`]); the pump hands the same `Bytes` to
//! every local listener without parsing them, save what a turn run again
//! would repeat ([`crate::delivered`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chatbox_shared::bus::{Bus, BusError, BusMessage, Subscription};
use chatbox_shared::envelope::{Audience, headers};
use chatbox_shared::frame_batch;
use chatbox_shared::namespace::Subjects;
use chatbox_shared::telemetry::propagation;
use futures_util::StreamExt;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::info_span;

use crate::delivered::{Delivered, Verdict};
use crate::metrics::GatewayMetrics;
use crate::send_queue::SendQueue;

/// What a listener is to its session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ListenerRole {
    /// The session's user.
    User,
    /// An admin watching.
    Admin,
}

struct Listener {
    conn_id: u64,
    role: ListenerRole,
    queue: Arc<SendQueue>,
}

/// One session with local listeners.
struct HubSession {
    session_id: String,
    listeners: Mutex<Vec<Listener>>,
    /// Milliseconds since the hub started, at the last sign of traffic.
    last_traffic: AtomicU64,
    /// `Some((generation, cancel))` while subscribed: `cancel` stops the pump.
    subscription: tokio::sync::Mutex<Option<(u64, CancellationToken)>>,
    /// What the listeners were sent, so a turn run again repeats nothing.
    delivered: Mutex<Delivered>,
}

impl HubSession {
    fn listeners(&self) -> MutexGuard<'_, Vec<Listener>> {
        self.listeners.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn has_admin(&self) -> bool {
        self.listeners().iter().any(|l| l.role == ListenerRole::Admin)
    }
}

/// The sessions this pod has sockets for.
pub(crate) struct SessionHub {
    bus: Arc<dyn Bus>,
    subjects: Subjects,
    idle_timeout: Duration,
    started: Instant,
    generation: AtomicU64,
    sessions: Mutex<HashMap<String, Arc<HubSession>>>,
    metrics: Arc<GatewayMetrics>,
    shutdown: CancellationToken,
}

impl SessionHub {
    /// An empty hub.
    pub(crate) fn new(
        bus: Arc<dyn Bus>,
        subjects: Subjects,
        idle_timeout: Duration,
        metrics: Arc<GatewayMetrics>,
        shutdown: CancellationToken,
    ) -> Self {
        SessionHub {
            bus,
            subjects,
            idle_timeout,
            started: Instant::now(),
            generation: AtomicU64::new(1),
            sessions: Mutex::default(),
            metrics,
            shutdown,
        }
    }

    fn sessions(&self) -> MutexGuard<'_, HashMap<String, Arc<HubSession>>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Adds a local listener to a session.
    pub(crate) fn join(&self, session_id: &str, conn_id: u64, role: ListenerRole, queue: Arc<SendQueue>) {
        let session = Arc::clone(self.sessions().entry(session_id.to_owned()).or_insert_with(|| {
            Arc::new(HubSession {
                session_id: session_id.to_owned(),
                listeners: Mutex::default(),
                last_traffic: AtomicU64::new(0),
                subscription: tokio::sync::Mutex::new(None),
                delivered: Mutex::default(),
            })
        }));
        session.listeners().push(Listener { conn_id, role, queue });
    }

    /// Removes a local listener; the session's subscription ends with its
    /// last listener.
    pub(crate) fn leave(&self, session_id: &str, conn_id: u64) {
        let mut sessions = self.sessions();
        let Some(session) = sessions.get(session_id).cloned() else {
            return;
        };
        let now_empty = {
            let mut listeners = session.listeners();
            listeners.retain(|l| l.conn_id != conn_id);
            listeners.is_empty()
        };
        if now_empty {
            sessions.remove(session_id);
            drop(sessions);
            if let Ok(mut sub) = session.subscription.try_lock() {
                if let Some((_, cancel)) = sub.take() {
                    cancel.cancel();
                }
            } else {
                // An attach is in progress: stop its pump once it is set up.
                let session = Arc::clone(&session);
                tokio::spawn(async move {
                    if let Some((_, cancel)) = session.subscription.lock().await.take() {
                        cancel.cancel();
                    }
                });
            }
        }
    }

    /// Makes sure the pod listens on `chat.out.<session_id>`. Returns
    /// whether any local socket belongs to the session (if none, nothing
    /// is subscribed).
    pub(crate) async fn attach(&self, session_id: &str) -> Result<bool, BusError> {
        let Some(session) = self.sessions().get(session_id).cloned() else {
            return Ok(false);
        };
        let mut subscription = session.subscription.lock().await;
        session.last_traffic.store(self.now_ms(), Ordering::Relaxed);
        if subscription.is_some() {
            return Ok(true);
        }
        let stream = self.bus.subscribe(self.subjects.outbound(session_id)).await?;
        let cancel = self.shutdown.child_token();
        let generation = self.generation.fetch_add(1, Ordering::Relaxed);
        *subscription = Some((generation, cancel.clone()));
        drop(subscription);
        self.metrics.session_subscriptions.increment(1.0);
        tokio::spawn(pump(
            Arc::clone(&session),
            stream,
            generation,
            cancel,
            self.idle_timeout,
            self.started,
            Arc::clone(&self.metrics),
        ));
        Ok(true)
    }

    /// Sessions with local listeners.
    pub(crate) fn len(&self) -> usize {
        self.sessions().len()
    }
}

/// Forwards one session's frames to its local listeners until the session
/// goes quiet, loses its last listener, or the pod shuts down.
async fn pump(
    session: Arc<HubSession>,
    mut stream: Subscription,
    generation: u64,
    cancel: CancellationToken,
    idle_timeout: Duration,
    started: Instant,
    metrics: Arc<GatewayMetrics>,
) {
    let idle_deadline = |session: &HubSession| {
        started + Duration::from_millis(session.last_traffic.load(Ordering::Relaxed)) + idle_timeout
    };
    let idle = tokio::time::sleep_until(idle_deadline(&session));
    tokio::pin!(idle);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            message = stream.next() => match message {
                Some(message) => {
                    session
                        .last_traffic
                        .store(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX), Ordering::Relaxed);
                    fan_out(&session, message, &metrics);
                }
                None => {
                    tracing::warn!(session_id = %session.session_id, "chat.out subscription ended");
                    break;
                }
            },
            _ = &mut idle => {
                let deadline = idle_deadline(&session);
                if Instant::now() < deadline {
                    idle.as_mut().reset(deadline);
                    continue;
                }
                if session.has_admin() {
                    // An admin watching hears the session however quiet it is.
                    idle.as_mut().reset(Instant::now() + idle_timeout);
                    continue;
                }
                // Re-check under the lock `attach` takes, so an attach that
                // just touched the session keeps it subscribed.
                let mut subscription = session.subscription.lock().await;
                if Instant::now() < idle_deadline(&session) {
                    idle.as_mut().reset(idle_deadline(&session));
                    continue;
                }
                subscription.take();
                break;
            }
        }
    }
    drop(stream);
    let mut subscription = session.subscription.lock().await;
    if subscription.as_ref().is_some_and(|(g, _)| *g == generation) {
        subscription.take();
    }
    drop(subscription);
    metrics.session_subscriptions.decrement(1.0);
}

fn fan_out(session: &HubSession, message: BusMessage, metrics: &GatewayMetrics) {
    // A frame that carries a trace context (everything but streamed
    // chunks, when tracing is on) is delivered inside a span of its trace.
    let _deliver = message.headers.get(headers::TRACEPARENT).map(|_| {
        let span = info_span!("deliver", session_id = %session.session_id);
        propagation::adopt_parent(&span, &message.headers);
        span.entered()
    });
    let audience = Audience::from_header(message.headers.get(headers::AUDIENCE));
    let mut delivered = session.delivered.lock().unwrap_or_else(|p| p.into_inner());
    if delivered.stale(message.headers.get(headers::TURN)) {
        metrics.stale_frames_dropped.increment(1);
        return;
    }
    let frames = frame_batch::split(&message.headers, message.payload);
    let listeners = session.listeners();
    for frame in frames {
        if delivered.admit(frame.seq) == Verdict::Repeat {
            metrics.repeats_dropped.increment(1);
            continue;
        }
        for listener in listeners.iter() {
            let wanted = match audience {
                Audience::All => true,
                Audience::User => listener.role == ListenerRole::User,
                Audience::Admins => listener.role == ListenerRole::Admin,
            };
            if wanted && listener.queue.push(frame.bytes.clone()) {
                metrics.message_out(frame.kind);
            }
        }
    }
}
