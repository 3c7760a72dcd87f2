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

use chatbox_shared::bus::Headers;
use chatbox_shared::envelope::headers;

/// How many sequence numbers below the highest one are remembered.
const WINDOW: u64 = 128;

/// Whether a frame goes to the listeners.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Deliver,
    /// A stored frame the listeners already have.
    Repeat,
    /// A frame of a turn's delivery that a later delivery replaced.
    Stale,
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
    /// Judges a frame by its headers, and records it if it is delivered.
    pub(crate) fn admit(&mut self, frame_headers: &Headers) -> Verdict {
        if let Some((message_id, delivery)) = frame_headers.get(headers::TURN).and_then(parse_turn) {
            match &mut self.turn {
                Some((latest, latest_delivery)) if latest == message_id => {
                    if delivery < *latest_delivery {
                        return Verdict::Stale;
                    }
                    *latest_delivery = delivery;
                }
                _ => self.turn = Some((message_id.to_owned(), delivery)),
            }
        }
        match frame_headers.get(headers::SEQ).and_then(|s| s.parse::<u64>().ok()) {
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

    fn frame(seq: Option<u64>, turn: Option<&str>) -> Headers {
        let mut h = Headers::new();
        if let Some(seq) = seq {
            h.insert(headers::SEQ, seq.to_string());
        }
        if let Some(turn) = turn {
            h.insert(headers::TURN, turn);
        }
        h
    }

    #[test]
    fn a_stored_frame_is_delivered_once() {
        let mut d = Delivered::default();
        assert_eq!(d.admit(&frame(Some(5), Some("m1/1"))), Verdict::Deliver);
        assert_eq!(d.admit(&frame(None, Some("m1/1"))), Verdict::Deliver);
        // The turn run again by another worker: the echo repeats.
        assert_eq!(d.admit(&frame(Some(5), Some("m1/2"))), Verdict::Repeat);
        assert_eq!(d.admit(&frame(None, Some("m1/2"))), Verdict::Deliver);
        assert_eq!(d.admit(&frame(Some(6), Some("m1/2"))), Verdict::Deliver);
        assert_eq!(d.admit(&frame(Some(6), None)), Verdict::Repeat);
    }

    #[test]
    fn stored_frames_out_of_order_are_all_delivered() {
        let mut d = Delivered::default();
        for seq in [1, 3, 2, 7, 4, 6, 5] {
            assert_eq!(d.admit(&frame(Some(seq), None)), Verdict::Deliver, "seq {seq}");
        }
        for seq in 1..=7 {
            assert_eq!(d.admit(&frame(Some(seq), None)), Verdict::Repeat, "seq {seq}");
        }
        // Far beyond the window: everything behind is forgotten, not refused.
        assert_eq!(d.admit(&frame(Some(7 + WINDOW * 3), None)), Verdict::Deliver);
        assert_eq!(d.admit(&frame(Some(8), None)), Verdict::Deliver);
    }

    #[test]
    fn frames_of_an_earlier_delivery_are_stale_once_a_later_one_spoke() {
        let mut d = Delivered::default();
        assert_eq!(d.admit(&frame(None, Some("m1/1"))), Verdict::Deliver);
        assert_eq!(d.admit(&frame(None, Some("m1/2"))), Verdict::Deliver);
        assert_eq!(d.admit(&frame(None, Some("m1/1"))), Verdict::Stale);
        assert_eq!(d.admit(&frame(Some(9), Some("m1/1"))), Verdict::Stale);
        // Its stored frame was not recorded: the live delivery's goes out.
        assert_eq!(d.admit(&frame(Some(9), Some("m1/2"))), Verdict::Deliver);
        // The next message starts afresh.
        assert_eq!(d.admit(&frame(None, Some("m2/1"))), Verdict::Deliver);
        // A message id with a slash in it.
        assert_eq!(d.admit(&frame(None, Some("a/b/3"))), Verdict::Deliver);
        assert_eq!(d.admit(&frame(None, Some("a/b/2"))), Verdict::Stale);
    }
}
