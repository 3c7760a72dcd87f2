//! Start-up checks: every problem found is reported at once, each naming
//! the key (and its environment variables) and what is wrong with it.

use std::net::SocketAddr;
use std::time::Duration;

use super::env::names_for;
use super::notifications::{EmailEngine, NotificationsConfig, SmsEngine, SmtpTls, is_e164, is_email_address};
use super::{BlobKind, ChatboxConfig, Config, ProviderKind, StoreKind};
use crate::ids::is_valid_pod_id;

/// Which role the process runs; some checks apply to some roles only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Gateway and worker in one process on embedded adapters.
    AllInOne,
    /// A scaled gateway.
    Gateway,
    /// A scaled worker.
    Worker,
    /// Minting a token.
    Token,
}

impl Role {
    /// Whether the role runs against Redis and NATS.
    pub fn is_scaled(self) -> bool {
        matches!(self, Role::Gateway | Role::Worker)
    }
}

/// Shortest HS256 secret the scaled roles accept.
pub const MIN_SECRET_LEN: usize = 32;

struct Problems(Vec<String>);

impl Problems {
    fn check(&mut self, ok: bool, key: &str, problem: impl FnOnce() -> String) {
        if !ok {
            let names = if key.contains('[') {
                String::new()
            } else {
                names_for(key)
            };
            self.0.push(format!("{key}{names}: {}", problem()));
        }
    }

    fn positive(&mut self, d: Duration, key: &str) {
        self.check(!d.is_zero(), key, || "must be longer than zero".into());
    }
}

