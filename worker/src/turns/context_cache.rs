//! The context a worker keeps per session: the session's newest messages,
//! decrypted, as its last turn here left them. A turn then asks the store
//! only for the messages after the last one held
//! ([`TurnQuery::known_upto`](crate::store::TurnQuery::known_upto)) and
//! decrypts only those.
//!
//! What is held stays right while nobody else writes the session, and when
//! someone does (another worker answered the previous turn, an admin
//! wrote), the store shows their messages after the last one held: they
//! are added on top. If the store shows anything else — fewer messages
//! than the session's last sequence number says, or a last sequence number
//! below the one held — what is held is dropped and the turn reads the
//! whole context again. The cache is bounded in bytes
//! (`chatbox.worker.context_cache_bytes`); the sessions used least
//! recently go first.

use std::sync::{Arc, Mutex, PoisonError};

use lru::LruCache;

use crate::store::{MessageRecord, Store, StoreError, TurnQuery, TurnView};

/// A session's newest messages, newest first, up to its last sequence
/// number.
#[derive(Debug, Clone, Default)]
pub(super) struct Held {
    /// Newest first.
    pub newest_first: Vec<Arc<MessageRecord>>,
    /// The session's last sequence number these messages reach.
    pub last_seq: u64,
}

impl Held {
    /// What is held, brought up to `last_seq` with `newer` (the newest of
    /// the messages after [`Held::last_seq`], newest first, at most
    /// `limit`); `None` when the store shows that the session's history is
    /// not the one held (then read it whole).
    pub(super) fn extend(self, newer: Vec<MessageRecord>, last_seq: u64, limit: usize) -> Option<Held> {
        if last_seq < self.last_seq {
            return None;
        }
        let newer: Vec<Arc<MessageRecord>> = newer.into_iter().map(Arc::new).collect();
        if newer.len() >= limit {
            // The newest messages replace all that was held.
            return Some(Held {
                newest_first: newer,
                last_seq,
            });
        }
        // Sequence numbers are unique and given in order: as many new
        // messages as the sequence moved means none is missing.
        let moved = last_seq - self.last_seq;
        if u64::try_from(newer.len()).ok()? != moved {
            return None;
        }
        let mut newest_first = newer;
        newest_first.extend(self.newest_first);
        newest_first.truncate(limit);
        Some(Held {
            newest_first,
            last_seq,
        })
    }

    /// Adds messages just stored (oldest first), keeping at most `limit`.
    pub(super) fn push(&mut self, stored: impl IntoIterator<Item = MessageRecord>, limit: usize) {
        for m in stored {
            self.last_seq = self.last_seq.max(m.seq);
            self.newest_first.insert(0, Arc::new(m));
        }
        self.newest_first.truncate(limit);
    }

    /// Roughly what it takes in memory.
    fn bytes(&self, session_id: &str) -> u64 {
        let messages: usize = self.newest_first.iter().map(|m| message_bytes(m)).sum();
        u64::try_from(session_id.len() + messages + std::mem::size_of::<Held>()).unwrap_or(u64::MAX)
    }
}

fn message_bytes(m: &MessageRecord) -> usize {
    let text = |s: &Option<String>| s.as_ref().map_or(0, String::len);
    let metadata = m
        .metadata
        .as_ref()
        .map_or(0, |meta| meta.iter().map(|(k, v)| k.len() + v.len() + 48).sum());
    std::mem::size_of::<MessageRecord>()
        + m.content.len()
        + m.session_id.len()
        + m.message_id.len()
        + text(&m.client_id)
        + text(&m.file_id)
        + text(&m.model_id)
        + metadata
}

/// The sessions' held context, least recently used first out.
pub(crate) struct ContextCache {
    budget: u64,
    held: Mutex<Sessions>,
}

struct Sessions {
    lru: LruCache<String, (Held, u64)>,
    used: u64,
}

impl ContextCache {
    /// A cache of at most `budget` bytes (0: nothing is kept).
    pub(crate) fn new(budget: u64) -> Self {
        ContextCache {
            budget,
            held: Mutex::new(Sessions {
                lru: LruCache::unbounded(),
                used: 0,
            }),
        }
    }

