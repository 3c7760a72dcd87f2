//! The Redis adapter of the coordinator (`fred`).
//!
//! Every compare-and-set is a Lua script (in `lua/`) run with EVALSHA, so
//! a stale owner can never renew or release a newer owner's lock. Scripts
//! touch keys of one hash tag only, so they run on Redis Cluster too.
//! Commands are multiplexed over a small pool of connections; renewals of
//! many locks go out as one pipeline.

use std::time::Duration;

use async_trait::async_trait;
use fred::prelude::*;
use fred::types::Value;

use super::{
    ActiveSession, AdminClaim, AdminHolder, Admission, Coordinator, CoordinatorError, DIGEST_GRACE,
    LiveState, NotifyAdmission, OwnerClaim, OwnerToken, PodBeat, RateLimit, Renewal, RequestKind,
    SESSION_COUNTER_TTL, SUPPRESSED_USERS_MAX, Suppressed, Watcher, millis,
};
use crate::config::redact_url;
use crate::namespace::Keys;
use crate::protocol::Timestamp;

/// Settings of the Redis adapter.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// `redis://[user:pass@]host:port[/db]` (or `rediss://` for TLS).
    pub url: String,
    /// Connections in the pool.
    pub pool_size: usize,
    /// How long to wait for the first connection.
    pub connect_timeout: Duration,
    /// How long a command may take before it fails.
    pub command_timeout: Duration,
    /// Key names.
    pub keys: Keys,
}

/// A Lua script and its SHA1, loaded on first use (and again after the
/// server forgot it).
struct Script {
    source: &'static str,
    sha: String,
}

impl Script {
    fn new(source: &'static str) -> Self {
        Script {
            source,
            sha: fred::util::sha1_hash(source),
        }
    }
}

struct Scripts {
    claim_owner: Script,
    renew_owner: Script,
    delete_if_equal: Script,
    activate_session: Script,
    linger_session: Script,
    rate_limit: Script,
    claim_admin: Script,
    renew_admin: Script,
    release_admin: Script,
    hash_set: Script,
    hash_live: Script,
    hash_del: Script,
    admit_notification: Script,
    take_suppressed: Script,
}

/// The Redis [`Coordinator`].
pub struct RedisCoordinator {
    pool: Pool,
    keys: Keys,
    scripts: Scripts,
}

fn unavailable(e: Error) -> CoordinatorError {
    match e.kind() {
        ErrorKind::IO | ErrorKind::Timeout | ErrorKind::Canceled | ErrorKind::Backpressure => {
            CoordinatorError::Unavailable(e.to_string())
        }
        _ => CoordinatorError::Other(e.to_string()),
    }
}

fn ms_arg(d: Duration) -> i64 {
    i64::try_from(millis(d)).unwrap_or(i64::MAX)
}

