//! Start-up checks: every problem found is reported at once, each naming
//! the key (and its environment variables) and what is wrong with it.
//!
//! [`Config::validate`] decides which sections a role checks and in which
//! order problems are listed; the checks of a section live beside it
//! (`StoreConfig::check` in `store.rs`, …). The keys of `[app]` and
//! `[chatbox]` itself are checked here.

use std::net::SocketAddr;

use super::problems::Problems;
use super::{Config, backplane};
use crate::ids::is_valid_pod_id;

/// Which role the process runs; some checks apply to some roles only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Gateway and worker in one process on embedded adapters.
    AllInOne,
    /// A scaled gateway.
    Gateway,
    /// A scaled worker.
    Worker,
    /// Minting a token.
    Token,
}

impl Role {
    /// Whether the role runs against Redis and NATS.
    fn is_scaled(self) -> bool {
        matches!(self, Role::Gateway | Role::Worker)
    }
}

/// Shortest HS256 secret the scaled roles accept.
pub(super) const MIN_SECRET_LEN: usize = 32;

impl Config {
    /// Checks the configuration for `role`.
    pub fn validate(&self, role: Role) -> Result<(), Vec<String>> {
        let c = &self.chatbox;
        let mut p = Problems::default();

        if role != Role::Worker {
            p.check(
                self.app.listen.parse::<SocketAddr>().is_ok(),
                "app.listen",
                || format!("{:?} is not an address like 127.0.0.1:8080", self.app.listen),
            );
        }
        p.positive(self.app.shutdown_timeout, "app.shutdown_timeout");
        p.check(
            self.app.ops_listen.is_empty() || self.app.ops_listen.parse::<SocketAddr>().is_ok(),
            "app.ops_listen",
            || format!("{:?} is not an address like 0.0.0.0:9090", self.app.ops_listen),
        );
        p.positive(self.app.header_read_timeout, "app.header_read_timeout");
        p.check(self.app.max_header_bytes >= 8192, "app.max_header_bytes", || {
            "must be at least 8192 (HTTP/1.1 needs that much for a request head)".into()
        });
        p.check(self.app.max_handshakes > 0, "app.max_handshakes", || {
            "must be at least 1".into()
        });
        p.check(
            c.auth.max_token_bytes >= 256,
            "chatbox.auth.max_token_bytes",
            || "must be at least 256 (a signed token is seldom under 150 bytes)".into(),
        );
        p.check(
            c.auth.max_token_bytes < self.app.max_header_bytes,
            "chatbox.auth.max_token_bytes",
            || {
                "must be smaller than app.max_header_bytes, or tokens that size could not be sent in a header"
                    .into()
            },
        );
        p.check(
            c.namespace.is_empty() || is_valid_pod_id(&c.namespace),
            "chatbox.namespace",
            || "must be 1 to 63 letters, digits, '-' or '_'".into(),
        );
        p.check(
            c.pod_id.is_empty() || is_valid_pod_id(&c.pod_id),
            "chatbox.pod_id",
            || "must be 1 to 63 letters, digits, '-' or '_'".into(),
        );

        if role.is_scaled() {
            let has_key = !c.jwt_secret.is_empty() || !c.auth.jwt_public_key.is_empty();
            p.check(has_key, "chatbox.jwt_secret", || {
                "is required for the gateway and worker roles (or set chatbox.auth.jwt_public_key for RS256)"
                    .into()
            });
            p.check(
                c.jwt_secret.is_empty() || c.jwt_secret.expose().len() >= MIN_SECRET_LEN,
                "chatbox.jwt_secret",
                || format!("must be at least {MIN_SECRET_LEN} characters (try: openssl rand -base64 32)"),
            );
            backplane::check(&mut p, &c.redis, &c.nats);
        }

        if matches!(role, Role::AllInOne | Role::Gateway) {
            p.check(c.max_connections > 0, "chatbox.max_connections", || {
                "must be at least 1".into()
            });
            p.check(c.rate_limit > 0, "chatbox.rate_limit", || {
                "must be at least 1".into()
            });
            p.check(c.session_rate_limit > 0, "chatbox.session_rate_limit", || {
                "must be at least 1".into()
            });
            p.check(c.request_rate_limit > 0, "chatbox.request_rate_limit", || {
                "must be at least 1".into()
            });
            p.positive(c.rate_limit_window, "chatbox.rate_limit_window");
            p.positive(c.reconnect_timeout, "chatbox.reconnect_timeout");
            c.websocket.check(&mut p);
            c.gateway.check(&mut p);
            c.web.check(&mut p);
            c.admin.check_takeover_grace(&mut p, &c.gateway);
        }
        c.admin.check(&mut p);

        if matches!(role, Role::AllInOne | Role::Worker) {
            p.check(!c.data_dir.trim().is_empty(), "chatbox.data_dir", || {
                "must not be empty".into()
            });
            c.store.check(&mut p, role);
            c.uploads.check(&mut p);
            c.blob.check(&mut p, role);
            c.llm.check_context(&mut p);
            c.worker.check(&mut p, role);
            c.llm.check(&mut p);
            c.notifications.check(&mut p);
        }

        c.log.check(&mut p);

        p.into_result()
    }
}

/// Decodes a 32-byte key written in base64 (standard or URL-safe).
pub fn decode_key(text: &str) -> Option<[u8; 32]> {
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
    let text = text.trim();
    let bytes = STANDARD
        .decode(text)
        .or_else(|_| URL_SAFE.decode(text))
        .or_else(|_| URL_SAFE_NO_PAD.decode(text))
        .ok()?;
    bytes.try_into().ok()
}
