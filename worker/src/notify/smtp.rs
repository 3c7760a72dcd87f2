//! E-mail over SMTP (`lettre`): STARTTLS (port 587), TLS from the first
//! byte (465) or plain (a relay on loopback), with a login when one is
//! configured. A connection per message: notifications are few, and a
//! pooled connection would only go stale between them.

use async_trait::async_trait;
use chatbox_shared::config::NotificationsConfig;
use chatbox_shared::config::notifications::SmtpTls;
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message as Mail};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::{Message, Notifier, NotifyError};

/// Sends e-mail through an SMTP server.
pub(super) struct SmtpNotifier {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    reply_to: Option<Mailbox>,
}

/// The sender and reply-to mailboxes of `config`.
pub(super) fn mailboxes(config: &NotificationsConfig) -> Result<(Mailbox, Option<Mailbox>), String> {
    let address = |value: &str, key: &str| {
        value
            .parse::<Address>()
            .map_err(|e| format!("chatbox.notifications.{key}: {value:?} is not an e-mail address: {e}"))
    };
    let name = (!config.from_name.is_empty()).then(|| config.from_name.clone());
    let from = Mailbox::new(name, address(&config.from, "from")?);
    let reply_to = if config.reply_to.is_empty() {
        None
    } else {
        Some(Mailbox::new(None, address(&config.reply_to, "reply_to")?))
    };
    Ok((from, reply_to))
}

impl SmtpNotifier {
    /// A notifier for the server in `config.smtp`.
    pub(super) fn new(config: &NotificationsConfig) -> Result<Self, String> {
        let smtp = &config.smtp;
        let builder = match smtp.tls {
            SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&smtp.host),
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&smtp.host),
            SmtpTls::None => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
                &smtp.host,
            )),
        }
        .map_err(|e| {
            format!(
                "chatbox.notifications.smtp: cannot set up TLS for {}: {e}",
                smtp.host
            )
        })?;
        let mut builder = builder.port(smtp.port).timeout(Some(smtp.timeout));
        if !smtp.username.is_empty() {
            builder = builder.credentials(Credentials::new(
                smtp.username.clone(),
                smtp.password.expose().to_owned(),
            ));
        }
        let (from, reply_to) = mailboxes(config)?;
        Ok(SmtpNotifier {
            transport: builder.build(),
            from,
            reply_to,
        })
    }
}

#[async_trait]
impl Notifier for SmtpNotifier {
    fn adapter(&self) -> &'static str {
        "smtp"
    }

    async fn send(&self, to: &str, message: &Message) -> Result<(), NotifyError> {
        let to: Address = to
            .parse()
            .map_err(|e| NotifyError::Invalid(format!("{to:?} is not an e-mail address: {e}")))?;
        let mut mail = Mail::builder()
            .from(self.from.clone())
            .to(Mailbox::new(None, to))
            .subject(message.subject.as_str())
            .header(ContentType::TEXT_PLAIN);
        if let Some(reply_to) = &self.reply_to {
            mail = mail.reply_to(reply_to.clone());
        }
        let mail = mail
            .body(message.body.clone())
            .map_err(|e| NotifyError::Invalid(e.to_string()))?;
        match self.transport.send(mail).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() || e.is_transient() => Err(NotifyError::Refused {
                service: "smtp",
                message: e.to_string(),
            }),
            Err(e) => Err(NotifyError::Unreachable {
                service: "smtp",
                message: e.to_string(),
            }),
        }
    }
}
