//! Notifications to real servers: the worker's notification service
//! sending mail through aiosmtpd, SMS to a server that checks Twilio's
//! request format, mail to one that verifies SES's signatures; the rate
//! limit on the real Redis, shared by two services as by two workers; and
//! a provider failing behind the real binary until its circuit breaker
//! opens and the admins get mail.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chatbox_shared::config::notifications::{
    Channel, EmailEngine, EventKind, NotificationRule, SmsEngine, SmtpTls,
};
use chatbox_shared::config::{Config, NotificationsConfig, Secret};
use chatbox_shared::coordinator::{Coordinator, MemoryCoordinator, RedisCoordinator, RedisOptions};
use chatbox_shared::namespace::Namespace;
use chatbox_shared::protocol::Timestamp;
use chatbox_worker::notify::{Alert, Delivery, Notifications, Outcome};
use futures_util::future::join_all;
use tokio_util::sync::CancellationToken;

use crate::sinks::{SesRecorder, SmtpSink, TwilioRecorder};
use crate::support::*;

const CONSOLE: &str = "https://chat.example.com/chat/admin/";
const LINK: &str = "https://chat.example.com/chat/admin/?session=sess-42";
const SID: &str = "AC0123456789abcdef0123456789abcdef";

fn config(set: impl FnOnce(&mut NotificationsConfig)) -> Config {
    let mut config = Config::default();
    let n = &mut config.chatbox.notifications;
    n.admin_console_url = CONSOLE.into();
    n.from = "noreply@example.com".into();
    set(n);
    config
}

/// Mail to the sink: plain SMTP on loopback.
fn to_sink(n: &mut NotificationsConfig, sink: &SmtpSink) {
    n.email_engine = EmailEngine::Smtp;
    n.smtp.host = "127.0.0.1".into();
    n.smtp.port = sink.port;
    n.smtp.tls = SmtpTls::None;
    n.smtp.timeout = Duration::from_secs(5);
}

/// SMS to the recorder.
fn to_recorder(n: &mut NotificationsConfig, recorder: &TwilioRecorder, token: &str) {
    n.sms_engine = SmsEngine::Twilio;
    n.twilio.base_url = recorder.base_url.clone();
    n.twilio.account_sid = recorder.account_sid.clone();
    n.twilio.auth_token = Secret::new(token);
    n.twilio.from_number = "+14155550199".into();
}

fn rule(event: EventKind, channels: &[Channel]) -> NotificationRule {
    NotificationRule {
        event,
        channels: channels.to_vec(),
        enabled: true,
        emails: None,
        phones: None,
    }
}

fn service(config: &Config) -> Arc<Notifications> {
    let coordinator: Arc<dyn Coordinator> = Arc::new(MemoryCoordinator::new(Namespace::default().keys()));
    Notifications::from_config(config, coordinator, "worker-1").expect("notifications")
}

fn help_request() -> Alert {
    Alert::new(
        EventKind::HelpRequest,
        "A user asked for a person",
        "\"I cannot log in\"",
        "worker-1",
    )
    .affecting(1)
    .about("sess-42", "user-7")
}

/// Logs written on this thread while the guard lives (a `#[tokio::test]`
/// runs on one thread).
struct Logs {
    buffer: Arc<Mutex<Vec<u8>>>,
    _guard: tracing::subscriber::DefaultGuard,
}

#[derive(Clone)]
struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn capture() -> Logs {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = LogWriter(Arc::clone(&buffer));
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .finish();
        Logs {
            buffer,
            _guard: tracing::subscriber::set_default(subscriber),
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.buffer.lock().unwrap()).into_owned()
    }
}

fn delivery(channel: Channel, outcome: Outcome, recipients: usize) -> Delivery {
    Delivery {
        channel,
        outcome,
        recipients,
        errors: Vec::new(),
    }
}

/// The errors of the one delivery, on `channel`, that failed for its one
/// recipient.
fn one_failure(deliveries: &[Delivery], channel: Channel) -> &[String] {
    match deliveries {
        [d] if d.channel == channel && d.outcome == Outcome::Failed && d.recipients == 1 => &d.errors,
        _ => panic!("expected one failed {channel:?} delivery: {deliveries:?}"),
    }
}

