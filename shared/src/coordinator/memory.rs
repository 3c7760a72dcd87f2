//! The in-process coordinator of the all-in-one: the same semantics as the
//! Redis adapter (expiries, fencing, token buckets, notification windows)
//! in one locked map.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::{
    ActiveSession, Admission, Coordinator, CoordinatorError, NotifyAdmission, OwnerClaim, OwnerToken,
    RateLimit, Renewal, SUPPRESSED_USERS_MAX, Suppressed,
};
use crate::namespace::Keys;

/// The in-process [`Coordinator`].
pub struct MemoryCoordinator {
    keys: Keys,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    values: HashMap<String, Entry>,
    counters: HashMap<String, u64>,
    buckets: HashMap<String, (f64, Instant)>,
    notify_windows: HashMap<String, NotifyWindow>,
    digests: HashMap<String, Suppressed>,
}

/// The current window of one kind of notification.
struct NotifyWindow {
    ends: Instant,
    count: u64,
    held: u64,
    users: HashSet<String>,
}

impl State {
    /// Moves what an ended window of `key` held back to its digest.
    fn close_window(&mut self, key: &str, now: Instant) {
        if self.notify_windows.get(key).is_some_and(|w| w.ends <= now)
            && let Some(ended) = self.notify_windows.remove(key)
            && ended.held > 0
        {
            let digest = self.digests.entry(key.to_owned()).or_insert(Suppressed {
                count: 0,
                affected_users: 0,
            });
            digest.count += ended.held;
            digest.affected_users += ended.users.len() as u64;
        }
    }
}

struct Entry {
    value: String,
    expires: Option<Instant>,
}

impl State {
    fn get(&mut self, key: &str) -> Option<&mut Entry> {
        let now = Instant::now();
        if self
            .values
            .get(key)
            .is_some_and(|e| e.expires.is_some_and(|t| t <= now))
        {
            self.values.remove(key);
        }
        self.values.get_mut(key)
    }

    fn get_value(&mut self, key: &str) -> Option<String> {
        self.get(key).map(|e| e.value.clone())
    }

    fn set(&mut self, key: String, value: String, ttl: Option<Duration>) {
        let expires = ttl.map(|t| Instant::now() + t);
        self.values.insert(key, Entry { value, expires });
    }
}

