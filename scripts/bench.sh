#!/usr/bin/env bash
# The side-by-side benchmark (docs/BENCHMARKS.md, "How to run the
# side-by-side benchmark"): chatbox's scaled roles next to a Socket.IO 4 +
# Redis adapter peer doing the same work, each run on a fresh stack,
# alternating sides, then medians and ratios.
#
#   scripts/bench.sh                         # SHAPES="burst idle", 3 runs a side
#   QUICK=1 SHAPES=all scripts/bench.sh      # every shape once, short
#   SHAPES=crowd CROWD="500 1000" scripts/bench.sh
#
# Every knob is an environment variable (the doc lists them). It builds the
# release binaries and bench/'s npm packages, installs redis-server,
# nats-server and Node.js from Debian when missing (as scripts/test.sh does),
# starts every process it measures itself on its own ports, and stops exactly
# those (by PID). Results: bench/results/<timestamp>/ (JSON per run,
# summary.md, logs).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
. scripts/lib/services.sh

# ---------------------------------------------------------------- knobs
QUICK=${QUICK:-0}
SHAPES=${SHAPES:-burst idle}
[ "$SHAPES" = all ] && SHAPES="burst idle paced crowd scale"
RUNS=${RUNS:-$([ "$QUICK" = 1 ] && echo 1 || echo 3)}
D=${D:-$([ "$QUICK" = 1 ] && echo 5 || echo 20)}
W_GIVEN=${W:-}                       # the paced shape warms up for an answer's length unless W is given
W=${W:-$([ "$QUICK" = 1 ] && echo 2 || echo 5)}
IDLE=${IDLE:-$([ "$QUICK" = 1 ] && echo 1000 || echo 10000)}
WINDOW=${WINDOW:-0ms}                # the worker's chunk window in every chatbox run
WINDOW_VARIANT=${WINDOW_VARIANT-10ms} # burst: a second chatbox series with this window ("" = none)
WORKERS=${WORKERS:-1}                # workers of the chatbox stack (the scale shape also runs 2)
TURNS=${TURNS:-1024}                 # the worker's max_concurrent_turns, except in the crowd shape
CROWD_TURNS=${CROWD_TURNS:-}         # crowd: max_concurrent_turns ("" = the product's default)
CROWD=${CROWD:-$([ "$QUICK" = 1 ] && echo 200 || echo "500 1000")}
SCALE_CONNS=${SCALE_CONNS:-$([ "$QUICK" = 1 ] && echo "1000 2000" || echo "1000 5000 10000")}
SCALE_WORKERS=${SCALE_WORKERS:-1 2}
PERF=${PERF:-0}                      # 1: perf-record the chatbox processes in the first burst closed loop
BUILD=${BUILD:-1}                    # 0: use the binaries as they are

REDIS_PORT=${REDIS_PORT:-6393}
NATS_PORT=${NATS_PORT:-4233}
PEER_PORT_A=${PEER_PORT_A:-3201}
PEER_PORT_B=${PEER_PORT_B:-3202}
GW_PORT_A=${GW_PORT_A:-8201}
GW_PORT_B=${GW_PORT_B:-8202}
MOCK_PORT=${MOCK_PORT:-8290}
WORKER_PORT=${WORKER_PORT:-8291}     # worker n listens on WORKER_PORT + n - 1

JWT_SECRET=${JWT_SECRET:-side-by-side-bench-secret-0123456789abcdef}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/chatbox/target}
CHATBOX_BIN=${CHATBOX_BIN:-$CARGO_TARGET_DIR/release/chatbox}
MOCK_LLM_BIN=${MOCK_LLM_BIN:-$(dirname "$CHATBOX_BIN")/mock-llm}
OUT=${OUT:-bench/results/$(date +%Y%m%d-%H%M%S)}