#[tokio::test]
async fn a_help_request_mails_every_admin_with_user_session_time_and_link() {
    let sink = SmtpSink::start();
    let config = config(|n| {
        to_sink(n, &sink);
        n.admin_emails = vec!["ops@example.com".into(), "oncall@example.com".into()];
        n.from_name = "Chat Support".into();
        n.reply_to = "support@example.com".into();
        n.rules = vec![rule(EventKind::HelpRequest, &[Channel::Email])];
    });
    let alert = help_request();
    let deliveries = service(&config).deliver(&alert).await;
    assert_eq!(deliveries, [delivery(Channel::Email, Outcome::Sent, 2)]);

    let mails = sink.wait_for(2, Duration::from_secs(10)).await;
    let mut to: Vec<&str> = mails.iter().map(|m| m.to.as_str()).collect();
    to.sort();
    assert_eq!(to, ["oncall@example.com", "ops@example.com"]);
    for mail in &mails {
        assert_eq!(mail.from, "\"Chat Support\" <noreply@example.com>");
        assert_eq!(mail.reply_to, "support@example.com");
        assert_eq!(
            mail.subject,
            "[chatbox] Help requested by user user-7 (session sess-42)"
        );
        for needle in [
            "User:           user-7",
            "Session:        sess-42",
            &format!("Time:           {}", alert.at),
            &format!("Admin console:  {LINK}"),
            "Affected users: 1",
            "\"I cannot log in\"",
        ] {
            assert!(mail.body.contains(needle), "{needle:?} not in\n{}", mail.body);
        }
    }
}

#[tokio::test]
async fn a_help_request_texts_every_admin_through_twilio() {
    let recorder = TwilioRecorder::start(SID, "token-123").await;
    let config = config(|n| {
        to_recorder(n, &recorder, "token-123");
        n.admin_phones = vec!["+14155550100".into(), "+447911123456".into()];
        n.rules = vec![rule(EventKind::HelpRequest, &[Channel::Sms])];
    });
    let alert = help_request();
    let deliveries = service(&config).deliver(&alert).await;
    assert_eq!(deliveries, [delivery(Channel::Sms, Outcome::Sent, 2)]);

    let mut sent = recorder.requests();
    sent.sort_by(|a, b| a.to.cmp(&b.to));
    assert_eq!(
        sent.iter().map(|s| s.to.as_str()).collect::<Vec<_>>(),
        ["+14155550100", "+447911123456"]
    );
    for sms in &sent {
        assert_eq!(sms.from, "+14155550199");
        for needle in [
            "user-7",
            "sess-42",
            &alert.at.to_string(),
            "Affected users: 1",
            LINK,
        ] {
            assert!(sms.body.contains(needle), "{needle:?} not in {:?}", sms.body);
        }
    }
    assert!(recorder.refused().is_empty());
}

#[tokio::test]
async fn twilio_refusals_are_failures_with_twilios_reason() {
    let recorder = TwilioRecorder::start(SID, "token-123").await;
    let config = config(|n| {
        to_recorder(n, &recorder, "not-the-token");
        n.admin_phones = vec!["+14155550100".into()];
        n.rules = vec![rule(EventKind::HelpRequest, &[Channel::Sms])];
    });
    let deliveries = service(&config).deliver(&help_request()).await;
    let errors = one_failure(&deliveries, Channel::Sms);
    assert!(
        errors[0].contains("HTTP 401, Twilio error 20003: Authenticate"),
        "{errors:?}"
    );
    assert!(!errors[0].contains("not-the-token"));
    assert!(recorder.requests().is_empty());
}

