//! One conformance suite for the `Bus` port, run against both adapters:
//! the in-process bus and NATS (core + JetStream) on the real server at
//! `CHATBOX_TEST_NATS_URL` (default `nats://127.0.0.1:4222`).

// A test harness: a failed unwrap is a failed test, with its place.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, unreachable_pub)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chatbox_shared::bus::{
    Bus, BusError, Headers, MemoryBus, MemoryBusOptions, NatsBus, NatsOptions, respond,
};
use chatbox_shared::namespace::{Namespace, Subjects};
use futures_util::StreamExt;

const ACK_WAIT: Duration = Duration::from_secs(1);

fn nats_url() -> String {
    std::env::var("CHATBOX_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// A bus under test, cleaned up when dropped.
struct Fixture {
    bus: Arc<dyn Bus>,
    subjects: Subjects,
    nats: Option<Arc<NatsBus>>,
}

impl Fixture {
    fn memory() -> Self {
        Fixture {
            bus: Arc::new(MemoryBus::new(MemoryBusOptions::default())),
            subjects: Namespace::default().subjects(),
            nats: None,
        }
    }

    async fn nats() -> Self {
        let ns = Namespace::new(&format!("bc{:08x}", rand::random::<u32>())).unwrap();
        let bus = NatsBus::connect(NatsOptions {
            url: nats_url(),
            name: "bus-conformance".into(),
            subjects: ns.subjects(),
            connect_timeout: Duration::from_secs(5),
            ack_wait: ACK_WAIT,
            max_ack_pending: 1000,
            stream_max_age: Duration::from_secs(600),
            duplicate_window: Duration::from_secs(60),
            replicas: 1,
        })
        .await
        .expect("NATS at CHATBOX_TEST_NATS_URL");
        bus.ensure_inbound_stream().await.expect("stream");
        // Idempotent: a second start with the same settings succeeds.
        bus.ensure_inbound_stream().await.expect("stream again");
        let bus = Arc::new(bus);
        Fixture {
            bus: bus.clone(),
            subjects: ns.subjects(),
            nats: Some(bus),
        }
    }

    async fn cleanup(self) {
        if let Some(nats) = self.nats {
            nats.delete_inbound_stream().await.expect("delete stream");
        }
    }
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $name() {
                    let f = super::Fixture::memory();
                    super::$name(&f).await;
                    f.cleanup().await;
                }
            )*
        }
        mod nats {
            $(
                #[tokio::test]
                async fn $name() {
                    let f = super::Fixture::nats().await;
                    super::$name(&f).await;
                    f.cleanup().await;
                }
            )*
        }
    };
}

conformance!(
    publish_reaches_exact_and_wildcard_subscribers_with_headers,
    queue_group_members_share_messages,
    request_reply_no_responders_and_timeout,
    dropped_subscription_stops_receiving,
    inbound_queue_drops_duplicate_ids,
    inbound_queue_keeps_session_order_without_blocking_other_sessions,
    unsettled_delivery_is_delivered_again,
    nak_with_delay_delivers_again_later,
    competing_consumers_share_the_work_exactly_once,
    a_pull_brings_no_more_than_it_asks_for,
);

async fn next_within(
    sub: &mut chatbox_shared::bus::Subscription,
    d: Duration,
) -> Option<chatbox_shared::bus::BusMessage> {
    tokio::time::timeout(d, sub.next()).await.ok().flatten()
}

async fn publish_reaches_exact_and_wildcard_subscribers_with_headers(f: &Fixture) {
    let exact = f.subjects.outbound("s1");
    let wildcard = exact.replace(".s1", ".*");
    let mut a = f.bus.subscribe(exact.clone()).await.unwrap();
    let mut b = f.bus.subscribe(wildcard).await.unwrap();
    f.bus.flush().await.unwrap();
    let headers = Headers::new().with("Chatbox-Type", "ai_response").with(
        "traceparent",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    );
    f.bus
        .publish(exact.clone(), headers.clone(), Bytes::from_static(b"{\"x\":1}"))
        .await
        .unwrap();
    f.bus
        .publish(
            f.subjects.outbound("other"),
            Headers::new(),
            Bytes::from_static(b"not for a"),
        )
        .await
        .unwrap();
    let got = next_within(&mut a, Duration::from_secs(2))
        .await
        .expect("exact subscriber");
    assert_eq!(got.payload, Bytes::from_static(b"{\"x\":1}"));
    assert_eq!(got.subject, exact);
    assert_eq!(
        got.headers.get("chatbox-type"),
        Some("ai_response"),
        "names compare case-insensitively"
    );
    assert_eq!(got.headers.get("traceparent"), headers.get("traceparent"));
    let first = next_within(&mut b, Duration::from_secs(2))
        .await
        .expect("wildcard subscriber");
    assert_eq!(first.subject, exact);
    let second = next_within(&mut b, Duration::from_secs(2))
        .await
        .expect("wildcard gets the other");
    assert_eq!(second.payload, Bytes::from_static(b"not for a"));
    assert!(next_within(&mut a, Duration::from_millis(200)).await.is_none());
}

