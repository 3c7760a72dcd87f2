//! `[chatbox.auth]`: how tokens are checked beyond the HS256 secret
//! (`chatbox.jwt_secret`, or `JWT_SECRET`): an RS256 public key, the
//! required issuer and audience, the clock skew tolerated, the role that
//! makes a user an admin, and the bounds on a token: its size and, when
//! set, how long it may live.
//!
//! `jwt_public_key_file` is read once, while the configuration loads, into
//! `jwt_public_key` ([`Config::load`](super::Config::load)); a scaled role
//! needs either that key or the HS256 secret.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::duration;

/// `[chatbox.auth]`: JWT validation beyond the HS256 secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// PEM public key for RS256 tokens.
    pub jwt_public_key: String,
    /// A file holding the PEM public key, instead of `jwt_public_key`.
    pub jwt_public_key_file: String,
    /// Required `iss`, if set.
    pub issuer: String,
    /// Required `aud`, if set.
    pub audience: String,
    /// Clock skew tolerated on `exp` and `nbf`.
    #[serde(with = "duration")]
    pub leeway: Duration,
    /// The role that makes a user an admin.
    pub admin_role: String,
    /// The longest lifetime accepted (`exp - iat`, and `exp - now`); zero
    /// accepts any.
    #[serde(with = "duration")]
    pub max_token_lifetime: Duration,
    /// The largest token accepted, in bytes.
    pub max_token_bytes: usize,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            jwt_public_key: String::new(),
            jwt_public_key_file: String::new(),
            issuer: String::new(),
            audience: String::new(),
            leeway: Duration::from_secs(30),
            admin_role: "admin".into(),
            max_token_lifetime: Duration::ZERO,
            max_token_bytes: 8 * 1024,
        }
    }
}
