//! Provider errors that waiting cannot fix: the quota or credit is spent,
//! the key is refused, the key may not use the model, the model does not
//! exist. Such a request is not tried again (unless the provider says
//! `x-should-retry: true`), the fallback answers at once, the circuit
//! breaker does not count it as an outage — the provider is well, it says
//! no — and the operator hears of it through
//! `chatbox_llm_refusals_total{provider, reason}` and its alert.
//!
//! How each provider says so: OpenAI answers 429 with `error.type`
//! `insufficient_quota` (and `error.code` naming which limit:
//! `credit_balance_exhausted`, `organization_spend_limit_exceeded`,
//! `project_spend_limit_exceeded`, `organization_usage_limit_exceeded`);
//! Anthropic 402 `billing_error`; every provider 401 for a bad key, 403 for
//! a key without access, 404 for a model (or route) it does not have.

use super::LlmError;

/// Why a provider refuses every request alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The quota, credit or spend limit is used up (billing).
    Quota,
    /// The API key is refused (401).
    Auth,
    /// The key may not do this: a model, region or feature not allowed (403).
    Permission,
    /// The model (or the route) does not exist (404).
    NotFound,
}

/// Error codes and types that mean "no credit left".
const QUOTA_CODES: [&str; 6] = [
    "insufficient_quota",
    "credit_balance_exhausted",
    "organization_spend_limit_exceeded",
    "project_spend_limit_exceeded",
    "organization_usage_limit_exceeded",
    "billing_error",
];

/// In-stream error types that say the same as the statuses.
const STREAM_KINDS: [(&str, Refusal); 3] = [
    ("authentication_error", Refusal::Auth),
    ("permission_error", Refusal::Permission),
    ("not_found_error", Refusal::NotFound),
];

impl Refusal {
    /// The `reason` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Quota => "quota",
            Refusal::Auth => "auth",
            Refusal::Permission => "permission",
            Refusal::NotFound => "not_found",
        }
    }

    /// The refusal `error` is, if it is one.
    pub(super) fn of(error: &LlmError) -> Option<Refusal> {
        let is_quota = |code: &str| QUOTA_CODES.contains(&code);
        match error {
            LlmError::Status { status: 402, .. } => Some(Refusal::Quota),
            LlmError::Status { code: Some(code), .. } if is_quota(code) => Some(Refusal::Quota),
            LlmError::Status { status: 401, .. } => Some(Refusal::Auth),
            LlmError::Status { status: 403, .. } => Some(Refusal::Permission),
            LlmError::Status { status: 404, .. } => Some(Refusal::NotFound),
            LlmError::Upstream { kind, .. } if is_quota(kind) => Some(Refusal::Quota),
            LlmError::Upstream { kind, .. } => STREAM_KINDS
                .iter()
                .find(|(name, _)| name == kind)
                .map(|(_, refusal)| *refusal),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16, code: Option<&str>) -> LlmError {
        LlmError::Status {
            status,
            message: "no".into(),
            retry_after: None,
            code: code.map(str::to_owned),
            should_retry: None,
        }
    }

    #[test]
    fn quota_auth_permission_and_missing_models_are_refusals_and_rate_limits_are_not() {
        for (error, want) in [
            (status(429, Some("insufficient_quota")), Some(Refusal::Quota)),
            (
                status(429, Some("project_spend_limit_exceeded")),
                Some(Refusal::Quota),
            ),
            (status(402, Some("billing_error")), Some(Refusal::Quota)),
            (status(400, Some("billing_error")), Some(Refusal::Quota)),
            (status(401, Some("invalid_api_key")), Some(Refusal::Auth)),
            (status(403, None), Some(Refusal::Permission)),
            (status(404, Some("model_not_found")), Some(Refusal::NotFound)),
            (status(429, Some("rate_limit_exceeded")), None),
            (status(429, None), None),
            (status(503, None), None),
            (status(400, Some("invalid_request_error")), None),
            (
                LlmError::Upstream {
                    kind: "billing_error".into(),
                    message: "x".into(),
                },
                Some(Refusal::Quota),
            ),
            (
                LlmError::Upstream {
                    kind: "overloaded_error".into(),
                    message: "x".into(),
                },
                None,
            ),
            (LlmError::Timeout("first token"), None),
        ] {
            assert_eq!(Refusal::of(&error), want, "{error:?}");
        }
    }
}
