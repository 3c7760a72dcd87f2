//! `[chatbox.notifications]`: who hears about help requests and failures,
//! and how (the seed's `NotificationConfig`, `[mail]` and `[sms]`).
//!
//! Each [`EventKind`] goes out on the [`Channel`]s its rule names: e-mail
//! through one engine (SMTP, Amazon SES, or the log), SMS through Twilio
//! (or the log). Without rules every event goes by e-mail and help requests
//! by e-mail and SMS ([`NotificationsConfig::rule`]). A burst of one event
//! sends at most `rate_limit.max_per_window` per window across all
//! workers; what was held back is summed up in one digest when the window
//! ends.
//!
//! The seed's `ADMIN_EMAILS`, `ADMIN_PHONES`, `SMTP_*`, `SES_*` and
//! `TWILIO_*` variables set their keys (see [`super::env::SEED_ALIASES`]).
//! Checked for the worker and the all-in-one, the roles that send. The
//! sending services and their settings are in `engines.rs`.

mod engines;

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use engines::{EmailEngine, SesConfig, SmsEngine, SmtpConfig, SmtpTls, TwilioConfig};

use super::duration;
use super::problems::Problems;

/// What a notification is about (the seed's notification events).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A user asked for a person.
    HelpRequest,
    /// A language model keeps failing (its circuit breaker opened).
    LlmFailure,
    /// The database cannot store.
    DatabaseFailure,
    /// Traffic far from the usual.
    AbnormalTraffic,
    /// A pod or task died.
    ServiceCrash,
}

impl EventKind {
    /// Every kind, in a fixed order.
    pub const ALL: [EventKind; 5] = [
        EventKind::HelpRequest,
        EventKind::LlmFailure,
        EventKind::DatabaseFailure,
        EventKind::AbnormalTraffic,
        EventKind::ServiceCrash,
    ];

    /// The name in configuration, logs and metrics: `help_request`, ….
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::HelpRequest => "help_request",
            EventKind::LlmFailure => "llm_failure",
            EventKind::DatabaseFailure => "database_failure",
            EventKind::AbnormalTraffic => "abnormal_traffic",
            EventKind::ServiceCrash => "service_crash",
        }
    }

    /// The name people read: `Help request`, `LLM failure`, ….
    pub fn label(self) -> &'static str {
        match self {
            EventKind::HelpRequest => "Help request",
            EventKind::LlmFailure => "LLM failure",
            EventKind::DatabaseFailure => "Database failure",
            EventKind::AbnormalTraffic => "Abnormal traffic",
            EventKind::ServiceCrash => "Service crash",
        }
    }
}

/// How a notification reaches people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// E-mail to `admin_emails`.
    Email,
    /// SMS to `admin_phones`.
    Sms,
}

impl Channel {
    /// `email` or `sms`.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
        }
    }
}

/// `[chatbox.notifications]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotificationsConfig {
    /// Who gets e-mail (`ADMIN_EMAILS`, comma-separated).
    pub admin_emails: Vec<String>,
    /// Who gets SMS, in E.164 (`ADMIN_PHONES`, comma-separated).
    pub admin_phones: Vec<String>,
    /// The admin console; a help request links to
    /// `<admin_console_url>?session=<session_id>`.
    pub admin_console_url: String,
    /// The sender's address (`SMTP_FROM`).
    pub from: String,
    /// The sender's name.
    pub from_name: String,
    /// Where replies go, if not to `from`.
    pub reply_to: String,
    /// `smtp`, `ses` or `log`.
    pub email_engine: EmailEngine,
    /// `twilio` or `log`.
    pub sms_engine: SmsEngine,
    /// `[chatbox.notifications.smtp]`
    pub smtp: SmtpConfig,
    /// `[chatbox.notifications.ses]`
    pub ses: SesConfig,
    /// `[chatbox.notifications.twilio]`
    pub twilio: TwilioConfig,
    /// `[chatbox.notifications.rate_limit]`
    pub rate_limit: NotificationRateLimit,
    /// `[[chatbox.notifications.rules]]`; events without one follow the
    /// default rule.
    pub rules: Vec<NotificationRule>,
}

