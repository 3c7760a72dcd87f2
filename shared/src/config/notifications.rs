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

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Secret, duration};

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

/// Which service sends e-mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmailEngine {
    /// An SMTP server (`[chatbox.notifications.smtp]`).
    Smtp,
    /// Amazon SES (`[chatbox.notifications.ses]`).
    Ses,
    /// Only logged: nothing leaves the process.
    Log,
}

/// Which service sends SMS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmsEngine {
    /// Twilio's Messages API (`[chatbox.notifications.twilio]`).
    Twilio,
    /// Only logged.
    Log,
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

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (port 587).
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption (a relay on loopback, a test sink).
    None,
}

/// `[chatbox.notifications.smtp]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpConfig {
    /// Server host name (`SMTP_HOST`).
    pub host: String,
    /// Server port (`SMTP_PORT`).
    pub port: u16,
    /// Login, if the server wants one (`SMTP_USER`).
    pub username: String,
    /// Password (`SMTP_PASS`). Never logged.
    pub password: Secret,
    /// `starttls`, `tls` or `none`.
    pub tls: SmtpTls,
    /// How long connecting and each command may take.
    #[serde(with = "duration")]
    pub timeout: Duration,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            host: String::new(),
            port: 587,
            username: String::new(),
            password: Secret::default(),
            tls: SmtpTls::Starttls,
            timeout: Duration::from_secs(10),
        }
    }
}

/// `[chatbox.notifications.ses]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SesConfig {
    /// AWS region (`SES_REGION`).
    pub region: String,
    /// Access key id (`SES_ACCESS_KEY_ID`).
    pub access_key_id: String,
    /// Secret access key (`SES_SECRET_ACCESS_KEY`). Never logged.
    pub secret_access_key: Secret,
    /// Base URL of the SES API; empty: `https://email.<region>.amazonaws.com`.
    pub endpoint: String,
    /// How long one request may take.
    #[serde(with = "duration")]
    pub timeout: Duration,
}

impl Default for SesConfig {
    fn default() -> Self {
        SesConfig {
            region: "us-east-1".into(),
            access_key_id: String::new(),
            secret_access_key: Secret::default(),
            endpoint: String::new(),
            timeout: Duration::from_secs(10),
        }
    }
}

impl SesConfig {
    /// The base URL requests go to.
    pub fn base_url(&self) -> String {
        if self.endpoint.is_empty() {
            format!("https://email.{}.amazonaws.com", self.region)
        } else {
            self.endpoint.trim_end_matches('/').to_owned()
        }
    }
}

/// `[chatbox.notifications.twilio]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TwilioConfig {
    /// Account SID, `AC…` (`TWILIO_ACCOUNT_SID`).
    pub account_sid: String,
    /// Auth token (`TWILIO_AUTH_TOKEN`). Never logged.
    pub auth_token: Secret,
    /// The sending number in E.164 (`TWILIO_FROM_NUMBER`).
    pub from_number: String,
    /// Base URL of the API.
    pub base_url: String,
    /// How long one request may take.
    #[serde(with = "duration")]
    pub timeout: Duration,
}

impl Default for TwilioConfig {
    fn default() -> Self {
        TwilioConfig {
            account_sid: String::new(),
            auth_token: Secret::default(),
            from_number: String::new(),
            base_url: "https://api.twilio.com".into(),
            timeout: Duration::from_secs(10),
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
}

/// Whether `s` looks like an e-mail address: `local@domain`, no white
/// space or angle brackets. (Deliverability is the mail server's call.)
pub fn is_email_address(s: &str) -> bool {
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
pub fn is_e164(s: &str) -> bool {
    let Some(digits) = s.strip_prefix('+') else {
        return false;
    };
    (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0')
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
