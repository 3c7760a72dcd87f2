//! What a session's listeners on this pod have been sent, so that a turn
//! run again does not show them anything twice (docs/PROTOCOL.md, "When a
//! worker dies mid-answer").
//!
//! When a worker dies mid-turn, another worker runs the turn again from
//! the start: it echoes the user's message again (same `seq`) and streams
//! the answer again, announced by a fresh `loading` frame the client resets
//! the partial answer on. Two headers on `chat.out` let the gateway drop
//! what would repeat, without parsing frames:
//!
//! * `Chatbox-Seq` — a stored frame already delivered (same `seq`) is
//!   dropped. Stored frames of one session may be published slightly out
//!   of order by different pods, so the gateway remembers which of the last
//!   [`WINDOW`] sequence numbers it delivered rather than only the highest.
//! * `Chatbox-Turn` (`<message_id>/<delivery>`) — once a later delivery of
//!   a message has spoken, frames of an earlier one (a worker that was
//!   only stalled, not dead) are dropped.

/// How many sequence numbers below the highest one are remembered.
const WINDOW: u64 = 128;

/// Whether a frame goes to the listeners.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Deliver,
    /// A stored frame the listeners already have.
    Repeat,
}

/// One session's record.
#[derive(Debug, Default)]
pub(crate) struct Delivered {
    /// The highest `seq` delivered.
    highest: u64,
    /// Bit `i` set: `highest - i` was delivered.
    seen: u128,
    /// The latest turn heard: its message id and delivery.
    turn: Option<(String, u64)>,
}

impl Delivered {
    /// Whether a message of `turn` (its `Chatbox-Turn` header) is from a
    /// delivery a later one replaced; a later delivery is recorded.
    pub(crate) fn stale(&mut self, turn: Option<&str>) -> bool {
        let Some((message_id, delivery)) = turn.and_then(parse_turn) else {
            return false;
        };
        match &mut self.turn {
            Some((latest, latest_delivery)) if latest == message_id => {
                if delivery < *latest_delivery {
                    return true;
                }
                *latest_delivery = delivery;
            }
            _ => self.turn = Some((message_id.to_owned(), delivery)),
        }
        false
    }

    /// Judges one frame of a message that is not stale, by its `seq`, and
    /// records it if it is delivered.
    pub(crate) fn admit(&mut self, seq: Option<u64>) -> Verdict {
        match seq {
            Some(seq) if self.delivered(seq) => Verdict::Repeat,
            Some(seq) => {
                self.record(seq);
                Verdict::Deliver
            }
            None => Verdict::Deliver,
        }
    }

    fn delivered(&self, seq: u64) -> bool {
        if seq > self.highest || self.highest == 0 {
            return false;
        }
        let back = self.highest - seq;
        // Older than the window: too old to tell, so it is delivered
        // (a repeat shown is better than a message lost).
        back < WINDOW && self.seen & (1u128 << back) != 0
    }

    fn record(&mut self, seq: u64) {
        if seq > self.highest {
            let shift = seq - self.highest;
            self.seen = if shift >= WINDOW { 0 } else { self.seen << shift };
            self.highest = seq;
            self.seen |= 1;
        } else {
            let back = self.highest - seq;
            if back < WINDOW {
                self.seen |= 1u128 << back;
            }
        }
    }
}

fn parse_turn(value: &str) -> Option<(&str, u64)> {
    let (message_id, delivery) = value.rsplit_once('/')?;
    Some((message_id, delivery.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A message of `turn` with one frame of `seq`, as the pump judges it.
    fn judge(d: &mut Delivered, seq: Option<u64>, turn: Option<&str>) -> &'static str {
        if d.stale(turn) {
            return "stale";
        }
        match d.admit(seq) {
            Verdict::Deliver => "deliver",
            Verdict::Repeat => "repeat",
        }
    }

    #[test]
    fn a_stored_frame_is_delivered_once() {
        let mut d = Delivered::default();
        assert_eq!(judge(&mut d, Some(5), Some("m1/1")), "deliver");
        assert_eq!(judge(&mut d, None, Some("m1/1")), "deliver");
        // The turn run again by another worker: the echo repeats.
        assert_eq!(judge(&mut d, Some(5), Some("m1/2")), "repeat");
        assert_eq!(judge(&mut d, None, Some("m1/2")), "deliver");
        assert_eq!(judge(&mut d, Some(6), Some("m1/2")), "deliver");
        assert_eq!(judge(&mut d, Some(6), None), "repeat");
    }

    #[test]
    fn stored_frames_out_of_order_are_all_delivered() {
        let mut d = Delivered::default();
        for seq in [1, 3, 2, 7, 4, 6, 5] {
            assert_eq!(judge(&mut d, Some(seq), None), "deliver", "seq {seq}");
        }
        for seq in 1..=7 {
            assert_eq!(judge(&mut d, Some(seq), None), "repeat", "seq {seq}");
        }
        // Far beyond the window: everything behind is forgotten, not refused.
        assert_eq!(judge(&mut d, Some(7 + WINDOW * 3), None), "deliver");
        assert_eq!(judge(&mut d, Some(8), None), "deliver");
    }

    #[test]
    fn frames_of_an_earlier_delivery_are_stale_once_a_later_one_spoke() {
        let mut d = Delivered::default();
        assert_eq!(judge(&mut d, None, Some("m1/1")), "deliver");
        assert_eq!(judge(&mut d, None, Some("m1/2")), "deliver");
        assert_eq!(judge(&mut d, None, Some("m1/1")), "stale");
        assert_eq!(judge(&mut d, Some(9), Some("m1/1")), "stale");
        // Its stored frame was not recorded: the live delivery's goes out.
        assert_eq!(judge(&mut d, Some(9), Some("m1/2")), "deliver");
        // The next message starts afresh.
        assert_eq!(judge(&mut d, None, Some("m2/1")), "deliver");
        // A message id with a slash in it.
        assert_eq!(judge(&mut d, None, Some("a/b/3")), "deliver");
        assert_eq!(judge(&mut d, None, Some("a/b/2")), "stale");
    }
}