impl RedisCoordinator {
    /// Connects, waiting up to `connect_timeout` for the first connection;
    /// later disconnections are retried in the background.
    pub async fn connect(options: RedisOptions) -> Result<Self, CoordinatorError> {
        let config = Config::from_url(&options.url)
            .map_err(|e| CoordinatorError::Other(format!("invalid Redis URL: {e}")))?;
        let command_timeout = options.command_timeout;
        let connect_timeout = options.connect_timeout;
        let pool = Builder::from_config(config)
            .with_connection_config(|c| {
                c.connection_timeout = connect_timeout;
            })
            .with_performance_config(|p| {
                p.default_command_timeout = command_timeout;
            })
            .set_policy(ReconnectPolicy::new_exponential(0, 100, 5_000, 2))
            .build_pool(options.pool_size.max(1))
            .map_err(|e| CoordinatorError::Other(e.to_string()))?;
        pool.connect();
        tokio::time::timeout(options.connect_timeout, pool.wait_for_connect())
            .await
            .map_err(|_| {
                CoordinatorError::Unavailable(format!(
                    "could not reach Redis at {} within {:?}",
                    redact_url(&options.url),
                    options.connect_timeout
                ))
            })?
            .map_err(unavailable)?;
        Ok(RedisCoordinator {
            pool,
            keys: options.keys,
            scripts: Scripts {
                claim_owner: Script::new(include_str!("lua/claim_owner.lua")),
                renew_owner: Script::new(include_str!("lua/renew_owner.lua")),
                delete_if_equal: Script::new(include_str!("lua/delete_if_equal.lua")),
                activate_session: Script::new(include_str!("lua/activate_session.lua")),
                linger_session: Script::new(include_str!("lua/linger_session.lua")),
                rate_limit: Script::new(include_str!("lua/rate_limit.lua")),
                claim_admin: Script::new(include_str!("lua/claim_admin.lua")),
                renew_admin: Script::new(include_str!("lua/renew_admin.lua")),
                release_admin: Script::new(include_str!("lua/release_admin.lua")),
                hash_set: Script::new(include_str!("lua/expiring_hash_set.lua")),
                hash_live: Script::new(include_str!("lua/expiring_hash_live.lua")),
                hash_del: Script::new("return redis.call('HDEL', KEYS[1], ARGV[1])"),
                admit_notification: Script::new(include_str!("lua/admit_notification.lua")),
                take_suppressed: Script::new(include_str!("lua/take_suppressed.lua")),
            },
        })
    }

    /// Runs a script by SHA, loading it first if the server does not know it.
    async fn eval<R: FromValue>(
        &self,
        script: &Script,
        keys: Vec<String>,
        args: Vec<Value>,
    ) -> Result<R, CoordinatorError> {
        let client = self.pool.next();
        match client
            .evalsha(script.sha.as_str(), keys.clone(), args.clone())
            .await
        {
            Err(e) if e.details().starts_with("NOSCRIPT") => {
                let _: String = client.script_load(script.source).await.map_err(unavailable)?;
                client
                    .evalsha(script.sha.as_str(), keys, args)
                    .await
                    .map_err(unavailable)
            }
            result => result.map_err(unavailable),
        }
    }

    /// The live fields of an expiring hash: `(field, data)`.
    async fn hash_live(&self, key: String) -> Result<Vec<(String, String)>, CoordinatorError> {
        let flat: Vec<String> = self.eval(&self.scripts.hash_live, vec![key], Vec::new()).await?;
        let mut pairs = Vec::with_capacity(flat.len() / 2);
        let mut items = flat.into_iter();
        while let (Some(field), Some(data)) = (items.next(), items.next()) {
            pairs.push((field, data));
        }
        pairs.sort();
        Ok(pairs)
    }

    async fn session_live_state(&self, session_id: &str) -> Result<LiveState, CoordinatorError> {
        let client = self.pool.next();
        let (owner, assisting, watchers) = futures_util::try_join!(
            async {
                client
                    .get::<Option<String>, _>(self.keys.owner(session_id))
                    .await
                    .map_err(unavailable)
            },
            async {
                client
                    .get::<Option<String>, _>(self.keys.admin(session_id))
                    .await
                    .map_err(unavailable)
            },
            self.hash_live(self.keys.watchers(session_id)),
        )?;
        Ok(LiveState {
            owner: owner.as_deref().and_then(OwnerToken::decode),
            assisting: assisting.as_deref().and_then(AdminHolder::decode),
            watchers: watchers
                .into_iter()
                .map(|(admin_id, admin_name)| Watcher { admin_id, admin_name })
                .collect(),
        })
    }

    /// The keys of notification `key`'s window, users and digest (one hash
    /// slot).
    fn notification_keys(&self, key: &str) -> Vec<String> {
        vec![
            self.keys.notification(key),
            self.keys.notification_users(key),
            self.keys.notification_digest(key),
        ]
    }

