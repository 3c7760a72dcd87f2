//! The in-process coordinator of the all-in-one: the same semantics as the
//! Redis adapter (expiries, fencing, token buckets, notification windows)
//! in one locked map.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::{
    ActiveSession, AdminClaim, AdminHolder, Admission, Coordinator, CoordinatorError, LiveState,
    NotifyAdmission, OwnerClaim, OwnerToken, PodBeat, RateLimit, Renewal, RequestKind, SUPPRESSED_USERS_MAX,
    Suppressed, Watcher,
};
use crate::namespace::Keys;
use crate::protocol::Timestamp;

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
    /// Expiring hashes (watchers, live pods): key → field → (expiry, data).
    hashes: HashMap<String, HashMap<String, (Instant, String)>>,
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

    fn admin_holder(&mut self, key: &str) -> Option<AdminHolder> {
        self.get_value(key).as_deref().and_then(AdminHolder::decode)
    }

    /// The admin lock at `key` if `admin_id` holds it.
    fn admin_entry(&mut self, key: &str, admin_id: &str) -> Option<&mut Entry> {
        self.get(key)
            .filter(|e| AdminHolder::decode(&e.value).is_some_and(|h| h.admin_id == admin_id))
    }

    fn hash_set(&mut self, key: String, field: &str, ttl: Duration, data: &str) {
        self.hashes
            .entry(key)
            .or_default()
            .insert(field.to_owned(), (Instant::now() + ttl, data.to_owned()));
    }

    fn hash_live(&mut self, key: &str) -> Vec<(String, String)> {
        let now = Instant::now();
        let Some(hash) = self.hashes.get_mut(key) else {
            return Vec::new();
        };
        hash.retain(|_, (expires, _)| *expires > now);
        let mut live: Vec<(String, String)> = hash
            .iter()
            .map(|(field, (_, data))| (field.clone(), data.clone()))
            .collect();
        live.sort();
        live
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

impl MemoryCoordinator {
    /// Takes up to `want` tokens from the bucket at `key`.
    fn take_tokens(&self, key: String, limit: RateLimit, want: u32) -> Admission {
        let capacity = f64::from(limit.capacity.max(1));
        let rate = capacity / limit.window.as_secs_f64().max(1e-3);
        let now = Instant::now();
        let mut s = self.state();
        let (tokens, at) = s.buckets.entry(key).or_insert((capacity, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * rate).min(capacity);
        *at = now;
        let granted = tokens.floor().min(f64::from(want.max(1)));
        if granted >= 1.0 {
            *tokens -= granted;
            // A whole number between 1 and `want`: the cast is exact.
            Admission::Allowed {
                granted: granted as u32,
            }
        } else {
            let wait = Duration::from_secs_f64((1.0 - *tokens) / rate);
            Admission::Limited {
                retry_after: wait.max(Duration::from_millis(1)),
            }
        }
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

    async fn admit_message(
        &self,
        user_id: &str,
        limit: RateLimit,
        want: u32,
    ) -> Result<Admission, CoordinatorError> {
        Ok(self.take_tokens(self.keys.user_rate(user_id), limit, want))
    }

    async fn admit_request(
        &self,
        kind: RequestKind,
        user_id: &str,
        limit: RateLimit,
        want: u32,
    ) -> Result<Admission, CoordinatorError> {
        Ok(self.take_tokens(self.keys.user_request_rate(kind.as_str(), user_id), limit, want))
    }

    async fn claim_admin(
        &self,
        session_id: &str,
        admin_id: &str,
        admin_name: &str,
        since: Timestamp,
        ttl: Duration,
    ) -> Result<AdminClaim, CoordinatorError> {
        let key = self.keys.admin(session_id);
        let mut s = self.state();
        if let Some(held) = s.admin_holder(&key) {
            if held.admin_id != admin_id {
                return Ok(AdminClaim::HeldBy(held));
            }
            if let Some(entry) = s.get(&key) {
                entry.expires = Some(Instant::now() + ttl);
            }
            return Ok(AdminClaim::Resumed(held));
        }
        let holder = AdminHolder {
            admin_id: admin_id.to_owned(),
            admin_name: admin_name.to_owned(),
            since,
        };
        s.set(key, holder.encode(), Some(ttl));
        Ok(AdminClaim::Taken(holder))
    }

    async fn renew_admins(
        &self,
        held: &[(String, String)],
        ttl: Duration,
    ) -> Result<Vec<bool>, CoordinatorError> {
        let mut s = self.state();
        let expires = Instant::now() + ttl;
        Ok(held
            .iter()
            .map(
                |(session_id, admin_id)| match s.admin_entry(&self.keys.admin(session_id), admin_id) {
                    Some(entry) => {
                        entry.expires = Some(expires);
                        true
                    }
                    None => false,
                },
            )
            .collect())
    }

    async fn release_admin(
        &self,
        session_id: &str,
        admin_id: &str,
    ) -> Result<Option<AdminHolder>, CoordinatorError> {
        let key = self.keys.admin(session_id);
        let mut s = self.state();
        if s.admin_entry(&key, admin_id).is_none() {
            return Ok(None);
        }
        Ok(s.values.remove(&key).and_then(|e| AdminHolder::decode(&e.value)))
    }

    async fn admin_holder(&self, session_id: &str) -> Result<Option<AdminHolder>, CoordinatorError> {
        Ok(self.state().admin_holder(&self.keys.admin(session_id)))
    }

    async fn watch(
        &self,
        session_id: &str,
        watcher: &Watcher,
        ttl: Duration,
    ) -> Result<(), CoordinatorError> {
        self.state().hash_set(
            self.keys.watchers(session_id),
            &watcher.admin_id,
            ttl,
            &watcher.admin_name,
        );
        Ok(())
    }

    async fn unwatch(&self, session_id: &str, admin_id: &str) -> Result<(), CoordinatorError> {
        if let Some(hash) = self.state().hashes.get_mut(&self.keys.watchers(session_id)) {
            hash.remove(admin_id);
        }
        Ok(())
    }

    async fn live_state(&self, session_ids: &[String]) -> Result<Vec<LiveState>, CoordinatorError> {
        let mut s = self.state();
        Ok(session_ids
            .iter()
            .map(|sid| LiveState {
                owner: s
                    .get_value(&self.keys.owner(sid))
                    .as_deref()
                    .and_then(OwnerToken::decode),
                assisting: s.admin_holder(&self.keys.admin(sid)),
                watchers: s
                    .hash_live(&self.keys.watchers(sid))
                    .into_iter()
                    .map(|(admin_id, admin_name)| Watcher { admin_id, admin_name })
                    .collect(),
            })
            .collect())
    }

    async fn pods(&self) -> Result<Vec<PodBeat>, CoordinatorError> {
        Ok(self
            .state()
            .hash_live(&self.keys.pods())
            .into_iter()
            .map(|(pod_id, info)| PodBeat { pod_id, info })
            .collect())
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
        let mut s = self.state();
        s.set(self.keys.pod(pod_id), info.to_owned(), Some(ttl));
        s.hash_set(self.keys.pods(), pod_id, ttl, info);
        Ok(())
    }

    async fn check(&self) -> Result<(), CoordinatorError> {
        Ok(())
    }
}