    /// The store's view of a turn and the session's newest messages: those
    /// held, brought up to date by reading only what is new — or all of
    /// them read again when what is held is not the session's history any
    /// more (`query.known_upto` is set here).
    pub(super) async fn turn_view(
        &self,
        store: &dyn Store,
        query: TurnQuery<'_>,
    ) -> Result<Option<(TurnView, Held)>, StoreError> {
        let sid = query.session_id;
        if let Some(held) = self.held(sid) {
            let known = TurnQuery {
                known_upto: held.last_seq,
                ..query
            };
            let Some(mut view) = store.turn_view(&known).await? else {
                self.forget(sid);
                return Ok(None);
            };
            let newer = std::mem::take(&mut view.newer);
            if let Some(held) = held.extend(newer, view.last_seq, query.context) {
                return Ok(Some((view, held)));
            }
            self.forget(sid);
        }
        let whole = TurnQuery {
            known_upto: 0,
            ..query
        };
        let Some(mut view) = store.turn_view(&whole).await? else {
            return Ok(None);
        };
        let held = Held {
            newest_first: view.newer.drain(..).map(Arc::new).collect(),
            last_seq: view.last_seq,
        };
        Ok(Some((view, held)))
    }

    /// What is held for the session, if anything.
    pub(super) fn held(&self, session_id: &str) -> Option<Held> {
        let mut sessions = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        sessions.lru.get(session_id).map(|(held, _)| held.clone())
    }

    /// Keeps `held` for the session, in place of what was held; drops the
    /// least recently used sessions while over the budget.
    pub(super) fn keep(&self, session_id: &str, held: Held) {
        let bytes = held.bytes(session_id);
        if bytes > self.budget {
            self.forget(session_id);
            return;
        }
        let mut sessions = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, before)) = sessions.lru.put(session_id.to_owned(), (held, bytes)) {
            sessions.used -= before;
        }
        sessions.used += bytes;
        while sessions.used > self.budget {
            let Some((_, (_, dropped))) = sessions.lru.pop_lru() else {
                break;
            };
            sessions.used -= dropped;
        }
    }

    /// Drops what is held for the session.
    pub(super) fn forget(&self, session_id: &str) {
        let mut sessions = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, bytes)) = sessions.lru.pop(session_id) {
            sessions.used -= bytes;
        }
    }
}

#[cfg(test)]
mod tests {
    use chatbox_shared::protocol::{MessageType, Sender, Timestamp};

    use super::*;

    fn record(seq: u64) -> MessageRecord {
        MessageRecord {
            session_id: "s".into(),
            seq,
            message_id: format!("m{seq}"),
            client_id: None,
            sender: Sender::User,
            kind: MessageType::UserMessage,
            content: format!("text {seq}"),
            file_id: None,
            model_id: None,
            timestamp: Timestamp::from_millis(seq),
            metadata: None,
            tokens: None,
        }
    }

    fn seqs(held: &Held) -> Vec<u64> {
        held.newest_first.iter().map(|m| m.seq).collect()
    }

    fn held(upto: u64) -> Held {
        let mut held = Held::default();
        held.push((1..=upto).map(record), 10);
        held
    }

    #[test]
    fn messages_written_elsewhere_are_added_on_top_and_a_gap_or_rewrite_drops_what_is_held() {
        let extended = held(3).extend(vec![record(5), record(4)], 5, 10).unwrap();
        assert_eq!(seqs(&extended), [5, 4, 3, 2, 1]);
        assert_eq!(extended.last_seq, 5);
        assert_eq!(seqs(&held(3).extend(Vec::new(), 3, 10).unwrap()), [3, 2, 1]);
        assert!(
            held(3).extend(vec![record(5)], 5, 10).is_none(),
            "message 4 is missing"
        );
        assert!(
            held(3).extend(Vec::new(), 2, 10).is_none(),
            "the session went back"
        );
        let window = held(3).extend(vec![record(9), record(8)], 9, 2).unwrap();
        assert_eq!(
            seqs(&window),
            [9, 8],
            "a full window of new messages replaces the rest"
        );
    }

    #[test]
    fn the_least_recently_used_sessions_go_when_the_budget_is_spent() {
        let one = held(3).bytes("a");
        let cache = ContextCache::new(one * 2 + one / 2);
        cache.keep("a", held(3));
        cache.keep("b", held(3));
        assert!(cache.held("a").is_some(), "a is used again");
        cache.keep("c", held(3));
        assert!(cache.held("b").is_none(), "b was used least recently");
        assert!(cache.held("a").is_some() && cache.held("c").is_some());
        let off = ContextCache::new(0);
        off.keep("a", held(3));
        assert!(off.held("a").is_none(), "a budget of 0 keeps nothing");
    }
}