    /// Deletes every key of this namespace (tests clean up with it).
    pub async fn delete_namespace(&self) -> Result<u64, CoordinatorError> {
        let prefix = self.keys.prefix();
        if prefix.is_empty() {
            return Err(CoordinatorError::Other(
                "refusing to delete the default namespace".into(),
            ));
        }
        let script = "local n = 0 local cursor = '0' repeat local r = redis.call('SCAN', cursor, 'MATCH', ARGV[1], 'COUNT', 1000) cursor = r[1] for _, k in ipairs(r[2]) do n = n + redis.call('DEL', k) end until cursor == '0' return n";
        let n: u64 = self
            .pool
            .next()
            .eval(script, Vec::<String>::new(), vec![format!("{prefix}*")])
            .await
            .map_err(unavailable)?;
        Ok(n)
    }
}

impl RedisCoordinator {
    /// Takes up to `want` tokens from the bucket at `key`.
    async fn take_tokens(
        &self,
        key: String,
        limit: RateLimit,
        want: u32,
    ) -> Result<Admission, CoordinatorError> {
        let (granted, retry_ms): (i64, i64) = self
            .eval(
                &self.scripts.rate_limit,
                vec![key],
                vec![
                    i64::from(limit.capacity.max(1)).into(),
                    ms_arg(limit.window).into(),
                    i64::from(want.max(1)).into(),
                ],
            )
            .await?;
        Ok(match u32::try_from(granted) {
            Ok(granted) if granted >= 1 => Admission::Allowed { granted },
            _ => Admission::Limited {
                retry_after: Duration::from_millis(u64::try_from(retry_ms).unwrap_or(1).max(1)),
            },
        })
    }
}

