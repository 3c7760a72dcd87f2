//! The outbound queue of one socket.
//!
//! Anything that wants to send to a socket — the session fan-out, the
//! kill switch, the connection's own replies — pushes ready-made frame
//! bytes here; the connection task drains the whole queue at once and
//! writes it with a single flush, so bursts of chunks coalesce into few
//! syscalls. Frames are `Bytes`, shared with every other socket that gets
//! the same frame. A socket that falls more than `limit` frames behind is
//! closed as a slow consumer instead of buffering without bound.
//!
//! Idle cost is a mutex, an empty `VecDeque` (no allocation) and a
//! `Notify`.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;
use chatbox_shared::protocol::outbound::StatusReason;
use tokio::sync::Notify;

/// Why and how a socket is to be closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CloseOrder {
    /// Why.
    pub reason: StatusReason,
    /// A last frame (a `connection_status` or an `error`) sent before the
    /// close frame.
    pub last_frame: Option<Bytes>,
}

/// The frame queue of one socket.
pub(crate) struct SendQueue {
    inner: Mutex<Inner>,
    ready: Notify,
    limit: usize,
}

#[derive(Default)]
struct Inner {
    frames: VecDeque<Bytes>,
    ping: bool,
    close: Option<CloseOrder>,
}

/// What [`SendQueue::drain_into`] found besides frames.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Drained {
    /// Send a WebSocket ping.
    pub ping: bool,
    /// Close after the frames.
    pub close: Option<CloseOrder>,
}

impl SendQueue {
    /// A queue that holds up to `limit` frames.
    pub(crate) fn new(limit: usize) -> Self {
        SendQueue {
            inner: Mutex::default(),
            ready: Notify::new(),
            limit: limit.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Frames waiting to be written.
    pub(crate) fn len(&self) -> usize {
        self.lock().frames.len()
    }

    /// Queues a frame; `false` if it was not queued. A frame that is not
    /// queued belongs to a socket that is closing (ordered closed, or too
    /// slow to keep up): its client reconnects and reads what it missed
    /// from the session's history, so callers need not care.
    pub(crate) fn push(&self, frame: Bytes) -> bool {
        let mut inner = self.lock();
        if inner.close.is_some() {
            return false;
        }
        if inner.frames.len() >= self.limit {
            inner.frames.clear();
            inner.close = Some(CloseOrder {
                reason: StatusReason::SlowConsumer,
                last_frame: None,
            });
            drop(inner);
            self.ready.notify_one();
            return false;
        }
        inner.frames.push_back(frame);
        drop(inner);
        self.ready.notify_one();
        true
    }

    /// Orders the socket closed after the frames already queued; the first
    /// order wins.
    pub(crate) fn close(&self, order: CloseOrder) {
        let mut inner = self.lock();
        if inner.close.is_none() {
            inner.close = Some(order);
        }
        drop(inner);
        self.ready.notify_one();
    }

    /// Asks for a WebSocket ping to go out with the next write.
    pub(crate) fn request_ping(&self) {
        self.lock().ping = true;
        self.ready.notify_one();
    }

    /// Moves every queued frame into `out`; says whether a ping is due and
    /// returns the close order once the frames before it are out.
    pub(crate) fn drain_into(&self, out: &mut Vec<Bytes>) -> Drained {
        let mut inner = self.lock();
        out.extend(inner.frames.drain(..));
        if inner.frames.capacity() > 64 {
            // Give back the memory of a burst once it has been written.
            inner.frames.shrink_to(8);
        }
        Drained {
            ping: std::mem::take(&mut inner.ping),
            close: inner.close.clone(),
        }
    }

    /// Resolves when something was pushed or a close was ordered.
    pub(crate) async fn ready(&self) {
        self.ready.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drains_in_order_and_reports_the_close_after_the_frames() {
        let q = SendQueue::new(8);
        assert!(q.push(Bytes::from_static(b"1")));
        assert!(q.push(Bytes::from_static(b"2")));
        q.request_ping();
        let mut out = Vec::new();
        assert_eq!(
            q.drain_into(&mut out),
            Drained {
                ping: true,
                close: None
            }
        );
        assert_eq!(out, vec![Bytes::from_static(b"1"), Bytes::from_static(b"2")]);
        assert!(!q.drain_into(&mut out).ping, "a ping is sent once");
        q.close(CloseOrder {
            reason: StatusReason::ConnectedElsewhere,
            last_frame: None,
        });
        assert!(
            !q.push(Bytes::from_static(b"late")),
            "dropped after the close order"
        );
        out.clear();
        let order = q.drain_into(&mut out).close.unwrap();
        assert_eq!(order.reason, StatusReason::ConnectedElsewhere);
        assert!(out.is_empty());
    }

    #[test]
    fn overflow_turns_into_a_slow_consumer_close() {
        let q = SendQueue::new(2);
        assert!(q.push(Bytes::from_static(b"1")));
        assert!(q.push(Bytes::from_static(b"2")));
        assert!(!q.push(Bytes::from_static(b"3")));
        let mut out = Vec::new();
        assert_eq!(
            q.drain_into(&mut out).close.unwrap().reason,
            StatusReason::SlowConsumer
        );
        assert!(out.is_empty());
    }

    #[tokio::test]
    async fn ready_wakes_on_push() {
        let q = std::sync::Arc::new(SendQueue::new(4));
        let waiter = {
            let q = q.clone();
            tokio::spawn(async move { q.ready().await })
        };
        tokio::task::yield_now().await;
        assert!(q.push(Bytes::from_static(b"x")));
        tokio::time::timeout(std::time::Duration::from_secs(1), waiter)
            .await
            .expect("woken")
            .unwrap();
    }
}