# A shape's knob: SHAPE_NAME, else NAME, else the shape's default.
#   knob paced K 200  ->  $PACED_K, else $K, else 200
knob() {
  local specific="${1^^}_$2"
  if [ -n "${!specific:-}" ]; then echo "${!specific}"
  elif [ -n "${!2:-}" ]; then echo "${!2}"
  else echo "$3"
  fi
}

# ---------------------------------------------------------------- tools
for b in redis-server nats-server; do
  command -v "$b" >/dev/null 2>&1 || [ -x "/usr/sbin/$b" ] || apt_install "$b"
done
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || apt_install nodejs npm
NATS_BIN=$(command -v nats-server || echo /usr/sbin/nats-server)

if [ "$BUILD" = 1 ]; then
  ensure_toolchain
  say "building chatbox and mock-llm (release, $CARGO_TARGET_DIR)"
  cargo build --release --locked --quiet -p chatbox -p chatbox-mock-llm --bins
fi
for b in "$CHATBOX_BIN" "$MOCK_LLM_BIN"; do
  [ -x "$b" ] || { say "missing $b (BUILD=1 builds it)"; exit 1; }
done
if ! cmp -s bench/package-lock.json bench/node_modules/.chatbox-lock 2>/dev/null; then
  say "installing bench/'s packages (npm ci)"
  (cd bench && npm ci --no-audit --no-fund --loglevel=error) && cp bench/package-lock.json bench/node_modules/.chatbox-lock
fi

# Idle sockets cost a descriptor in the gateway and one in the load generator.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

mkdir -p "$OUT/logs"
STACK_PIDS=()
STACK_DIR=""
stop_stack() {
  local pid
  for pid in "${STACK_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${STACK_PIDS[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  STACK_PIDS=()
  if [ -n "$STACK_DIR" ]; then rm -rf "$STACK_DIR"; fi
  STACK_DIR=""
}
on_exit() { stop_stack; stop_started_services; }
trap on_exit EXIT
trap 'exit 130' INT TERM

port_free() {
  if port_open 127.0.0.1 "$1"; then say "port $1 is in use (set the *_PORT knobs)"; exit 1; fi
}
# Starts a process of the stack in the background, its output to the run's log.
spawn() { # log-name command...
  local log="$OUT/logs/$RUN_TAG-$1.log"; shift
  "$@" >"$log" 2>&1 &
  STACK_PIDS+=($!)
  LAST_PID=$!
}

start_backplane() { # with_nats
  port_free "$REDIS_PORT"
  STACK_DIR=$(mktemp -d /tmp/chatbox-bench.XXXXXX)
  spawn redis redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no --dir "$STACK_DIR"
  REDIS_PID=$LAST_PID
  wait_port 127.0.0.1 "$REDIS_PORT" redis-server
  if [ "$1" = 1 ]; then
    port_free "$NATS_PORT"
    spawn nats "$NATS_BIN" -a 127.0.0.1 -p "$NATS_PORT" -js -sd "$STACK_DIR/jetstream"
    NATS_PID=$LAST_PID
    wait_port 127.0.0.1 "$NATS_PORT" nats-server
  fi
}

start_peer() { # K S PACE
  start_backplane 0
  port_free "$PEER_PORT_A"; port_free "$PEER_PORT_B"
  spawn nodeA node bench/peer/node.js --port "$PEER_PORT_A" --name A --redis "redis://127.0.0.1:$REDIS_PORT"
  local a=$LAST_PID
  spawn nodeB node bench/peer/node.js --port "$PEER_PORT_B" --name B --redis "redis://127.0.0.1:$REDIS_PORT"
  local b=$LAST_PID
  wait_port 127.0.0.1 "$PEER_PORT_A" "peer node A"; wait_port 127.0.0.1 "$PEER_PORT_B" "peer node B"
  spawn responder node bench/peer/responder.js --url "http://127.0.0.1:$PEER_PORT_B" \
    --chunks "$1" --chunk-bytes "$2" --pace "$3"
  local r=$LAST_PID
  for _ in $(seq 1 100); do grep -q connected "$OUT/logs/$RUN_TAG-responder.log" && break; sleep 0.1; done
  grep -q connected "$OUT/logs/$RUN_TAG-responder.log" || { say "the peer's responder did not connect"; exit 1; }
  URL="http://127.0.0.1:$PEER_PORT_A"
  PROCS="nodeA=$a,nodeB=$b,responder=$r,redis=$REDIS_PID"
  AUX=""
  RSS_TARGET=nodeA
  ANSWER_PROC=responder
}