#[async_trait]
impl Coordinator for RedisCoordinator {
    fn adapter(&self) -> &'static str {
        "redis"
    }

    async fn activate_session(
        &self,
        user_id: &str,
        candidate: &str,
    ) -> Result<ActiveSession, CoordinatorError> {
        let (session_id, created): (String, i64) = self
            .eval(
                &self.scripts.activate_session,
                vec![self.keys.active(user_id)],
                vec![candidate.into()],
            )
            .await?;
        Ok(ActiveSession {
            session_id,
            created: created == 1,
        })
    }

    async fn active_session(&self, user_id: &str) -> Result<Option<String>, CoordinatorError> {
        self.pool
            .get(self.keys.active(user_id))
            .await
            .map_err(unavailable)
    }

    async fn switch_active_session(
        &self,
        user_id: &str,
        session_id: &str,
    ) -> Result<Option<String>, CoordinatorError> {
        self.pool
            .set(self.keys.active(user_id), session_id, None, None, true)
            .await
            .map_err(unavailable)
    }

    async fn clear_active_session(&self, user_id: &str, session_id: &str) -> Result<bool, CoordinatorError> {
        let done: i64 = self
            .eval(
                &self.scripts.delete_if_equal,
                vec![self.keys.active(user_id)],
                vec![session_id.into()],
            )
            .await?;
        Ok(done == 1)
    }

    async fn linger_active_session(
        &self,
        user_id: &str,
        session_id: &str,
        ttl: Option<Duration>,
    ) -> Result<bool, CoordinatorError> {
        let ttl = ttl.map(ms_arg).unwrap_or(0);
        let done: i64 = self
            .eval(
                &self.scripts.linger_session,
                vec![self.keys.active(user_id)],
                vec![session_id.into(), ttl.into()],
            )
            .await?;
        Ok(done == 1)
    }

    async fn claim_owner(
        &self,
        session_id: &str,
        pod_id: &str,
        conn_id: u64,
        ttl: Duration,
    ) -> Result<OwnerClaim, CoordinatorError> {
        let (fence, previous): (u64, String) = self
            .eval(
                &self.scripts.claim_owner,
                vec![self.keys.owner(session_id), self.keys.fence(session_id)],
                vec![
                    pod_id.into(),
                    conn_id.to_string().into(),
                    ms_arg(ttl).into(),
                    ms_arg(SESSION_COUNTER_TTL).into(),
                ],
            )
            .await?;
        Ok(OwnerClaim {
            token: OwnerToken {
                pod_id: pod_id.to_owned(),
                conn_id,
                fence,
            },
            previous: OwnerToken::decode(&previous),
        })
    }

    async fn renew_owners(&self, renewals: &[Renewal], ttl: Duration) -> Result<Vec<bool>, CoordinatorError> {
        if renewals.is_empty() {
            return Ok(Vec::new());
        }
        // Concurrent commands on a fred client go out pipelined, so this is
        // a round trip per batch rather than one per lock.
        let ttl = ms_arg(ttl);
        let mut renewed = Vec::with_capacity(renewals.len());
        for batch in renewals.chunks(1024) {
            let results = futures_util::future::join_all(batch.iter().map(|r| {
                self.eval::<i64>(
                    &self.scripts.renew_owner,
                    vec![self.keys.owner(&r.session_id)],
                    vec![Value::from(r.token.encode()), ttl.into()],
                )
            }))
            .await;
            for result in results {
                renewed.push(result? == 1);
            }
        }
        Ok(renewed)
    }

    async fn release_owner(&self, session_id: &str, token: &OwnerToken) -> Result<bool, CoordinatorError> {
        let done: i64 = self
            .eval(
                &self.scripts.delete_if_equal,
                vec![self.keys.owner(session_id)],
                vec![token.encode().into()],
            )
            .await?;
        Ok(done == 1)
    }

    async fn owner(&self, session_id: &str) -> Result<Option<OwnerToken>, CoordinatorError> {
        let value: Option<String> = self
            .pool
            .get(self.keys.owner(session_id))
            .await
            .map_err(unavailable)?;
        Ok(value.as_deref().and_then(OwnerToken::decode))
    }

    async fn admit_message(
        &self,
        user_id: &str,
        limit: RateLimit,
        want: u32,
    ) -> Result<Admission, CoordinatorError> {
        self.take_tokens(self.keys.user_rate(user_id), limit, want).await
    }

    async fn admit_request(
        &self,
        kind: RequestKind,
        user_id: &str,
        limit: RateLimit,
        want: u32,
    ) -> Result<Admission, CoordinatorError> {
        self.take_tokens(self.keys.user_request_rate(kind.as_str(), user_id), limit, want)
            .await
    }

    async fn claim_admin(
        &self,
        session_id: &str,
        admin_id: &str,
        admin_name: &str,
        since: Timestamp,
        ttl: Duration,
    ) -> Result<AdminClaim, CoordinatorError> {
        let candidate = AdminHolder {
            admin_id: admin_id.to_owned(),
            admin_name: admin_name.to_owned(),
            since,
        };
        let (outcome, value): (i64, String) = self
            .eval(
                &self.scripts.claim_admin,
                vec![self.keys.admin(session_id)],
                vec![admin_id.into(), candidate.encode().into(), ms_arg(ttl).into()],
            )
            .await?;
        let holder = AdminHolder::decode(&value)
            .ok_or_else(|| CoordinatorError::Other(format!("unreadable takeover lock {value:?}")))?;
        Ok(match outcome {
            0 => AdminClaim::Taken(holder),
            1 => AdminClaim::Resumed(holder),
            _ => AdminClaim::HeldBy(holder),
        })
    }

    async fn renew_admins(
        &self,
        held: &[(String, String)],
        ttl: Duration,
    ) -> Result<Vec<bool>, CoordinatorError> {
        let ttl = ms_arg(ttl);
        let results = futures_util::future::join_all(held.iter().map(|(session_id, admin_id)| {
            self.eval::<i64>(
                &self.scripts.renew_admin,
                vec![self.keys.admin(session_id)],
                vec![admin_id.as_str().into(), ttl.into()],
            )
        }))
        .await;
        results.into_iter().map(|r| r.map(|n| n == 1)).collect()
    }

    async fn release_admin(
        &self,
        session_id: &str,
        admin_id: &str,
    ) -> Result<Option<AdminHolder>, CoordinatorError> {
        let released: Option<String> = self
            .eval(
                &self.scripts.release_admin,
                vec![self.keys.admin(session_id)],
                vec![admin_id.into()],
            )
            .await?;
        Ok(released.as_deref().and_then(AdminHolder::decode))
    }

    async fn admin_holder(&self, session_id: &str) -> Result<Option<AdminHolder>, CoordinatorError> {
        let value: Option<String> = self
            .pool
            .get(self.keys.admin(session_id))
            .await
            .map_err(unavailable)?;
        Ok(value.as_deref().and_then(AdminHolder::decode))
    }

    async fn watch(
        &self,
        session_id: &str,
        watcher: &Watcher,
        ttl: Duration,
    ) -> Result<(), CoordinatorError> {
        let _: i64 = self
            .eval(
                &self.scripts.hash_set,
                vec![self.keys.watchers(session_id)],
                vec![
                    watcher.admin_id.as_str().into(),
                    ms_arg(ttl).into(),
                    watcher.admin_name.as_str().into(),
                ],
            )
            .await?;
        Ok(())
    }

    async fn unwatch(&self, session_id: &str, admin_id: &str) -> Result<(), CoordinatorError> {
        let _: i64 = self
            .eval(
                &self.scripts.hash_del,
                vec![self.keys.watchers(session_id)],
                vec![admin_id.into()],
            )
            .await?;
        Ok(())
    }

    async fn live_state(&self, session_ids: &[String]) -> Result<Vec<LiveState>, CoordinatorError> {
        futures_util::future::join_all(session_ids.iter().map(|sid| self.session_live_state(sid)))
            .await
            .into_iter()
            .collect()
    }

    async fn pods(&self) -> Result<Vec<PodBeat>, CoordinatorError> {
        Ok(self
            .hash_live(self.keys.pods())
            .await?
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
        let send: i64 = self
            .eval(
                &self.scripts.admit_notification,
                self.notification_keys(key),
                vec![
                    i64::from(limit.capacity).into(),
                    ms_arg(limit.window).into(),
                    affected.into(),
                    i64::try_from(SUPPRESSED_USERS_MAX).unwrap_or(i64::MAX).into(),
                    ms_arg(DIGEST_GRACE).into(),
                ],
            )
            .await?;
        Ok(if send == 1 {
            NotifyAdmission::Send
        } else {
            NotifyAdmission::Suppressed
        })
    }

    async fn take_suppressed(&self, key: &str) -> Result<Option<Suppressed>, CoordinatorError> {
        let (count, affected_users): (u64, u64) = self
            .eval(
                &self.scripts.take_suppressed,
                self.notification_keys(key),
                Vec::new(),
            )
            .await?;
        Ok((count > 0).then_some(Suppressed {
            count,
            affected_users,
        }))
    }

    async fn heartbeat(&self, pod_id: &str, info: &str, ttl: Duration) -> Result<(), CoordinatorError> {
        let key = async {
            self.pool
                .set::<(), _, _>(
                    self.keys.pod(pod_id),
                    info,
                    Some(Expiration::PX(ms_arg(ttl))),
                    None,
                    false,
                )
                .await
                .map_err(unavailable)
        };
        let listed = self.eval::<i64>(
            &self.scripts.hash_set,
            vec![self.keys.pods()],
            vec![pod_id.into(), ms_arg(ttl).into(), info.into()],
        );
        futures_util::try_join!(key, listed)?;
        Ok(())
    }

    async fn check(&self) -> Result<(), CoordinatorError> {
        let _: String = self.pool.next().ping(None).await.map_err(unavailable)?;
        Ok(())
    }
}
