//! Signing tokens: `chatbox token` and the all-in-one's development tokens.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{EncodingKey, Header};

use super::Claims;

/// Signs HS256 tokens with the configured secret.
pub struct TokenMinter {
    key: EncodingKey,
}

impl TokenMinter {
    /// A minter for `secret`.
    pub fn new(secret: &str) -> Self {
        TokenMinter {
            key: EncodingKey::from_secret(secret.as_bytes()),
        }
    }

    /// A token for user `sub`, valid for `ttl`.
    pub fn mint(
        &self,
        sub: &str,
        name: Option<&str>,
        roles: &[String],
        ttl: Duration,
    ) -> Result<String, String> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let claims = Claims {
            sub: Some(sub.to_owned()),
            name: name.map(str::to_owned),
            roles: roles.to_vec(),
            exp: Some(now + ttl.as_secs()),
            nbf: None,
            iat: Some(now),
            iss: None,
            aud: None,
            other: Default::default(),
        };
        jsonwebtoken::encode(&Header::default(), &claims, &self.key)
            .map_err(|e| format!("cannot sign token: {e}"))
    }
}
