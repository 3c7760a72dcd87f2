//! The notification service: an [`Alert`] in, messages out.
//!
//! For each alert: the event's rule names the channels (none if it is
//! disabled); the coordinator counts it in the event's window, shared by
//! every worker ([`Coordinator::admit_notification`]) — past
//! `max_per_window` it is held back; otherwise it is rendered and sent on
//! each channel to each recipient, at once. A coordinator that cannot be
//! reached does not silence alerts: they go out unlimited. The digest
//! loop asks, on every worker, for what each window held back once it is
//! over; the one worker that gets it sends a single digest saying how
//! many were held back and how many users they touched.
//!
//! Every outcome is logged (event, channel, adapter, recipients — never a
//! secret) and counted in `chatbox_notifications_total{event,channel,outcome}`.

use chatbox_shared::periodic::{FirstPass, every};
use std::sync::Arc;
use std::time::Duration;

use chatbox_shared::config::notifications::{EmailEngine, NotificationRule, SmsEngine};
use chatbox_shared::config::{Config, NotificationsConfig};
use chatbox_shared::coordinator::{Coordinator, NotifyAdmission, RateLimit, Suppressed};
use futures_util::future::join_all;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, info, warn};

use super::log::LogNotifier;
use super::ses::SesNotifier;
use super::smtp::SmtpNotifier;
use super::twilio::TwilioNotifier;
use super::{Alert, Channel, EventKind, Message, Notifier, render};
use crate::metrics;

/// What became of an alert on one channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Sent to every recipient.
    Sent,
    /// Not sent to at least one recipient (see the errors).
    Failed,
    /// Held back by the rate limit, for the digest.
    Suppressed,
}

impl Outcome {
    /// `sent`, `failed` or `suppressed` (the metric's label).
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Sent => "sent",
            Outcome::Failed => "failed",
            Outcome::Suppressed => "suppressed",
        }
    }
}

/// What happened to an alert on one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The channel.
    pub channel: Channel,
    /// Sent, failed or held back.
    pub outcome: Outcome,
    /// Recipients it was for (0 for the log adapter without any).
    pub recipients: usize,
    /// Why it failed, one entry per recipient it did not reach.
    pub errors: Vec<String>,
}

/// Stand-in recipient for a notifier that needs none (the log).
const NOBODY: &str = "(no recipients configured)";

/// The notification service of one worker.
pub struct Notifications {
    config: NotificationsConfig,
    email: Arc<dyn Notifier>,
    sms: Arc<dyn Notifier>,
    coordinator: Arc<dyn Coordinator>,
    pod_id: String,
    tasks: TaskTracker,
}

impl Notifications {
    /// The service with the engines `config` names.
    pub fn from_config(
        config: &Config,
        coordinator: Arc<dyn Coordinator>,
        pod_id: &str,
    ) -> Result<Arc<Notifications>, String> {
        let n = &config.chatbox.notifications;
        let needs_http = n.email_engine == EmailEngine::Ses || n.sms_engine == SmsEngine::Twilio;
        let client = if needs_http {
            Some(crate::llm::http_client(Duration::from_secs(10))?)
        } else {
            None
        };
        let email: Arc<dyn Notifier> = match (n.email_engine, &client) {
            (EmailEngine::Smtp, _) => Arc::new(SmtpNotifier::new(n)?),
            (EmailEngine::Ses, Some(client)) => Arc::new(SesNotifier::new(n, client.clone())?),
            _ => Arc::new(LogNotifier::new(Channel::Email)),
        };
        let sms: Arc<dyn Notifier> = match (n.sms_engine, client) {
            (SmsEngine::Twilio, Some(client)) => Arc::new(TwilioNotifier::new(&n.twilio, client)),
            _ => Arc::new(LogNotifier::new(Channel::Sms)),
        };
        for (notifier, list, key) in [
            (&email, &n.admin_emails, "admin_emails"),
            (&sms, &n.admin_phones, "admin_phones"),
        ] {
            if notifier.needs_recipients() && list.is_empty() {
                warn!(
                    adapter = notifier.adapter(),
                    "chatbox.notifications.{key} is empty: only rules with their own recipients reach anyone"
                );
            }
        }
        Ok(Self::with_notifiers(n.clone(), email, sms, coordinator, pod_id))
    }

