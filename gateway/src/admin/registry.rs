//! The admin sockets open on this pod: what the keepalive, the renewal of
//! takeover locks and presence, and the shutdown drain act on.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::admin::Admin;
use crate::registry::{Liveness, Registry, TokenExpiry};
use crate::send_queue::{CloseOrder, SendQueue};

/// One admin socket.
pub(crate) struct AdminConn {
    /// Unique on this pod (shared numbering with user sockets).
    pub conn_id: u64,
    /// Who is on it.
    pub admin: Admin,
    /// Its outbound queue.
    pub queue: Arc<SendQueue>,
    /// When the client was last heard from.
    pub liveness: Liveness,
    /// When its token expires.
    pub token_expiry: TokenExpiry,
    /// Sessions it watches.
    watching: Mutex<BTreeSet<String>>,
    /// Sessions it has taken over.
    held: Mutex<BTreeSet<String>>,
}

fn locked(set: &Mutex<BTreeSet<String>>) -> MutexGuard<'_, BTreeSet<String>> {
    set.lock().unwrap_or_else(|p| p.into_inner())
}

impl AdminConn {
    /// A new admin socket, heard from at `now`, on a token that expires
    /// at `expires_at` (Unix seconds).
    pub(crate) fn new(
        conn_id: u64,
        admin: Admin,
        queue: Arc<SendQueue>,
        now: Duration,
        expires_at: u64,
    ) -> Self {
        AdminConn {
            conn_id,
            admin,
            queue,
            liveness: Liveness::at(now),
            token_expiry: TokenExpiry::at(expires_at),
            watching: Mutex::default(),
            held: Mutex::default(),
        }
    }

    /// Orders the socket closed.
    pub(crate) fn close(&self, order: CloseOrder) {
        self.queue.close(order);
    }

    /// Starts watching `session_id`; `false` if it already did.
    pub(crate) fn start_watching(&self, session_id: &str) -> bool {
        locked(&self.watching).insert(session_id.to_owned())
    }

    /// Stops watching `session_id`; `false` if it did not.
    pub(crate) fn stop_watching(&self, session_id: &str) -> bool {
        locked(&self.watching).remove(session_id)
    }

    /// Whether it watches `session_id`.
    pub(crate) fn watches(&self, session_id: &str) -> bool {
        locked(&self.watching).contains(session_id)
    }

    /// The sessions it watches.
    pub(crate) fn watching(&self) -> Vec<String> {
        locked(&self.watching).iter().cloned().collect()
    }

    /// Records a takeover it holds (or forgets it: `held = false`).
    pub(crate) fn set_held(&self, session_id: &str, held: bool) {
        let mut set = locked(&self.held);
        if held {
            set.insert(session_id.to_owned());
        } else {
            set.remove(session_id);
        }
    }

    /// Whether it holds the takeover of `session_id`.
    pub(crate) fn holds(&self, session_id: &str) -> bool {
        locked(&self.held).contains(session_id)
    }

    /// The sessions it has taken over.
    pub(crate) fn held(&self) -> Vec<String> {
        locked(&self.held).iter().cloned().collect()
    }
}

/// The admin sockets of this pod.
pub(crate) type AdminRegistry = Registry<AdminConn>;