impl Default for NotificationsConfig {
    fn default() -> Self {
        NotificationsConfig {
            admin_emails: Vec::new(),
            admin_phones: Vec::new(),
            admin_console_url: "http://localhost:8080/chat/admin/".into(),
            from: "chatbox@localhost".into(),
            from_name: "Chat Support".into(),
            reply_to: String::new(),
            email_engine: EmailEngine::Log,
            sms_engine: SmsEngine::Log,
            smtp: SmtpConfig::default(),
            ses: SesConfig::default(),
            twilio: TwilioConfig::default(),
            rate_limit: NotificationRateLimit::default(),
            rules: Vec::new(),
        }
    }
}

/// `[chatbox.notifications.rate_limit]`: per event kind, across all
/// workers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotificationRateLimit {
    /// Notifications of one kind sent per window; the rest wait for the
    /// digest.
    pub max_per_window: u32,
    /// The window.
    #[serde(with = "duration")]
    pub window: Duration,
}

impl Default for NotificationRateLimit {
    fn default() -> Self {
        NotificationRateLimit {
            max_per_window: 3,
            window: Duration::from_secs(5 * 60),
        }
    }
}

/// One `[[chatbox.notifications.rules]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationRule {
    /// The event it is about.
    pub event: EventKind,
    /// Where it goes: `email`, `sms`.
    pub channels: Vec<Channel>,
    /// `false` sends nothing for the event.
    #[serde(default = "enabled")]
    pub enabled: bool,
    /// Recipients instead of `admin_emails`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emails: Option<Vec<String>>,
    /// Recipients instead of `admin_phones`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phones: Option<Vec<String>>,
}

fn enabled() -> bool {
    true
}

impl NotificationsConfig {
    /// The rule of `event`: the configured one, else the default (e-mail;
    /// help requests by e-mail and SMS).
    pub fn rule(&self, event: EventKind) -> NotificationRule {
        self.rules
            .iter()
            .find(|r| r.event == event)
            .cloned()
            .unwrap_or_else(|| NotificationRule {
                event,
                channels: match event {
                    EventKind::HelpRequest => vec![Channel::Email, Channel::Sms],
                    _ => vec![Channel::Email],
                },
                enabled: true,
                emails: None,
                phones: None,
            })
    }

    /// Who gets `event` on `channel` under `rule`.
    pub fn recipients<'a>(&'a self, rule: &'a NotificationRule, channel: Channel) -> &'a [String] {
        match channel {
            Channel::Email => rule.emails.as_deref().unwrap_or(&self.admin_emails),
            Channel::Sms => rule.phones.as_deref().unwrap_or(&self.admin_phones),
        }
    }

    /// The engines chosen have what they need, and every address and
    /// number is one.
    pub(super) fn check(&self, p: &mut Problems) {
        const KEY: &str = "chatbox.notifications";
        let emails = |p: &mut Problems, list: &[String], key: &str| {
            for address in list {
                p.check(is_email_address(address), key, || {
                    format!("{address:?} is not an e-mail address like ops@example.com")
                });
            }
        };
        let phones = |p: &mut Problems, list: &[String], key: &str| {
            for number in list {
                p.check(is_e164(number), key, || {
                    format!("{number:?} is not a phone number in E.164, like +14155550100")
                });
            }
        };
        emails(p, &self.admin_emails, &format!("{KEY}.admin_emails"));
        phones(p, &self.admin_phones, &format!("{KEY}.admin_phones"));
        let url = &self.admin_console_url;
        p.check(
            url.starts_with("http://") || url.starts_with("https://"),
            &format!("{KEY}.admin_console_url"),
            || format!("{url:?} must be an http(s) URL"),
        );
        p.check(is_email_address(&self.from), &format!("{KEY}.from"), || {
            format!(
                "{:?} is not an e-mail address like noreply@example.com",
                self.from
            )
        });
        p.check(
            self.reply_to.is_empty() || is_email_address(&self.reply_to),
            &format!("{KEY}.reply_to"),
            || format!("{:?} is not an e-mail address", self.reply_to),
        );
        match self.email_engine {
            EmailEngine::Smtp => self.smtp.check(p),
            EmailEngine::Ses => self.ses.check(p),
            EmailEngine::Log => {}
        }
        if self.sms_engine == SmsEngine::Twilio {
            self.twilio.check(p);
        }
        p.check(
            self.rate_limit.max_per_window > 0,
            &format!("{KEY}.rate_limit.max_per_window"),
            || "must be at least 1".into(),
        );
        p.positive(self.rate_limit.window, &format!("{KEY}.rate_limit.window"));
        let mut seen = Vec::new();
        for (i, rule) in self.rules.iter().enumerate() {
            let key = format!("{KEY}.rules[{i}]");
            p.check(!seen.contains(&rule.event), &format!("{key}.event"), || {
                format!("{:?} has a rule already", rule.event.as_str())
            });
            seen.push(rule.event);
            p.check(
                !rule.enabled || !rule.channels.is_empty(),
                &format!("{key}.channels"),
                || "names no channel; list email and/or sms, or set enabled = false".into(),
            );
            if let Some(list) = &rule.emails {
                emails(p, list, &format!("{key}.emails"));
            }
            if let Some(list) = &rule.phones {
                phones(p, list, &format!("{key}.phones"));
            }
        }
    }
}