    /// The service with the given notifiers (a test injects one that
    /// fails).
    pub(crate) fn with_notifiers(
        config: NotificationsConfig,
        email: Arc<dyn Notifier>,
        sms: Arc<dyn Notifier>,
        coordinator: Arc<dyn Coordinator>,
        pod_id: &str,
    ) -> Arc<Notifications> {
        info!(
            email = email.adapter(),
            sms = sms.adapter(),
            max_per_window = config.rate_limit.max_per_window,
            window = ?config.rate_limit.window,
            "notifications ready"
        );
        Arc::new(Notifications {
            config,
            email,
            sms,
            coordinator,
            pod_id: pod_id.to_owned(),
            tasks: TaskTracker::new(),
        })
    }

    /// Returns at once; delivery runs in a task (tracked so shutdown can
    /// wait for it briefly).
    pub(crate) fn notify(self: &Arc<Self>, alert: Alert) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            error!(event = alert.event.as_str(), title = %alert.title, "notification raised outside the runtime; not sent");
            return;
        };
        let this = Arc::clone(self);
        self.tasks.spawn_on(
            async move {
                this.deliver(&alert).await;
            },
            &runtime,
        );
    }

    /// The same, awaited; says what happened per channel (for tests and
    /// logs). A disabled rule gives no deliveries.
    pub async fn deliver(&self, alert: &Alert) -> Vec<Delivery> {
        let rule = self.config.rule(alert.event);
        if !rule.enabled {
            debug!(
                event = alert.event.as_str(),
                "notification rule disabled; nothing sent"
            );
            return Vec::new();
        }
        if self.admit(alert).await == NotifyAdmission::Suppressed {
            return rule
                .channels
                .iter()
                .map(|&channel| {
                    let recipients = self.config.recipients(&rule, channel).len();
                    metrics::notification(
                        alert.event.as_str(),
                        channel.as_str(),
                        Outcome::Suppressed.as_str(),
                    );
                    info!(
                        event = alert.event.as_str(),
                        channel = channel.as_str(),
                        recipients,
                        "notification held back by the rate limit; it will be counted in the digest"
                    );
                    Delivery {
                        channel,
                        outcome: Outcome::Suppressed,
                        recipients,
                        errors: Vec::new(),
                    }
                })
                .collect();
        }
        self.send(alert, &rule).await
    }

    /// Counts the alert in its window; lets it through if the coordinator
    /// cannot say.
    async fn admit(&self, alert: &Alert) -> NotifyAdmission {
        let limit = RateLimit {
            capacity: self.config.rate_limit.max_per_window,
            window: self.config.rate_limit.window,
        };
        let affected = alert.user_id.as_deref().unwrap_or_default();
        match self
            .coordinator
            .admit_notification(alert.event.as_str(), limit, affected)
            .await
        {
            Ok(admission) => admission,
            Err(e) => {
                metrics::coordinator_error("admit_notification");
                warn!(
                    event = alert.event.as_str(),
                    "cannot check the notification rate limit; sending anyway: {e}"
                );
                NotifyAdmission::Send
            }
        }
    }

    /// Renders `alert` and sends it on every channel of `rule`.
    async fn send(&self, alert: &Alert, rule: &NotificationRule) -> Vec<Delivery> {
        let message = render(alert, &self.config.admin_console_url);
        let sends = rule.channels.iter().map(|&channel| {
            let recipients = self.config.recipients(rule, channel);
            self.send_on(channel, recipients, alert, &message)
        });
        join_all(sends).await
    }

    async fn send_on(
        &self,
        channel: Channel,
        recipients: &[String],
        alert: &Alert,
        message: &Message,
    ) -> Delivery {
        let notifier = match channel {
            Channel::Email => &self.email,
            Channel::Sms => &self.sms,
        };
        let targets: Vec<&str> = if recipients.is_empty() && !notifier.needs_recipients() {
            vec![NOBODY]
        } else {
            recipients.iter().map(String::as_str).collect()
        };
        let errors: Vec<String> = if targets.is_empty() {
            let (list, own) = match channel {
                Channel::Email => ("admin_emails", "emails"),
                Channel::Sms => ("admin_phones", "phones"),
            };
            vec![format!(
                "no recipients: set chatbox.notifications.{list} or the rule's {own}"
            )]
        } else {
            let sends = targets
                .iter()
                .map(|to| async move { notifier.send(to, message).await.map_err(|e| format!("{to}: {e}")) });
            join_all(sends)
                .await
                .into_iter()
                .filter_map(Result::err)
                .collect()
        };
        let outcome = if errors.is_empty() {
            Outcome::Sent
        } else {
            Outcome::Failed
        };
        metrics::notification(alert.event.as_str(), channel.as_str(), outcome.as_str());
        let event = alert.event.as_str();
        let session_id = alert.session_id.as_deref().unwrap_or_default();
        let user_id = alert.user_id.as_deref().unwrap_or_default();
        let adapter = notifier.adapter();
        if errors.is_empty() {
            info!(
                event,
                channel = channel.as_str(),
                adapter,
                recipients = recipients.len(),
                session_id,
                user_id,
                title = %alert.title,
                "notification sent"
            );
        } else {
            error!(
                event,
                channel = channel.as_str(),
                adapter,
                recipients = recipients.len(),
                failed = errors.len(),
                session_id,
                user_id,
                "notification failed: {}",
                errors.join("; ")
            );
        }
        Delivery {
            channel,
            outcome,
            recipients: recipients.len(),
            errors,
        }
    }

    /// Sends the digests of suppressed notifications when their windows
    /// end, until cancelled.
    pub async fn digest_loop(self: Arc<Self>, cancel: CancellationToken) {
        let period =
            (self.config.rate_limit.window / 10).clamp(Duration::from_millis(100), Duration::from_secs(5));
        every(period, FirstPass::Now, &cancel, || async {
            for event in EventKind::ALL {
                match self.coordinator.take_suppressed(event.as_str()).await {
                    Ok(Some(held)) => {
                        self.send_digest(event, held).await;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        metrics::coordinator_error("take_suppressed");
                        warn!("cannot look for notifications to digest: {e}");
                        break;
                    }
                }
            }
        })
        .await;
    }

    /// Sends the digest of what the rate limit held back of `event`.
    pub(crate) async fn send_digest(&self, event: EventKind, held: Suppressed) -> Vec<Delivery> {
        let rule = self.config.rule(event);
        if !rule.enabled {
            return Vec::new();
        }
        let limit = &self.config.rate_limit;
        let window = humantime::format_duration(limit.window);
        let alert = Alert::new(
            event,
            format!("{} more notifications held back", held.count),
            format!(
                "{} {} notifications were held back by the rate limit ({} per {window}) in the window that just ended; \
                 they touched {} distinct users. Each one is in the workers' logs.",
                held.count,
                event.label().to_lowercase(),
                limit.max_per_window,
                held.affected_users,
            ),
            self.pod_id.as_str(),
        )
        .affecting(held.affected_users);
        info!(
            event = event.as_str(),
            held_back = held.count,
            affected_users = held.affected_users,
            "sending the digest of held-back notifications"
        );
        self.send(&alert, &rule).await
    }

    /// Waits up to `grace` for notifications still being sent.
    pub(crate) async fn shutdown(&self, grace: Duration) {
        self.tasks.close();
        if tokio::time::timeout(grace, self.tasks.wait()).await.is_err() {
            warn!(
                pending = self.tasks.len(),
                "notifications still being sent at shutdown; giving up on them"
            );
        }
    }
}
