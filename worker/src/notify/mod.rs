//! Notifications: telling the admins about help requests and failures
//! (the seed's notification service; properties 38–41 and 52: docs/PROPERTIES.md#p38).
//!
//! Something happens — a user asks for help, a model's circuit breaker
//! opens, the database refuses a write — and the code that saw it raises an
//! [`Alert`] with [`Notifications::notify`]. The [`service`] decides, from
//! the event's rule, which [`Channel`]s it goes out on and to whom, asks
//! the coordinator whether the burst it belongs to is still within the
//! rate limit (across every worker), renders it ([`render`]) and hands it
//! to each channel's [`Notifier`]: e-mail through [`smtp`] or [`ses`], SMS
//! through [`twilio`], or only the [`log`]. What the rate limit held back
//! is summed up in one digest per window.
//!
//! Every message carries what happened, how many users it touched and
//! when; a help request's also the user, the session and a link into the
//! admin console.

mod http;
mod log;
mod service;
mod ses;
mod smtp;
mod twilio;

use async_trait::async_trait;
use chatbox_shared::protocol::Timestamp;

pub use chatbox_shared::config::notifications::{Channel, EventKind};
pub use service::{Delivery, Notifications, Outcome};

/// Something the admins should hear about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    /// What kind of event.
    pub event: EventKind,
    /// One line: what happened.
    pub title: String,
    /// Error details, or what happened at length.
    pub details: String,
    /// Users it touched.
    pub affected_users: u64,
    /// When it happened.
    pub at: Timestamp,
    /// The session it is about, if one.
    pub session_id: Option<String>,
    /// The user it is about, if one.
    pub user_id: Option<String>,
    /// The pod that raised it.
    pub source: String,
}

impl Alert {
    /// An alert raised now by pod `source`, touching no one in particular.
    pub fn new(
        event: EventKind,
        title: impl Into<String>,
        details: impl Into<String>,
        source: impl Into<String>,
    ) -> Self {
        Alert {
            event,
            title: title.into(),
            details: details.into(),
            affected_users: 0,
            at: Timestamp::now(),
            session_id: None,
            user_id: None,
            source: source.into(),
        }
    }

    /// The same, touching `count` users.
    pub fn affecting(mut self, count: u64) -> Self {
        self.affected_users = count;
        self
    }

    /// The same, about `session_id` of `user_id`.
    pub fn about(mut self, session_id: impl Into<String>, user_id: impl Into<String>) -> Self {
        self.session_id = Some(session_id.into());
        self.user_id = Some(user_id.into());
        self
    }
}

/// An alert as people read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Message {
    /// What it is about.
    pub event: EventKind,
    /// The e-mail subject: one line.
    pub subject: String,
    /// The e-mail body: plain text.
    pub body: String,
    /// The SMS text: the same facts, short.
    pub short: String,
    /// What the log notifier writes instead of sending: the facts without
    /// what a user wrote (a help request's text is conversation content,
    /// encrypted at rest; the log gets its ids and the console's link).
    pub log: String,
}

/// Longest SMS text: three segments, so a long error does not become ten
/// messages.
const SHORT_MAX: usize = 459;

/// Longest error details in an SMS.
const SHORT_DETAILS_MAX: usize = 160;

/// Renders `alert`; `console_url` is the admin console, which a message
/// about a session links to (`<console_url>?session=<id>`).
pub(crate) fn render(alert: &Alert, console_url: &str) -> Message {
    let title = one_line(&alert.title);
    let link = alert
        .session_id
        .as_deref()
        .map(|sid| console_link(console_url, sid));
    let subject = match (alert.event, &alert.user_id, &alert.session_id) {
        (EventKind::HelpRequest, Some(user), Some(session)) => {
            format!("[chatbox] Help requested by user {user} (session {session})")
        }
        (event, ..) => format!("[chatbox] {}: {title}", event.label()),
    };

    let mut facts = vec![
        ("Event", alert.event.label().to_owned()),
        ("Time", alert.at.to_string()),
        ("Affected users", alert.affected_users.to_string()),
    ];
    if let Some(user) = &alert.user_id {
        facts.push(("User", user.clone()));
    }
    if let Some(session) = &alert.session_id {
        facts.push(("Session", session.clone()));
    }
    if let Some(link) = &link {
        facts.push(("Admin console", link.clone()));
    }
    facts.push(("Raised by", alert.source.clone()));
    let mut body = format!("{title}\n\n");
    for (name, value) in &facts {
        body.push_str(&format!("{:<16}{value}\n", format!("{name}:")));
    }
    let details = alert.details.trim();
    body.push_str("\nDetails:\n");
    body.push_str(if details.is_empty() { "(none)" } else { details });
    body.push('\n');

    let mut short = format!("[chatbox] {}: {title}.", alert.event.label());
    if let Some(user) = &alert.user_id {
        short.push_str(&format!(" User {user}."));
    }
    if let Some(session) = &alert.session_id {
        short.push_str(&format!(" Session {session}."));
    }
    short.push_str(&format!(
        " Affected users: {}. At {}.",
        alert.affected_users, alert.at
    ));
    if !details.is_empty() {
        short.push_str(&format!(" {}", truncate(&one_line(details), SHORT_DETAILS_MAX)));
    }
    if let Some(link) = &link {
        // The link goes last and whole: a cut link is useless.
        short = truncate(&short, SHORT_MAX.saturating_sub(link.len() + 1));
        short.push(' ');
        short.push_str(link);
    } else {
        short = truncate(&short, SHORT_MAX);
    }

    let log = match alert.event {
        EventKind::HelpRequest => match &link {
            Some(link) => format!("{subject}: {link}"),
            None => subject.clone(),
        },
        _ => short.clone(),
    };
    Message {
        event: alert.event,
        log,
        subject: truncate(&subject, 200),
        body,
        short,
    }
}

