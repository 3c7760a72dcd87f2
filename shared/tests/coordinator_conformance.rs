//! One conformance suite for the `Coordinator` port, run against both
//! adapters: in-process, and Redis at `CHATBOX_TEST_REDIS_URL` (default
//! `redis://127.0.0.1:6379`) in a namespace of its own.

// A test harness: a failed unwrap is a failed test, with its place.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, unreachable_pub)]

use std::sync::Arc;
use std::time::Duration;

use chatbox_shared::coordinator::{
    AdminClaim, Admission, Coordinator, MemoryCoordinator, NotifyAdmission, RateLimit, RedisCoordinator,
    RedisOptions, Renewal, RequestKind, Suppressed, Watcher,
};
use chatbox_shared::namespace::Namespace;
use chatbox_shared::protocol::Timestamp;

struct Fixture {
    c: Arc<dyn Coordinator>,
    redis: Option<Arc<RedisCoordinator>>,
}

impl Fixture {
    fn memory() -> Self {
        Fixture {
            c: Arc::new(MemoryCoordinator::new(Namespace::default().keys())),
            redis: None,
        }
    }

    async fn redis() -> Self {
        let ns = Namespace::new(&format!("cc{:08x}", rand::random::<u32>())).unwrap();
        let redis = RedisCoordinator::connect(RedisOptions {
            url: std::env::var("CHATBOX_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
            pool_size: 2,
            connect_timeout: Duration::from_secs(5),
            command_timeout: Duration::from_secs(2),
            keys: ns.keys(),
        })
        .await
        .expect("Redis at CHATBOX_TEST_REDIS_URL");
        let redis = Arc::new(redis);
        Fixture {
            c: redis.clone(),
            redis: Some(redis),
        }
    }

    async fn cleanup(self) {
        if let Some(redis) = self.redis {
            redis.delete_namespace().await.expect("cleanup");
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
                    super::$name(f.c.as_ref()).await;
                    f.cleanup().await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test]
                async fn $name() {
                    let f = super::Fixture::redis().await;
                    super::$name(f.c.as_ref()).await;
                    f.cleanup().await;
                }
            )*
        }
    };
}

conformance!(
    ownership_is_fenced,
    ownership_lock_expires_without_renewal,
    active_session_is_one_per_user_and_lingers,
    token_bucket_limits_then_refills,
    tokens_are_leased_in_batches_within_the_bucket,
    each_kind_of_request_has_its_own_bucket,
    notifications_are_held_back_then_taken_once_for_the_digest,
    held_back_notifications_outlive_their_window,
    heartbeat_and_check_answer,
    takeover_lock_is_one_admin_at_a_time,
    takeover_lock_expires_without_renewal,
    watchers_are_listed_while_renewed,
    live_state_and_pods,
);

async fn ownership_is_fenced(c: &dyn Coordinator) {
    let ttl = Duration::from_secs(10);
    assert_eq!(c.owner("s1").await.unwrap(), None);
    let first = c.claim_owner("s1", "gw-a", 7, ttl).await.unwrap();
    assert_eq!(first.previous, None);
    assert_eq!(c.owner("s1").await.unwrap(), Some(first.token.clone()));

    let second = c.claim_owner("s1", "gw-b", 9, ttl).await.unwrap();
    assert_eq!(
        second.previous,
        Some(first.token.clone()),
        "the new owner learns whom to kill"
    );
    assert!(second.token.fence > first.token.fence);
    assert_eq!(second.token.pod_id, "gw-b");
    assert_eq!(second.token.conn_id, 9);

    let renewals = vec![
        Renewal {
            session_id: "s1".into(),
            token: first.token.clone(),
        },
        Renewal {
            session_id: "s1".into(),
            token: second.token.clone(),
        },
    ];
    assert_eq!(
        c.renew_owners(&renewals, ttl).await.unwrap(),
        vec![false, true],
        "a stale owner cannot renew"
    );
    assert!(
        !c.release_owner("s1", &first.token).await.unwrap(),
        "a stale owner cannot release"
    );
    assert_eq!(c.owner("s1").await.unwrap(), Some(second.token.clone()));
    assert!(c.release_owner("s1", &second.token).await.unwrap());
    assert_eq!(c.owner("s1").await.unwrap(), None);
    assert_eq!(c.renew_owners(&[], ttl).await.unwrap(), Vec::<bool>::new());
}

async fn ownership_lock_expires_without_renewal(c: &dyn Coordinator) {
    let claim = c
        .claim_owner("s2", "gw-a", 1, Duration::from_millis(300))
        .await
        .unwrap();
    let renewal = [Renewal {
        session_id: "s2".into(),
        token: claim.token.clone(),
    }];
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        c.renew_owners(&renewal, Duration::from_millis(300))
            .await
            .unwrap(),
        vec![true]
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(c.owner("s2").await.unwrap().is_some(), "renewed, so still held");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(c.owner("s2").await.unwrap(), None, "expired");
    assert_eq!(
        c.renew_owners(&renewal, Duration::from_secs(1)).await.unwrap(),
        vec![false]
    );
}