impl Config {
    /// Checks the configuration for `role`.
    pub fn validate(&self, role: Role) -> Result<(), Vec<String>> {
        let c = &self.chatbox;
        let mut p = Problems(Vec::new());

        if role != Role::Worker {
            p.check(
                self.app.listen.parse::<SocketAddr>().is_ok(),
                "app.listen",
                || format!("{:?} is not an address like 127.0.0.1:8080", self.app.listen),
            );
        }
        p.positive(self.app.shutdown_timeout, "app.shutdown_timeout");
        p.check(
            c.namespace.is_empty() || is_valid_pod_id(&c.namespace),
            "chatbox.namespace",
            || "must be 1 to 63 letters, digits, '-' or '_'".into(),
        );
        p.check(
            c.pod_id.is_empty() || is_valid_pod_id(&c.pod_id),
            "chatbox.pod_id",
            || "must be 1 to 63 letters, digits, '-' or '_'".into(),
        );

        if role.is_scaled() {
            let has_key = !c.jwt_secret.is_empty() || !c.auth.jwt_public_key.is_empty();
            p.check(has_key, "chatbox.jwt_secret", || {
                "is required for the gateway and worker roles (or set chatbox.auth.jwt_public_key for RS256)"
                    .into()
            });
            p.check(
                c.jwt_secret.is_empty() || c.jwt_secret.expose().len() >= MIN_SECRET_LEN,
                "chatbox.jwt_secret",
                || format!("must be at least {MIN_SECRET_LEN} characters (try: openssl rand -base64 32)"),
            );
            p.check(
                c.redis.url.starts_with("redis://") || c.redis.url.starts_with("rediss://"),
                "chatbox.redis.url",
                || format!("{:?} must start with redis:// or rediss://", c.redis.url),
            );
            p.check(!c.nats.url.trim().is_empty(), "chatbox.nats.url", || {
                "is required".into()
            });
            p.check(c.redis.pool_size > 0, "chatbox.redis.pool_size", || {
                "must be at least 1".into()
            });
            p.positive(c.redis.connect_timeout, "chatbox.redis.connect_timeout");
            p.positive(c.redis.command_timeout, "chatbox.redis.command_timeout");
            p.positive(c.nats.connect_timeout, "chatbox.nats.connect_timeout");
            p.positive(c.nats.stream_max_age, "chatbox.nats.stream_max_age");
            p.check(
                c.nats.stream_replicas >= 1,
                "chatbox.nats.stream_replicas",
                || "must be at least 1".into(),
            );
        }

        if matches!(role, Role::AllInOne | Role::Gateway) {
            p.check(c.max_connections > 0, "chatbox.max_connections", || {
                "must be at least 1".into()
            });
            p.check(c.rate_limit > 0, "chatbox.rate_limit", || {
                "must be at least 1".into()
            });
            p.positive(c.rate_limit_window, "chatbox.rate_limit_window");
            p.positive(c.reconnect_timeout, "chatbox.reconnect_timeout");
            let ws = &c.websocket;
            p.check(
                ws.read_buffer_size >= 256,
                "chatbox.websocket.read_buffer_size",
                || "must be at least 256 bytes".into(),
            );
            p.check(
                ws.max_message_size >= 1024,
                "chatbox.websocket.max_message_size",
                || "must be at least 1024 bytes".into(),
            );
            p.check(
                ws.max_frame_size >= 1024 && ws.max_frame_size <= ws.max_message_size,
                "chatbox.websocket.max_frame_size",
                || "must be at least 1024 bytes and at most max_message_size".into(),
            );
            p.check(
                ws.max_content_bytes > 0 && ws.max_content_bytes < ws.max_message_size,
                "chatbox.websocket.max_content_bytes",
                || "must be above zero and below max_message_size".into(),
            );
            p.check(
                ws.send_queue_limit > 0,
                "chatbox.websocket.send_queue_limit",
                || "must be at least 1".into(),
            );
            p.positive(ws.ping_period, "chatbox.websocket.ping_period");
            p.check(
                ws.pong_wait > ws.ping_period,
                "chatbox.websocket.pong_wait",
                || "must be longer than ping_period".into(),
            );
            p.positive(ws.write_wait, "chatbox.websocket.write_wait");
            for origin in &ws.allowed_origins {
                p.check(
                    origin == "*" || origin.starts_with("http://") || origin.starts_with("https://"),
                    "chatbox.websocket.allowed_origins",
                    || format!("{origin:?} is not an origin like https://chat.example.com"),
                );
            }
            let g = &c.gateway;
            p.positive(g.owner_ttl, "chatbox.gateway.owner_ttl");
            p.check(
                !g.owner_renew_interval.is_zero() && g.owner_renew_interval * 2 <= g.owner_ttl,
                "chatbox.gateway.owner_renew_interval",
                || "must be above zero and at most half of owner_ttl".into(),
            );
            p.positive(g.heartbeat_interval, "chatbox.gateway.heartbeat_interval");
            p.positive(g.out_idle_timeout, "chatbox.gateway.out_idle_timeout");
            p.positive(g.rpc_timeout, "chatbox.gateway.rpc_timeout");
            for origin in &g.cors_allowed_origins {
                p.check(
                    origin.starts_with("http://") || origin.starts_with("https://"),
                    "chatbox.gateway.cors_allowed_origins",
                    || format!("{origin:?} is not an origin like https://admin.example.com (credentials are allowed, so `*` is not)"),
                );
            }
            for origin in &c.web.frame_ancestors {
                p.check(
                    origin == "*"
                        || origin == "'self'"
                        || origin.starts_with("http://")
                        || origin.starts_with("https://"),
                    "chatbox.web.frame_ancestors",
                    || format!("{origin:?} is not an origin like https://app.example.com, 'self' or *"),
                );
            }
            if !c.web.dir.is_empty() {
                p.check(
                    std::path::Path::new(&c.web.dir).join("chat/index.html").is_file(),
                    "chatbox.web.dir",
                    || {
                        format!(
                            "{:?} has no chat/index.html (it is laid out like the repository's web/ folder)",
                            c.web.dir
                        )
                    },
                );
            }
            p.check(
                c.admin.takeover_grace > g.owner_renew_interval,
                "chatbox.admin.takeover_grace",
                || "must be longer than chatbox.gateway.owner_renew_interval (the lock is renewed that often)".into(),
            );
        }
        let a = &c.admin;
        p.positive(a.takeover_check_interval, "chatbox.admin.takeover_check_interval");
        p.positive(a.sample_interval, "chatbox.admin.sample_interval");
        p.check(
            (1..=500).contains(&a.watch_messages),
            "chatbox.admin.watch_messages",
            || "must be from 1 to 500".into(),
        );

        if matches!(role, Role::AllInOne | Role::Worker) {
            let store = &c.store;
            p.check(!c.data_dir.trim().is_empty(), "chatbox.data_dir", || {
                "must not be empty".into()
            });
            p.check(
                store.encryption_key.is_empty() || decode_key(store.encryption_key.expose()).is_some(),
                "chatbox.store.encryption_key",
                || "must be 32 bytes in base64 (try: openssl rand -base64 32)".into(),
            );
            for key in &store.old_encryption_keys {
                p.check(
                    decode_key(key.expose()).is_some(),
                    "chatbox.store.old_encryption_keys",
                    || "every key must be 32 bytes in base64".into(),
                );
            }
            if role == Role::Worker {
                p.check(
                    !store.encryption_key.is_empty() || store.allow_plaintext,
                    "chatbox.store.encryption_key",
                    || "is required for the worker (message content is encrypted at rest); set chatbox.store.allow_plaintext = true to store it unencrypted".into(),
                );
            }
            if store.kind == StoreKind::Mongo || (store.kind == StoreKind::Auto && role == Role::Worker) {
                let uri = store.mongo_uri.expose();
                p.check(
                    uri.starts_with("mongodb://") || uri.starts_with("mongodb+srv://"),
                    "chatbox.store.mongo_uri",
                    || "must start with mongodb:// or mongodb+srv://".into(),
                );
                p.check(!store.database.is_empty(), "chatbox.store.database", || {
                    "must not be empty".into()
                });
            }
            p.positive(store.index_timeout, "chatbox.store.index_timeout");
            p.positive(store.sweep_interval, "chatbox.store.sweep_interval");
            check_files(&mut p, c, role);
            p.check(c.llm.context_tokens > 0, "chatbox.llm.context_tokens", || {
                "must be at least 1".into()
            });
            let w = &c.worker;
            if role == Role::Worker {
                p.check(
                    w.listen.parse::<SocketAddr>().is_ok(),
                    "chatbox.worker.listen",
                    || format!("{:?} is not an address like 127.0.0.1:9091", w.listen),
                );
            }
            p.check(
                w.max_concurrent_turns > 0,
                "chatbox.worker.max_concurrent_turns",
                || "must be at least 1".into(),
            );
            p.check(
                w.ack_wait >= Duration::from_secs(1),
                "chatbox.worker.ack_wait",
                || "must be at least 1s".into(),
            );
            p.check(w.max_ack_pending > 0, "chatbox.worker.max_ack_pending", || {
                "must be at least 1".into()
            });
            p.check(w.pull_batch > 0, "chatbox.worker.pull_batch", || {
                "must be at least 1".into()
            });
            p.positive(w.turn_timeout, "chatbox.worker.turn_timeout");
            let mut seen = std::collections::HashSet::new();
            for (i, provider) in c.llm.providers.iter().enumerate() {
                let key = format!("chatbox.llm.providers[{i}]");
                p.check(
                    crate::ids::is_valid_id(&provider.id) && seen.insert(provider.id.as_str()),
                    &key,
                    || {
                        format!(
                            "id {:?} must be unique and 1 to 64 letters, digits, '-', '_', '.' or ':'",
                            provider.id
                        )
                    },
                );
                p.check(
                    provider.endpoint.starts_with("http://") || provider.endpoint.starts_with("https://"),
                    &key,
                    || format!("endpoint {:?} must be an http(s) URL", provider.endpoint),
                );
                if let Some(fallback) = &provider.fallback {
                    p.check(
                        c.llm.providers.iter().any(|q| &q.id == fallback) && *fallback != provider.id,
                        &format!("{key}.fallback"),
                        || format!("{fallback:?} is not the id of another configured provider"),
                    );
                }
                p.check(
                    provider.transcription_model.is_none() || provider.kind == ProviderKind::Openai,
                    &format!("{key}.transcription_model"),
                    || "only an OpenAI-compatible provider transcribes audio".into(),
                );
                if let Some(audio) = &provider.audio_output {
                    let key = format!("{key}.audio_output");
                    p.check(provider.kind == ProviderKind::Openai, &key, || {
                        "only an OpenAI-compatible provider speaks its answers".into()
                    });
                    p.check(!audio.voice.trim().is_empty(), &format!("{key}.voice"), || {
                        "must name a voice".into()
                    });
                    p.check(
                        super::AUDIO_FORMATS.contains(&audio.format.as_str()),
                        &format!("{key}.format"),
                        || {
                            format!(
                                "{:?} is not one of {}",
                                audio.format,
                                super::AUDIO_FORMATS.join(", ")
                            )
                        },
                    );
                    // OpenAI streams audio as pcm16 only; the adapter wraps
                    // that in a WAV itself, but cannot make mp3, flac or opus.
                    p.check(
                        !provider.stream || matches!(audio.format.as_str(), "wav" | "pcm16"),
                        &format!("{key}.format"),
                        || {
                            format!(
                                "{:?} audio cannot be streamed (OpenAI streams only pcm16): use wav or pcm16, or stream = false",
                                audio.format
                            )
                        },
                    );
                }
            }
            if let Some(cycle) = fallback_cycle(&c.llm.providers) {
                p.check(false, "chatbox.llm.providers", || {
                    format!("the fallbacks go round in a circle: {cycle}")
                });
            }
            let transcription = &c.llm.transcription;
            p.check(
                transcription.is_empty()
                    || c.llm
                        .providers
                        .iter()
                        .any(|q| &q.id == transcription && q.transcription_model.is_some()),
                "chatbox.llm.transcription",
                || format!("{transcription:?} is not a configured provider with a transcription_model"),
            );
            let r = &c.llm.retry;
            p.check(r.attempts > 0, "chatbox.llm.retry.attempts", || {
                "must be at least 1".into()
            });
            p.check(
                r.base_delay <= r.max_delay,
                "chatbox.llm.retry.base_delay",
                || "must not be longer than chatbox.llm.retry.max_delay".into(),
            );
            let b = &c.llm.breaker;
            p.check(
                b.failure_threshold > 0,
                "chatbox.llm.breaker.failure_threshold",
                || "must be at least 1".into(),
            );
            p.positive(b.open_for, "chatbox.llm.breaker.open_for");
            p.check(
                b.half_open_probes > 0,
                "chatbox.llm.breaker.half_open_probes",
                || "must be at least 1".into(),
            );
            notifications(&mut p, &c.notifications);
        }

        p.check(
            matches!(c.log.format.as_str(), "auto" | "json" | "text"),
            "chatbox.log.format",
            || format!("{:?} must be auto, json or text", c.log.format),
        );

        if p.0.is_empty() { Ok(()) } else { Err(p.0) }
    }
}