start_chatbox() { # K S PACE workers window max_concurrent_turns("" = default)
  local k=$1 s=$2 pace=$3 workers=$4 window=$5 turns=$6
  start_backplane 1
  port_free "$MOCK_PORT"; port_free "$GW_PORT_A"; port_free "$GW_PORT_B"
  spawn mock "$MOCK_LLM_BIN" --listen "127.0.0.1:$MOCK_PORT" --chunks "$k" --chunk-bytes "$s" --chunk-delay "$pace"
  local mock=$LAST_PID
  wait_port 127.0.0.1 "$MOCK_PORT" mock-llm
  cat >"$STACK_DIR/models.toml" <<TOML
[[chatbox.llm.providers]]
id = "mock"
name = "Mock"
type = "openai"
endpoint = "http://127.0.0.1:$MOCK_PORT/v1"
model = "mock-model"
TOML
  mkdir -p "$STACK_DIR/data"
  # What a run needs (docs/CONFIGURATION.md): the backplane, the HS256 secret the
  # load generator signs with, the SQLite store with content encrypted, and the
  # per-user and per-gateway limits out of the way of a load test.
  local cfg=(
    JWT_SECRET="$JWT_SECRET" REDIS_URL="redis://127.0.0.1:$REDIS_PORT" NATS_URL="nats://127.0.0.1:$NATS_PORT"
    CHATBOX_NAMESPACE=bench RUST_LOG="${RUST_LOG:-warn}"
    ENCRYPTION_KEY="${ENCRYPTION_KEY:-YmVuY2gtYmVuY2gtYmVuY2gtYmVuY2gtYmVuY2gtMzI=}"
    CHATBOX_STORE_KIND=sqlite CHATBOX_BLOB_KIND=local CHATBOX_DATA_DIR="$STACK_DIR/data"
    RATE_LIMIT=100000000 MAX_CONNECTIONS=1000000
    CHATBOX_WORKER_CHUNK_WINDOW="$window"
  )
  if [ -n "$turns" ]; then cfg+=(CHATBOX_WORKER_MAX_CONCURRENT_TURNS="$turns"); fi
  printf '%s\n' "${cfg[@]}" | sed -E 's/^(JWT_SECRET|ENCRYPTION_KEY)=.*/\1=(set)/' >"$OUT/logs/$RUN_TAG-env.txt"
  spawn gwA env "${cfg[@]}" "$CHATBOX_BIN" gateway --listen "127.0.0.1:$GW_PORT_A" --pod-id gw-a
  local pids="gwA=$LAST_PID"
  spawn gwB env "${cfg[@]}" "$CHATBOX_BIN" gateway --listen "127.0.0.1:$GW_PORT_B" --pod-id gw-b
  pids+=",gwB=$LAST_PID"
  local n
  for n in $(seq 1 "$workers"); do
    # Several workers share the one SQLite file (WAL; the store waits on its lock).
    spawn "worker$n" env "${cfg[@]}" "$CHATBOX_BIN" worker --listen "127.0.0.1:$((WORKER_PORT + n - 1))" \
      --pod-id "wk-$n" --config "$STACK_DIR/models.toml"
    pids+=",worker$n=$LAST_PID"
  done
  wait_port 127.0.0.1 "$GW_PORT_A" "gateway A"; wait_port 127.0.0.1 "$GW_PORT_B" "gateway B"
  for n in $(seq 1 "$workers"); do wait_port 127.0.0.1 "$((WORKER_PORT + n - 1))" "worker $n"; done
  sleep 1 # the workers attach to their JetStream consumer
  URL="ws://127.0.0.1:$GW_PORT_A"
  PROCS="$pids,redis=$REDIS_PID,nats=$NATS_PID"
  AUX="mock=$mock"
  RSS_TARGET=gwA
  ANSWER_PROC=worker1
}

