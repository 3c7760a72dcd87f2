//! Token validation.

use std::collections::BTreeSet;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use super::{AuthError, Claims, Identity};
use crate::config::AuthConfig;
use crate::ids::is_valid_user_id;

/// Validates tokens against the configured keys.
pub struct TokenValidator {
    hs256: Option<(DecodingKey, Validation)>,
    rs256: Option<(DecodingKey, Validation)>,
    /// The claims kept in the [`Identity`], to go to the models.
    forwarded: BTreeSet<String>,
    /// The largest token accepted, in bytes.
    max_bytes: usize,
    /// The longest lifetime accepted, in seconds; 0 accepts any.
    max_lifetime: u64,
}

impl std::fmt::Debug for TokenValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenValidator")
            .field("hs256", &self.hs256.is_some())
            .field("rs256", &self.rs256.is_some())
            .field("forwarded", &self.forwarded)
            .finish()
    }
}

fn validation(alg: Algorithm, auth: &AuthConfig) -> Validation {
    let mut v = Validation::new(alg);
    v.leeway = auth.leeway.as_secs();
    v.validate_exp = true;
    v.validate_nbf = true;
    v.set_required_spec_claims(&["exp", "sub"]);
    if auth.issuer.is_empty() {
        v.iss = None;
    } else {
        v.set_issuer(&[auth.issuer.as_str()]);
    }
    if auth.audience.is_empty() {
        v.validate_aud = false;
    } else {
        v.set_audience(&[auth.audience.as_str()]);
    }
    v
}

impl TokenValidator {
    /// A validator for the HS256 `secret` and/or the RS256 PEM public key
    /// in `auth`. Each algorithm is checked only with its own key, so an
    /// HS256 token signed with the RSA public key is refused.
    pub fn new(secret: &str, auth: &AuthConfig) -> Result<Self, String> {
        let hs256 = (!secret.is_empty()).then(|| {
            (
                DecodingKey::from_secret(secret.as_bytes()),
                validation(Algorithm::HS256, auth),
            )
        });
        let rs256 = if auth.jwt_public_key.trim().is_empty() {
            None
        } else {
            let key = DecodingKey::from_rsa_pem(auth.jwt_public_key.as_bytes())
                .map_err(|e| format!("chatbox.auth.jwt_public_key is not an RSA public key in PEM: {e}"))?;
            Some((key, validation(Algorithm::RS256, auth)))
        };
        if hs256.is_none() && rs256.is_none() {
            return Err(
                "no JWT key configured: set chatbox.jwt_secret (JWT_SECRET) or chatbox.auth.jwt_public_key"
                    .into(),
            );
        }
        Ok(TokenValidator {
            hs256,
            rs256,
            forwarded: BTreeSet::new(),
            max_bytes: auth.max_token_bytes,
            max_lifetime: auth.max_token_lifetime.as_secs(),
        })
    }

    /// Keeps these claims of every token in its [`Identity`] (the claims
    /// models take inputs from: `LlmConfig::forwarded_claims`).
    #[must_use]
    pub fn forwarding(mut self, claims: BTreeSet<String>) -> Self {
        self.forwarded = claims;
        self
    }

    /// Checks a token and returns who it identifies.
    pub fn validate(&self, token: &str) -> Result<Identity, AuthError> {
        if token.len() > self.max_bytes {
            return Err(AuthError::TooLarge(self.max_bytes));
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Malformed)?;
        let (key, validation) = match header.alg {
            Algorithm::HS256 => self.hs256.as_ref(),
            Algorithm::RS256 => self.rs256.as_ref(),
            _ => None,
        }
        .ok_or(AuthError::WrongAlgorithm)?;
        let data = jsonwebtoken::decode::<Claims>(token, key, validation).map_err(|e| match e.kind() {
            ErrorKind::ExpiredSignature => AuthError::Expired,
            ErrorKind::ImmatureSignature => AuthError::NotYetValid,
            ErrorKind::InvalidSignature => AuthError::BadSignature,
            ErrorKind::InvalidAlgorithm
            | ErrorKind::InvalidAlgorithmName
            | ErrorKind::UnsupportedAlgorithm => AuthError::WrongAlgorithm,
            ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
            ErrorKind::InvalidAudience => AuthError::WrongAudience,
            ErrorKind::MissingRequiredClaim(claim) if claim == "sub" => AuthError::MissingSubject,
            ErrorKind::MissingRequiredClaim(claim) => AuthError::MissingClaim(claim.clone()),
            _ => AuthError::Malformed,
        })?;
        let claims = data.claims;
        self.check_lifetime(&claims)?;
        let forwarded = self
            .forwarded
            .iter()
            .filter_map(|name| Some((name.clone(), claims.get(name)?)))
            .collect();
        let user_id = claims.sub.ok_or(AuthError::MissingSubject)?;
        if !is_valid_user_id(&user_id) {
            return Err(AuthError::InvalidSubject);
        }
        Ok(Identity {
            user_id,
            name: claims
                .name
                .map(|n| crate::protocol::inbound::sanitize_text(&n))
                .filter(|n| !n.is_empty()),
            roles: claims.roles,
            expires_at: claims.exp.unwrap_or(0),
            claims: forwarded,
        })
    }
}

