//! `[chatbox.auth]`: how tokens are checked beyond the HS256 secret
//! (`chatbox.jwt_secret`, or `JWT_SECRET`): an RS256 public key, the
//! required issuer and audience, the clock skew tolerated, and the role
//! that makes a user an admin.
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
        }
    }
}