impl MemoryCoordinator {
    /// An empty coordinator.
    pub fn new(keys: Keys) -> Self {
        MemoryCoordinator {
            keys,
            state: Mutex::default(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl Coordinator for MemoryCoordinator {
    fn adapter(&self) -> &'static str {
        "memory"
    }

    async fn activate_session(
        &self,
        user_id: &str,
        candidate: &str,
    ) -> Result<ActiveSession, CoordinatorError> {
        let key = self.keys.active(user_id);
        let mut s = self.state();
        if let Some(entry) = s.get(&key) {
            entry.expires = None;
            return Ok(ActiveSession {
                session_id: entry.value.clone(),
                created: false,
            });
        }
        s.set(key, candidate.to_owned(), None);
        Ok(ActiveSession {
            session_id: candidate.to_owned(),
            created: true,
        })
    }

    async fn active_session(&self, user_id: &str) -> Result<Option<String>, CoordinatorError> {
        Ok(self.state().get_value(&self.keys.active(user_id)))
    }

    async fn switch_active_session(
        &self,
        user_id: &str,
        session_id: &str,
    ) -> Result<Option<String>, CoordinatorError> {
        let key = self.keys.active(user_id);
        let mut s = self.state();
        let previous = s.get_value(&key);
        s.set(key, session_id.to_owned(), None);
        Ok(previous)
    }

    async fn clear_active_session(&self, user_id: &str, session_id: &str) -> Result<bool, CoordinatorError> {
        let key = self.keys.active(user_id);
        let mut s = self.state();
        if s.get_value(&key).is_some_and(|v| v == session_id) {
            s.values.remove(&key);
            Ok(true)
        } else {
            Ok(false)
        }
    }

    async fn linger_active_session(
        &self,
        user_id: &str,
        session_id: &str,
        ttl: Option<Duration>,
    ) -> Result<bool, CoordinatorError> {
        let key = self.keys.active(user_id);
        let mut s = self.state();
        match s.get(&key) {
            Some(entry) if entry.value == session_id => {
                entry.expires = ttl.map(|t| Instant::now() + t);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn claim_owner(
        &self,
        session_id: &str,
        pod_id: &str,
        conn_id: u64,
        ttl: Duration,
    ) -> Result<OwnerClaim, CoordinatorError> {
        let key = self.keys.owner(session_id);
        let mut s = self.state();
        let fence = {
            let counter = s.counters.entry(self.keys.fence(session_id)).or_insert(0);
            *counter += 1;
            *counter
        };
        let previous = s.get_value(&key).as_deref().and_then(OwnerToken::decode);
        let token = OwnerToken {
            pod_id: pod_id.to_owned(),
            conn_id,
            fence,
        };
        s.set(key, token.encode(), Some(ttl));
        Ok(OwnerClaim { token, previous })
    }

    async fn renew_owners(&self, renewals: &[Renewal], ttl: Duration) -> Result<Vec<bool>, CoordinatorError> {
        let mut s = self.state();
        let expires = Instant::now() + ttl;
        Ok(renewals
            .iter()
            .map(|r| match s.get(&self.keys.owner(&r.session_id)) {
                Some(entry) if entry.value == r.token.encode() => {
                    entry.expires = Some(expires);
                    true
                }
                _ => false,
            })
            .collect())
    }

    async fn release_owner(&self, session_id: &str, token: &OwnerToken) -> Result<bool, CoordinatorError> {
        let key = self.keys.owner(session_id);
        let mut s = self.state();
        if s.get_value(&key).is_some_and(|v| v == token.encode()) {
            s.values.remove(&key);
            Ok(true)
        } else {
            Ok(false)
        }
    }

    async fn owner(&self, session_id: &str) -> Result<Option<OwnerToken>, CoordinatorError> {
        let value = self.state().get_value(&self.keys.owner(session_id));
        Ok(value.as_deref().and_then(OwnerToken::decode))
    }

    async fn admit_message(&self, user_id: &str, limit: RateLimit) -> Result<Admission, CoordinatorError> {
        let capacity = f64::from(limit.capacity.max(1));
        let rate = capacity / limit.window.as_secs_f64().max(1e-3);
        let now = Instant::now();
        let mut s = self.state();
        let (tokens, at) = s
            .buckets
            .entry(self.keys.user_rate(user_id))
            .or_insert((capacity, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * rate).min(capacity);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(Admission::Allowed)
        } else {
            let wait = Duration::from_secs_f64((1.0 - *tokens) / rate);
            Ok(Admission::Limited {
                retry_after: wait.max(Duration::from_millis(1)),
            })
        }
    }

    async fn admit_notification(
        &self,
        key: &str,
        limit: RateLimit,
        affected: &str,
    ) -> Result<NotifyAdmission, CoordinatorError> {
        let key = self.keys.notification(key);
        let now = Instant::now();
        let mut s = self.state();
        s.close_window(&key, now);
        let window = s.notify_windows.entry(key).or_insert_with(|| NotifyWindow {
            ends: now + limit.window,
            count: 0,
            held: 0,
            users: HashSet::new(),
        });
        window.count += 1;
        if window.count <= u64::from(limit.capacity) {
            return Ok(NotifyAdmission::Send);
        }
        window.held += 1;
        if !affected.is_empty() && (window.users.len() as u64) < SUPPRESSED_USERS_MAX {
            window.users.insert(affected.to_owned());
        }
        Ok(NotifyAdmission::Suppressed)
    }

    async fn take_suppressed(&self, key: &str) -> Result<Option<Suppressed>, CoordinatorError> {
        let key = self.keys.notification(key);
        let mut s = self.state();
        s.close_window(&key, Instant::now());
        Ok(s.digests.remove(&key))
    }

    async fn heartbeat(&self, pod_id: &str, info: &str, ttl: Duration) -> Result<(), CoordinatorError> {
        self.state()
            .set(self.keys.pod(pod_id), info.to_owned(), Some(ttl));
        Ok(())
    }

    async fn check(&self) -> Result<(), CoordinatorError> {
        Ok(())
    }
}
