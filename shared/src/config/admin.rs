//! `[chatbox.admin]`: admins watching sessions and taking them over (the
//! grace a takeover outlives its admin's socket, how often workers look for
//! abandoned takeovers, how much history a watcher gets) and the sampling
//! of concurrency for `/chat/admin/metrics`.
//!
//! Checked for every role; `takeover_grace` only where sockets are held,
//! against `chatbox.gateway.owner_renew_interval`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::duration;
use super::gateway::GatewayConfig;
use super::problems::Problems;

/// `[chatbox.admin]`: admins watching and taking over sessions.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// How long a takeover outlives its admin's socket: an admin who comes
    /// back within it carries on; after it the user is told the admin left.
    #[serde(with = "duration")]
    pub takeover_grace: Duration,
    /// How often workers look for takeovers whose admin is gone.
    #[serde(with = "duration")]
    pub takeover_check_interval: Duration,
    /// Latest messages an admin receives when they start watching.
    pub watch_messages: usize,
    /// How often the number of connected sessions is sampled (for the
    /// average and maximum concurrency of `/chat/admin/metrics`).
    #[serde(with = "duration")]
    pub sample_interval: Duration,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            takeover_grace: Duration::from_secs(30),
            takeover_check_interval: Duration::from_secs(5),
            watch_messages: 50,
            sample_interval: Duration::from_secs(60),
        }
    }
}

impl AdminConfig {
    /// A takeover outlives one renewal of the gateway's ownership lock.
    pub(super) fn check_takeover_grace(&self, p: &mut Problems, gateway: &GatewayConfig) {
        p.check(
            self.takeover_grace > gateway.owner_renew_interval,
            "chatbox.admin.takeover_grace",
            || {
                "must be longer than chatbox.gateway.owner_renew_interval (the lock is renewed that often)"
                    .into()
            },
        );
    }

    /// Intervals are above zero and a watcher gets 1 to 500 messages.
    pub(super) fn check(&self, p: &mut Problems) {
        p.positive(
            self.takeover_check_interval,
            "chatbox.admin.takeover_check_interval",
        );
        p.positive(self.sample_interval, "chatbox.admin.sample_interval");
        p.check(
            (1..=500).contains(&self.watch_messages),
            "chatbox.admin.watch_messages",
            || "must be from 1 to 500".into(),
        );
    }
}
