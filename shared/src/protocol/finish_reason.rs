//! How an answer ended: the `metadata.finish_reason` of a final
//! `ai_response`, kept with the stored answer. One enum, one place that
//! names each reason on the wire (docs/PROTOCOL.md, *Finish reasons*).

use serde::{Deserialize, Serialize};

/// Why an answer stopped growing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The model finished its answer.
    Complete,
    /// The provider cut the answer at its token limit (`max_tokens`).
    Length,
    /// The provider's content filter (or the model's refusal) cut the
    /// answer.
    ContentFilter,
    /// The user pressed stop.
    Stopped,
    /// The user closed the conversation while the answer streamed.
    UserLeft,
    /// An admin took the session over while the answer streamed.
    AdminTakeover,
    /// The provider's stream broke off after some text reached the user.
    Interrupted,
}

impl FinishReason {
    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            FinishReason::Complete => "complete",
            FinishReason::Length => "length",
            FinishReason::ContentFilter => "content_filter",
            FinishReason::Stopped => "stopped",
            FinishReason::UserLeft => "user_left",
            FinishReason::AdminTakeover => "admin_takeover",
            FinishReason::Interrupted => "interrupted",
        }
    }
}

impl std::fmt::Display for FinishReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_to_its_wire_name() {
        for reason in [
            FinishReason::Complete,
            FinishReason::Length,
            FinishReason::ContentFilter,
            FinishReason::Stopped,
            FinishReason::UserLeft,
            FinishReason::AdminTakeover,
            FinishReason::Interrupted,
        ] {
            let json = serde_json::to_value(reason).unwrap();
            assert_eq!(json, reason.as_str());
            assert_eq!(serde_json::from_value::<FinishReason>(json).unwrap(), reason);
        }
    }
}
