//! Environment overrides.
//!
//! Every key of the configuration can be set as `CHATBOX_<PATH>`: the path
//! without its leading `chatbox.`, upper-cased, `.` as `_`. The seed's
//! variable names are accepted too ([`SEED_ALIASES`]); a `CHATBOX_` name
//! wins over a seed name. Values are read in the type of the key: numbers,
//! `true`/`false`, durations like `15m`, and comma-separated lists.
//! Provider API keys come from `LLM_PROVIDER_<ID>_API_KEY`.

use toml::{Table, Value};

use super::Config;

/// The seed's variable names and the keys they set.
pub(super) const SEED_ALIASES: &[(&str, &str)] = &[
    ("JWT_SECRET", "chatbox.jwt_secret"),
    ("RECONNECT_TIMEOUT", "chatbox.reconnect_timeout"),
    ("MAX_CONNECTIONS", "chatbox.max_connections"),
    ("RATE_LIMIT", "chatbox.rate_limit"),
    ("WS_ALLOWED_ORIGINS", "chatbox.websocket.allowed_origins"),
    ("CORS_ALLOWED_ORIGINS", "chatbox.gateway.cors_allowed_origins"),
    ("POD_ID", "chatbox.pod_id"),
    ("REDIS_URL", "chatbox.redis.url"),
    ("NATS_URL", "chatbox.nats.url"),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "chatbox.telemetry.otlp_endpoint"),
    ("OTEL_SERVICE_NAME", "chatbox.telemetry.service_name"),
    ("MONGO_URI", "chatbox.store.mongo_uri"),
    ("ENCRYPTION_KEY", "chatbox.store.encryption_key"),
    ("S3_BUCKET", "chatbox.blob.s3.bucket"),
    ("S3_REGION", "chatbox.blob.s3.region"),
    ("S3_ENDPOINT", "chatbox.blob.s3.endpoint"),
    ("UPLOAD_MAX_SIZE", "chatbox.uploads.max_size"),
    ("ADMIN_EMAILS", "chatbox.notifications.admin_emails"),
    ("ADMIN_PHONES", "chatbox.notifications.admin_phones"),
    ("SMTP_HOST", "chatbox.notifications.smtp.host"),
    ("SMTP_PORT", "chatbox.notifications.smtp.port"),
    ("SMTP_USER", "chatbox.notifications.smtp.username"),
    ("SMTP_PASS", "chatbox.notifications.smtp.password"),
    ("SMTP_FROM", "chatbox.notifications.from"),
    ("SES_REGION", "chatbox.notifications.ses.region"),
    ("SES_ACCESS_KEY_ID", "chatbox.notifications.ses.access_key_id"),
    (
        "SES_SECRET_ACCESS_KEY",
        "chatbox.notifications.ses.secret_access_key",
    ),
    ("TWILIO_ACCOUNT_SID", "chatbox.notifications.twilio.account_sid"),
    ("TWILIO_AUTH_TOKEN", "chatbox.notifications.twilio.auth_token"),
    ("TWILIO_FROM_NUMBER", "chatbox.notifications.twilio.from_number"),
];

/// Lists of tables (`[[...]]`): not set from the environment.
const TABLE_LISTS: &[&str] = &["providers", "rules"];

/// The `CHATBOX_` variable of a key path.
pub(super) fn env_name(path: &str) -> String {
    let rest = path.strip_prefix("chatbox.").unwrap_or(path);
    format!("CHATBOX_{}", rest.replace('.', "_").to_ascii_uppercase())
}

/// ` (CHATBOX_X or SEED_NAME)` for messages about `path`.
pub(super) fn names_for(path: &str) -> String {
    let mut names = vec![env_name(path)];
    names.extend(
        SEED_ALIASES
            .iter()
            .filter(|(_, p)| *p == path)
            .map(|(n, _)| (*n).to_owned()),
    );
    format!(" ({})", names.join(" or "))
}

/// The variable holding the API key of provider `id`.
pub(super) fn provider_key_name(id: &str) -> String {
    let id: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("LLM_PROVIDER_{id}_API_KEY")
}

