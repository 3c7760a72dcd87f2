//! The services that send notifications: which one sends e-mail (SMTP,
//! Amazon SES, or the log) and which sends SMS (Twilio, or the log), and
//! the settings of each (`[chatbox.notifications.smtp]`, `.ses`,
//! `.twilio`).
//!
//! The seed's `SMTP_HOST`, `SMTP_PORT`, `SMTP_USER`, `SMTP_PASS`,
//! `SES_REGION`, `SES_ACCESS_KEY_ID`, `SES_SECRET_ACCESS_KEY`,
//! `TWILIO_ACCOUNT_SID`, `TWILIO_AUTH_TOKEN` and `TWILIO_FROM_NUMBER` set
//! their keys. A service's settings are checked only when it is the chosen
//! engine. Re-exported from [`super`], as `config::notifications::SmtpConfig`
//! and so on.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::is_e164;
use crate::config::problems::Problems;
use crate::config::{Secret, duration};

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

impl SmtpConfig {
    /// A host to reach, and no password sent in the clear.
    pub(super) fn check(&self, p: &mut Problems) {
        p.check(
            !self.host.trim().is_empty(),
            "chatbox.notifications.smtp.host",
            || "is required when email_engine is smtp".into(),
        );
        p.check(self.port > 0, "chatbox.notifications.smtp.port", || {
            "must be a port number".into()
        });
        p.check(
            self.username.is_empty() || !self.password.is_empty(),
            "chatbox.notifications.smtp.password",
            || "is required when smtp.username is set".into(),
        );
        p.check(
            self.username.is_empty() || self.tls != SmtpTls::None,
            "chatbox.notifications.smtp.tls",
            || "must be starttls or tls when a password is sent".into(),
        );
        p.positive(self.timeout, "chatbox.notifications.smtp.timeout");
    }
}

impl SesConfig {
    /// A region, both credentials, and an http(s) endpoint if one is set.
    pub(super) fn check(&self, p: &mut Problems) {
        p.check(
            !self.region.trim().is_empty(),
            "chatbox.notifications.ses.region",
            || "is required when email_engine is ses".into(),
        );
        p.check(
            !self.access_key_id.is_empty(),
            "chatbox.notifications.ses.access_key_id",
            || "is required when email_engine is ses".into(),
        );
        p.check(
            !self.secret_access_key.is_empty(),
            "chatbox.notifications.ses.secret_access_key",
            || "is required when email_engine is ses".into(),
        );
        let endpoint = &self.endpoint;
        p.check(
            endpoint.is_empty() || endpoint.starts_with("http://") || endpoint.starts_with("https://"),
            "chatbox.notifications.ses.endpoint",
            || format!("{endpoint:?} must be an http(s) URL"),
        );
        p.positive(self.timeout, "chatbox.notifications.ses.timeout");
    }
}

impl TwilioConfig {
    /// The account, its token, a sending number in E.164, an http(s) API.
    pub(super) fn check(&self, p: &mut Problems) {
        p.check(
            !self.account_sid.is_empty(),
            "chatbox.notifications.twilio.account_sid",
            || "is required when sms_engine is twilio".into(),
        );
        p.check(
            !self.auth_token.is_empty(),
            "chatbox.notifications.twilio.auth_token",
            || "is required when sms_engine is twilio".into(),
        );
        p.check(is_e164(&self.from_number), "chatbox.notifications.twilio.from_number", || {
                format!(
                    "{:?} must be the sending number in E.164, like +14155550100 (required when sms_engine is twilio)",
                    self.from_number
                )
            });
        p.check(
            self.base_url.starts_with("http://") || self.base_url.starts_with("https://"),
            "chatbox.notifications.twilio.base_url",
            || format!("{:?} must be an http(s) URL", self.base_url),
        );
        p.positive(self.timeout, "chatbox.notifications.twilio.timeout");
    }
}