# Every process of the stack still alive after a run? (A crash is a result too.)
check_alive() {
  local kv dead=""
  for kv in ${PROCS//,/ } ${AUX//,/ }; do kill -0 "${kv#*=}" 2>/dev/null || dead+=" ${kv%%=*}"; done
  if [ -n "$dead" ]; then say "died during $RUN_TAG:$dead (logs: $OUT/logs/$RUN_TAG-*.log)"; fi
}

# Runs load.mjs against the stack; its JSON goes to $OUT/$RUN_TAG.json.
load() { # side args...
  local side=$1; shift
  local secret=()
  if [ "$side" = chatbox ]; then secret=(--jwt-secret "$JWT_SECRET"); fi
  node bench/load.mjs --proto "$side" --url "$URL" --procs "$PROCS" ${AUX:+--aux "$AUX"} "${secret[@]}" \
    --label "$RUN_TAG" --out "$OUT/$RUN_TAG.json" "$@" | tee -a "$OUT/report.txt"
  echo | tee -a "$OUT/report.txt"
  check_alive
}

perf_record() { # seconds-from-now seconds names(name=pid,...) out
  if [ "$PERF" != 1 ] || ! command -v perf >/dev/null 2>&1; then return 0; fi
  local pids
  pids=$(echo "$3" | tr , '\n' | cut -d= -f2 | paste -sd,)
  (
    sleep "$1"
    # Which process each thread belongs to: the report names them.
    for kv in ${3//,/ }; do
      for t in /proc/"${kv#*=}"/task/*; do echo "${t##*/} ${kv%%=*}"; done
    done >"${4%.data}.threads"
    perf record -F 499 -p "$pids" -o "$4" -- sleep "$2" >/dev/null 2>&1
  ) &
  PERF_PID=$!
}
# A flat profile: the share of every process's threads, then the top symbols,
# as percentages of all the samples.
perf_report() { # out
  [ -n "${PERF_PID:-}" ] || return 0
  wait "$PERF_PID" 2>/dev/null || true
  PERF_PID=""
  local txt=${1%.data}.txt flat=(perf report -i "$1" --no-children -g none --stdio)
  # "  12.3%  4242:tokio-rt-worker ..." -> "  12.3%  worker1/tokio-rt-worker ..."
  local name_threads='NR==FNR { name[$1] = $2; next }
    { if (match($0, /[0-9]+:/)) { tid = substr($0, RSTART, RLENGTH - 1);
        $0 = substr($0, 1, RSTART - 1) (tid in name ? name[tid] : tid) "/" substr($0, RSTART + RLENGTH) } print }'
  {
    echo "# perf record -F 499 over the measured window of $(basename "${1%.data}"), gateways and workers"
    "${flat[@]}" --sort pid 2>/dev/null | grep -E '^ +[0-9]' | awk "$name_threads" "${1%.data}.threads" - \
      >"${1%.data}.by-thread"
    echo "## processes"
    awk '{ split($2, p, "/"); sum[p[1]] += $1 } END { for (n in sum) printf "%8.2f%%  %s\n", sum[n], n }' \
      "${1%.data}.by-thread" | sort -rn
    echo "## threads"
    cat "${1%.data}.by-thread"
    echo "## top symbols (a process's threads of one name together)"
    "${flat[@]}" --sort pid,dso,symbol 2>/dev/null | grep -E '^ +[0-9]' | awk "$name_threads" "${1%.data}.threads" - \
      | awk '{ pct = $1; $1 = ""; sum[$0] += pct } END { for (k in sum) if (sum[k] >= 0.3) printf "%8.2f%% %s\n", sum[k], k }' \
      | sort -rn | head -60
  } | sed -E 's/[ -]+$//' >"$txt" || true
  say "profile: $txt"
}

versions() {
  cat <<JSON
{"started": "$(date -u +%FT%TZ)", "commit": "$(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet 2>/dev/null || echo +dirty)",
 "chatbox": "$("$CHATBOX_BIN" --version 2>/dev/null)", "node": "$(node -v)",
 "redis": "$(redis-server --version | sed -E 's/.*v=([0-9.]+).*/\1/')", "nats": "$("$NATS_BIN" --version)",
 "socket.io": "$(node -p 'require("./bench/node_modules/socket.io/package.json").version')",
 "redis_adapter": "$(node -p 'require("./bench/node_modules/@socket.io/redis-adapter/package.json").version')",
 "cores": $(nproc), "fd_limit": "$(ulimit -n)", "loadavg_at_start": "$(cut -d' ' -f1-3 /proc/loadavg)",
 "knobs": {"SHAPES": "$SHAPES", "RUNS": $RUNS, "D": $D, "W": $W, "IDLE": $IDLE, "WINDOW": "$WINDOW",
   "WINDOW_VARIANT": "$WINDOW_VARIANT", "WORKERS": $WORKERS, "TURNS": "$TURNS", "CROWD": "$CROWD",
   "CROWD_TURNS": "$CROWD_TURNS", "SCALE_CONNS": "$SCALE_CONNS", "QUICK": $QUICK}}
JSON
}
versions >"$OUT/meta.json"
say "results in $OUT; $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"

# ---------------------------------------------------------------- shapes
# Each run of a shape starts a fresh stack per side, peer first, then chatbox
# (and its variants), so the sides alternate: peer, chatbox, peer, chatbox, ...

shape_burst() { # run
  local k s pace c rate
  k=$(knob burst K 20); s=$(knob burst S 16); pace=$(knob burst PACE 0)
  c=$(knob burst C 200); rate=$(knob burst RATE 650)
  local sides=("peer" "chatbox:$WINDOW")
  if [ -n "$WINDOW_VARIANT" ] && [ "$WINDOW_VARIANT" != "$WINDOW" ]; then sides+=("chatbox:$WINDOW_VARIANT"); fi
  local side mode
  for side in "${sides[@]}"; do
    for mode in closed open; do
      local variant=${side%%:*}
      if [ "$side" != peer ] && [ "${side#*:}" != "$WINDOW" ]; then variant="chatbox-window"; fi
      RUN_TAG="burst.$variant.$mode.r$1"
      if [ "$side" = peer ]; then start_peer "$k" "$s" "$pace"
      else start_chatbox "$k" "$s" "$pace" "$WORKERS" "${side#*:}" "$TURNS"; fi
      if [ "$mode" = closed ]; then
        local profile=""
        if [ "$1" = 1 ] && [ "$variant" = chatbox ]; then profile="$OUT/perf-burst-closed.data"; fi
        if [ -n "$profile" ]; then perf_record "$W" "$D" "${PROCS%%,redis=*}" "$profile"; fi
        load "${side%%:*}" --mode closed --clients "$c" --chunks "$k" --chunk-bytes "$s" --pace "$pace" --warmup "$W" --duration "$D"
        if [ -n "$profile" ]; then perf_report "$profile"; fi
      else
        load "${side%%:*}" --mode open --clients "$c" --rate "$rate" --chunks "$k" --chunk-bytes "$s" --pace "$pace" --warmup "$W" --duration "$D"
      fi
      stop_stack
    done
  done
}

shape_idle() { # run
  local side
  for side in peer chatbox; do
    RUN_TAG="idle.$side.idle.r$1"
    if [ "$side" = peer ]; then start_peer 20 16 0; else start_chatbox 20 16 0 "$WORKERS" "$WINDOW" "$TURNS"; fi
    load "$side" --mode idle --idle "$IDLE" --target "$RSS_TARGET" --settle "$([ "$QUICK" = 1 ] && echo 2 || echo 5)"
    stop_stack
  done
}

shape_paced() { # run
  local k s pace rate answer_ms c w
  k=$(knob paced K 200); s=$(knob paced S 4); pace=$(knob paced PACE 20); rate=$(knob paced RATE 50)
  answer_ms=$(( (k - 1) * pace ))
  # Enough clients that a client's next message leaves after its answer ended
  # (one session answers one message at a time).
  c=$(knob paced C $(( (rate * answer_ms * 3 / 2 + 999) / 1000 > 50 ? (rate * answer_ms * 3 / 2 + 999) / 1000 : 50 )))
  w=${PACED_W:-${W_GIVEN:-$(( answer_ms / 1000 + 3 ))}}
  local side
  for side in peer chatbox; do
    RUN_TAG="paced.$side.open.r$1"
    if [ "$side" = peer ]; then start_peer "$k" "$s" "$pace"; else start_chatbox "$k" "$s" "$pace" "$WORKERS" "$WINDOW" "$TURNS"; fi
    load "$side" --mode open --clients "$c" --rate "$rate" --chunks "$k" --chunk-bytes "$s" --pace "$pace" \
      --warmup "$w" --duration "$D"
    stop_stack
  done
}

shape_crowd() { # run
  local k s pace n side
  k=$(knob crowd K 100); s=$(knob crowd S 4); pace=$(knob crowd PACE 50)
  for n in $CROWD; do
    for side in peer chatbox; do
      RUN_TAG="crowd.$side.crowd$n.r$1"
      if [ "$side" = peer ]; then start_peer "$k" "$s" "$pace"
      else start_chatbox "$k" "$s" "$pace" "$WORKERS" "$WINDOW" "$CROWD_TURNS"; fi
      load "$side" --mode crowd --crowd "$n" --chunks "$k" --chunk-bytes "$s" --pace "$pace" --target "$ANSWER_PROC"
      stop_stack
    done
  done
}

shape_scale() { # run (chatbox only)
  local k s c rate workers conns
  k=$(knob scale K 20); s=$(knob scale S 16); c=$(knob scale C 200); rate=$(knob scale RATE 650)
  for workers in $SCALE_WORKERS; do
    RUN_TAG="scale.chatbox-${workers}w.closed.r$1"
    start_chatbox "$k" "$s" 0 "$workers" "$WINDOW" "$TURNS"
    load chatbox --mode closed --clients "$c" --chunks "$k" --chunk-bytes "$s" --pace 0 --warmup "$W" --duration "$D"
    stop_stack
  done
  for conns in $SCALE_CONNS; do
    RUN_TAG="scale.chatbox-conns$conns.open.r$1"
    start_chatbox "$k" "$s" 0 "$WORKERS" "$WINDOW" "$TURNS"
    load chatbox --mode open --clients "$c" --hold "$((conns > c ? conns - c : 0))" --rate "$rate" --chunks "$k" \
      --chunk-bytes "$s" --pace 0 --warmup "$W" --duration "$D"
    stop_stack
  done
}

for shape in $SHAPES; do
  case $shape in burst | idle | paced | crowd | scale) ;; *) say "unknown shape $shape"; exit 2 ;; esac
done
for shape in $SHAPES; do
  for run in $(seq 1 "$RUNS"); do
    say "shape $shape, run $run of $RUNS"
    "shape_$shape" "$run"
  done
done

node bench/summary.mjs "$OUT" | tee "$OUT/summary.md"
say "results: $OUT/ (summary.md, report.txt, one JSON per run, logs/)"