/// Whether `s` looks like an e-mail address: `local@domain`, no white
/// space or angle brackets. (Deliverability is the mail server's call.)
fn is_email_address(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>,;\"".contains(c))
        && !domain.contains('@')
}

/// Whether `s` is a phone number in E.164: `+`, then 8 to 15 digits, the
/// first not zero.
fn is_e164(s: &str) -> bool {
    let Some(digits) = s.strip_prefix('+') else {
        return false;
    };
    (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::load;
    use crate::config::{ConfigError, Role};

    #[test]
    fn addresses_and_numbers() {
        assert!(is_email_address("ops@example.com"));
        assert!(is_email_address("root@localhost"));
        for bad in [
            "",
            "ops",
            "@example.com",
            "ops@",
            "a b@example.com",
            "<ops@example.com>",
            "a@b@c",
        ] {
            assert!(!is_email_address(bad), "{bad:?}");
        }
        assert!(is_e164("+14155550100"));
        assert!(is_e164("+447911123456"));
        for bad in [
            "14155550100",
            "+0123456789",
            "+1415",
            "+1 415 555 0100",
            "+1234567890123456",
        ] {
            assert!(!is_e164(bad), "{bad:?}");
        }
    }

    #[test]
    fn events_without_rules_follow_the_default() {
        let mut config = NotificationsConfig::default();
        assert_eq!(
            config.rule(EventKind::HelpRequest).channels,
            [Channel::Email, Channel::Sms]
        );
        assert_eq!(config.rule(EventKind::ServiceCrash).channels, [Channel::Email]);
        config.admin_emails = vec!["ops@example.com".into()];
        config.rules.push(NotificationRule {
            event: EventKind::ServiceCrash,
            channels: vec![Channel::Sms],
            enabled: true,
            emails: Some(vec!["oncall@example.com".into()]),
            phones: None,
        });
        let rule = config.rule(EventKind::ServiceCrash);
        assert_eq!(rule.channels, [Channel::Sms]);
        assert_eq!(config.recipients(&rule, Channel::Email), ["oncall@example.com"]);
        let rule = config.rule(EventKind::LlmFailure);
        assert_eq!(config.recipients(&rule, Channel::Email), ["ops@example.com"]);
        assert!(config.recipients(&rule, Channel::Sms).is_empty());
    }

    #[test]
    fn names_are_stable() {
        for event in EventKind::ALL {
            let json = serde_json::to_string(&event).unwrap();
            assert_eq!(json, format!("\"{}\"", event.as_str()));
        }
        assert_eq!(Channel::Sms.as_str(), "sms");
    }

    #[test]
    fn notifications_come_from_the_seed_variables_and_keep_their_secrets() {
        let file = "[chatbox.notifications]\nemail_engine = \"smtp\"\nsms_engine = \"twilio\"\n\
                    [[chatbox.notifications.rules]]\nevent = \"llm_failure\"\nchannels = [\"sms\"]\n";
        let c = load(
            Some(file),
            &[
                ("JWT_SECRET", "0123456789abcdef0123456789abcdef"),
                ("ENCRYPTION_KEY", "c3lzdGVtLXRlc3QtZW5jcnlwdGlvbi1rZXktMzJieXQ="),
                ("ADMIN_EMAILS", "ops@example.com, oncall@example.com"),
                ("ADMIN_PHONES", "+14155550100"),
                ("SMTP_HOST", "smtp.example.com"),
                ("SMTP_PORT", "2525"),
                ("SMTP_USER", "mailer"),
                ("SMTP_PASS", "smtp-secret"),
                ("SMTP_FROM", "noreply@example.com"),
                ("TWILIO_ACCOUNT_SID", "AC0123"),
                ("TWILIO_AUTH_TOKEN", "twilio-secret"),
                ("TWILIO_FROM_NUMBER", "+14155550199"),
                ("SES_SECRET_ACCESS_KEY", "ses-secret"),
                ("CHATBOX_NOTIFICATIONS_RATE_LIMIT_WINDOW", "1m"),
                ("S3_BUCKET", "chat-files"),
            ],
            Role::Worker,
        )
        .unwrap();
        let n = &c.chatbox.notifications;
        assert_eq!(n.admin_emails, ["ops@example.com", "oncall@example.com"]);
        assert_eq!(n.admin_phones, ["+14155550100"]);
        assert_eq!(
            (n.email_engine, n.sms_engine),
            (EmailEngine::Smtp, SmsEngine::Twilio)
        );
        assert_eq!((n.smtp.host.as_str(), n.smtp.port), ("smtp.example.com", 2525));
        assert_eq!(n.smtp.password.expose(), "smtp-secret");
        assert_eq!(n.from, "noreply@example.com");
        assert_eq!(n.twilio.auth_token.expose(), "twilio-secret");
        assert_eq!(n.rate_limit.window, Duration::from_secs(60));
        assert_eq!(n.rule(EventKind::LlmFailure).channels, [Channel::Sms]);
        let debug = format!("{c:?}");
        for secret in ["smtp-secret", "twilio-secret", "ses-secret"] {
            assert!(!debug.contains(secret), "{secret} printed");
        }
    }

    #[test]
    fn notification_problems_name_their_keys() {
        let problems = |file: &str, env: &[(&str, &str)]| match load(Some(file), env, Role::AllInOne) {
            Err(ConfigError::Invalid(problems)) => problems.join("\n"),
            Ok(_) => panic!("accepted: {file}"),
            Err(e) => panic!("{e}"),
        };
        let text = problems(
            "[chatbox.notifications]\nemail_engine = \"smtp\"\nsms_engine = \"twilio\"\n\
             admin_emails = [\"not-an-address\"]\nadmin_phones = [\"555-0100\"]\n\
             [chatbox.notifications.rate_limit]\nmax_per_window = 0\n",
            &[("TWILIO_AUTH_TOKEN", "twilio-secret")],
        );
        for expected in [
            "chatbox.notifications.smtp.host (CHATBOX_NOTIFICATIONS_SMTP_HOST or SMTP_HOST): is required when email_engine is smtp",
            "chatbox.notifications.twilio.account_sid (CHATBOX_NOTIFICATIONS_TWILIO_ACCOUNT_SID or TWILIO_ACCOUNT_SID): is required",
            "chatbox.notifications.twilio.from_number",
            "chatbox.notifications.admin_emails (CHATBOX_NOTIFICATIONS_ADMIN_EMAILS or ADMIN_EMAILS): \"not-an-address\"",
            "chatbox.notifications.admin_phones (CHATBOX_NOTIFICATIONS_ADMIN_PHONES or ADMIN_PHONES): \"555-0100\" is not a phone number in E.164",
            "chatbox.notifications.rate_limit.max_per_window (CHATBOX_NOTIFICATIONS_RATE_LIMIT_MAX_PER_WINDOW): must be at least 1",
        ] {
            assert!(text.contains(expected), "{expected:?} not in:\n{text}");
        }
        assert!(!text.contains("twilio-secret"));

        for (key, rule, word) in [
            (
                "event",
                "event = \"meteor_strike\"\nchannels = [\"email\"]",
                "meteor_strike",
            ),
            (
                "channels",
                "event = \"help_request\"\nchannels = [\"pigeon\"]",
                "pigeon",
            ),
        ] {
            let file = format!("[[chatbox.notifications.rules]]\n{rule}\n");
            let err = load(Some(&file), &[], Role::AllInOne).unwrap_err().to_string();
            assert!(
                err.contains(&format!("chatbox.notifications.rules[0].{key}")) && err.contains(word),
                "{err}"
            );
        }
        let text = problems(
            "[[chatbox.notifications.rules]]\nevent = \"help_request\"\nchannels = [\"sms\"]\nphones = [\"+1\"]\n\
             [[chatbox.notifications.rules]]\nevent = \"help_request\"\nchannels = []\n",
            &[],
        );
        assert!(
            text.contains("chatbox.notifications.rules[0].phones: \"+1\""),
            "{text}"
        );
        assert!(
            text.contains("chatbox.notifications.rules[1].event: \"help_request\" has a rule already"),
            "{text}"
        );
        assert!(
            text.contains("chatbox.notifications.rules[1].channels: names no channel"),
            "{text}"
        );
    }
}
