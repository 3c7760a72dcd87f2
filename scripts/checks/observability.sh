#!/usr/bin/env bash
# Observability check: Prometheus alert rules, their unit tests, the Grafana
# dashboards, and the /metrics text the binary really serves.
#
#   bash scripts/checks/observability.sh        (from the repository root)
#
# On a fresh Debian 12 machine (root, or a user with sudo) it fetches promtool
# once from Debian's `prometheus` package into ~/.cache/chatbox/promtool; later
# runs reuse it. Environment:
#   PROMTOOL              a promtool to use instead
#   CHATBOX_BIN           the chatbox binary (default ~/.cache/chatbox/target/debug/chatbox)
#   CHATBOX_SKIP_SCRAPE=1 skip the live scrapes (no binary built)
#   SCRAPE_STRICT=0       only warn on promtool lint findings in the scrapes (default: fail)
#
# Checks, one summary line each:
#   rules      promtool check rules prometheus/alerts.yml
#   rule-tests promtool test rules prometheus/alerts.test.yml
#   dashboards scripts/checks/dashboards.py (dashboards + every PromQL metric in docs/METRICS.md)
#   scrape     promtool check metrics on /metrics of the all-in-one after one chat turn,
#              and of a scaled gateway and worker when redis-server and nats-server exist;
#              lint findings (e.g. "no help text") are printed, only errors fail
# Exits non-zero when any check fails.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$(pwd)
CACHE="${HOME}/.cache/chatbox"
PROMTOOL_DIR="${CACHE}/promtool"
CHATBOX_BIN="${CHATBOX_BIN:-${CACHE}/target/debug/chatbox}"

failures=0
summary=()
note() { summary+=("$1"); }
fail() { summary+=("$1"); failures=$((failures + 1)); }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else "$@"; fi
}

# --- promtool ----------------------------------------------------------------
ensure_promtool() {
  if [ -n "${PROMTOOL:-}" ]; then return; fi
  PROMTOOL="${PROMTOOL_DIR}/promtool"
  if [ -x "$PROMTOOL" ] && "$PROMTOOL" --version >/dev/null 2>&1; then return; fi
  echo "== fetching promtool (Debian package prometheus) into ${PROMTOOL_DIR}"
  local work
  work=$(mktemp -d)
  chmod 755 "$work"   # lets apt's _apt user write the download
  if ! (cd "$work" && apt-get download prometheus >/dev/null 2>&1); then
    as_root apt-get update -qq >/dev/null
    (cd "$work" && apt-get download prometheus >/dev/null 2>&1) || {
      echo "cannot download the prometheus package" >&2; rm -rf "$work"; return 1; }
  fi
  dpkg -x "$work"/prometheus_*.deb "$work/x"
  mkdir -p "$PROMTOOL_DIR"
  cp "$work/x/usr/bin/promtool" "$PROMTOOL_DIR/promtool.new"
  mv "$PROMTOOL_DIR/promtool.new" "$PROMTOOL"
  rm -rf "$work"
  "$PROMTOOL" --version | head -1
}

if ! ensure_promtool; then
  echo "FAIL: promtool unavailable" >&2
  exit 1
fi

# --- rules ---------------------------------------------------------------------
echo "== promtool check rules prometheus/alerts.yml"
if out=$("$PROMTOOL" check rules prometheus/alerts.yml 2>&1); then
  echo "$out"
  note "rules:      ok   ($(grep -o '[0-9]* rules found' <<<"$out"))"
else
  echo "$out"
  fail "rules:      FAIL (promtool check rules)"
fi

echo "== promtool test rules prometheus/alerts.test.yml"
if out=$("$PROMTOOL" test rules prometheus/alerts.test.yml 2>&1); then
  echo "$out"
  note "rule-tests: ok   ($(grep -c '^  - name:' prometheus/alerts.test.yml) test groups, $(grep -c 'alertname:' prometheus/alerts.test.yml) alert checks)"
else
  echo "$out"
  fail "rule-tests: FAIL (promtool test rules)"
fi