/// Applies the environment to the file's table.
pub(super) fn apply(mut file: Table, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Table, Vec<String>> {
    let defaults = match Value::try_from(Config::default()) {
        Ok(Value::Table(t)) => t,
        _ => {
            return Err(vec![
                "internal error: default configuration does not serialize".into(),
            ]);
        }
    };
    let mut leaves = Vec::new();
    collect_leaves(&defaults, String::new(), &mut leaves);
    let mut problems = Vec::new();
    for (path, default) in leaves {
        let seed = SEED_ALIASES
            .iter()
            .filter(|(_, p)| *p == path)
            .map(|(n, _)| (*n).to_owned());
        for name in seed.chain(std::iter::once(env_name(&path))) {
            let Some(raw) = lookup(&name) else { continue };
            match convert(&raw, &default) {
                Ok(value) => set_path(&mut file, &path, value),
                Err(expected) => problems.push(format!("{path} ({name}): {raw:?} is not {expected}")),
            }
        }
    }
    apply_provider_keys(&mut file, lookup);
    if problems.is_empty() {
        Ok(file)
    } else {
        Err(problems)
    }
}

fn collect_leaves(table: &Table, prefix: String, out: &mut Vec<(String, Value)>) {
    for (key, value) in table {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            Value::Table(t) => collect_leaves(t, path, out),
            Value::Array(items) if items.iter().any(|v| v.is_table()) => {}
            // An empty default array is a list of strings in this schema;
            // arrays of tables (providers, rules) default to empty too, so
            // skip the ones whose name says so.
            Value::Array(_) if TABLE_LISTS.contains(&key.as_str()) => {}
            _ => out.push((path, value.clone())),
        }
    }
}

fn convert(raw: &str, default: &Value) -> Result<Value, &'static str> {
    let raw = raw.trim();
    match default {
        Value::Integer(_) => raw.parse().map(Value::Integer).map_err(|_| "a whole number"),
        Value::Float(_) => raw.parse().map(Value::Float).map_err(|_| "a number"),
        Value::Boolean(_) => match raw.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(Value::Boolean(true)),
            "false" | "0" | "no" | "off" => Ok(Value::Boolean(false)),
            _ => Err("true or false"),
        },
        Value::Array(_) => Ok(Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.to_owned()))
                .collect(),
        )),
        _ => Ok(Value::String(raw.to_owned())),
    }
}

fn set_path(table: &mut Table, path: &str, value: Value) {
    let mut parts: Vec<&str> = path.split('.').collect();
    let Some(last) = parts.pop() else { return };
    let mut current = table;
    for part in parts {
        let entry = current
            .entry(part.to_owned())
            .or_insert_with(|| Value::Table(Table::new()));
        if !entry.is_table() {
            *entry = Value::Table(Table::new());
        }
        let Value::Table(next) = entry else { return };
        current = next;
    }
    current.insert(last.to_owned(), value);
}

fn apply_provider_keys(file: &mut Table, lookup: &dyn Fn(&str) -> Option<String>) {
    let providers = file
        .get_mut("chatbox")
        .and_then(Value::as_table_mut)
        .and_then(|c| c.get_mut("llm"))
        .and_then(Value::as_table_mut)
        .and_then(|l| l.get_mut("providers"))
        .and_then(Value::as_array_mut);
    for provider in providers.into_iter().flatten() {
        let Some(p) = provider.as_table_mut() else {
            continue;
        };
        let Some(id) = p.get("id").and_then(Value::as_str) else {
            continue;
        };
        if let Some(key) = lookup(&provider_key_name(id)) {
            p.insert("apiKey".into(), Value::String(key));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_names_follow_the_key_path() {
        assert_eq!(
            env_name("chatbox.websocket.read_buffer_size"),
            "CHATBOX_WEBSOCKET_READ_BUFFER_SIZE"
        );
        assert_eq!(env_name("app.listen"), "CHATBOX_APP_LISTEN");
        assert_eq!(
            names_for("chatbox.jwt_secret"),
            " (CHATBOX_JWT_SECRET or JWT_SECRET)"
        );
        assert_eq!(
            provider_key_name("openai-gpt4"),
            "LLM_PROVIDER_OPENAI_GPT4_API_KEY"
        );
    }
}

#[cfg(test)]
mod documentation {
    use super::*;

    /// docs/CONFIGURATION.md lists every key, with its `CHATBOX_` variable.
    #[test]
    fn every_key_is_documented() {
        let doc = include_str!("../../../docs/CONFIGURATION.md");
        let Ok(Value::Table(defaults)) = Value::try_from(Config::default()) else {
            panic!("defaults serialize to a table")
        };
        let mut leaves = Vec::new();
        collect_leaves(&defaults, String::new(), &mut leaves);
        assert!(leaves.len() > 40, "{}", leaves.len());
        for (path, _) in leaves {
            assert!(
                doc.contains(&format!("`{path}`")),
                "docs/CONFIGURATION.md does not list {path}"
            );
            assert!(
                doc.contains(&env_name(&path)),
                "docs/CONFIGURATION.md does not name {}",
                env_name(&path)
            );
        }
        for (name, path) in SEED_ALIASES {
            assert!(
                doc.contains(name) && doc.contains(path),
                "{name} → {path} is not documented"
            );
        }
    }
}