#[tokio::test]
async fn rules_pick_the_channels_and_recipients_and_can_silence_an_event() {
    let sink = SmtpSink::start();
    let recorder = TwilioRecorder::start(SID, "token-123").await;
    let config = config(|n| {
        to_sink(n, &sink);
        to_recorder(n, &recorder, "token-123");
        n.admin_emails = vec!["ops@example.com".into()];
        n.admin_phones = vec!["+14155550100".into()];
        n.rules = vec![
            rule(EventKind::HelpRequest, &[Channel::Email]),
            NotificationRule {
                enabled: false,
                ..rule(EventKind::LlmFailure, &[Channel::Email, Channel::Sms])
            },
            NotificationRule {
                phones: Some(vec!["+4915112345678".into()]),
                ..rule(EventKind::ServiceCrash, &[Channel::Sms])
            },
        ];
    });
    let notifications = service(&config);

    let deliveries = notifications.deliver(&help_request()).await;
    assert_eq!(deliveries, [delivery(Channel::Email, Outcome::Sent, 1)]);
    let silenced = Alert::new(EventKind::LlmFailure, "gpt is down", "HTTP 503", "worker-1");
    assert_eq!(notifications.deliver(&silenced).await, []);
    let crash = Alert::new(
        EventKind::ServiceCrash,
        "worker-2 died",
        "exit code 137",
        "worker-1",
    )
    .affecting(12);
    assert_eq!(
        notifications.deliver(&crash).await,
        [delivery(Channel::Sms, Outcome::Sent, 1)]
    );

    // SMTP answers after the mail is stored, so everything has arrived.
    let mails = sink.messages();
    assert_eq!(mails.len(), 1, "{mails:#?}");
    assert!(mails[0].subject.contains("Help requested"));
    let texts = recorder.requests();
    assert_eq!(texts.len(), 1, "help requests go by e-mail only here: {texts:?}");
    assert_eq!(texts[0].to, "+4915112345678", "the rule's own recipients");
    assert!(
        texts[0].body.contains("Service crash: worker-2 died"),
        "{}",
        texts[0].body
    );
    assert!(texts[0].body.contains("Affected users: 12"), "{}", texts[0].body);
}

#[tokio::test]
async fn an_unreachable_mail_server_is_a_failure_that_is_logged_and_counted() {
    let logs = Logs::capture();
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let metrics = recorder.handle();
    let _local = metrics::set_default_local_recorder(&recorder);
    let config = config(|n| {
        n.email_engine = EmailEngine::Smtp;
        n.smtp.host = "127.0.0.1".into();
        n.smtp.port = free_port();
        n.smtp.tls = SmtpTls::Starttls;
        n.smtp.username = "mailer".into();
        n.smtp.password = Secret::new("hunter2-secret");
        n.smtp.timeout = Duration::from_secs(3);
        n.admin_emails = vec!["ops@example.com".into()];
    });
    let deliveries = service(&config)
        .deliver(&Alert::new(
            EventKind::DatabaseFailure,
            "writes fail",
            "connection refused",
            "worker-1",
        ))
        .await;
    let errors = one_failure(&deliveries, Channel::Email);
    assert!(
        errors[0].starts_with("ops@example.com: cannot reach smtp"),
        "{errors:?}"
    );

    let text = logs.text();
    let line = text
        .lines()
        .find(|l| l.contains("notification failed"))
        .unwrap_or_else(|| panic!("no failure logged:\n{text}"));
    assert!(line.contains("ERROR"), "{line}");
    for field in ["database_failure", "email", "smtp", "recipients=1"] {
        assert!(line.contains(field), "{field:?} not in {line}");
    }
    assert!(!text.contains("hunter2-secret"), "a secret was logged:\n{text}");

    let rendered = metrics.render();
    assert!(
        rendered
            .lines()
            .any(|l| l.starts_with("chatbox_notifications_total")
                && l.contains("event=\"database_failure\"")
                && l.contains("channel=\"email\"")
                && l.contains("outcome=\"failed\"")
                && l.ends_with(" 1")),
        "{rendered}"
    );
}

