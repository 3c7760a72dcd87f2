//! Staff in the loop across pods: two gateways and two workers on real
//! Redis, NATS and the MongoDB stand-in, the mock LLM, a real SMTP sink
//! and a server that checks Twilio's request format. A user on gateway A,
//! admins on gateway B (and A): help request, watch, takeover, release,
//! the audit log, presence, rate-limited notifications, and the admin API
//! refusing users.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::sinks::{SmtpSink, TwilioRecorder};
use crate::support::*;

const WAIT: Duration = Duration::from_secs(20);

/// Two gateways, two workers sharing one mock LLM, the mail sink and the
/// SMS recorder. (Fields drop in order: processes before the namespace.)
struct StaffCluster {
    gateways: Vec<Proc>,
    _workers: Vec<Proc>,
    mock: Proc,
    smtp: SmtpSink,
    sms: TwilioRecorder,
    _ns: TestNamespace,
}

impl StaffCluster {
    async fn start(mock_args: &[&str], per_window: u32, window: &str) -> StaffCluster {
        let ns = TestNamespace::new();
        let dir = log_dir(&ns.name);
        let smtp = SmtpSink::start();
        let sms = TwilioRecorder::start(TWILIO_SID, "twilio-secret").await;
        let mock = start_mock(&dir, "mock", mock_args).await;
        let config = staff_config(&dir, &mock.addr, &smtp, &sms, per_window, window);
        let mut env = scaled_env(&ns);
        env.extend(
            [
                ("CHATBOX_ADMIN_TAKEOVER_GRACE", "2s"),
                ("CHATBOX_ADMIN_TAKEOVER_CHECK_INTERVAL", "300ms"),
                ("CHATBOX_ADMIN_SAMPLE_INTERVAL", "500ms"),
                ("CHATBOX_GATEWAY_HEARTBEAT_INTERVAL", "500ms"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
        );
        let workers = vec![
            start_worker(&dir, &env, "worker-a", Some(&config)).await,
            start_worker(&dir, &env, "worker-b", Some(&config)).await,
        ];
        let gateways = vec![
            start_gateway(&dir, &env, "gateway-a").await,
            start_gateway(&dir, &env, "gateway-b").await,
        ];
        StaffCluster {
            gateways,
            _workers: workers,
            mock,
            smtp,
            sms,
            _ns: ns,
        }
    }

    fn url(&self, gateway: usize, path: &str) -> String {
        format!("http://{}{path}", self.gateways[gateway].addr)
    }
}

/// The workers' configuration: the mock LLM, mail to the sink, SMS to the
/// recorder, `per_window` notifications per `window`.
fn staff_config(
    dir: &Path,
    mock_addr: &str,
    smtp: &SmtpSink,
    sms: &TwilioRecorder,
    per_window: u32,
    window: &str,
) -> std::path::PathBuf {
    let path = dir.join("staff.toml");
    let text = format!(
        r#"[[chatbox.llm.providers]]
id = "mock"
name = "Mock"
type = "openai"
endpoint = "http://{mock_addr}/v1"
model = "mock-model"

{notifications}
"#,
        notifications = notifications_toml(smtp, sms, per_window, window),
    );
    std::fs::write(&path, text).expect("config file");
    path
}

const TWILIO_SID: &str = "AC00000000000000000000000000000001";

/// Mail to the sink and SMS to the recorder, `per_window` of each event
/// per `window`; help requests go by both (the default rule).
fn notifications_toml(smtp: &SmtpSink, sms: &TwilioRecorder, per_window: u32, window: &str) -> String {
    format!(
        r#"[chatbox.notifications]
admin_emails = ["oncall@example.com"]
admin_phones = ["+15550001111"]
admin_console_url = "https://console.example/chat/admin/"
from = "chatbox@example.com"
email_engine = "smtp"
sms_engine = "twilio"

[chatbox.notifications.smtp]
host = "127.0.0.1"
port = {port}
tls = "none"

[chatbox.notifications.twilio]
account_sid = "{sid}"
auth_token = "{token}"
from_number = "+15550002222"
base_url = "{base}"

[chatbox.notifications.rate_limit]
max_per_window = {per_window}
window = "{window}"
"#,
        port = smtp.port,
        sid = sms.account_sid,
        token = sms.auth_token,
        base = sms.base_url,
    )
}

fn admin_token(sub: &str, name: &str) -> String {
    token_named(sub, name, &["admin"])
}

async fn api(method: reqwest::Method, url: &str, token: &str) -> (u16, Value) {
    let response = http()
        .request(method, url)
        .bearer_auth(token)
        .send()
        .await
        .expect("admin API answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn admin_get(url: &str, token: &str) -> Value {
    let (status, body) = api(reqwest::Method::GET, url, token).await;
    assert_eq!(status, 200, "{url}: {body}");
    body
}

fn frames_of<'a>(client: &'a Client, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    client.frames.iter().filter(move |f| f["type"] == kind)
}

#[tokio::test]
async fn help_watch_takeover_and_release_across_two_gateways() {
    let c = StaffCluster::start(&["--chunks", "4"], 5, "1m").await;
    let mut user = Client::connect(&c.gateways[0].addr, &token("ann", &[]), None).await;
    let sid = user.status().await["session_id"].as_str().unwrap().to_owned();

    // Help request: flagged, acknowledged, mailed and texted.
    user.send(json!({"type": "help_request", "id": "h1", "content": "I need a person"}))
        .await;
    let ack = user.until(WAIT, |f| f["type"] == "help_request").await;
    assert_eq!(ack["id"], "h1");
    assert_eq!(ack["metadata"]["status"], "requested");
    let mails = c.smtp.wait_for(1, WAIT).await;
    assert_eq!(mails.len(), 1, "one mail for one help request");
    let mail = &mails[0];
    for needle in ["ann", sid.as_str(), "?session=", "I need a person"] {
        assert!(
            mail.body.contains(needle),
            "mail body lacks {needle:?}:\n{}",
            mail.body
        );
    }
    let texts = c.sms.wait_for(1, WAIT).await;
    assert_eq!(texts.len(), 1, "one SMS for one help request");
    assert!(texts[0].body.contains(&sid), "SMS body: {}", texts[0].body);

    let alice = admin_token("adm-alice", "Alice");
    let listed = admin_get(
        &c.url(1, "/chat/admin/sessions?help_requested=true&status=active"),
        &alice,
    )
    .await;
    let row = listed["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["session_id"] == sid.as_str())
        .unwrap_or_else(|| panic!("flagged session listed: {listed}"))
        .clone();
    assert_eq!(row["help_requested"], true);
    assert_eq!(row["connected"], true);
    assert_eq!(row["gateway"], "gateway-a", "the admin sees where the user is");

    // Alice watches from gateway B and sees the next turn as it streams.
    let mut admin = Client::connect_admin(&c.gateways[1].addr, &alice).await;
    admin
        .send(json!({"type": "watch", "id": "w1", "session_id": sid}))
        .await;
    let state = admin.until(WAIT, |f| f["type"] == "session_state").await;
    assert_eq!(state["id"], "w1");
    assert!(
        state["data"]["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["type"] == "help_request"),
        "the watch starts with the conversation so far: {state}"
    );
    assert_eq!(state["data"]["session"]["watchers"][0]["admin_name"], "Alice");

    user.say("m1", "hello there").await;
    user.answer(WAIT).await;
    let echo = admin
        .until(WAIT, |f| f["type"] == "user_message" && f["id"] == "m1")
        .await;
    assert_eq!(echo["content"], "hello there");
    let done = admin.answer(WAIT).await;
    assert!(
        done["content"]
            .as_str()
            .unwrap()
            .starts_with("You said: hello there")
    );
    assert!(
        frames_of(&admin, "ai_response").any(|f| f["done"] == false),
        "the admin sees the streamed chunks, not only the end"
    );
    let completions = mock_completions(&c.mock).await;
    assert_eq!(completions, 1);

    // Takeover: the user is told who assists; the model is silent.
    admin
        .send(json!({"type": "takeover", "id": "t1", "session_id": sid}))
        .await;
    let taken = admin
        .until(WAIT, |f| f["type"] == "takeover" || f["type"] == "error")
        .await;
    assert_eq!(taken["type"], "takeover", "{taken}");
    assert_eq!(taken["data"]["admin_name"], "Alice");
    let join = user.until(WAIT, |f| f["type"] == "admin_join").await;
    assert_eq!(join["content"], "Assisted by Alice");
    assert_eq!(join["sender"], "admin");

    user.say("m2", "are you a person?").await;
    let heard = admin
        .until(WAIT, |f| f["type"] == "user_message" && f["id"] == "m2")
        .await;
    assert_eq!(heard["sender"], "user");
    admin
        .send(json!({"type": "typing_indicator", "session_id": sid, "metadata": {"active": "true"}}))
        .await;
    let typing = user
        .until(WAIT, |f| {
            f["type"] == "typing_indicator" && f["sender"] == "admin"
        })
        .await;
    assert_eq!(
        typing["metadata"]["admin_name"], "Alice",
        "the user sees who types"
    );
    admin
        .send(
            json!({"type": "user_message", "id": "a1", "session_id": sid, "content": "Yes, this is Alice."}),
        )
        .await;
    let reply = user
        .until(WAIT, |f| f["type"] == "user_message" && f["sender"] == "admin")
        .await;
    assert_eq!(reply["content"], "Yes, this is Alice.");
    assert_eq!(reply["metadata"]["admin_name"], "Alice");

    // A second admin, on gateway A, is refused and told who holds it.
    let bob = admin_token("adm-bob", "Bob");
    let mut second = Client::connect_admin(&c.gateways[0].addr, &bob).await;
    second
        .send(json!({"type": "takeover", "id": "t2", "session_id": sid}))
        .await;
    let refused = second
        .until(WAIT, |f| f["type"] == "error" && f["id"] == "t2")
        .await;
    assert!(is_error(&refused, "SESSION_LOCKED"), "{refused}");
    assert!(refused["error"]["message"].as_str().unwrap().contains("Alice"));
    let (status, body) = api(
        reqwest::Method::POST,
        &c.url(0, &format!("/chat/admin/takeover/{sid}")),
        &bob,
    )
    .await;
    assert_eq!(status, 409, "{body}");
    // Presence: Alice sees Bob watching too.
    let presence = admin
        .until(WAIT, |f| {
            f["type"] == "presence" && f["data"]["watchers"].as_array().is_some_and(|w| w.len() == 2)
        })
        .await;
    assert_eq!(presence["data"]["assisting"]["admin_name"], "Alice");
    assert_eq!(
        completions,
        mock_completions(&c.mock).await,
        "no model call during the takeover"
    );

    // Release: the user is told; the model answers again.
    admin
        .send(json!({"type": "release", "id": "r1", "session_id": sid}))
        .await;
    let leave = user.until(WAIT, |f| f["type"] == "admin_leave").await;
    assert_eq!(leave["metadata"]["reason"], "released");
    user.say("m3", "thanks").await;
    let again = user.answer(WAIT).await;
    assert!(again["content"].as_str().unwrap().starts_with("You said: thanks"));
    assert_eq!(mock_completions(&c.mock).await, completions + 1);

    let detail = admin_get(&c.url(0, &format!("/chat/admin/sessions/{sid}")), &alice).await;
    assert_eq!(detail["session"]["admin_assisted"], true);
    let takeovers = detail["takeovers"].as_array().unwrap();
    assert_eq!(takeovers.len(), 1, "{detail}");
    assert_eq!(takeovers[0]["admin_id"], "adm-alice");
    assert_eq!(takeovers[0]["admin_name"], "Alice");
    assert_eq!(takeovers[0]["end_reason"], "released");
    assert!(takeovers[0]["ended_at"].as_str().unwrap() >= takeovers[0]["started_at"].as_str().unwrap());
    let kinds: Vec<&str> = detail["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "help_request",
            "user_message",
            "ai_response",
            "admin_join",
            "user_message",
            "user_message",
            "admin_leave",
            "user_message",
            "ai_response"
        ],
        "the history keeps who joined and when"
    );

    tokio::time::sleep(Duration::from_secs(1)).await;
    let metrics = admin_get(&c.url(1, "/chat/admin/metrics"), &alice).await;
    assert_eq!(metrics["total_sessions"], 1, "{metrics}");
    assert_eq!(metrics["help_requests"], 1);
    assert_eq!(metrics["admin_assisted"], 1);
    assert!(metrics["samples"].as_u64().unwrap() >= 1, "{metrics}");
    assert!(metrics["max_concurrent"].as_u64().unwrap() >= 1, "{metrics}");
    assert_eq!(metrics["connected_sessions"], 1, "{metrics}");
    assert!(metrics["total_tokens"].as_u64().unwrap() > 0);
    assert!(metrics.get("series").is_none(), "no series unless asked");

    let charted = admin_get(&c.url(1, "/chat/admin/metrics?buckets=6"), &alice).await;
    let series = charted["series"].as_array().unwrap();
    assert_eq!(series.len(), 6, "{charted}");
    assert_eq!(series[0]["from"], charted["from"]);
    assert_eq!(series[5]["to"], charted["to"]);
    for pair in series.windows(2) {
        assert_eq!(pair[0]["to"], pair[1]["from"], "buckets are contiguous");
    }
    let sum = |key: &str| series.iter().map(|b| b[key].as_u64().unwrap()).sum::<u64>();
    assert_eq!(sum("sessions"), 1, "the session is in exactly one bucket");
    assert_eq!(series[5]["sessions"], 1, "…the latest one: {charted}");
    assert_eq!(sum("help_requests"), 1);
    assert_eq!(sum("admin_assisted"), 1);
    assert_eq!(sum("tokens"), charted["total_tokens"].as_u64().unwrap());
    assert_eq!(
        series.iter().map(|b| b["max_concurrent"].as_u64().unwrap()).max(),
        charted["max_concurrent"].as_u64(),
        "the busiest bucket holds the period's peak"
    );
    for bad in ["0", "201", "x"] {
        let url = c.url(1, &format!("/chat/admin/metrics?buckets={bad}"));
        let (status, body) = api(reqwest::Method::GET, &url, &alice).await;
        assert_eq!(status, 400, "buckets={bad}: {body}");
    }
}

#[tokio::test]
async fn a_takeover_stops_the_streaming_answer_and_an_admin_who_vanishes_is_let_go() {
    let c = StaffCluster::start(&["--chunks", "40", "--chunk-delay", "100"], 5, "1m").await;
    let mut user = Client::connect(&c.gateways[0].addr, &token("cy", &[]), None).await;
    let sid = user.status().await["session_id"].as_str().unwrap().to_owned();
    user.say("long", "tell me a long story").await;
    user.until(WAIT, |f| f["type"] == "ai_response" && f["done"] == false)
        .await;

    let mut admin = Client::connect_admin(&c.gateways[1].addr, &admin_token("adm-dee", "Dee")).await;
    admin
        .send(json!({"type": "takeover", "id": "t", "session_id": sid}))
        .await;
    admin.until(WAIT, |f| f["type"] == "takeover").await;
    let stopped = user.answer(WAIT).await;
    assert_eq!(
        stopped["metadata"]["finish_reason"], "admin_takeover",
        "{stopped}"
    );
    let join = user.until(WAIT, |f| f["type"] == "admin_join").await;
    assert!(
        join["seq"].as_u64() > stopped["seq"].as_u64(),
        "the stopped answer is kept before the admin joins"
    );

    // The admin's socket drops without a release: after the grace period
    // the user is told and the takeover is closed in the audit log.
    drop(admin);
    let leave = user
        .until(Duration::from_secs(15), |f| f["type"] == "admin_leave")
        .await;
    assert_eq!(leave["metadata"]["reason"], "disconnected");
    let detail = admin_get(
        &c.url(0, &format!("/chat/admin/sessions/{sid}")),
        &admin_token("adm-eve", "Eve"),
    )
    .await;
    assert_eq!(detail["takeovers"][0]["end_reason"], "disconnected");
    assert!(detail["session"]["assisting"].is_null(), "{detail}");
    user.say("back", "hello?").await;
    let answered = user
        .until(WAIT, |f| {
            f["type"] == "ai_response" && f["done"] == true && f["seq"].as_u64() > leave["seq"].as_u64()
        })
        .await;
    assert_eq!(answered["metadata"]["finish_reason"], "complete");
}

#[tokio::test]
async fn a_burst_of_fifty_help_requests_sends_the_configured_number_and_one_digest() {
    let c = StaffCluster::start(&[], 3, "8s").await;
    let mut users = Vec::new();
    for i in 0..10 {
        let mut u = Client::connect(&c.gateways[i % 2].addr, &token(&format!("u{i}"), &[]), None).await;
        u.status().await;
        users.push(u);
    }
    for round in 0..5 {
        for u in users.iter_mut() {
            u.send(json!({"type": "help_request", "id": format!("h{round}")}))
                .await;
        }
    }
    for u in users.iter_mut() {
        for _ in 0..5 {
            u.until(WAIT, |f| f["type"] == "help_request").await;
        }
    }
    let burst = c.smtp.wait_for(3, WAIT).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        c.smtp.messages().len(),
        3,
        "at most 3 mails in the window: {burst:?}"
    );
    assert_eq!(c.sms.requests().len(), 3, "at most 3 texts in the window");
    let all = c.smtp.wait_for(4, Duration::from_secs(20)).await;
    assert_eq!(all.len(), 4, "one digest after the window");
    let digest = &all[3];
    assert!(
        digest.body.contains("47"),
        "the digest counts what was held back:\n{}",
        digest.body
    );
    assert!(
        digest.body.contains("10"),
        "and the users affected:\n{}",
        digest.body
    );
}

#[tokio::test]
async fn users_are_refused_by_every_admin_endpoint() {
    let ns = TestNamespace::new();
    let dir = log_dir(&ns.name);
    let mut env = scaled_env(&ns);
    env.push(("CORS_ALLOWED_ORIGINS".into(), "https://console.example".into()));
    let _worker = start_worker(&dir, &env, "worker", None).await;
    let gateway = start_gateway(&dir, &env, "gateway").await;
    let user = token("mallory", &["user"]);
    let base = format!("http://{}", gateway.addr);
    for (method, path) in [
        (reqwest::Method::GET, "/chat/admin/sessions"),
        (reqwest::Method::GET, "/chat/admin/sessions/s1"),
        (reqwest::Method::GET, "/chat/admin/metrics"),
        (reqwest::Method::POST, "/chat/admin/takeover/s1"),
        (reqwest::Method::DELETE, "/chat/admin/takeover/s1"),
    ] {
        let (status, body) = api(method.clone(), &format!("{base}{path}"), &user).await;
        assert_eq!(status, 403, "{method} {path}: {body}");
        assert_eq!(body["error"]["code"], "FORBIDDEN", "{body}");
        let anonymous = http()
            .request(method.clone(), format!("{base}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            anonymous.status().as_u16(),
            401,
            "{method} {path} without a token"
        );
    }
    let refused = Client::try_connect_admin(&gateway.addr, &user)
        .await
        .err()
        .expect("refused");
    assert_eq!(refused.status, 403);
    assert_eq!(refused.body["error"]["code"], "FORBIDDEN");

    // CORS: the listed console may call the API with credentials; others
    // get no CORS headers.
    for (origin, allowed) in [("https://console.example", true), ("https://evil.example", false)] {
        let preflight = http()
            .request(reqwest::Method::OPTIONS, format!("{base}/chat/admin/sessions"))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
            .send()
            .await
            .unwrap();
        let headers = preflight.headers();
        let allow = headers
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap().to_owned());
        if allowed {
            assert_eq!(preflight.status().as_u16(), 200);
            assert_eq!(allow.as_deref(), Some(origin));
            assert_eq!(headers["access-control-allow-credentials"], "true");
            assert!(
                headers["access-control-allow-headers"]
                    .to_str()
                    .unwrap()
                    .contains("authorization")
            );
        } else {
            assert_eq!(allow, None, "{origin} is not allowed");
        }
    }
    let actual = http()
        .get(format!("{base}/chat/admin/sessions"))
        .header("origin", "https://console.example")
        .bearer_auth(&user)
        .send()
        .await
        .unwrap();
    assert_eq!(actual.status().as_u16(), 403);
    assert_eq!(
        actual.headers()["access-control-allow-origin"],
        "https://console.example",
        "errors carry CORS headers too, so the console can read them"
    );

    // A user socket cannot send admin frames either.
    let mut socket = Client::connect(&gateway.addr, &user, None).await;
    socket.status().await;
    socket.send(json!({"type": "takeover", "session_id": "s1"})).await;
    let error = socket.until(WAIT, |f| f["type"] == "error").await;
    assert!(is_error(&error, "NOT_ALLOWED"), "{error}");
    drop(ns);
}