/// `[chatbox.notifications]`: the engines chosen have what they need, and
/// every address and number is one.
fn notifications(p: &mut Problems, n: &NotificationsConfig) {
    const KEY: &str = "chatbox.notifications";
    let emails = |p: &mut Problems, list: &[String], key: &str| {
        for address in list {
            p.check(is_email_address(address), key, || {
                format!("{address:?} is not an e-mail address like ops@example.com")
            });
        }
    };
    let phones = |p: &mut Problems, list: &[String], key: &str| {
        for number in list {
            p.check(is_e164(number), key, || {
                format!("{number:?} is not a phone number in E.164, like +14155550100")
            });
        }
    };
    emails(p, &n.admin_emails, &format!("{KEY}.admin_emails"));
    phones(p, &n.admin_phones, &format!("{KEY}.admin_phones"));
    let url = &n.admin_console_url;
    p.check(
        url.starts_with("http://") || url.starts_with("https://"),
        &format!("{KEY}.admin_console_url"),
        || format!("{url:?} must be an http(s) URL"),
    );
    p.check(is_email_address(&n.from), &format!("{KEY}.from"), || {
        format!("{:?} is not an e-mail address like noreply@example.com", n.from)
    });
    p.check(
        n.reply_to.is_empty() || is_email_address(&n.reply_to),
        &format!("{KEY}.reply_to"),
        || format!("{:?} is not an e-mail address", n.reply_to),
    );
    match n.email_engine {
        EmailEngine::Smtp => {
            p.check(
                !n.smtp.host.trim().is_empty(),
                &format!("{KEY}.smtp.host"),
                || "is required when email_engine is smtp".into(),
            );
            p.check(n.smtp.port > 0, &format!("{KEY}.smtp.port"), || {
                "must be a port number".into()
            });
            p.check(
                n.smtp.username.is_empty() || !n.smtp.password.is_empty(),
                &format!("{KEY}.smtp.password"),
                || "is required when smtp.username is set".into(),
            );
            p.check(
                n.smtp.username.is_empty() || n.smtp.tls != SmtpTls::None,
                &format!("{KEY}.smtp.tls"),
                || "must be starttls or tls when a password is sent".into(),
            );
            p.positive(n.smtp.timeout, &format!("{KEY}.smtp.timeout"));
        }
        EmailEngine::Ses => {
            p.check(
                !n.ses.region.trim().is_empty(),
                &format!("{KEY}.ses.region"),
                || "is required when email_engine is ses".into(),
            );
            p.check(
                !n.ses.access_key_id.is_empty(),
                &format!("{KEY}.ses.access_key_id"),
                || "is required when email_engine is ses".into(),
            );
            p.check(
                !n.ses.secret_access_key.is_empty(),
                &format!("{KEY}.ses.secret_access_key"),
                || "is required when email_engine is ses".into(),
            );
            let endpoint = &n.ses.endpoint;
            p.check(
                endpoint.is_empty() || endpoint.starts_with("http://") || endpoint.starts_with("https://"),
                &format!("{KEY}.ses.endpoint"),
                || format!("{endpoint:?} must be an http(s) URL"),
            );
            p.positive(n.ses.timeout, &format!("{KEY}.ses.timeout"));
        }
        EmailEngine::Log => {}
    }
    if n.sms_engine == SmsEngine::Twilio {
        let t = &n.twilio;
        p.check(
            !t.account_sid.is_empty(),
            &format!("{KEY}.twilio.account_sid"),
            || "is required when sms_engine is twilio".into(),
        );
        p.check(
            !t.auth_token.is_empty(),
            &format!("{KEY}.twilio.auth_token"),
            || "is required when sms_engine is twilio".into(),
        );
        p.check(is_e164(&t.from_number), &format!("{KEY}.twilio.from_number"), || {
            format!(
                "{:?} must be the sending number in E.164, like +14155550100 (required when sms_engine is twilio)",
                t.from_number
            )
        });
        p.check(
            t.base_url.starts_with("http://") || t.base_url.starts_with("https://"),
            &format!("{KEY}.twilio.base_url"),
            || format!("{:?} must be an http(s) URL", t.base_url),
        );
        p.positive(t.timeout, &format!("{KEY}.twilio.timeout"));
    }
    p.check(
        n.rate_limit.max_per_window > 0,
        &format!("{KEY}.rate_limit.max_per_window"),
        || "must be at least 1".into(),
    );
    p.positive(n.rate_limit.window, &format!("{KEY}.rate_limit.window"));
    let mut seen = Vec::new();
    for (i, rule) in n.rules.iter().enumerate() {
        let key = format!("{KEY}.rules[{i}]");
        p.check(!seen.contains(&rule.event), &format!("{key}.event"), || {
            format!("{:?} has a rule already", rule.event.as_str())
        });
        seen.push(rule.event);
        p.check(
            !rule.enabled || !rule.channels.is_empty(),
            &format!("{key}.channels"),
            || "names no channel; list email and/or sms, or set enabled = false".into(),
        );
        if let Some(list) = &rule.emails {
            emails(p, list, &format!("{key}.emails"));
        }
        if let Some(list) = &rule.phones {
            phones(p, list, &format!("{key}.phones"));
        }
    }
}