impl TokenValidator {
    /// With a maximum lifetime set, refuses a token meant to live longer:
    /// by `exp - iat` when it says when it was issued, and by what it has
    /// left (`exp - now`) in any case.
    fn check_lifetime(&self, claims: &Claims) -> Result<(), AuthError> {
        if self.max_lifetime == 0 {
            return Ok(());
        }
        let exp = claims.exp.unwrap_or(0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let issued = claims.iat.map_or(0, |iat| exp.saturating_sub(iat));
        if issued.max(exp.saturating_sub(now)) > self.max_lifetime {
            return Err(AuthError::LifetimeTooLong(self.max_lifetime));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::auth::TokenMinter;

    const SECRET: &str = "a secret of at least thirty-two bytes!!";

    fn signed(other: serde_json::Value) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let claims = Claims {
            sub: Some("ann".into()),
            name: Some("Ann".into()),
            exp: Some(now + 60),
            other: serde_json::from_value(other).unwrap(),
            ..Claims::default()
        };
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    }

    #[test]
    fn only_the_forwarded_claims_are_kept() {
        let token = signed(serde_json::json!({ "tier": "gold", "dept": 7, "secret_flag": true }));
        let plain = TokenValidator::new(SECRET, &AuthConfig::default()).unwrap();
        assert!(
            plain.validate(&token).unwrap().claims.is_empty(),
            "none unless asked for"
        );
        let forwarding = TokenValidator::new(SECRET, &AuthConfig::default())
            .unwrap()
            .forwarding(["tier", "dept", "name", "missing"].map(String::from).into());
        let identity = forwarding.validate(&token).unwrap();
        assert_eq!(identity.user_id, "ann");
        assert_eq!(
            serde_json::to_value(&identity.claims).unwrap(),
            serde_json::json!({ "tier": "gold", "dept": 7, "name": "Ann" })
        );
        // Minted tokens carry no other claims.
        let minted = TokenMinter::new(SECRET)
            .mint("bo", None, &[], Duration::from_secs(60))
            .unwrap();
        assert!(forwarding.validate(&minted).unwrap().claims.is_empty());
    }

    fn minted(sub: &str, ttl: u64) -> String {
        TokenMinter::new(SECRET)
            .mint(sub, None, &[], Duration::from_secs(ttl))
            .unwrap()
    }

    #[test]
    fn tokens_beyond_the_size_or_lifetime_limits_are_refused() {
        let auth = AuthConfig {
            max_token_lifetime: Duration::from_secs(3600),
            max_token_bytes: 512,
            ..AuthConfig::default()
        };
        let v = TokenValidator::new(SECRET, &auth).unwrap();
        assert!(v.validate(&minted("ann", 600)).is_ok());
        assert_eq!(
            v.validate(&minted("ann", 7200)),
            Err(AuthError::LifetimeTooLong(3600))
        );
        let big = minted(&"a".repeat(600), 600);
        assert_eq!(v.validate(&big), Err(AuthError::TooLarge(512)));
        // No lifetime limit by default.
        let open = TokenValidator::new(SECRET, &AuthConfig::default()).unwrap();
        assert!(open.validate(&minted("ann", 1_000_000_000)).is_ok());
    }

    #[test]
    fn look_alike_user_ids_are_refused() {
        let v = TokenValidator::new(SECRET, &AuthConfig::default()).unwrap();
        for sub in ["ann\u{202e}nimda", "a\u{200b}nn", "\u{2066}ann", "ann\u{feff}"] {
            assert_eq!(
                v.validate(&minted(sub, 60)),
                Err(AuthError::InvalidSubject),
                "{sub:?}"
            );
        }
        assert!(v.validate(&minted("anne-marie@example.com", 60)).is_ok());
        assert!(v.validate(&minted("zoë", 60)).is_ok());
    }
}
