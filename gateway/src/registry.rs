//! The sockets open on this pod, by connection id: what the kill switch,
//! the ownership renewal and the shutdown drain act on.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chatbox_shared::coordinator::OwnerToken;

use crate::send_queue::{CloseOrder, SendQueue};

/// When a client was last heard from, in milliseconds on the gateway's
/// clock: what the keepalive reads to close silent sockets.
pub(crate) struct Liveness(AtomicU64);

impl Liveness {
    /// Heard from at `now` (gateway clock).
    pub(crate) fn at(now: Duration) -> Self {
        let liveness = Liveness(AtomicU64::new(0));
        liveness.heard(now);
        liveness
    }

    /// Records that the client was heard from at `now` (gateway clock).
    pub(crate) fn heard(&self, now: Duration) {
        self.0.store(
            u64::try_from(now.as_millis()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// How long the client has been silent at `now` (gateway clock).
    pub(crate) fn silent_for(&self, now: Duration) -> Duration {
        now.saturating_sub(Duration::from_millis(self.0.load(Ordering::Relaxed)))
    }
}

/// When the token a socket lives on expires, in seconds since the Unix
/// epoch: the keepalive closes the socket once it has passed (with the
/// auth leeway); a `reauth` with a fresh token moves it.
pub(crate) struct TokenExpiry(AtomicU64);

impl TokenExpiry {
    /// A socket opened with a token that expires at `exp`.
    pub(crate) fn at(exp: u64) -> Self {
        TokenExpiry(AtomicU64::new(exp))
    }

    /// A fresh token, expiring at `exp`, replaces the old one.
    pub(crate) fn renew(&self, exp: u64) {
        self.0.store(exp, Ordering::Relaxed);
    }

    /// Whether the token has expired at `now` (Unix seconds), past `leeway`.
    pub(crate) fn passed(&self, now: u64, leeway: Duration) -> bool {
        now > self.0.load(Ordering::Relaxed).saturating_add(leeway.as_secs())
    }
}

/// The current Unix time, in seconds.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// One open user socket, as the rest of the pod sees it.
pub(crate) struct ConnHandle {
    /// Unique on this pod.
    pub conn_id: u64,
    /// The authenticated user.
    pub user_id: String,
    /// The session the socket belongs to.
    pub session_id: String,
    /// Its outbound queue.
    pub queue: Arc<SendQueue>,
    /// The ownership lock it holds.
    pub owner: OwnerToken,
    /// Whether the renewal task has confirmed the user's active-session key
    /// has no expiry left from an earlier socket's disconnect.
    pub active_confirmed: AtomicBool,
    /// When the client was last heard from.
    pub liveness: Liveness,
    /// When its token expires.
    pub token_expiry: TokenExpiry,
}

impl ConnHandle {
    /// Orders the socket closed.
    pub(crate) fn close(&self, order: CloseOrder) {
        self.queue.close(order);
    }

    /// Marks the active-session key as confirmed; returns whether it was
    /// already.
    pub(crate) fn confirm_active(&self) -> bool {
        self.active_confirmed.swap(true, Ordering::AcqRel)
    }
}

/// The sockets of one kind on this pod (user sockets, admin sockets), by
/// connection id.
pub(crate) struct Registry<T> {
    conns: Mutex<HashMap<u64, Arc<T>>>,
}

/// The user sockets of this pod.
pub(crate) type ConnectionRegistry = Registry<ConnHandle>;

impl<T> Default for Registry<T> {
    fn default() -> Self {
        Registry {
            conns: Mutex::default(),
        }
    }
}

impl<T> Registry<T> {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Arc<T>>> {
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a socket.
    pub(crate) fn insert(&self, conn_id: u64, conn: Arc<T>) {
        self.lock().insert(conn_id, conn);
    }

    /// Removes a socket.
    pub(crate) fn remove(&self, conn_id: u64) {
        self.lock().remove(&conn_id);
    }

    /// A socket by id.
    pub(crate) fn get(&self, conn_id: u64) -> Option<Arc<T>> {
        self.lock().get(&conn_id).cloned()
    }

    /// Every socket (a snapshot).
    pub(crate) fn all(&self) -> Vec<Arc<T>> {
        self.lock().values().cloned().collect()
    }

    /// How many sockets are open.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}