/// The first chain of fallbacks that comes back to where it started, as
/// `a -> b -> a`.
fn fallback_cycle(providers: &[super::ProviderConfig]) -> Option<String> {
    let next = |id: &str| {
        providers
            .iter()
            .find(|p| p.id == id)
            .and_then(|p| p.fallback.as_deref())
    };
    for start in providers {
        let mut chain = vec![start.id.as_str()];
        let mut at = start.id.as_str();
        while let Some(n) = next(at) {
            if chain.contains(&n) {
                chain.push(n);
                return (n == start.id).then(|| chain.join(" -> "));
            }
            chain.push(n);
            at = n;
        }
    }
    None
}

/// Decodes a 32-byte key written in base64 (standard or URL-safe).
pub fn decode_key(text: &str) -> Option<[u8; 32]> {
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
    let text = text.trim();
    let bytes = STANDARD
        .decode(text)
        .or_else(|_| URL_SAFE.decode(text))
        .or_else(|_| URL_SAFE_NO_PAD.decode(text))
        .ok()?;
    bytes.try_into().ok()
}

/// Longest a presigned S3 URL may live (SigV4's limit).
const MAX_URL_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

fn check_files(p: &mut Problems, c: &ChatboxConfig, role: Role) {
    let u = &c.uploads;
    p.check(u.max_size > 0, "chatbox.uploads.max_size", || {
        "must be more than zero".into()
    });
    p.check(u.max_voice_size > 0, "chatbox.uploads.max_voice_size", || {
        "must be more than zero".into()
    });
    for (ttl, key) in [
        (u.upload_url_ttl, "chatbox.uploads.upload_url_ttl"),
        (u.download_url_ttl, "chatbox.uploads.download_url_ttl"),
    ] {
        p.check(!ttl.is_zero() && ttl <= MAX_URL_TTL, key, || {
            "must be longer than zero and at most 7 days".into()
        });
    }
    p.positive(u.cleanup_interval, "chatbox.uploads.cleanup_interval");
    for (prefix, key) in [
        (&u.prefix, "chatbox.uploads.prefix"),
        (&u.quarantine_prefix, "chatbox.uploads.quarantine_prefix"),
    ] {
        let prefix = prefix.trim_matches('/');
        p.check(
            !prefix.is_empty() && !prefix.split('/').any(|part| part.is_empty() || part == ".."),
            key,
            || "must be a key prefix like \"chat-files\"".into(),
        );
    }
    p.check(
        u.prefix.trim_matches('/') != u.quarantine_prefix.trim_matches('/'),
        "chatbox.uploads.quarantine_prefix",
        || "must differ from chatbox.uploads.prefix".into(),
    );
    let b = &c.blob;
    p.check(
        b.signing_key.is_empty() || decode_key(b.signing_key.expose()).is_some(),
        "chatbox.blob.signing_key",
        || "must be 32 bytes in base64 (try: openssl rand -base64 32)".into(),
    );
    if b.resolved_kind(role) == BlobKind::S3 {
        let s3 = &b.s3;
        p.check(!s3.bucket.trim().is_empty(), "chatbox.blob.s3.bucket", || {
            "is required for the S3 file store".into()
        });
        p.check(!s3.region.trim().is_empty(), "chatbox.blob.s3.region", || {
            "must not be empty".into()
        });
        for (url, key) in [
            (&s3.endpoint, "chatbox.blob.s3.endpoint"),
            (&s3.public_endpoint, "chatbox.blob.s3.public_endpoint"),
        ] {
            p.check(
                url.is_empty() || url.starts_with("http://") || url.starts_with("https://"),
                key,
                || format!("{url:?} must start with http:// or https://"),
            );
        }
        p.check(
            s3.access_key_id.is_empty() == s3.secret_access_key.is_empty(),
            "chatbox.blob.s3.secret_access_key",
            || "set both access_key_id and secret_access_key, or neither (the standard AWS chain)".into(),
        );
    }
    if !b.public_url.is_empty() {
        p.check(
            b.public_url.starts_with("http://") || b.public_url.starts_with("https://"),
            "chatbox.blob.public_url",
            || format!("{:?} must start with http:// or https://", b.public_url),
        );
    }
}
