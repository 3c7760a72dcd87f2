//! `[chatbox.redis]` and `[chatbox.nats]`: the backplane of the scaled
//! roles, Redis for ownership locks and routes, NATS (with JetStream) for
//! messages between gateways and workers.
//!
//! `REDIS_URL` and `NATS_URL` (the seed's names) set the URLs. The
//! all-in-one runs on in-process adapters instead, so only the gateway and
//! worker roles check these sections.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::duration;
use super::problems::Problems;

/// `[chatbox.redis]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://host:port[/db]` (`REDIS_URL`).
    pub url: String,
    /// Connections per process.
    pub pool_size: usize,
    /// How long to wait for the first connection.
    #[serde(with = "duration")]
    pub connect_timeout: Duration,
    /// How long one command may take.
    #[serde(with = "duration")]
    pub command_timeout: Duration,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: "redis://127.0.0.1:6379".into(),
            pool_size: 2,
            connect_timeout: Duration::from_secs(10),
            command_timeout: Duration::from_secs(2),
        }
    }
}

/// `[chatbox.nats]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NatsConfig {
    /// `nats://host:port` (`NATS_URL`); several separated by commas.
    pub url: String,
    /// How long to wait for the first connection.
    #[serde(with = "duration")]
    pub connect_timeout: Duration,
    /// How long the inbound stream keeps a message no worker took.
    #[serde(with = "duration")]
    pub stream_max_age: Duration,
    /// Window in which a repeated client message id is dropped.
    #[serde(with = "duration")]
    pub duplicate_window: Duration,
    /// Replicas of the inbound stream (3 on a NATS cluster).
    pub stream_replicas: usize,
}

impl Default for NatsConfig {
    fn default() -> Self {
        NatsConfig {
            url: "nats://127.0.0.1:4222".into(),
            connect_timeout: Duration::from_secs(10),
            stream_max_age: Duration::from_secs(24 * 3600),
            duplicate_window: Duration::from_secs(120),
            stream_replicas: 1,
        }
    }
}

/// Both URLs are there and every limit and timeout is above zero.
pub(super) fn check(p: &mut Problems, redis: &RedisConfig, nats: &NatsConfig) {
    p.check(
        redis.url.starts_with("redis://") || redis.url.starts_with("rediss://"),
        "chatbox.redis.url",
        || format!("{:?} must start with redis:// or rediss://", redis.url),
    );
    p.check(!nats.url.trim().is_empty(), "chatbox.nats.url", || {
        "is required".into()
    });
    p.check(redis.pool_size > 0, "chatbox.redis.pool_size", || {
        "must be at least 1".into()
    });
    p.positive(redis.connect_timeout, "chatbox.redis.connect_timeout");
    p.positive(redis.command_timeout, "chatbox.redis.command_timeout");
    p.positive(nats.connect_timeout, "chatbox.nats.connect_timeout");
    p.positive(nats.stream_max_age, "chatbox.nats.stream_max_age");
    p.check(nats.stream_replicas >= 1, "chatbox.nats.stream_replicas", || {
        "must be at least 1".into()
    });
}
