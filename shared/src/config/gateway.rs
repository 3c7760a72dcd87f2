//! `[chatbox.gateway]`: how a gateway owns sessions (the Redis lock and its
//! renewal), its heartbeat, and how long it waits for workers.
//!
//! `CORS_ALLOWED_ORIGINS` (the seed's name) sets `cors_allowed_origins`.
//! Checked for the gateway and the all-in-one.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::duration;
use super::problems::Problems;

/// `[chatbox.gateway]`: ownership and routing.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// Lifetime of a session's ownership lock.
    #[serde(with = "duration")]
    pub owner_ttl: Duration,
    /// How often a gateway renews the locks it holds.
    #[serde(with = "duration")]
    pub owner_renew_interval: Duration,
    /// How often a gateway writes its heartbeat.
    #[serde(with = "duration")]
    pub heartbeat_interval: Duration,
    /// A session quiet this long stops listening on `chat.out.<sid>`
    /// until its user speaks again or a worker asks it to attach.
    #[serde(with = "duration")]
    pub out_idle_timeout: Duration,
    /// How long a gateway waits for a worker's RPC answer.
    #[serde(with = "duration")]
    pub rpc_timeout: Duration,
    /// Browser origins allowed to call the HTTP API from another origin
    /// (`CORS_ALLOWED_ORIGINS`); empty: same origin only.
    pub cors_allowed_origins: Vec<String>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            owner_ttl: Duration::from_secs(30),
            owner_renew_interval: Duration::from_secs(10),
            heartbeat_interval: Duration::from_secs(10),
            out_idle_timeout: Duration::from_secs(120),
            rpc_timeout: Duration::from_secs(5),
            cors_allowed_origins: Vec::new(),
        }
    }
}

impl GatewayConfig {
    /// Timings are above zero, the lock is renewed well before it expires,
    /// origins are origins.
    pub(super) fn check(&self, p: &mut Problems) {
        p.positive(self.owner_ttl, "chatbox.gateway.owner_ttl");
        p.check(
            !self.owner_renew_interval.is_zero() && self.owner_renew_interval * 2 <= self.owner_ttl,
            "chatbox.gateway.owner_renew_interval",
            || "must be above zero and at most half of owner_ttl".into(),
        );
        p.positive(self.heartbeat_interval, "chatbox.gateway.heartbeat_interval");
        p.positive(self.out_idle_timeout, "chatbox.gateway.out_idle_timeout");
        p.positive(self.rpc_timeout, "chatbox.gateway.rpc_timeout");
        for origin in &self.cors_allowed_origins {
            p.check(
                origin.starts_with("http://") || origin.starts_with("https://"),
                "chatbox.gateway.cors_allowed_origins",
                || format!("{origin:?} is not an origin like https://admin.example.com (credentials are allowed, so `*` is not)"),
            );
        }
    }
}
