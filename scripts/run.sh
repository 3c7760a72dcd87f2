#!/usr/bin/env bash
# Runs chatbox. Without arguments: the all-in-one on embedded defaults
# (no Redis, NATS or database needed) at http://127.0.0.1:8080. Any
# arguments are passed on: `scripts/run.sh gateway --help`.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/services.sh
ensure_toolchain
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/chatbox/target}
exec cargo run --release --locked --quiet -- "$@"