# --- dashboards ----------------------------------------------------------------
echo "== scripts/checks/dashboards.py"
if out=$(python3 scripts/checks/dashboards.py 2>&1); then
  echo "$out"
  note "dashboards: ok   (${out##*dashboards: ok: })"
else
  echo "$out"
  fail "dashboards: FAIL (${out##*dashboards: FAIL: })"
fi

# --- live scrapes ----------------------------------------------------------------
pids=()
tmp=""
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  [ -n "$tmp" ] && rm -rf "$tmp"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_ready() { # url log
  local i
  for i in $(seq 1 150); do
    if [ "$(curl -s -o /dev/null -w '%{http_code}' "$1" || true)" = 200 ]; then return 0; fi
    sleep 0.2
  done
  echo "not ready: $1; last log lines:" >&2
  tail -n 20 "$2" >&2 || true
  return 1
}

catalogue_names() {
  sed -n 's/^| `\([a-z_:][a-z0-9_:]*\)` |.*/\1/p' docs/METRICS.md | sort -u
}

# scrape_check LABEL URL: promtool check metrics; exit 1 = errors, 3 = lint findings
scrape_check() {
  local label=$1 url=$2 file rc=0 lint undocumented series
  file="$tmp/${label}.prom"
  if ! curl -sf "$url" -o "$file"; then
    fail "scrape:     FAIL ($label: GET $url)"
    return
  fi
  series=$(grep -c '^chatbox_' "$file" || true)
  lint=$("$PROMTOOL" check metrics <"$file" 2>&1) || rc=$?
  undocumented=$(comm -23 \
    <(sed -n 's/^# TYPE \([a-zA-Z_:][a-zA-Z0-9_:]*\) .*/\1/p' "$file" | grep '^chatbox_' | sort -u) \
    <(catalogue_names) | tr '\n' ' ')
  if [ -n "$lint" ]; then
    echo "-- promtool check metrics ($label):"
    sed 's/^/   /' <<<"$lint"
  fi
  [ -n "$undocumented" ] && echo "-- $label serves metrics missing from docs/METRICS.md: $undocumented"
  if [ "$series" -eq 0 ]; then
    fail "scrape:     FAIL ($label: no chatbox_ series at $url)"
  elif [ "$rc" -ne 0 ] && [ "$rc" -ne 3 ]; then
    fail "scrape:     FAIL ($label: promtool check metrics exit $rc)"
  elif [ "$rc" -eq 3 ] && [ "${SCRAPE_STRICT:-1}" = 1 ]; then
    fail "scrape:     FAIL ($label: $(wc -l <<<"$lint") lint findings, SCRAPE_STRICT=1)"
  elif [ "$rc" -eq 3 ]; then
    note "scrape:     ok   ($label: $series series parse; $(wc -l <<<"$lint") lint findings, see above${undocumented:+; undocumented: $undocumented})"
  else
    note "scrape:     ok   ($label: $series series, lint clean${undocumented:+; undocumented: $undocumented})"
  fi
}

scrape_all_in_one() {
  local port log token
  port=$(free_port)
  log="$tmp/all-in-one.log"
  mkdir -p "$tmp/aio"
  echo "== all-in-one on 127.0.0.1:$port"
  CHATBOX_LOG_FORMAT=json "$CHATBOX_BIN" --listen "127.0.0.1:$port" --data-dir "$tmp/aio" >"$log" 2>&1 &
  pids+=($!)
  if ! wait_ready "http://127.0.0.1:$port/chat/readyz" "$log"; then
    fail "scrape:     FAIL (all-in-one never ready)"
    return
  fi
  token=$("$CHATBOX_BIN" token --sub observability-check --data-dir "$tmp/aio" 2>/dev/null | tail -n 1)
  if python3 scripts/checks/ws_turn.py "127.0.0.1:$port" "$token"; then
    echo "   one chat turn answered"
  else
    echo "   (the chat turn failed: the scrape shows the gateway series only)"
  fi
  scrape_check all-in-one "http://127.0.0.1:$port/metrics"
}