async fn queue_group_members_share_messages(f: &Fixture) {
    let subject = f.subjects.rpc("share");
    let mut one = f.bus.queue_subscribe(subject.clone(), "g".into()).await.unwrap();
    let mut two = f.bus.queue_subscribe(subject.clone(), "g".into()).await.unwrap();
    let mut watcher = f.bus.subscribe(subject.clone()).await.unwrap();
    f.bus.flush().await.unwrap();
    for i in 0..40 {
        f.bus
            .publish(subject.clone(), Headers::new(), Bytes::from(i.to_string()))
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    for sub in [&mut one, &mut two] {
        while let Some(m) = next_within(sub, Duration::from_millis(300)).await {
            seen.push(String::from_utf8(m.payload.to_vec()).unwrap());
        }
    }
    seen.sort_by_key(|s| s.parse::<u32>().unwrap());
    let expected: Vec<String> = (0..40).map(|i| i.to_string()).collect();
    assert_eq!(seen, expected, "each message to exactly one member of the group");
    let mut plain = 0;
    while next_within(&mut watcher, Duration::from_millis(200))
        .await
        .is_some()
    {
        plain += 1;
    }
    assert_eq!(plain, 40, "a plain subscriber still sees everything");
}

async fn request_reply_no_responders_and_timeout(f: &Fixture) {
    let subject = f.subjects.rpc("echo");
    let mut server = f
        .bus
        .queue_subscribe(subject.clone(), "workers".into())
        .await
        .unwrap();
    f.bus.flush().await.unwrap();
    let bus = Arc::clone(&f.bus);
    let responder = tokio::spawn(async move {
        while let Some(request) = server.next().await {
            let mut answer = b"echo:".to_vec();
            answer.extend_from_slice(&request.payload);
            respond(bus.as_ref(), &request, Bytes::from(answer))
                .await
                .unwrap();
        }
    });
    let reply = f
        .bus
        .request(
            subject,
            Headers::new(),
            Bytes::from_static(b"hi"),
            Duration::from_secs(2),
        )
        .await
        .unwrap();
    assert_eq!(reply.payload, Bytes::from_static(b"echo:hi"));
    responder.abort();

    let err = f
        .bus
        .request(
            f.subjects.rpc("nobody"),
            Headers::new(),
            Bytes::new(),
            Duration::from_secs(2),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, BusError::NoResponders { .. }), "{err:?}");

    let silent = f.subjects.rpc("silent");
    let _mute = f.bus.subscribe(silent.clone()).await.unwrap();
    f.bus.flush().await.unwrap();
    let started = Instant::now();
    let err = f
        .bus
        .request(silent, Headers::new(), Bytes::new(), Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(matches!(err, BusError::Timeout { .. }), "{err:?}");
    assert!(started.elapsed() >= Duration::from_millis(250));
}

async fn dropped_subscription_stops_receiving(f: &Fixture) {
    let subject = f.subjects.control("pod-x");
    let first = f.bus.subscribe(subject.clone()).await.unwrap();
    drop(first);
    let mut second = f.bus.subscribe(subject.clone()).await.unwrap();
    f.bus.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    f.bus
        .publish(subject.clone(), Headers::new(), Bytes::from_static(b"1"))
        .await
        .unwrap();
    assert!(next_within(&mut second, Duration::from_secs(2)).await.is_some());
    assert!(
        next_within(&mut second, Duration::from_millis(200))
            .await
            .is_none()
    );
    f.bus.check().await.unwrap();
}

async fn inbound_queue_drops_duplicate_ids(f: &Fixture) {
    let subject = f.subjects.inbound("dup");
    let first = f
        .bus
        .enqueue(
            subject.clone(),
            "dup:m1".into(),
            Headers::new(),
            Bytes::from_static(b"one"),
        )
        .await
        .unwrap();
    assert!(!first.duplicate);
    let again = f
        .bus
        .enqueue(
            subject.clone(),
            "dup:m1".into(),
            Headers::new(),
            Bytes::from_static(b"one again"),
        )
        .await
        .unwrap();
    assert!(again.duplicate);
    let mut queue = f.bus.inbound().await.unwrap();
    let d = tokio::time::timeout(Duration::from_secs(3), queue.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(d.payload, Bytes::from_static(b"one"));
    assert_eq!(d.delivery_count, 1);
    d.wait_turn().await.unwrap();
    d.ack().await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(500), queue.next())
            .await
            .is_err(),
        "the duplicate is never delivered"
    );
}

