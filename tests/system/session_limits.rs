//! Issue 23, item 6: one active session per user holds under a burst of
//! connects, and a user's socket opens, history and renames are
//! rate-limited, each kind from its own bucket, with `RATE_LIMITED` in the
//! seed's error format — a worker and two gateways on the real backplane.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::*;

const WAIT: Duration = Duration::from_secs(20);

/// How long a socket is watched for a close before it counts as open.
const SETTLE: Duration = Duration::from_secs(3);

/// A worker and two gateways; the gateways' addresses.
struct Cluster {
    gateways: Vec<String>,
    _procs: Vec<Proc>,
    _ns: TestNamespace,
}

impl Cluster {
    async fn start(extra: &[(&str, &str)]) -> Cluster {
        let ns = TestNamespace::new();
        let dir = log_dir(&ns.name);
        let mut env = scaled_env(&ns);
        env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        let worker = start_worker(&dir, &env, "worker", None).await;
        let g1 = start_gateway(&dir, &env, "gateway-1").await;
        let g2 = start_gateway(&dir, &env, "gateway-2").await;
        Cluster {
            gateways: vec![g1.addr.clone(), g2.addr.clone()],
            _procs: vec![worker, g1, g2],
            _ns: ns,
        }
    }
}

/// What became of one socket of the burst.
enum Outcome {
    /// Refused before a session: the error frame.
    Refused(Value),
    /// Given session `0`, then closed (by a newer socket of the user).
    Closed(String),
    /// Given session `0`, and still open.
    Open(String, Box<Client>),
}

async fn burst_socket(addr: String, user: String) -> Outcome {
    let mut client = match Client::try_connect_new_session(&addr, &user).await {
        Ok(client) => client,
        Err(refusal) => panic!("upgrade refused: {refusal:?}"),
    };
    let first = client.next(WAIT).await.expect("a first frame");
    if first["type"] == "error" {
        return Outcome::Refused(first);
    }
    assert_eq!(first["type"], "connection_status", "{first}");
    let sid = first["session_id"].as_str().expect("session id").to_owned();
    let deadline = tokio::time::Instant::now() + SETTLE;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return Outcome::Open(sid, Box::new(client));
        }
        match tokio::time::timeout(left, client.next(WAIT)).await {
            Err(_) => return Outcome::Open(sid, Box::new(client)),
            Ok(Err(_closed)) => return Outcome::Closed(sid),
            Ok(Ok(_frame)) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_of_new_sessions_leaves_one_socket_on_one_live_session() {
    let cluster = Cluster::start(&[]).await;
    let user = token("burst", &[]);
    let sockets: Vec<_> = (0..30)
        .map(|i| tokio::spawn(burst_socket(cluster.gateways[i % 2].clone(), user.clone())))
        .collect();
    let mut refused = Vec::new();
    let mut opened = Vec::new();
    let mut open = Vec::new();
    for socket in sockets {
        match socket.await.expect("socket task") {
            Outcome::Refused(error) => refused.push(error),
            Outcome::Closed(sid) => opened.push(sid),
            Outcome::Open(sid, client) => {
                opened.push(sid.clone());
                open.push((sid, client));
            }
        }
    }
    // Session opens are limited (chatbox.session_rate_limit, 20 a minute).
    assert!(
        opened.len() <= 20,
        "{} sessions opened in one burst",
        opened.len()
    );
    assert_eq!(refused.len() + opened.len(), 30);
    for error in &refused {
        assert!(is_error(error, "RATE_LIMITED"), "{error}");
        assert!(error["error"]["retry_after"].as_u64().is_some(), "{error}");
    }
    assert_eq!(
        open.len(),
        1,
        "exactly one socket stays open: {:?}",
        open.iter().map(|(sid, _)| sid).collect::<Vec<_>>()
    );
    let (sid, mut client) = open.pop().expect("one open socket");
    // It works, on the one live session.
    client.send(json!({"type": "get_history", "id": "h"})).await;
    let page = client.until(WAIT, |f| f["id"] == "h").await;
    assert_eq!(page["type"], "history", "{page}");
    let list: Value = http()
        .get(format!("http://{}/chat/sessions?limit=100", cluster.gateways[0]))
        .bearer_auth(&user)
        .send()
        .await
        .expect("list sessions")
        .json()
        .await
        .expect("session list");
    let live: Vec<&str> = list["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .filter(|s| s["is_active"] == true)
        .filter_map(|s| s["session_id"].as_str())
        .collect();
    assert_eq!(
        live,
        vec![sid.as_str()],
        "one live session, the open socket's: {list}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn history_and_renames_are_rate_limited_per_user_and_kind() {
    let cluster = Cluster::start(&[("CHATBOX_REQUEST_RATE_LIMIT", "5")]).await;
    let addr = &cluster.gateways[0];
    let user = token("chatty", &[]);
    let mut client = Client::connect(addr, &user, None).await;
    let sid = client.status().await["session_id"]
        .as_str()
        .expect("session id")
        .to_owned();
    // More than the bucket, in a burst: 5 answered, the rest refused.
    let mut answered = 0;
    for i in 0..8 {
        client
            .send(json!({"type": "get_history", "id": format!("h{i}")}))
            .await;
        let id = format!("h{i}");
        let reply = client.until(WAIT, |f| f["id"] == id.as_str()).await;
        if reply["type"] == "history" {
            answered += 1;
        } else {
            assert!(is_error(&reply, "RATE_LIMITED"), "{reply}");
            assert!(reply["error"]["retry_after"].as_u64().is_some(), "{reply}");
        }
    }
    assert_eq!(answered, 5, "the bucket, no more");
    // HTTP draws from the same bucket: 429 with Retry-After.
    let response = http()
        .get(format!("http://{addr}/chat/sessions/{sid}/messages"))
        .bearer_auth(&user)
        .send()
        .await
        .expect("history over HTTP");
    assert_eq!(response.status().as_u16(), 429);
    assert!(response.headers().get("retry-after").is_some());
    let body: Value = response.json().await.expect("error body");
    assert_eq!(body["type"], "error", "{body}");
    assert_eq!(body["error"]["code"], "RATE_LIMITED", "{body}");
    // Renames have a bucket of their own.
    client
        .send(json!({"type": "rename_session", "id": "r", "content": "Plans"}))
        .await;
    let renamed = client.until(WAIT, |f| f["id"] == "r").await;
    assert_eq!(renamed["type"], "session_renamed", "{renamed}");
    // Another user is not affected.
    let mut other = Client::connect(addr, &token("quiet", &[]), None).await;
    other.status().await;
    other.send(json!({"type": "get_history", "id": "h"})).await;
    let page = other.until(WAIT, |f| f["id"] == "h").await;
    assert_eq!(page["type"], "history", "{page}");
}
