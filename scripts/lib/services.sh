# Helpers for scripts/run.sh and scripts/test.sh: make sure the toolchain
# and the real services the tests talk to exist on this machine, installing
# and starting what is missing. Only processes started here are stopped
# (by PID) when the calling script exits.

CHATBOX_STARTED_PIDS=()

say() { printf '==> %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else say "need root to run: $*"; return 1
  fi
}

apt_install() {
  say "installing $* (apt-get)"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

# cargo (via rustup) and a C compiler (ring builds C).
ensure_toolchain() {
  if ! command -v cc >/dev/null 2>&1; then
    apt_install build-essential ca-certificates curl
  fi
  if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
  if ! command -v cargo >/dev/null 2>&1; then
    command -v curl >/dev/null 2>&1 || apt_install ca-certificates curl
    say "installing the Rust toolchain (rustup)"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
  # The test command checks formatting and lints (the minimal profile has
  # neither tool).
  if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
    if command -v rustup >/dev/null 2>&1; then
      say "installing rustfmt and clippy (rustup)"
      rustup component add rustfmt clippy
    else
      say "cargo fmt and cargo clippy are needed: install rustfmt and clippy for this toolchain"
      return 1
    fi
  fi
}

# Whether something accepts TCP connections on host:port.
port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

wait_port() {
  local host=$1 port=$2 name=$3
  for _ in $(seq 1 100); do
    port_open "$host" "$port" && return 0
    sleep 0.1
  done
  say "$name did not start on $host:$port"
  return 1
}

stop_started_services() {
  local pid
  for pid in "${CHATBOX_STARTED_PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
}

# Redis at CHATBOX_TEST_REDIS_URL (default redis://127.0.0.1:6379); if none
# answers there, one is started on a spare port for this run. The binary is
# installed either way: fault tests start servers of their own.
ensure_redis() {
  command -v redis-server >/dev/null 2>&1 || apt_install redis-server
  local url=${CHATBOX_TEST_REDIS_URL:-redis://127.0.0.1:6379}
  local hostport=${url#redis://}; hostport=${hostport%%/*}; hostport=${hostport##*@}
  if port_open "${hostport%:*}" "${hostport##*:}"; then
    export CHATBOX_TEST_REDIS_URL=$url
    return 0
  fi
  local port=16379 dir
  dir=$(mktemp -d)
  say "starting redis-server on 127.0.0.1:$port"
  redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no --dir "$dir" \
    --logfile "$dir/redis.log" --daemonize no >/dev/null 2>&1 &
  CHATBOX_STARTED_PIDS+=($!)
  wait_port 127.0.0.1 "$port" redis-server
  export CHATBOX_TEST_REDIS_URL=redis://127.0.0.1:$port
}

# NATS with JetStream at CHATBOX_TEST_NATS_URL (default
# nats://127.0.0.1:4222); if none answers there, one is started on a spare
# port for this run. The binary is installed either way (fault tests).
ensure_nats() {
  command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || apt_install nats-server
  local url=${CHATBOX_TEST_NATS_URL:-nats://127.0.0.1:4222}
  local hostport=${url#nats://}; hostport=${hostport##*@}
  if port_open "${hostport%:*}" "${hostport##*:}"; then
    export CHATBOX_TEST_NATS_URL=$url
    return 0
  fi
  local bin port=14222 dir
  bin=$(command -v nats-server || echo /usr/sbin/nats-server)
  dir=$(mktemp -d)
  say "starting nats-server (JetStream) on 127.0.0.1:$port"
  "$bin" -a 127.0.0.1 -p "$port" -js -sd "$dir" -l "$dir/nats.log" &
  CHATBOX_STARTED_PIDS+=($!)
  wait_port 127.0.0.1 "$port" nats-server
  export CHATBOX_TEST_NATS_URL=nats://127.0.0.1:$port
}

# The MongoDB stand-in (nx-27017 from PyPI: MongoDB's wire protocol over
# SQLite), unless CHATBOX_TEST_MONGO_URI already names a server. Installed
# into a virtualenv under ~/.cache/chatbox, started on a free port for this
# run, in memory.
ensure_mongo() {
  local venv=$HOME/.cache/chatbox/nx-27017
  # Fault tests start a stand-in of their own, so it is installed even when
  # CHATBOX_TEST_MONGO_URI names a real server.
  if [ ! -x "$venv/bin/nx-27017" ]; then
    command -v python3 >/dev/null 2>&1 || apt_install python3
    if ! python3 -m venv "$venv" >/dev/null 2>&1; then
      rm -rf "$venv"
      apt_install python3-venv
      python3 -m venv "$venv"
    fi
    say "installing the MongoDB stand-in nx-27017 (pip)"
    "$venv/bin/pip" install -q nx-27017==0.8.1
  fi
  export CHATBOX_TEST_NX_27017=$venv/bin/nx-27017
  if [ -n "${CHATBOX_TEST_MONGO_URI:-}" ]; then
    return 0
  fi
  local port=27018
  while port_open 127.0.0.1 "$port"; do port=$((port + 1)); done
  local dir
  dir=$(mktemp -d)
  say "starting nx-27017 (MongoDB stand-in) on 127.0.0.1:$port"
  "$venv/bin/nx-27017" --db memory --host 127.0.0.1 -p "$port" \
    --pid-file "$dir/nx.pid" --log-file "$dir/nx.log" >"$dir/out.log" 2>&1 &
  CHATBOX_STARTED_PIDS+=($!)
  wait_port 127.0.0.1 "$port" nx-27017
  export CHATBOX_TEST_MONGO_URI=mongodb://127.0.0.1:$port
}

# aiosmtpd, the SMTP server the notification tests mail to. Debian's
# python3-aiosmtpd installs it for /usr/bin/python3, which need not be the
# python3 first on PATH (a pyenv, say), so the interpreter that has it is
# exported as CHATBOX_TEST_SMTP_PYTHON. Without apt, it goes into a
# virtualenv under ~/.cache/chatbox.
ensure_smtp_sink() {
  local python venv=$HOME/.cache/chatbox/aiosmtpd
  for python in "${CHATBOX_TEST_SMTP_PYTHON:-}" /usr/bin/python3 "$venv/bin/python" "$(command -v python3 || true)"; do
    if [ -n "$python" ] && [ -x "$python" ] && "$python" -c 'import aiosmtpd' >/dev/null 2>&1; then
      export CHATBOX_TEST_SMTP_PYTHON=$python
      return 0
    fi
  done
  if apt_install python3-aiosmtpd && /usr/bin/python3 -c 'import aiosmtpd' >/dev/null 2>&1; then
    export CHATBOX_TEST_SMTP_PYTHON=/usr/bin/python3
    return 0
  fi
  command -v python3 >/dev/null 2>&1 || apt_install python3
  say "installing aiosmtpd (pip, into $venv)"
  rm -rf "$venv"
  python3 -m venv "$venv" || { apt_install python3-venv && python3 -m venv "$venv"; }
  "$venv/bin/pip" install -q aiosmtpd
  export CHATBOX_TEST_SMTP_PYTHON=$venv/bin/python
}

# The S3 stand-in (s3s-fs from crates.io: S3 over a folder, with real
# SigV4 checks, so a broken presigned URL fails), unless
# CHATBOX_TEST_S3_ENDPOINT already names a store. Installed under
# ~/.cache/chatbox (a cold install compiles for minutes), started on a
# free port for this run with a fresh folder and the keys testing/testing.
ensure_s3() {
  local root=$HOME/.cache/chatbox/s3s-fs
  if [ -n "${CHATBOX_TEST_S3_ENDPOINT:-}" ]; then
    return 0
  fi
  if [ ! -x "$root/bin/s3s-fs" ]; then
    say "installing the S3 stand-in s3s-fs (cargo install, several minutes)"
    # Pinned: later versions need a newer rustc.
    env -u CARGO_TARGET_DIR cargo install s3s-fs --version 0.14.1 --features binary --locked --root "$root"
  fi
  local port=9014
  while port_open 127.0.0.1 "$port"; do port=$((port + 1)); done
  local dir
  dir=$(mktemp -d)
  mkdir -p "$dir/data"
  say "starting s3s-fs (S3 stand-in) on 127.0.0.1:$port"
  "$root/bin/s3s-fs" --host 127.0.0.1 --port "$port" --access-key testing --secret-key testing \
    "$dir/data" >"$dir/s3s-fs.log" 2>&1 &
  CHATBOX_STARTED_PIDS+=($!)
  wait_port 127.0.0.1 "$port" s3s-fs
  # The system tests share one bucket (each under its own key prefix) and
  # look at the stand-in's folder to see what is stored; s3s-fs keeps a
  # bucket as a folder and each object as a file under it.
  mkdir -p "$dir/data/chatbox-test"
  export CHATBOX_TEST_S3_ENDPOINT=http://127.0.0.1:$port
  export CHATBOX_TEST_S3_ACCESS_KEY=testing
  export CHATBOX_TEST_S3_SECRET_KEY=testing
  export CHATBOX_TEST_S3_BUCKET=chatbox-test
  export CHATBOX_TEST_S3_DIR=$dir/data
}

# What the browser tests need: Debian's Chromium (never a downloaded
# browser), Node.js with npm, and the test project's one package
# (playwright-core, pinned by tests/browser/package-lock.json).
ensure_browser() {
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    apt_install nodejs npm
  fi
  export CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
  [ -x "$CHROMIUM" ] || apt_install chromium fonts-liberation
  local lock=tests/browser/package-lock.json stamp=tests/browser/node_modules/.chatbox-lock
  if ! cmp -s "$lock" "$stamp" 2>/dev/null; then
    say "installing the browser tests' packages (npm ci)"
    (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error) && cp "$lock" "$stamp"
  fi
}