async fn inbound_queue_keeps_session_order_without_blocking_other_sessions(f: &Fixture) {
    let a = f.subjects.inbound("sess-a");
    let b = f.subjects.inbound("sess-b");
    for (subject, id) in [(&a, "a1"), (&a, "a2"), (&a, "a3"), (&b, "b1")] {
        f.bus
            .enqueue(
                subject.clone(),
                id.into(),
                Headers::new(),
                Bytes::from(id.to_owned()),
            )
            .await
            .unwrap();
    }
    // Record (message, start, end) of each processing, as a worker would run
    // them: every delivery in its own task. (NATS hands out a2 while a1 runs
    // and `wait_turn` holds it back; the memory bus hands out heads only.)
    let log: Arc<Mutex<Vec<(String, Instant, Instant)>>> = Arc::default();
    let mut queue = f.bus.inbound().await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let d = tokio::time::timeout(Duration::from_secs(5), queue.next())
            .await
            .expect("a delivery")
            .unwrap()
            .unwrap();
        let log = Arc::clone(&log);
        tasks.push(tokio::spawn(async move {
            d.wait_turn().await.unwrap();
            let start = Instant::now();
            tokio::time::sleep(Duration::from_millis(150)).await;
            let name = String::from_utf8(d.payload.to_vec()).unwrap();
            d.ack().await.unwrap();
            log.lock().unwrap().push((name, start, Instant::now()));
        }));
    }
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(10), t)
            .await
            .unwrap()
            .unwrap();
    }
    let log = log.lock().unwrap().clone();
    let find = |n: &str| log.iter().find(|(name, ..)| name == n).cloned().unwrap();
    let (a1, a2, a3, b1) = (find("a1"), find("a2"), find("a3"), find("b1"));
    assert!(
        a1.2 <= a2.1 && a2.2 <= a3.1,
        "one session: in order, one at a time: {log:?}"
    );
    assert!(
        b1.1 < a1.2 && a1.1 < b1.2,
        "two sessions run side by side: {log:?}"
    );
}

async fn unsettled_delivery_is_delivered_again(f: &Fixture) {
    let subject = f.subjects.inbound("lost");
    f.bus
        .enqueue(subject, "lost:1".into(), Headers::new(), Bytes::from_static(b"x"))
        .await
        .unwrap();
    let mut queue = f.bus.inbound().await.unwrap();
    let first = queue.next().await.unwrap().unwrap();
    assert_eq!(first.delivery_count, 1);
    drop(first); // a worker that dies without settling
    let again = tokio::time::timeout(ACK_WAIT * 5, queue.next())
        .await
        .expect("redelivered after the ack wait")
        .unwrap()
        .unwrap();
    assert_eq!(again.payload, Bytes::from_static(b"x"));
    assert_eq!(again.delivery_count, 2);
    again.ack().await.unwrap();
}

async fn nak_with_delay_delivers_again_later(f: &Fixture) {
    let subject = f.subjects.inbound("later");
    f.bus
        .enqueue(
            subject,
            "later:1".into(),
            Headers::new(),
            Bytes::from_static(b"x"),
        )
        .await
        .unwrap();
    let mut queue = f.bus.inbound().await.unwrap();
    let first = queue.next().await.unwrap().unwrap();
    let naked = Instant::now();
    first.nak(Some(Duration::from_millis(300))).await.unwrap();
    let again = tokio::time::timeout(Duration::from_secs(5), queue.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        naked.elapsed() >= Duration::from_millis(250),
        "not before the delay"
    );
    assert_eq!(again.delivery_count, 2);
    again.ack().await.unwrap();
}