/// `<console_url>?session=<session_id>` (`&session=` if it has a query).
pub(crate) fn console_link(console_url: &str, session_id: &str) -> String {
    match reqwest::Url::parse(console_url) {
        Ok(mut url) => {
            url.query_pairs_mut().append_pair("session", session_id);
            url.to_string()
        }
        Err(_) => format!("{console_url}?session={session_id}"),
    }
}

/// `text` on one line: line breaks and other control characters become
/// spaces (a subject with a line break would be a header injection).
fn one_line(text: &str) -> String {
    let line: String = text
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    line.split(' ')
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// At most `max` characters, with `…` where it was cut.
fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// Why a notification could not be sent.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum NotifyError {
    /// The service could not be reached, or did not answer in time.
    #[error("cannot reach {service}: {message}")]
    Unreachable {
        /// `smtp`, `ses`, `twilio`.
        service: &'static str,
        /// What went wrong.
        message: String,
    },
    /// The service answered with a refusal.
    #[error("{service} refused the message: {message}")]
    Refused {
        /// `smtp`, `ses`, `twilio`.
        service: &'static str,
        /// Its reason, as it gave it.
        message: String,
    },
    /// The message or its recipient is unusable.
    #[error("invalid message: {0}")]
    Invalid(String),
}

/// The Notifier port: one channel's way out.
#[async_trait]
pub(crate) trait Notifier: Send + Sync + 'static {
    /// Which adapter this is, for logs (`smtp`, `ses`, `twilio`, `log`).
    fn adapter(&self) -> &'static str;

    /// Whether it can only send to configured recipients (the log adapter
    /// writes the message down even when there are none).
    fn needs_recipients(&self) -> bool {
        true
    }

    /// Sends `message` to one recipient: an e-mail address or an E.164
    /// phone number.
    async fn send(&self, to: &str, message: &Message) -> Result<(), NotifyError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn help_request() -> Alert {
        Alert {
            at: Timestamp::from_millis(1_700_000_000_000),
            ..Alert::new(
                EventKind::HelpRequest,
                "A user asked for help",
                "I cannot log in",
                "worker-1",
            )
            .affecting(1)
            .about("sess-1", "user-7")
        }
    }

    #[test]
    fn a_help_request_names_user_session_time_and_link() {
        let m = render(&help_request(), "https://chat.example.com/chat/admin/");
        let link = "https://chat.example.com/chat/admin/?session=sess-1";
        assert_eq!(
            m.subject,
            "[chatbox] Help requested by user user-7 (session sess-1)"
        );
        for text in [&m.body, &m.short] {
            for needle in [
                "user-7",
                "sess-1",
                "2023-11-14T22:13:20.000Z",
                link,
                "I cannot log in",
            ] {
                assert!(text.contains(needle), "{needle:?} missing from {text}");
            }
        }
        assert!(m.body.contains("Affected users: 1"), "{}", m.body);
        assert!(m.short.ends_with(link), "{}", m.short);
    }

    #[test]
    fn every_message_has_details_affected_users_and_time() {
        let mut alert = Alert::new(
            EventKind::LlmFailure,
            "provider gpt\nis down",
            "HTTP 503: overloaded",
            "w",
        )
        .affecting(5);
        alert.details.push_str(&"x".repeat(2000));
        let m = render(&alert, "http://localhost:8080/chat/admin/");
        assert_eq!(m.subject, "[chatbox] LLM failure: provider gpt is down");
        for text in [&m.body, &m.short] {
            assert!(text.contains("HTTP 503: overloaded"), "{text}");
            assert!(text.contains("Affected users: 5"), "{text}");
            assert!(text.contains(&alert.at.to_string()), "{text}");
        }
        assert!(m.short.chars().count() <= SHORT_MAX, "{}", m.short.len());
        assert!(!m.body.contains("Admin console"), "no session, no link");
    }

    #[test]
    fn links_keep_an_existing_query_and_escape_the_id() {
        assert_eq!(
            console_link("https://a.example/admin?tab=live", "s 1&x"),
            "https://a.example/admin?tab=live&session=s+1%26x"
        );
    }
}
