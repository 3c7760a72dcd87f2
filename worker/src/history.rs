//! Stored records as clients read them, and as a model reads them.

use std::borrow::Borrow;

use chatbox_shared::protocol::sessions::SessionSummary;
use chatbox_shared::protocol::{Message, MessageType, Sender};

use crate::llm::{ChatMessage, ChatRole, estimate_tokens};
use crate::store::{MessageRecord, SessionRecord};
use crate::uploads::{meta, prompt};

/// A session for a user's list.
pub(crate) fn summary(s: &SessionRecord) -> SessionSummary {
    SessionSummary {
        session_id: s.id.clone(),
        name: s.name.clone(),
        start_time: s.start_time,
        last_activity: s.last_activity,
        end_time: s.end_time,
        duration_s: s.duration_s,
        is_active: s.is_active,
        message_count: s.counters.message_count,
        admin_assisted: s.admin_assisted,
        help_requested: s.help_requested,
        model_id: s.model_id.clone(),
    }
}

/// A stored message as the frame a client saw live.
pub(crate) fn frame(m: &MessageRecord) -> Message {
    let mut f = Message::new(m.kind);
    f.session_id = Some(m.session_id.clone());
    f.id = m.client_id.clone();
    f.message_id = Some(m.message_id.clone());
    f.seq = Some(m.seq);
    f.content = Some(m.content.clone());
    f.file_id = m.file_id.clone();
    f.model_id = m.model_id.clone();
    f.timestamp = Some(m.timestamp);
    f.sender = Some(m.sender);
    f.metadata = m.metadata.clone();
    if let Some(meta) = &mut f.metadata {
        meta.remove(CONVERSATION_KEY);
    }
    if m.kind == MessageType::AiResponse {
        f.done = Some(true);
    }
    f
}

/// The metadata key under which an answer keeps its provider's
/// conversation id (never shown to clients).
pub(crate) const CONVERSATION_KEY: &str = "provider_conversation_id";

/// The conversation `provider` keeps for this session (Dify), from the
/// newest answer it gave among `newest_first`.
pub(crate) fn provider_conversation<M: Borrow<MessageRecord>>(
    newest_first: &[M],
    provider: &str,
) -> Option<String> {
    newest_first
        .iter()
        .map(Borrow::borrow)
        .filter(|m| m.sender == Sender::Ai && m.model_id.as_deref() == Some(provider))
        .find_map(|m| m.metadata.as_ref()?.get(CONVERSATION_KEY).cloned())
}

/// Earlier messages (newest first, as [`crate::store::Store::messages_before`]
/// returns them) that fit in `budget` tokens, as the conversation a model
/// reads, oldest first.
pub(crate) fn context<M: Borrow<MessageRecord>>(newest_first: &[M], budget: u64) -> Vec<ChatMessage> {
    let mut used = 0;
    let mut out: Vec<ChatMessage> = Vec::new();
    for m in newest_first.iter().map(Borrow::borrow) {
        // Help requests and admins joining or leaving are for people, not
        // for the model; a file reads as its caption and its name.
        let content = match m.kind {
            MessageType::UserMessage | MessageType::AiResponse | MessageType::VoiceMessage => {
                std::borrow::Cow::Borrowed(m.content.as_str())
            }
            MessageType::FileUpload => {
                let name = m.metadata.as_ref().and_then(|meta| meta.get(meta::FILE_NAME));
                std::borrow::Cow::Owned(prompt::mention(&m.content, name.map_or("file", String::as_str)))
            }
            _ => continue,
        };
        if content.is_empty() {
            continue;
        }
        let cost = estimate_tokens(&content);
        if used + cost > budget {
            break;
        }
        used += cost;
        let role = match m.sender {
            Sender::User => ChatRole::User,
            Sender::Ai | Sender::Admin => ChatRole::Assistant,
        };
        out.push(ChatMessage::text(role, content.into_owned()));
    }
    out.reverse();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatbox_shared::protocol::Timestamp;

    fn record(seq: u64, sender: Sender, content: &str) -> MessageRecord {
        MessageRecord {
            session_id: "s".into(),
            seq,
            message_id: format!("m{seq}"),
            client_id: None,
            sender,
            kind: if sender == Sender::User {
                MessageType::UserMessage
            } else {
                MessageType::AiResponse
            },
            content: content.into(),
            file_id: None,
            model_id: None,
            timestamp: Timestamp::from_millis(seq),
            metadata: None,
            tokens: None,
        }
    }

    #[test]
    fn context_keeps_the_newest_messages_that_fit_oldest_first() {
        let newest_first = vec![
            record(4, Sender::Ai, "four four"),
            record(3, Sender::User, "three"),
            record(2, Sender::Ai, &"x".repeat(400)),
            record(1, Sender::User, "one"),
        ];
        let ctx = context(&newest_first, 10);
        let texts: Vec<&str> = ctx.iter().map(|m| m.content.as_str()).collect();
        assert_eq!(
            texts,
            ["three", "four four"],
            "stops at the first message over budget"
        );
        assert_eq!(ctx[0].role, ChatRole::User);
        assert_eq!(ctx[1].role, ChatRole::Assistant);
        assert_eq!(context(&newest_first, 10_000).len(), 4);
    }
}
