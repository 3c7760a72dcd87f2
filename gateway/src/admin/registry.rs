//! The admin sockets open on this pod: what the keepalive, the renewal of
//! takeover locks and presence, and the shutdown drain act on.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::admin::Staff;
use crate::send_queue::{CloseOrder, SendQueue};

/// One admin socket.
pub struct AdminConn {
    /// Unique on this pod (shared numbering with user sockets).
    pub conn_id: u64,
    /// Who is on it.
    pub staff: Staff,
    /// Its outbound queue.
    pub queue: Arc<SendQueue>,
    /// When the client was last heard from (gateway clock, ms).
    last_heard: AtomicU64,
    /// Sessions it watches.
    watching: Mutex<BTreeSet<String>>,
    /// Sessions it has taken over.
    held: Mutex<BTreeSet<String>>,
}

fn locked(set: &Mutex<BTreeSet<String>>) -> MutexGuard<'_, BTreeSet<String>> {
    set.lock().unwrap_or_else(|p| p.into_inner())
}

impl AdminConn {
    /// A new admin socket, heard from at `now`.
    pub fn new(conn_id: u64, staff: Staff, queue: Arc<SendQueue>, now: Duration) -> Self {
        let conn = AdminConn {
            conn_id,
            staff,
            queue,
            last_heard: AtomicU64::new(0),
            watching: Mutex::default(),
            held: Mutex::default(),
        };
        conn.heard(now);
        conn
    }

    /// Orders the socket closed.
    pub fn close(&self, order: CloseOrder) {
        self.queue.close(order);
    }

    /// Records that the client was heard from at `now` (gateway clock).
    pub fn heard(&self, now: Duration) {
        self.last_heard.store(
            u64::try_from(now.as_millis()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// How long the client has been silent at `now` (gateway clock).
    pub fn silent_for(&self, now: Duration) -> Duration {
        now.saturating_sub(Duration::from_millis(self.last_heard.load(Ordering::Relaxed)))
    }

    /// Starts watching `session_id`; `false` if it already did.
    pub fn start_watching(&self, session_id: &str) -> bool {
        locked(&self.watching).insert(session_id.to_owned())
    }

    /// Stops watching `session_id`; `false` if it did not.
    pub fn stop_watching(&self, session_id: &str) -> bool {
        locked(&self.watching).remove(session_id)
    }

    /// Whether it watches `session_id`.
    pub fn watches(&self, session_id: &str) -> bool {
        locked(&self.watching).contains(session_id)
    }

    /// The sessions it watches.
    pub fn watching(&self) -> Vec<String> {
        locked(&self.watching).iter().cloned().collect()
    }

    /// Records a takeover it holds (or forgets it: `held = false`).
    pub fn set_held(&self, session_id: &str, held: bool) {
        let mut set = locked(&self.held);
        if held {
            set.insert(session_id.to_owned());
        } else {
            set.remove(session_id);
        }
    }

    /// Whether it holds the takeover of `session_id`.
    pub fn holds(&self, session_id: &str) -> bool {
        locked(&self.held).contains(session_id)
    }

    /// The sessions it has taken over.
    pub fn held(&self) -> Vec<String> {
        locked(&self.held).iter().cloned().collect()
    }
}

/// The admin sockets of this pod.
#[derive(Default)]
pub struct AdminRegistry {
    conns: Mutex<HashMap<u64, Arc<AdminConn>>>,
}

impl AdminRegistry {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Arc<AdminConn>>> {
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a socket.
    pub fn insert(&self, conn: Arc<AdminConn>) {
        self.lock().insert(conn.conn_id, conn);
    }

    /// Removes a socket.
    pub fn remove(&self, conn_id: u64) {
        self.lock().remove(&conn_id);
    }

    /// Every admin socket (a snapshot).
    pub fn all(&self) -> Vec<Arc<AdminConn>> {
        self.lock().values().cloned().collect()
    }

    /// How many are open.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none are.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}
