//! The command line: configuration errors, `chatbox token`, `--help`.

use std::process::Command;

use chatbox_shared::auth::TokenValidator;
use chatbox_shared::config::AuthConfig;

use crate::support::SECRET;

fn chatbox(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_chatbox"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run chatbox");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_role_has_help() {
    for role in [&[][..], &["gateway"], &["worker"], &["token"]] {
        let mut args = role.to_vec();
        args.push("--help");
        let (ok, out, _) = chatbox(&args, &[]);
        assert!(ok, "{args:?}");
        assert!(out.contains("Usage: chatbox"), "{args:?}: {out}");
    }
}

#[test]
fn the_mock_llm_is_not_part_of_chatbox() {
    // It is the separate tool `mock-llm` (tools/mock-llm).
    let (ok, _, err) = chatbox(&["mock-llm", "--help"], &[]);
    assert!(!ok);
    assert!(err.contains("unrecognized subcommand 'mock-llm'"), "{err}");
}

#[test]
fn scaled_roles_refuse_to_start_without_a_secret() {
    for role in ["gateway", "worker"] {
        let (ok, _, err) = chatbox(&[role], &[]);
        assert!(!ok, "{role} started without a secret");
        assert!(
            err.contains("chatbox.jwt_secret (CHATBOX_JWT_SECRET or JWT_SECRET)"),
            "{role}: {err}"
        );
    }
    let (ok, _, err) = chatbox(&["gateway"], &[("JWT_SECRET", "short")]);
    assert!(!ok);
    assert!(err.contains("at least 32 characters"), "{err}");
}

#[test]
fn the_worker_refuses_to_store_plaintext_unless_told_to() {
    let (ok, _, err) = chatbox(&["worker"], &[("JWT_SECRET", SECRET)]);
    assert!(!ok);
    assert!(
        err.contains("chatbox.store.encryption_key (CHATBOX_STORE_ENCRYPTION_KEY or ENCRYPTION_KEY)"),
        "{err}"
    );
    let (ok, _, err) = chatbox(
        &["worker"],
        &[("JWT_SECRET", SECRET), ("ENCRYPTION_KEY", "too-short")],
    );
    assert!(!ok);
    assert!(err.contains("must be 32 bytes in base64"), "{err}");
}

#[test]
fn invalid_configuration_names_the_key_and_the_problem() {
    let (ok, _, err) = chatbox(
        &["gateway"],
        &[("JWT_SECRET", SECRET), ("MAX_CONNECTIONS", "many")],
    );
    assert!(!ok);
    assert!(err.contains("chatbox.max_connections (MAX_CONNECTIONS)"), "{err}");
    assert!(err.contains("\"many\" is not a whole number"), "{err}");

    let (ok, _, err) = chatbox(
        &["gateway"],
        &[("JWT_SECRET", SECRET), ("RECONNECT_TIMEOUT", "soon")],
    );
    assert!(!ok);
    assert!(err.contains("chatbox.reconnect_timeout"), "{err}");
    assert!(err.contains("invalid duration"), "{err}");

    let dir = std::env::temp_dir().join(crate::support::unique("cfg"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.toml");
    std::fs::write(&file, "[chatbox]\nmax_conections = 5\n").unwrap();
    let (ok, _, err) = chatbox(&["--config", file.to_str().unwrap()], &[]);
    assert!(!ok);
    assert!(err.contains("max_conections"), "a misspelt key is named: {err}");

    let (ok, _, err) = chatbox(
        &["gateway"],
        &[
            ("JWT_SECRET", SECRET),
            ("CHATBOX_GATEWAY_OWNER_RENEW_INTERVAL", "20s"),
        ],
    );
    assert!(!ok);
    assert!(err.contains("chatbox.gateway.owner_renew_interval"), "{err}");
}

#[test]
fn token_prints_a_jwt_the_gateway_accepts() {
    let (ok, out, err) = chatbox(
        &[
            "token", "--sub", "ops-1", "--name", "Ops", "--role", "admin", "--ttl", "10m",
        ],
        &[("JWT_SECRET", SECRET)],
    );
    assert!(ok, "{err}");
    let validator = TokenValidator::new(SECRET, &AuthConfig::default()).unwrap();
    let identity = validator.validate(out.trim()).expect("a valid token");
    assert_eq!(identity.user_id, "ops-1");
    assert_eq!(identity.name.as_deref(), Some("Ops"));
    assert!(identity.has_role("admin"));

    let (ok, _, err) = chatbox(&["token", "--sub", "x"], &[]);
    assert!(!ok);
    assert!(err.contains("no JWT secret configured"), "{err}");
}