async fn competing_consumers_share_the_work_exactly_once(f: &Fixture) {
    for i in 0..20 {
        f.bus
            .enqueue(
                f.subjects.inbound(&format!("c{i}")),
                format!("c{i}:m"),
                Headers::new(),
                Bytes::from(i.to_string()),
            )
            .await
            .unwrap();
    }
    let seen: Arc<Mutex<Vec<u32>>> = Arc::default();
    let mut consumers = Vec::new();
    for _ in 0..2 {
        let mut queue = f.bus.inbound().await.unwrap();
        let seen = Arc::clone(&seen);
        consumers.push(tokio::spawn(async move {
            while let Ok(Some(Ok(d))) = tokio::time::timeout(Duration::from_millis(800), queue.next()).await {
                d.wait_turn().await.unwrap();
                seen.lock()
                    .unwrap()
                    .push(String::from_utf8(d.payload.to_vec()).unwrap().parse().unwrap());
                d.ack().await.unwrap();
            }
        }));
    }
    for c in consumers {
        c.await.unwrap();
    }
    let mut seen = seen.lock().unwrap().clone();
    seen.sort_unstable();
    assert_eq!(seen, (0..20).collect::<Vec<u32>>());
}

async fn a_pull_brings_no_more_than_it_asks_for(f: &Fixture) {
    for i in 0..5 {
        f.bus
            .enqueue(
                f.subjects.inbound(&format!("p{i}")),
                format!("p{i}:m"),
                Headers::new(),
                Bytes::from(i.to_string()),
            )
            .await
            .unwrap();
    }
    let mut queue = f.bus.inbound().await.unwrap();
    let started = Instant::now();
    let first: Vec<_> = queue
        .pull(2, Duration::from_secs(3))
        .await
        .unwrap()
        .map(Result::unwrap)
        .collect()
        .await;
    assert_eq!(first.len(), 2, "two asked for, two brought");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "a full pull ends without waiting out its wait"
    );
    // The other three stay in the queue: a second consumer gets them at
    // once (well within the first two's ack wait), with none of them held
    // by the first.
    let mut other = f.bus.inbound().await.unwrap();
    let rest: Vec<_> = other
        .pull(3, Duration::from_secs(3))
        .await
        .unwrap()
        .map(Result::unwrap)
        .collect()
        .await;
    assert_eq!(rest.len(), 3, "what the first did not ask for is the second's");
    for d in first.into_iter().chain(rest) {
        assert_eq!(d.delivery_count, 1);
        d.ack().await.unwrap();
    }
    // An empty queue: the pull ends empty after its wait.
    let none: Vec<_> = queue
        .pull(4, Duration::from_millis(300))
        .await
        .unwrap()
        .collect()
        .await;
    assert!(none.is_empty());
}

/// The workers' JetStream consumer follows the ack wait the workers run
/// with: one made by an earlier setting (say the former 30 s default) is
/// updated when a worker with another setting starts consuming, so a dead
/// worker's turns come back after the new wait.
#[tokio::test]
async fn nats_inbound_consumer_takes_the_ack_wait_the_workers_run_with() {
    let f = Fixture::nats().await;
    let nats = f.nats.clone().unwrap();
    drop(f.bus.inbound().await.unwrap());
    let ns_subjects = f.subjects.clone();
    let longer = NatsBus::connect(NatsOptions {
        url: nats_url(),
        name: "bus-conformance-30s".into(),
        subjects: ns_subjects.clone(),
        connect_timeout: Duration::from_secs(5),
        ack_wait: Duration::from_secs(30),
        max_ack_pending: 1000,
        stream_max_age: Duration::from_secs(600),
        duplicate_window: Duration::from_secs(60),
        replicas: 1,
    })
    .await
    .unwrap();
    drop(longer.inbound().await.unwrap());
    assert_eq!(nats.inbound_ack_wait().await.unwrap(), Duration::from_secs(30));
    // A worker with the short wait starts: the consumer follows it, and a
    // delivery left unsettled comes back after about a second, not 30.
    let mut queue = f.bus.inbound().await.unwrap();
    assert_eq!(nats.inbound_ack_wait().await.unwrap(), ACK_WAIT);
    f.bus
        .enqueue(
            f.subjects.inbound("aw"),
            "aw:1".into(),
            Headers::new(),
            Bytes::from_static(b"x"),
        )
        .await
        .unwrap();
    let first = queue.next().await.unwrap().unwrap();
    drop(first);
    let again = tokio::time::timeout(ACK_WAIT * 5, queue.next())
        .await
        .expect("redelivered after the short ack wait")
        .unwrap()
        .unwrap();
    assert_eq!(again.delivery_count, 2);
    again.ack().await.unwrap();
    f.cleanup().await;
}
