//! JWT authentication: who is on the other end of a socket.
//!
//! [`TokenValidator`] checks a token (HS256 with the shared secret, RS256
//! with a PEM public key; `exp` and `nbf` with a small leeway; `iss` and
//! `aud` when configured) and yields an [`Identity`]. [`TokenMinter`]
//! signs development tokens (`chatbox token`, the all-in-one banner).

mod claims;
mod mint;
mod validator;

pub use claims::Claims;
pub use mint::TokenMinter;
pub use validator::TokenValidator;

use crate::protocol::ErrorCode;

/// An authenticated user, from a validated token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user id (`sub`).
    pub user_id: String,
    /// The display name (`name`), if the token has one.
    pub name: Option<String>,
    /// Roles (`roles`).
    pub roles: Vec<String>,
    /// When the token expires, in seconds since the Unix epoch.
    pub expires_at: u64,
    /// The claims the configuration forwards to the models (see
    /// [`TokenValidator::forwarding`]), those the token has; no other.
    pub claims: crate::envelope::ForwardedClaims,
}

impl Identity {
    /// Whether the user has `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No token in the header, the subprotocol or the query.
    #[error(
        "no token: send it as `Authorization: Bearer <token>`, as subprotocol `bearer.<token>` or as `?token=`"
    )]
    Missing,
    /// Not a JWT at all.
    #[error("the token is malformed")]
    Malformed,
    /// The signature does not match.
    #[error("the token's signature is invalid")]
    BadSignature,
    /// Signed with an algorithm this server does not accept.
    #[error("the token is signed with an algorithm this server does not accept")]
    WrongAlgorithm,
    /// `exp` has passed.
    #[error("the token has expired")]
    Expired,
    /// `nbf` is in the future.
    #[error("the token is not valid yet")]
    NotYetValid,
    /// `iss` is not the configured issuer.
    #[error("the token was issued by someone else")]
    WrongIssuer,
    /// `aud` is not the configured audience.
    #[error("the token is meant for another audience")]
    WrongAudience,
    /// No `sub` claim.
    #[error("the token has no subject (`sub`)")]
    MissingSubject,
    /// A required claim is missing (other than `sub`).
    #[error("the token lacks the `{0}` claim")]
    MissingClaim(String),
    /// `sub` cannot be used as a user id.
    #[error(
        "the token's subject (`sub`) is not a usable user id: 1 to 256 characters, without spaces, control characters, invisible characters (zero-width) or characters that change the text direction"
    )]
    InvalidSubject,
    /// The token is longer than `chatbox.auth.max_token_bytes`.
    #[error("the token is larger than the {0} bytes this server accepts")]
    TooLarge(usize),
    /// The token lives longer than `chatbox.auth.max_token_lifetime`.
    #[error("the token is valid for longer than the {0} s this server accepts; ask for a shorter-lived one")]
    LifetimeTooLong(u64),
}

impl AuthError {
    /// The protocol error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            AuthError::Expired => ErrorCode::TokenExpired,
            _ => ErrorCode::InvalidToken,
        }
    }

    /// A short, bounded label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::Missing => "missing",
            AuthError::Malformed => "malformed",
            AuthError::BadSignature => "bad_signature",
            AuthError::WrongAlgorithm => "wrong_algorithm",
            AuthError::Expired => "expired",
            AuthError::NotYetValid => "not_yet_valid",
            AuthError::WrongIssuer => "wrong_issuer",
            AuthError::WrongAudience => "wrong_audience",
            AuthError::MissingSubject => "missing_subject",
            AuthError::MissingClaim(_) => "missing_claim",
            AuthError::InvalidSubject => "invalid_subject",
            AuthError::TooLarge(_) => "too_large",
            AuthError::LifetimeTooLong(_) => "lifetime_too_long",
        }
    }
}