#[tokio::test]
async fn a_burst_across_two_workers_sends_at_most_the_limit_then_one_digest() {
    let sink = SmtpSink::start();
    let ns = TestNamespace::new();
    let window = Duration::from_secs(2);
    let config = config(|n| {
        to_sink(n, &sink);
        n.admin_emails = vec!["ops@example.com".into()];
        n.rate_limit.max_per_window = 3;
        n.rate_limit.window = window;
    });
    let mut workers = Vec::new();
    for pod in ["worker-a", "worker-b"] {
        let redis = RedisCoordinator::connect(RedisOptions {
            url: redis_url(),
            pool_size: 1,
            connect_timeout: Duration::from_secs(5),
            command_timeout: Duration::from_secs(2),
            keys: Namespace::new(&ns.name).unwrap().keys(),
        })
        .await
        .expect("redis");
        workers.push(Notifications::from_config(&config, Arc::new(redis), pod).unwrap());
    }

    let alerts: Vec<Alert> = (0..20)
        .map(|i| {
            Alert::new(
                EventKind::DatabaseFailure,
                format!("write {i} failed"),
                "E11000 timeout",
                "worker",
            )
            .affecting(1)
            .about(format!("sess-{i}"), format!("user-{i}"))
        })
        .collect();
    let outcomes: Vec<Outcome> = join_all(
        alerts
            .iter()
            .enumerate()
            .map(|(i, alert)| workers[i % 2].deliver(alert)),
    )
    .await
    .into_iter()
    .flatten()
    .map(|d| d.outcome)
    .collect();
    let count = |o: Outcome| outcomes.iter().filter(|x| **x == o).count();
    assert_eq!(
        (
            count(Outcome::Sent),
            count(Outcome::Suppressed),
            count(Outcome::Failed)
        ),
        (3, 17, 0),
        "{outcomes:?}"
    );
    assert_eq!(sink.messages().len(), 3);

    let stop = CancellationToken::new();
    for worker in &workers {
        tokio::spawn(Arc::clone(worker).digest_loop(stop.clone()));
    }
    let mails = sink.wait_for(4, window + Duration::from_secs(10)).await;
    // Both workers keep looking; only one may have sent the digest.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mails_later = sink.messages();
    stop.cancel();
    assert_eq!(mails_later.len(), 4, "one digest: {mails_later:#?}");
    let digest = &mails[3];
    assert_eq!(
        digest.subject,
        "[chatbox] Database failure: 17 more notifications held back"
    );
    for needle in [
        "17 database failure notifications were held back by the rate limit (3 per 2s)",
        "they touched 17 distinct users",
        "Affected users: 17",
        "Time:",
    ] {
        assert!(digest.body.contains(needle), "{needle:?} not in\n{}", digest.body);
    }
}

#[tokio::test]
async fn ses_gets_a_send_email_request_signed_with_sigv4() {
    let ses = SesRecorder::start(
        "eu-west-1",
        "AKIDEXAMPLE",
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
    )
    .await;
    let signed_with = |secret: &str| {
        config(|n| {
            n.email_engine = EmailEngine::Ses;
            n.ses.region = "eu-west-1".into();
            n.ses.access_key_id = "AKIDEXAMPLE".into();
            n.ses.secret_access_key = Secret::new(secret);
            n.ses.endpoint = ses.base_url.clone();
            n.admin_emails = vec!["ops@example.com".into()];
            n.reply_to = "support@example.com".into();
            n.rules = vec![rule(EventKind::HelpRequest, &[Channel::Email])];
        })
    };
    let alert = help_request();
    let deliveries = service(&signed_with("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"))
        .deliver(&alert)
        .await;
    assert_eq!(deliveries, [delivery(Channel::Email, Outcome::Sent, 1)]);
    let sent = ses.requests();
    assert_eq!(sent.len(), 1, "refused: {:?}", ses.refused());
    assert_eq!(sent[0].from, "Chat Support <noreply@example.com>");
    assert_eq!(sent[0].to, ["ops@example.com"]);
    assert_eq!(sent[0].reply_to, ["support@example.com"]);
    assert_eq!(
        sent[0].subject,
        "[chatbox] Help requested by user user-7 (session sess-42)"
    );
    assert!(sent[0].body.contains(LINK) && sent[0].body.contains(&alert.at.to_string()));

    let deliveries = service(&signed_with("a-wrong-secret")).deliver(&alert).await;
    let errors = one_failure(&deliveries, Channel::Email);
    assert!(
        errors[0].contains("HTTP 403 SignatureDoesNotMatchException"),
        "{errors:?}"
    );
    assert_eq!(ses.requests().len(), 1);
}