scrape_scaled_roles() {
  local redis_port nats_port gw_port wk_port env_common secret token
  if ! command -v redis-server >/dev/null || ! command -v nats-server >/dev/null; then
    note "scrape:     skip (scaled gateway/worker: redis-server or nats-server not installed)"
    return
  fi
  redis_port=$(free_port); nats_port=$(free_port); gw_port=$(free_port); wk_port=$(free_port)
  mkdir -p "$tmp/nats" "$tmp/worker"
  echo "== scaled roles: redis :$redis_port, nats :$nats_port, gateway :$gw_port, worker :$wk_port"
  nats-server -a 127.0.0.1 -p "$nats_port" -js -sd "$tmp/nats" >"$tmp/nats.log" 2>&1 &
  pids+=($!)
  # Redis on a port just found free; once it lost that port to another
  # process in the meantime (a busy machine), so it gets three tries.
  local attempt redis_pid
  for attempt in 1 2 3; do
    redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no >"$tmp/redis.log" 2>&1 &
    redis_pid=$!
    pids+=("$redis_pid")
    for _ in $(seq 1 25); do
      (exec 3<>"/dev/tcp/127.0.0.1/$redis_port") 2>/dev/null && break 2
      sleep 0.2
    done
    echo "   redis-server did not start on :$redis_port (try $attempt): $(tail -n 2 "$tmp/redis.log")"
    kill "$redis_pid" 2>/dev/null || true
    redis_port=$(free_port)
  done
  secret="observability-check-secret-0123456789abcdef"
  for _ in $(seq 1 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$nats_port") 2>/dev/null && break
    sleep 0.2
  done
  env_common=(JWT_SECRET="$secret" REDIS_URL="redis://127.0.0.1:$redis_port"
              NATS_URL="nats://127.0.0.1:$nats_port" CHATBOX_LOG_FORMAT=json
              CHATBOX_DATA_DIR="$tmp/worker")
  env "${env_common[@]}" CHATBOX_STORE_KIND=sqlite CHATBOX_STORE_ALLOW_PLAINTEXT=true CHATBOX_BLOB_KIND=local \
    CHATBOX_POD_ID=obs-worker "$CHATBOX_BIN" worker --listen "127.0.0.1:$wk_port" >"$tmp/worker.log" 2>&1 &
  pids+=($!)
  env "${env_common[@]}" CHATBOX_POD_ID=obs-gateway "$CHATBOX_BIN" gateway --listen "127.0.0.1:$gw_port" >"$tmp/gateway.log" 2>&1 &
  pids+=($!)
  if ! wait_ready "http://127.0.0.1:$wk_port/chat/readyz" "$tmp/worker.log" ||
     ! wait_ready "http://127.0.0.1:$gw_port/chat/readyz" "$tmp/gateway.log"; then
    fail "scrape:     FAIL (scaled gateway/worker never ready)"
    return
  fi
  token=$(JWT_SECRET="$secret" "$CHATBOX_BIN" token --sub observability-check 2>/dev/null | tail -n 1)
  if python3 scripts/checks/ws_turn.py "127.0.0.1:$gw_port" "$token"; then
    echo "   one chat turn answered through gateway and worker"
  else
    echo "   (the chat turn failed: the scrapes show the idle series only)"
  fi
  scrape_check gateway "http://127.0.0.1:$gw_port/metrics"
  scrape_check worker "http://127.0.0.1:$wk_port/metrics"
}

if [ "${CHATBOX_SKIP_SCRAPE:-0}" = 1 ]; then
  note "scrape:     skip (CHATBOX_SKIP_SCRAPE=1)"
elif [ ! -x "$CHATBOX_BIN" ]; then
  fail "scrape:     FAIL (no binary at $CHATBOX_BIN: build it, e.g. CARGO_TARGET_DIR=$CACHE/target cargo build, set CHATBOX_BIN, or CHATBOX_SKIP_SCRAPE=1)"
else
  tmp=$(mktemp -d)
  scrape_all_in_one
  scrape_scaled_roles
fi

echo
echo "== observability summary"
printf '%s\n' "${summary[@]}"
if [ "$failures" -gt 0 ]; then
  echo "observability: FAIL ($failures failing checks)"
  exit 1
fi
echo "observability: ok"
