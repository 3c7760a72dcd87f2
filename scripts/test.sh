#!/usr/bin/env bash
# The whole test suite: unit and property tests, the port conformance
# suites (in-process, Redis, NATS, SQLite, MongoDB, local files, S3), and
# the system tests that run the real binaries, and the browser tests (the
# chat page and the admin console in headless Chromium). Installs and
# starts what is missing on a fresh Debian machine: the Rust toolchain, a C
# compiler, redis-server, nats-server, the MongoDB stand-in (nx-27017, from
# PyPI), the SMTP server aiosmtpd, the S3 stand-in (s3s-fs, from
# crates.io), Chromium and Node.js (Debian's) and playwright-core (npm),
# and the deployment checkers (promtool from Debian's prometheus package,
# helm-python-sdk, kubernetes-validate, yamllint and check-jsonschema from
# PyPI, docker-compose), all kept under ~/.cache/chatbox.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/services.sh
trap stop_started_services EXIT

ensure_toolchain
ensure_redis
ensure_nats
ensure_mongo
ensure_smtp_sink
ensure_s3
ensure_browser
say "Redis: $CHATBOX_TEST_REDIS_URL  NATS: $CHATBOX_TEST_NATS_URL  MongoDB: $CHATBOX_TEST_MONGO_URI  SMTP sink: $CHATBOX_TEST_SMTP_PYTHON -m aiosmtpd  S3: $CHATBOX_TEST_S3_ENDPOINT"

# One target directory per machine, shared by every checkout (CI clones
# afresh each run): dependencies are built once. Cargo locks it, so runs
# never build into it at the same time.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/chatbox/target}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

# The habits first (Cargo.toml's [workspace.lints], rustfmt.toml): a
# formatting slip or a lint fails the run before the tests start.
cargo fmt --all --check
cargo clippy --workspace --locked --all-targets -- -D warnings

# The load benchmark only prints numbers (docs/BENCHMARKS.md); build it so
# it keeps compiling, run it by hand. Every binary too: the system and
# browser tests start `mock-llm` (tools/mock-llm) from next to `chatbox`.
cargo build --workspace --locked --bins --benches --profile dev
cargo test --workspace --locked "$@"

# The pages in a real browser, against the binaries the tests just built
# (the harness finds mock-llm next to chatbox).
# Screenshots land in target/browser-artifacts.
export CHATBOX_BIN="$CARGO_TARGET_DIR/debug/chatbox"
export CHATBOX_BROWSER_ARTIFACTS=${CHATBOX_BROWSER_ARTIFACTS:-$CARGO_TARGET_DIR/browser-artifacts}
say "browser tests (Chromium: $CHROMIUM, screenshots: $CHATBOX_BROWSER_ARTIFACTS)"
(cd tests/browser && node --test --test-concurrency=1)

# What operators deploy, validated offline: alert rules and their unit
# tests (promtool), the Grafana dashboards against the metrics catalogue,
# promtool on a live scrape of each role; the Helm chart (lint, render,
# kubernetes-validate), docker-compose.yml and the Dockerfile.
bash scripts/checks/observability.sh
bash scripts/checks/deploy.sh
# The side-by-side benchmark (scripts/bench.sh) is run by hand; its scripts still parse.
bash scripts/checks/bench.sh