async fn active_session_is_one_per_user_and_lingers(c: &dyn Coordinator) {
    let made = c.activate_session("u1", "sess-1").await.unwrap();
    assert!(made.created);
    assert_eq!(made.session_id, "sess-1");
    let again = c.activate_session("u1", "sess-2").await.unwrap();
    assert!(!again.created);
    assert_eq!(
        again.session_id, "sess-1",
        "the active session wins over a new candidate"
    );

    assert!(
        !c.linger_active_session("u1", "sess-other", Some(Duration::from_millis(100)))
            .await
            .unwrap()
    );
    assert!(
        c.linger_active_session("u1", "sess-1", Some(Duration::from_millis(300)))
            .await
            .unwrap()
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Reconnecting within the window makes it permanent again.
    assert!(!c.activate_session("u1", "sess-3").await.unwrap().created);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(c.active_session("u1").await.unwrap().as_deref(), Some("sess-1"));

    assert!(
        c.linger_active_session("u1", "sess-1", Some(Duration::from_millis(200)))
            .await
            .unwrap()
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        c.active_session("u1").await.unwrap(),
        None,
        "gone after the window"
    );

    assert_eq!(c.switch_active_session("u1", "sess-4").await.unwrap(), None);
    assert_eq!(
        c.switch_active_session("u1", "sess-5").await.unwrap().as_deref(),
        Some("sess-4")
    );
    assert!(c.linger_active_session("u1", "sess-5", None).await.unwrap());
    assert_eq!(c.active_session("u2").await.unwrap(), None, "users do not share");
    assert!(
        !c.clear_active_session("u1", "sess-4").await.unwrap(),
        "only the named session is cleared"
    );
    assert!(c.clear_active_session("u1", "sess-5").await.unwrap());
    assert_eq!(c.active_session("u1").await.unwrap(), None);
}

/// One token granted.
const ONE: Admission = Admission::Allowed { granted: 1 };

async fn token_bucket_limits_then_refills(c: &dyn Coordinator) {
    let limit = RateLimit {
        capacity: 3,
        window: Duration::from_millis(600),
    };
    for _ in 0..3 {
        assert_eq!(c.admit_message("u9", limit, 1).await.unwrap(), ONE);
    }
    let Admission::Limited { retry_after } = c.admit_message("u9", limit, 1).await.unwrap() else {
        panic!("the fourth message in a burst is limited")
    };
    assert!(
        retry_after > Duration::ZERO && retry_after <= Duration::from_millis(250),
        "{retry_after:?}"
    );
    assert_eq!(c.admit_message("u10", limit, 1).await.unwrap(), ONE, "per user");
    tokio::time::sleep(retry_after + Duration::from_millis(30)).await;
    assert_eq!(c.admit_message("u9", limit, 1).await.unwrap(), ONE, "refilled");
}

async fn each_kind_of_request_has_its_own_bucket(c: &dyn Coordinator) {
    let limit = RateLimit {
        capacity: 2,
        window: Duration::from_secs(3600),
    };
    for kind in [
        RequestKind::SessionOpen,
        RequestKind::History,
        RequestKind::Rename,
    ] {
        assert_eq!(
            c.admit_request(kind, "u20", limit, 5).await.unwrap(),
            Admission::Allowed { granted: 2 },
            "{kind:?}: a full bucket of its own"
        );
        assert!(
            matches!(
                c.admit_request(kind, "u20", limit, 1).await.unwrap(),
                Admission::Limited { .. }
            ),
            "{kind:?}: spent"
        );
    }
    assert_eq!(
        c.admit_request(RequestKind::History, "u21", limit, 1)
            .await
            .unwrap(),
        ONE,
        "per user"
    );
    assert_eq!(
        c.admit_message("u20", limit, 1).await.unwrap(),
        ONE,
        "messages are counted apart"
    );
}

async fn tokens_are_leased_in_batches_within_the_bucket(c: &dyn Coordinator) {
    // A window of an hour: under a token comes back while the test runs.
    let limit = RateLimit {
        capacity: 10,
        window: Duration::from_secs(3600),
    };
    let lease = |user: &'static str, want: u32| c.admit_message(user, limit, want);
    assert_eq!(lease("u11", 4).await.unwrap(), Admission::Allowed { granted: 4 });
    assert_eq!(lease("u11", 4).await.unwrap(), Admission::Allowed { granted: 4 });
    assert_eq!(
        lease("u11", 4).await.unwrap(),
        Admission::Allowed { granted: 2 },
        "a lease never takes more than the bucket holds"
    );
    let Admission::Limited { retry_after } = lease("u11", 4).await.unwrap() else {
        panic!("the bucket is empty")
    };
    assert!(retry_after > Duration::ZERO);
    assert_eq!(
        lease("u11b", 0).await.unwrap(),
        ONE,
        "wanting nothing still asks for one token"
    );

    // Two pods leasing for one user at once share the one bucket.
    let leaser = || async {
        let mut taken = 0;
        while let Admission::Allowed { granted } = lease("u12", 3).await.unwrap() {
            assert!((1..=3).contains(&granted), "{granted}");
            taken += granted;
        }
        taken
    };
    let (a, b) = tokio::join!(leaser(), leaser());
    assert_eq!(
        a + b,
        limit.capacity,
        "together the leasers got the bucket, no more ({a} + {b})"
    );
}

async fn notifications_are_held_back_then_taken_once_for_the_digest(c: &dyn Coordinator) {
    use NotifyAdmission::{Send, Suppressed as Held};
    let limit = RateLimit {
        capacity: 2,
        window: Duration::from_millis(500),
    };
    let mut seen = Vec::new();
    for user in ["u1", "u2", "u1", "u3", "u1", ""] {
        seen.push(c.admit_notification("help_request", limit, user).await.unwrap());
    }
    assert_eq!(seen, [Send, Send, Held, Held, Held, Held]);
    assert_eq!(
        c.admit_notification("llm_failure", limit, "u1").await.unwrap(),
        Send,
        "each kind has its own window"
    );
    assert_eq!(
        c.take_suppressed("help_request").await.unwrap(),
        None,
        "nothing is taken while the window runs"
    );

    tokio::time::sleep(Duration::from_millis(600)).await;
    let (a, b) = tokio::join!(
        c.take_suppressed("help_request"),
        c.take_suppressed("help_request")
    );
    let taken: Vec<Suppressed> = [a.unwrap(), b.unwrap()].into_iter().flatten().collect();
    assert_eq!(
        taken,
        [Suppressed {
            count: 4,
            affected_users: 2
        }],
        "one caller gets the digest: four held back, naming u1 and u3"
    );
    assert_eq!(
        c.take_suppressed("help_request").await.unwrap(),
        None,
        "taken once"
    );
    assert_eq!(
        c.take_suppressed("llm_failure").await.unwrap(),
        None,
        "nothing was held back"
    );
    assert_eq!(
        c.admit_notification("help_request", limit, "u1").await.unwrap(),
        Send,
        "a new window"
    );
}

async fn held_back_notifications_outlive_their_window(c: &dyn Coordinator) {
    let limit = RateLimit {
        capacity: 1,
        window: Duration::from_millis(300),
    };
    let admit = |user| c.admit_notification("database_failure", limit, user);
    assert_eq!(admit("u1").await.unwrap(), NotifyAdmission::Send);
    assert_eq!(admit("u1").await.unwrap(), NotifyAdmission::Suppressed);
    tokio::time::sleep(Duration::from_millis(400)).await;
    // A new window starts before anyone took the old one's digest.
    assert_eq!(admit("u2").await.unwrap(), NotifyAdmission::Send);
    assert_eq!(admit("u2").await.unwrap(), NotifyAdmission::Suppressed);
    assert_eq!(admit("u3").await.unwrap(), NotifyAdmission::Suppressed);
    assert_eq!(
        c.take_suppressed("database_failure").await.unwrap(),
        Some(Suppressed {
            count: 1,
            affected_users: 1
        }),
        "the ended window's digest, not the running one's"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        c.take_suppressed("database_failure").await.unwrap(),
        Some(Suppressed {
            count: 2,
            affected_users: 2
        })
    );
}

async fn heartbeat_and_check_answer(c: &dyn Coordinator) {
    c.heartbeat("gw-a", r#"{"connections":0}"#, Duration::from_secs(1))
        .await
        .unwrap();
    c.check().await.unwrap();
}

async fn takeover_lock_is_one_admin_at_a_time(c: &dyn Coordinator) {
    let ttl = Duration::from_secs(10);
    let t0 = Timestamp::from_millis(1_000);
    assert_eq!(c.admin_holder("s1").await.unwrap(), None);
    let AdminClaim::Taken(ann) = c
        .claim_admin("s1", "adm-ann", "Ann / Support", t0, ttl)
        .await
        .unwrap()
    else {
        panic!("a free lock is taken");
    };
    assert_eq!(ann.admin_name, "Ann / Support");
    assert_eq!(ann.since, t0);
    assert_eq!(c.admin_holder("s1").await.unwrap(), Some(ann.clone()));

    let later = Timestamp::from_millis(2_000);
    assert_eq!(
        c.claim_admin("s1", "adm-bob", "Bob", later, ttl).await.unwrap(),
        AdminClaim::HeldBy(ann.clone()),
        "a second admin is refused and told who holds it"
    );
    assert_eq!(
        c.claim_admin("s1", "adm-ann", "Ann / Support", later, ttl)
            .await
            .unwrap(),
        AdminClaim::Resumed(ann.clone()),
        "the holder resumes the same takeover (same start)"
    );
    // An admin id that is a prefix of the holder's is someone else.
    assert!(matches!(
        c.claim_admin("s1", "adm", "A", later, ttl).await.unwrap(),
        AdminClaim::HeldBy(_)
    ));
    assert_eq!(
        c.renew_admins(
            &[("s1".into(), "adm-bob".into()), ("s1".into(), "adm-ann".into())],
            ttl
        )
        .await
        .unwrap(),
        vec![false, true]
    );
    assert_eq!(
        c.release_admin("s1", "adm-bob").await.unwrap(),
        None,
        "only the holder releases"
    );
    assert_eq!(c.release_admin("s1", "adm-ann").await.unwrap(), Some(ann));
    assert_eq!(c.admin_holder("s1").await.unwrap(), None);
    assert!(matches!(
        c.claim_admin("s1", "adm-bob", "Bob", later, ttl).await.unwrap(),
        AdminClaim::Taken(_)
    ));
}

async fn takeover_lock_expires_without_renewal(c: &dyn Coordinator) {
    let short = Duration::from_millis(300);
    let now = Timestamp::now();
    assert!(matches!(
        c.claim_admin("s2", "adm-1", "One", now, short).await.unwrap(),
        AdminClaim::Taken(_)
    ));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        c.renew_admins(&[("s2".into(), "adm-1".into())], short)
            .await
            .unwrap(),
        vec![true]
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(c.admin_holder("s2").await.unwrap().is_some(), "renewed in time");
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(
        c.admin_holder("s2").await.unwrap(),
        None,
        "expired without renewal"
    );
    assert_eq!(
        c.renew_admins(&[("s2".into(), "adm-1".into())], short)
            .await
            .unwrap(),
        vec![false]
    );
}

async fn watchers_are_listed_while_renewed(c: &dyn Coordinator) {
    let ann = Watcher {
        admin_id: "adm-ann".into(),
        admin_name: "Ann".into(),
    };
    let bob = Watcher {
        admin_id: "adm-bob".into(),
        admin_name: "Bob/B".into(),
    };
    c.watch("s3", &ann, Duration::from_secs(10)).await.unwrap();
    c.watch("s3", &bob, Duration::from_millis(300)).await.unwrap();
    assert_eq!(watchers_of(c, "s3").await, vec![ann.clone(), bob.clone()]);
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(
        watchers_of(c, "s3").await,
        vec![ann.clone()],
        "a watcher not renewed expires alone"
    );
    c.watch("s3", &bob, Duration::from_secs(10)).await.unwrap();
    c.unwatch("s3", "adm-ann").await.unwrap();
    assert_eq!(watchers_of(c, "s3").await, vec![bob]);
    c.unwatch("s3", "adm-nobody").await.unwrap();
}

async fn live_state_and_pods(c: &dyn Coordinator) {
    let ttl = Duration::from_secs(10);
    let claim = c.claim_owner("s4", "gw-a", 3, ttl).await.unwrap();
    c.claim_admin("s4", "adm-1", "One", Timestamp::from_millis(5), ttl)
        .await
        .unwrap();
    let states = c
        .live_state(&["s4".to_owned(), "nowhere".to_owned()])
        .await
        .unwrap();
    assert_eq!(states.len(), 2);
    assert_eq!(states[0].owner, Some(claim.token));
    assert_eq!(
        states[0].assisting.as_ref().map(|h| h.admin_id.as_str()),
        Some("adm-1")
    );
    assert!(states[0].watchers.is_empty());
    assert_eq!(states[1], Default::default());

    c.heartbeat("gw-a", r#"{"connections":2}"#, ttl).await.unwrap();
    c.heartbeat("gw-b", r#"{"connections":5}"#, Duration::from_millis(200))
        .await
        .unwrap();
    let pods = c.pods().await.unwrap();
    assert_eq!(
        pods.iter().map(|p| p.pod_id.as_str()).collect::<Vec<_>>(),
        vec!["gw-a", "gw-b"]
    );
    assert_eq!(pods[1].info, r#"{"connections":5}"#);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pods = c.pods().await.unwrap();
    assert_eq!(pods.len(), 1, "a pod that stopped beating is gone: {pods:?}");
}

async fn watchers_of(c: &dyn Coordinator, session_id: &str) -> Vec<Watcher> {
    c.live_state(&[session_id.to_owned()])
        .await
        .unwrap()
        .remove(0)
        .watchers
}
