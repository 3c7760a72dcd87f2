//! The log-only notifier: writes what would have been sent to the log, at
//! `warn` so it stands out. The all-in-one and every deployment without
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
        match self.channel {
            Channel::Email => warn!(
                event = message.event.as_str(),
                channel = "email",
                to,
                subject = %message.subject,
                "notification (log only): {}",
                message.body
            ),
            Channel::Sms => warn!(
                event = message.event.as_str(),
                channel = "sms",
                to,
                "notification (log only): {}",
                message.short
            ),
        }
        Ok(())
    }
}
