//! The log-only notifier: writes to the log, at `warn` so it stands out,
//! what would have been sent — its facts and ids, never what a user wrote
//! (a help request's text stays in the encrypted store; the log line links
//! the admin console's view of the session). The all-in-one and every deployment without
//! an e-mail or SMS engine use it, so nothing raised is ever lost from
//! sight.

use async_trait::async_trait;
use tracing::warn;

use super::{Channel, Message, Notifier, NotifyError};

/// Logs instead of sending.
pub(super) struct LogNotifier {
    channel: Channel,
}

impl LogNotifier {
    /// A log notifier standing in for `channel`.
    pub(super) fn new(channel: Channel) -> Self {
        LogNotifier { channel }
    }
}

#[async_trait]
impl Notifier for LogNotifier {
    fn adapter(&self) -> &'static str {
        "log"
    }

    fn needs_recipients(&self) -> bool {
        false
    }

    async fn send(&self, to: &str, message: &Message) -> Result<(), NotifyError> {
        let channel = match self.channel {
            Channel::Email => "email",
            Channel::Sms => "sms",
        };
        // Never the body: it may hold what a user wrote (`Message::log`).
        warn!(
            event = message.event.as_str(),
            channel, to, "notification (log only): {}", message.log
        );
        Ok(())
    }
}