#[tokio::test]
async fn without_engines_notifications_are_written_to_the_log() {
    let logs = Logs::capture();
    let config = config(|_| {});
    let deliveries = service(&config).deliver(&help_request()).await;
    assert_eq!(
        deliveries,
        [
            delivery(Channel::Email, Outcome::Sent, 0),
            delivery(Channel::Sms, Outcome::Sent, 0)
        ]
    );
    let text = logs.text();
    let logged: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("notification (log only)"))
        .collect();
    assert_eq!(logged.len(), 2, "{text}");
    assert!(logged.iter().all(|l| l.contains("WARN")), "{text}");
    // Each id and the console's link are in both lines; what the user
    // wrote is conversation content, encrypted at rest: never in the log.
    for needle in ["user-7", "sess-42", LINK] {
        assert!(
            text.matches(needle).count() >= 2,
            "{needle:?} not in both:\n{text}"
        );
    }
    assert!(
        !text.contains("I cannot log in"),
        "the help text reached the log:\n{text}"
    );
}

#[tokio::test]
async fn a_provider_that_keeps_failing_opens_its_breaker_and_the_admins_get_mail() {
    let sink = SmtpSink::start();
    let dir = log_dir(&unique("notify-breaker"));
    let mock = start_mock(&dir, "mock", &[]).await;
    let path = dir.join("chatbox.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[chatbox.llm.retry]
attempts = 1

[chatbox.llm.breaker]
failure_threshold = 2
open_for = "1m"

[[chatbox.llm.providers]]
id = "flaky"
type = "openai"
endpoint = "http://{mock}/v1"
headers = {{ "x-mock-fail-status" = "500" }}

[chatbox.notifications]
admin_emails = ["ops@example.com"]
admin_console_url = "{CONSOLE}"
from = "noreply@example.com"
email_engine = "smtp"

[chatbox.notifications.smtp]
host = "127.0.0.1"
port = {port}
tls = "none"
"#,
            mock = mock.addr,
            port = sink.port,
        ),
    )
    .expect("config file");
    let env = vec![
        ("JWT_SECRET".to_owned(), SECRET.to_owned()),
        ("CHATBOX_CONFIG".to_owned(), path.display().to_string()),
    ];
    let server = start_all_in_one(&dir, &env, "all-in-one").await;
    let mut client = Client::connect(&server.addr, &token("fay", &[]), None).await;
    client.status().await;
    let before = Timestamp::now();
    for id in ["m1", "m2"] {
        client.say(id, "anyone there?").await;
        let error = client
            .until(Duration::from_secs(20), |f| f["type"] == "error" && f["id"] == id)
            .await;
        assert!(is_error(&error, "LLM_UNAVAILABLE"), "{error}");
    }

    let mails = sink.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(mails.len(), 1, "one breaker opening, one mail: {mails:#?}");
    let mail = &mails[0];
    assert_eq!(mail.to, "ops@example.com");
    assert_eq!(
        mail.subject,
        "[chatbox] LLM failure: model provider flaky keeps failing: its circuit breaker opened"
    );
    for needle in [
        "Provider: flaky",
        "Failed requests in a row: 2",
        "Affected users: 2",
        "HTTP 500",
        "Raised by:      local",
    ] {
        assert!(mail.body.contains(needle), "{needle:?} not in\n{}", mail.body);
    }
    let time = mail
        .body
        .lines()
        .find_map(|l| l.strip_prefix("Time:"))
        .and_then(|t| Timestamp::parse(t.trim()))
        .expect("a time");
    assert!(time >= before, "{time} is before the failures");
    assert!(server.log_text().contains("notification sent"));
}
