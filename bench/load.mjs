#!/usr/bin/env node
// The load generator of scripts/bench.sh: one run of one shape against one
// stack (chatbox's scaled roles, or the Socket.IO peer), with the server-side
// processes' CPU and memory read from /proc. It prints a short report and
// writes the full result as JSON (--out); bench/summary.mjs takes medians.
//
//   node bench/load.mjs --proto chatbox|peer --url URL --mode MODE [options]
//
// Modes:
//   closed  C clients; each sends its next message when its answer is complete.
//   open    RATE messages/s in total, round-robin over C clients; latency counts
//           from the *intended* send time, so a server that falls behind shows it
//           (no coordinated omission).
//   idle    N authenticated idle connections: RSS growth / N of every process.
//   crowd   N users send at the same moment: time to the first chunk and to the
//           whole answer, and memory per answer in flight.
// closed and open can hold --hold idle connections open while they run (the
// "scale" shape: CPU per turn and p99 as idle connections grow).
//
// Accounting: --procs name=pid,... are the server side (summed); --aux
// name=pid,... are measured and printed apart (the mock LLM). CPU is
// utime+stime of /proc/<pid>/stat (every thread) over the measured window,
// RSS the peak of VmRSS sampled every 100-200 ms, VmHWM the lifetime peak.
import fs from "node:fs";
import os from "node:os";
import crypto from "node:crypto";
import { parseArgs } from "node:util";
import { performance } from "node:perf_hooks";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);

const USAGE = `usage: node bench/load.mjs --proto chatbox|peer --url URL --mode closed|open|idle|crowd [options]
  --clients C        clients of a closed or open loop (200)
  --rate R           open loop: messages per second, all clients together (650)
  --warmup W         seconds before the measured window (5)
  --duration D       measured seconds (20)
  --hold N           closed/open: also hold N idle connections open (0)
  --idle N           idle: connections to open (10000)
  --settle S         idle: seconds to let memory settle before and after (5)
  --crowd N          crowd: users who send at once (500)
  --chunks K         chunks an answer has (the peer's answers are checked against it)
  --chunk-bytes S, --pace MS   the answers' chunk size and pacing, as the stack was started (recorded only)
  --timeout S        a message unanswered this long is an error (30; crowd 180)
  --procs n=pid,...  server-side processes, summed into the server's CPU
  --aux n=pid,...    processes measured but not summed (the mock LLM)
  --target NAME      idle: whose RSS per connection; crowd: whose RSS per answer
  --jwt-secret S     chatbox: sign HS256 tokens with S (sub = <prefix><i>)
  --prefix P         user / session names are P0, P1, ... ("u-")
  --content TEXT     the message's text ("bench message")
  --src-ips K        spread sockets over 127.0.0.1..K (default: one per 20000 sockets)
  --connect-concurrency N  handshakes in flight at once (200)
  --label TEXT       printed with the report and kept in the JSON
  --out FILE         write the result as JSON
`;

const { values: opt } = parseArgs({
  options: {
    proto: { type: "string" },
    url: { type: "string" },
    mode: { type: "string", default: "closed" },
    clients: { type: "string", default: "200" },
    rate: { type: "string", default: "650" },
    warmup: { type: "string", default: "5" },
    duration: { type: "string", default: "20" },
    hold: { type: "string", default: "0" },
    idle: { type: "string", default: "10000" },
    settle: { type: "string", default: "5" },
    crowd: { type: "string", default: "500" },
    chunks: { type: "string", default: "0" },
    "chunk-bytes": { type: "string" },
    pace: { type: "string" },
    timeout: { type: "string" },
    procs: { type: "string", default: "" },
    aux: { type: "string", default: "" },
    target: { type: "string", default: "" },
    "jwt-secret": { type: "string" },
    prefix: { type: "string", default: "u-" },
    content: { type: "string", default: "bench message" },
    "src-ips": { type: "string" },
    "connect-concurrency": { type: "string", default: "200" },
    label: { type: "string", default: "" },
    out: { type: "string" },
    help: { type: "boolean", default: false },
  },
});

if (opt.help || !opt.proto || !opt.url || !["chatbox", "peer"].includes(opt.proto)) {
  process.stdout.write(USAGE);
  process.exit(opt.help ? 0 : 2);
}
const MODE = opt.mode;
if (!["closed", "open", "idle", "crowd"].includes(MODE)) {
  console.error(`unknown --mode ${MODE}`);
  process.exit(2);
}
const PROTO = opt.proto;
const C = Number(opt.clients);
const RATE = Number(opt.rate);
const WARMUP_S = Number(opt.warmup);
const DURATION_S = Number(opt.duration);
const HOLD = Number(opt.hold);
const IDLE = Number(opt.idle);
const SETTLE_S = Number(opt.settle);
const CROWD = Number(opt.crowd);
const K = Number(opt.chunks);
const TIMEOUT_MS = 1000 * Number(opt.timeout ?? (MODE === "crowd" ? 180 : 30));
const SOCKETS = MODE === "idle" ? IDLE : MODE === "crowd" ? CROWD : C + HOLD;
const SRC_IPS = Number(opt["src-ips"] ?? Math.max(1, Math.ceil(SOCKETS / 20000)));
const CONNECT_CONCURRENCY = Number(opt["connect-concurrency"]);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const now = () => performance.now();
const round = (x, d = 2) => (Number.isFinite(x) ? Math.round(x * 10 ** d) / 10 ** d : null);

// ------------------------------------------------------------------ /proc

const CLK_TCK = 100; // Linux's USER_HZ on every architecture node runs on

function cpuSeconds(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after "pid (comm) ": state is the first; utime and stime are the 12th and 13th.
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) / CLK_TCK;
  } catch {
    return NaN;
  }
}

function statusKiB(pid, key) {
  try {
    const m = fs.readFileSync(`/proc/${pid}/status`, "utf8").match(new RegExp(`^${key}:\\s+(\\d+) kB`, "m"));
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}

function machineTicks() {
  const cpu = fs.readFileSync("/proc/stat", "utf8").split("\n", 1)[0].trim().split(/\s+/).slice(1).map(Number);
  return { idle: cpu[3] + (cpu[4] || 0), total: cpu.reduce((a, b) => a + b, 0) };
}

function parseProcs(list, aux) {
  return list
    .split(",")
    .filter(Boolean)
    .map((kv) => {
      const [name, pid] = kv.split("=");
      return { name, pid: Number(pid), aux };
    });
}
const PROCS = [...parseProcs(opt.procs, false), ...parseProcs(opt.aux, true)];

/** CPU and memory of the watched processes over a window. */
class Window {
  constructor(everyMs = 200, onSample = null) {
    this.everyMs = everyMs;
    this.onSample = onSample;
  }
  rss() {
    return Object.fromEntries(PROCS.map((p) => [p.name, statusKiB(p.pid, "VmRSS")]));
  }
  sample() {
    const rss = this.rss();
    for (const p of PROCS) this.peak[p.name] = Math.max(this.peak[p.name], rss[p.name] || 0);
    if (this.onSample) this.onSample(rss);
  }
  start() {
    this.t0 = now();
    this.cpu0 = Object.fromEntries(PROCS.map((p) => [p.name, cpuSeconds(p.pid)]));
    this.self0 = process.cpuUsage();
    this.m0 = machineTicks();
    this.peak = Object.fromEntries(PROCS.map((p) => [p.name, 0]));
    this.sample();
    this.timer = setInterval(() => this.sample(), this.everyMs);
  }
  stop() {
    clearInterval(this.timer);
    this.sample();
    const elapsed = (now() - this.t0) / 1000;
    const self = process.cpuUsage(this.self0);
    const m1 = machineTicks();
    const total = m1.total - this.m0.total;
    const procs = PROCS.map((p) => {
      const cpu = cpuSeconds(p.pid) - this.cpu0[p.name];
      return {
        name: p.name,
        pid: p.pid,
        aux: p.aux,
        cpu_s: round(cpu, 3),
        cpu_pct: round((100 * cpu) / elapsed, 1),
        rss_peak_mib: round(this.peak[p.name] / 1024, 1),
        hwm_mib: round(statusKiB(p.pid, "VmHWM") / 1024, 1),
      };
    });
    const sum = (ps) => round(ps.reduce((a, p) => a + (Number.isFinite(p.cpu_s) ? p.cpu_s : 0), 0), 3);
    return {
      elapsed_s: round(elapsed, 3),
      procs,
      server_cpu_s: sum(procs.filter((p) => !p.aux)),
      aux_cpu_s: sum(procs.filter((p) => p.aux)),
      loadgen_cpu_s: round((self.user + self.system) / 1e6, 3),
      machine_busy_cores: round(total > 0 ? (1 - (m1.idle - this.m0.idle) / total) * os.cpus().length : NaN, 2),
      machine_cores: os.cpus().length,
    };
  }
}

// ------------------------------------------------------------------ sockets

function jwt(sub, secret) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const iat = Math.floor(Date.now() / 1000);
  const body = `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ sub, name: sub, roles: ["user"], iat, exp: iat + 4 * 3600 })}`;
  return `${body}.${crypto.createHmac("sha256", secret).update(body).digest("base64url")}`;
}

function sourceAddress(i) {
  return SRC_IPS > 1 ? `127.0.0.${1 + (i % SRC_IPS)}` : undefined;
}

/**
 * A client socket: `send(turn)`, `ping()`, `close()`, `open`, and `turns`
 * (its messages not answered yet, oldest first). What arrives goes to
 * `hooks` (the running test): ack, start, chunk, done, error, closed.
 */
class Conn {
  constructor(i, user) {
    this.i = i;
    this.user = user;
    this.open = false;
    this.turns = [];
    this.hooks = null;
  }
  /** The oldest turn whose `key` is not set yet (frames of one session come in order). */
  firstWithout(key) {
    return this.turns.find((t) => t[key] === undefined);
  }
}

function connectChatbox(i, user) {
  const WebSocket = require("ws");
  const url = new URL(opt.url);
  if (url.pathname === "/" || url.pathname === "") url.pathname = "/chat/ws";
  url.searchParams.set("token", jwt(user, opt["jwt-secret"]));
  const conn = new Conn(i, user);
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, handshakeTimeout: 60000, localAddress: sourceAddress(i) });
    conn.send = (turn) => ws.send(JSON.stringify({ type: "user_message", id: turn.id, content: opt.content }));
    conn.ping = () => ws.readyState === WebSocket.OPEN && ws.send('{"type":"ping"}');
    conn.close = () => {
      ws.close(1000);
      setTimeout(() => ws.terminate(), 2000).unref();
    };
    ws.on("message", (data) => {
      let m;
      try {
        m = JSON.parse(data.toString());
      } catch {
        conn.hooks?.error(conn, "unparsable_frame", false);
        return;
      }
      const h = conn.hooks;
      switch (m.type) {
        case "connection_status":
          if (!conn.open && m.metadata?.status !== "closed") {
            conn.open = true;
            resolve(conn);
          }
          break;
        case "user_message": // the echo: the message is accepted
          if (h) h.ack(conn, conn.firstWithout("tEcho"), "tEcho");
          break;
        case "loading":
          // chatbox's gateway says "queued" as soon as the message is durable
          // (the answer waits for a worker): an acknowledgement, not a start.
          if (!h || m.metadata?.active !== "true") break;
          if (m.metadata?.status === "queued") h.ack(conn, conn.firstWithout("tQueued"), "tQueued");
          else h.start(conn, conn.firstWithout("tStart"));
          break;
        case "ai_response":
          if (!h) break;
          if (m.done === false) h.chunk(conn, conn.turns[0]);
          else h.done(conn, conn.turns[0]); // done:true, or a whole answer at once
          break;
        case "error":
          if (h) h.error(conn, `server_error:${m.error?.code ?? "unknown"}`, true);
          break;
        case "ping":
          ws.send('{"type":"pong"}');
          break;
        default:
          break;
      }
    });
    ws.on("unexpected-response", (req, res) => {
      req.destroy();
      reject(new Error(`HTTP ${res.statusCode} on upgrade`));
    });
    ws.on("error", (e) => {
      if (!conn.open) reject(e);
    });
    ws.on("close", (code) => {
      if (!conn.open) return reject(new Error(`closed (${code}) before connection_status`));
      conn.open = false;
      conn.hooks?.closed(conn, code);
    });
  });
}

function connectPeer(i, user) {
  const { io } = require("socket.io-client");
  const conn = new Conn(i, user);
  return new Promise((resolve, reject) => {
    const socket = io(opt.url, {
      transports: ["websocket"],
      forceNew: true,
      reconnection: false,
      timeout: 60000,
      auth: { session: user },
      localAddress: sourceAddress(i),
    });
    conn.send = (turn) => socket.emit("msg", { id: turn.id, text: opt.content });
    conn.ping = () => {}; // Engine.IO's own heartbeat keeps the socket alive
    conn.close = () => socket.close();
    socket.on("chunk", (c) => {
      const h = conn.hooks;
      if (!h) return;
      const turn = conn.turns[0]?.id === c.id ? conn.turns[0] : conn.turns.find((t) => t.id === c.id);
      if (c.done) h.done(conn, turn);
      else h.chunk(conn, turn);
    });
    socket.once("connect", () => {
      conn.open = true;
      resolve(conn);
    });
    socket.once("connect_error", (e) => {
      socket.close();
      reject(e);
    });
    socket.on("disconnect", (why) => {
      if (!conn.open) return;
      conn.open = false;
      conn.hooks?.closed(conn, why);
    });
  });
}

const connect = PROTO === "chatbox" ? connectChatbox : connectPeer;

/** Opens n sockets for users `${prefix}${first}`..., CONNECT_CONCURRENCY handshakes at a time. */
async function connectMany(n, prefix, first = 0) {
  const conns = [];
  const errors = [];
  let next = 0;
  const t0 = now();
  async function lane() {
    for (let k = next++; k < n; k = next++) {
      const i = first + k;
      try {
        conns.push(await connect(i, `${prefix}${i}`));
      } catch (e) {
        errors.push(String(e?.message ?? e).slice(0, 200));
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(CONNECT_CONCURRENCY, n) }, lane));
  conns.sort((a, b) => a.i - b.i);
  return { conns, failed: errors.length, first_errors: errors.slice(0, 3), connect_s: round((now() - t0) / 1000, 2) };
}

/** Application pings, every socket once per 30 s, spread out (chatbox closes a socket silent for 90 s). */
function keepAlive(conns) {
  if (PROTO !== "chatbox" || !conns.length) return () => {};
  let k = 0;
  const perTick = Math.max(1, Math.ceil(conns.length / 300));
  const timer = setInterval(() => {
    for (let j = 0; j < perTick; j++) conns[k++ % conns.length].ping();
  }, 100);
  return () => clearInterval(timer);
}

function closeAll(conns) {
  for (const c of conns) {
    try {
      c.close();
    } catch {
      // already gone
    }
  }
}

// ------------------------------------------------------------------ turns

function percentiles(values) {
  const s = Float64Array.from(values).sort();
  const at = (q) => (s.length ? s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))] : NaN);
  return {
    n: s.length,
    p50: round(at(0.5)),
    p90: round(at(0.9)),
    p99: round(at(0.99)),
    max: round(s.length ? s[s.length - 1] : NaN),
    mean: round(s.reduce((a, b) => a + b, 0) / (s.length || 1)),
  };
}

/**
 * What a test counts: turns sent and completed, their timings, errors. A turn
 * is measured when its (intended) send time falls in the window; it is counted
 * as throughput when it completes in the window.
 */
class Tally {
  constructor() {
    this.inWindow = false;
    this.windowStart = Infinity;
    this.windowEnd = Infinity;
    this.sending = true;
    this.completedInWindow = 0;
    this.chunksInWindow = 0;
    this.sentMeasured = 0;
    this.answered = [];
    this.errors = {};
    this.inFlight = 0;
    this.started = 0; // turns started (loading or first chunk) and not done
    this.afterDone = null; // (conn) => void: a closed loop sends again
  }
  countError(kind) {
    this.errors[kind] = (this.errors[kind] || 0) + 1;
  }
  send(conn, intended = now()) {
    if (!conn.open) {
      this.countError("send_on_closed_socket");
      return;
    }
    const turn = { id: crypto.randomUUID(), t: intended, chunks: 0 };
    turn.measured = intended >= this.windowStart && intended < this.windowEnd;
    if (turn.measured) this.sentMeasured++;
    conn.turns.push(turn);
    this.inFlight++;
    try {
      conn.send(turn);
    } catch {
      conn.turns.pop();
      this.inFlight--;
      this.countError("send_failed");
    }
  }
  retire(conn, turn) {
    const k = conn.turns.indexOf(turn);
    if (k >= 0) conn.turns.splice(k, 1);
    this.inFlight--;
    if (turn.tStart !== undefined || turn.tFirst !== undefined) this.started--;
  }
  markStarted(turn, t) {
    if (turn.tStart === undefined && turn.tFirst === undefined) this.started++;
    if (turn.tStart === undefined) turn.tStart = t;
  }
  get hooks() {
    return {
      // The message is accepted: the first of chatbox's "queued" and the
      // echo (the peer echoes only); each kind matched to its own turn.
      ack: (_conn, turn, kind) => {
        if (!turn) return;
        const t = now();
        turn[kind] = t;
        if (turn.tAck === undefined) turn.tAck = t;
      },
      start: (_conn, turn) => {
        if (turn) this.markStarted(turn, now());
      },
      chunk: (_conn, turn) => {
        const t = now();
        if (t >= this.windowStart && t < this.windowEnd) this.chunksInWindow++;
        if (!turn) return this.countError("unmatched_chunk");
        if (turn.tFirst === undefined) {
          if (turn.tStart === undefined) this.started++;
          turn.tFirst = t;
        }
        turn.chunks++;
      },
      done: (conn, turn) => {
        const t = now();
        if (!turn) return this.countError("unmatched_chunk");
        if (PROTO === "peer") turn.chunks++; // the peer's last chunk carries text; chatbox's done frame repeats it
        this.retire(conn, turn);
        if (turn.tFirst === undefined) turn.tFirst = t;
        if (t >= this.windowStart && t < this.windowEnd) this.completedInWindow++;
        if (K && PROTO === "peer" && turn.chunks !== K) this.countError("wrong_chunk_count");
        else if (turn.measured) {
          turn.tDone = t;
          this.answered.push(turn);
        }
        if (this.sending && this.afterDone) this.afterDone(conn);
      },
      error: (conn, kind, retireOldest) => {
        this.countError(kind);
        if (retireOldest && conn.turns.length) {
          this.retire(conn, conn.turns[0]);
          if (this.sending && this.afterDone) setTimeout(() => this.sending && this.afterDone(conn), 50);
        }
      },
      closed: (conn, why) => {
        if (this.sending || conn.turns.length) this.countError(`socket_closed:${why}`);
        for (const turn of [...conn.turns]) {
          this.countError("lost_in_flight");
          this.retire(conn, turn);
        }
      },
    };
  }
  /** Turns older than the timeout are errors; a closed loop sends again. */
  sweep(conns) {
    const limit = now() - TIMEOUT_MS;
    for (const conn of conns) {
      while (conn.turns.length && conn.turns[0].t < limit) {
        this.retire(conn, conn.turns[0]);
        this.countError("timeout");
        if (this.sending && this.afterDone) this.afterDone(conn);
      }
    }
  }
  async drain(conns, maxMs) {
    const until = now() + maxMs;
    while (this.inFlight > 0 && now() < until) {
      this.sweep(conns);
      await sleep(50);
    }
    return this.inFlight;
  }
  timings() {
    const a = this.answered;
    const out = { latency_ms: percentiles(a.map((t) => t.tDone - t.t)) };
    out.first_chunk_ms = percentiles(a.map((t) => t.tFirst - t.t));
    const acked = a.filter((t) => t.tAck !== undefined);
    if (acked.length) out.ack_ms = percentiles(acked.map((t) => t.tAck - t.t));
    const frames = a.reduce((s, t) => s + t.chunks, 0);
    out.chunk_frames_per_answer = round(frames / (a.length || 1), 2);
    return out;
  }
}

// ------------------------------------------------------------------ modes

async function holdIdle(n) {
  if (!n) return { conns: [], stop: () => {} };
  const r = await connectMany(n, `${opt.prefix}idle-`, 1_000_000);
  console.error(`[load] holding ${r.conns.length}/${n} idle connections (${r.connect_s}s)${r.failed ? " failed: " + r.failed : ""}`);
  const stopPings = keepAlive(r.conns);
  return { ...r, stop: () => (stopPings(), closeAll(r.conns)) };
}

async function runLoop() {
  const held = await holdIdle(HOLD);
  const c = await connectMany(C, opt.prefix);
  console.error(`[load] ${c.conns.length}/${C} clients connected in ${c.connect_s}s${c.failed ? " failed: " + JSON.stringify(c.first_errors) : ""}`);
  if (!c.conns.length) throw new Error("no client connected");
  const conns = c.conns;
  const tally = new Tally();
  for (const conn of conns) conn.hooks = tally.hooks;
  const stopPings = keepAlive(conns);
  const meter = new Window(200);
  const sweeper = setInterval(() => tally.sweep(conns), 250);

  const t0 = now();
  tally.windowStart = t0 + WARMUP_S * 1000;
  tally.windowEnd = tally.windowStart + DURATION_S * 1000;
  let ticker = null;
  if (MODE === "closed") {
    tally.afterDone = (conn) => conn.open && tally.send(conn);
    for (const conn of conns) tally.send(conn);
  } else {
    // Open loop: the schedule is fixed in advance; a late tick sends what is due,
    // each message stamped with the moment it should have left.
    const every = 1000 / RATE;
    let due = t0;
    let k = 0;
    const tick = () => {
      const t = now();
      while (due <= t && due < tally.windowEnd) {
        let conn = conns[k++ % conns.length];
        for (let tries = 0; !conn.open && tries < conns.length; tries++) conn = conns[k++ % conns.length];
        tally.send(conn, due);
        due += every;
      }
      if (due < tally.windowEnd) ticker = setTimeout(tick, 1);
    };
    tick();
  }
  await sleep(tally.windowStart - now());
  meter.start();
  await sleep(tally.windowEnd - now());
  tally.sending = false;
  const acc = meter.stop();
  clearTimeout(ticker);
  const left = await tally.drain(conns, TIMEOUT_MS);
  clearInterval(sweeper);
  stopPings();
  closeAll(conns);
  held.stop();

  const win = DURATION_S;
  const turns = tally.completedInWindow;
  return {
    clients: C,
    connected: conns.length,
    connect_failed: c.failed,
    held_idle: held.conns.length,
    rate_target: MODE === "open" ? RATE : null,
    warmup_s: WARMUP_S,
    window_s: win,
    turns,
    turns_per_s: round(turns / win, 1),
    sent_in_window: tally.sentMeasured,
    answered_of_sent_in_window: tally.answered.length,
    chunk_frames: tally.chunksInWindow,
    chunk_frames_per_s: round(tally.chunksInWindow / win, 1),
    ...tally.timings(),
    errors: tally.errors,
    left_in_flight: left,
    ...acc,
    cpu_s_per_1000_turns: turns ? round((acc.server_cpu_s * 1000) / turns, 3) : null,
  };
}

function rssDelta(before, after, n) {
  return PROCS.map((p) => {
    const d = (after[p.name] - before[p.name]) * 1024;
    return {
      name: p.name,
      pid: p.pid,
      rss_before_mib: round(before[p.name] / 1024, 1),
      rss_after_mib: round(after[p.name] / 1024, 1),
      delta_mib: round(d / 1048576, 1),
      bytes_per_conn: n ? Math.round(d / n) : null,
    };
  });
}

async function runIdle() {
  // Warm the server's paths (allocator arenas, JIT, buffers) so they are not
  // charged to the idle sockets.
  const warm = await connectMany(Math.min(200, Math.max(1, Math.floor(IDLE / 10))), `${opt.prefix}warm-`, 2_000_000);
  closeAll(warm.conns);
  await sleep(SETTLE_S * 1000);
  const probe = new Window();
  const before = probe.rss();
  const r = await connectMany(IDLE, opt.prefix);
  console.error(`[idle] opened ${r.conns.length}/${IDLE} in ${r.connect_s}s${r.failed ? " failed: " + JSON.stringify(r.first_errors) : ""}`);
  const stopPings = keepAlive(r.conns);
  await sleep(SETTLE_S * 1000);
  const after = probe.rss();
  const open = r.conns.filter((c) => c.open).length;
  stopPings();
  closeAll(r.conns);
  await sleep(500);
  const procs = rssDelta(before, after, open);
  const target = procs.find((p) => p.name === opt.target) ?? procs[0];
  return {
    requested: IDLE,
    opened: r.conns.length,
    still_open: open,
    connect_failed: r.failed,
    first_errors: r.first_errors,
    connect_s: r.connect_s,
    src_ips: SRC_IPS,
    settle_s: SETTLE_S,
    target: target?.name,
    bytes_per_conn: target?.bytes_per_conn ?? null,
    procs,
  };
}

async function runCrowd() {
  const c = await connectMany(CROWD, opt.prefix);
  console.error(`[crowd] ${c.conns.length}/${CROWD} users connected in ${c.connect_s}s${c.failed ? " failed: " + JSON.stringify(c.first_errors) : ""}`);
  const conns = c.conns;
  const tally = new Tally();
  for (const conn of conns) conn.hooks = tally.hooks;
  const stopPings = keepAlive(conns);
  await sleep(2000);
  const probe = new Window();
  const base = probe.rss();
  // Memory against answers in flight, sampled together.
  const samples = [];
  let t0 = 0;
  const meter = new Window(100, (rss) => samples.push({ t: now() - t0, started: tally.started, inFlight: tally.inFlight, rss }));
  const sweeper = setInterval(() => tally.sweep(conns), 250);
  tally.windowStart = -Infinity;
  tally.windowEnd = Infinity;
  t0 = now();
  meter.start();
  const sendAt = now();
  for (const conn of conns) tally.send(conn, sendAt); // the same moment, one loop
  const left = await tally.drain(conns, TIMEOUT_MS + 1000);
  tally.sending = false;
  const acc = meter.stop();
  clearInterval(sweeper);
  stopPings();
  closeAll(conns);

  const target = opt.target || PROCS[0]?.name;
  const growth = Object.fromEntries(
    PROCS.map((p) => [p.name, round((Math.max(...samples.map((s) => s.rss[p.name] || 0)) - base[p.name]) / 1024, 1)]),
  );
  const peakStarted = Math.max(0, ...samples.map((s) => s.started));
  const turns = tally.answered.length;
  const timing = tally.timings();
  return {
    users: CROWD,
    connected: conns.length,
    connect_failed: c.failed,
    answered: turns,
    errors: tally.errors,
    left_in_flight: left,
    ...timing,
    whole_answer_s: round(timing.latency_ms.max / 1000, 2),
    rss_base_mib: Object.fromEntries(PROCS.map((p) => [p.name, round(base[p.name] / 1024, 1)])),
    rss_growth_mib: growth,
    target,
    peak_answers_in_flight: peakStarted,
    kib_per_answer_in_flight: peakStarted ? round((growth[target] * 1024) / peakStarted, 1) : null,
    kib_per_user: conns.length ? round((growth[target] * 1024) / conns.length, 1) : null,
    memory_timeline: samples.filter((_, k) => k % 5 === 0).map((s) => ({ t_s: round(s.t / 1000, 1), started: s.started, in_flight: s.inFlight, rss_mib: round(s.rss[target] / 1024, 1) })),
    ...acc,
    cpu_s_per_1000_turns: turns ? round((acc.server_cpu_s * 1000) / turns, 3) : null,
  };
}

// ------------------------------------------------------------------ report

const pad = (s, n) => String(s).padEnd(n);

function procTable(r, turns, chunksPerTurn) {
  const lines = [pad("process", 12) + pad("cpu_s", 9) + pad("cpu%", 8) + pad("µs/turn", 10) + pad("µs/chunk", 10) + pad("rss_peak_MiB", 14) + "VmHWM_MiB"];
  for (const p of r.procs) {
    const perTurn = turns ? (p.cpu_s * 1e6) / turns : NaN;
    lines.push(
      pad(p.name + (p.aux ? "*" : ""), 12) + pad(p.cpu_s, 9) + pad(p.cpu_pct, 8) + pad(round(perTurn, 0), 10) +
        pad(chunksPerTurn ? round(perTurn / chunksPerTurn, 1) : "", 10) + pad(p.rss_peak_mib, 14) + p.hwm_mib,
    );
  }
  lines.push(`server cpu_s ${r.server_cpu_s} (* = not summed: ${r.aux_cpu_s}) -> CPU-s per 1000 turns ${r.cpu_s_per_1000_turns}`);
  lines.push(`load generator cpu_s ${r.loadgen_cpu_s}; machine busy ${r.machine_busy_cores}/${r.machine_cores} cores`);
  return lines;
}

function report(r) {
  const head = `== ${r.mode} ${r.proto}${r.label ? " [" + r.label + "]" : ""}`;
  const lines = [head];
  if (r.mode === "idle") {
    lines[0] += `  ${r.still_open}/${r.requested} open (failed ${r.connect_failed}) in ${r.connect_s}s`;
    lines.push(pad("process", 12) + pad("rss_before_MiB", 16) + pad("rss_after_MiB", 15) + pad("delta_MiB", 11) + "bytes/conn");
    for (const p of r.procs) lines.push(pad(p.name, 12) + pad(p.rss_before_mib, 16) + pad(p.rss_after_mib, 15) + pad(p.delta_mib, 11) + p.bytes_per_conn);
    lines.push(`idle bytes per connection on ${r.target}: ${r.bytes_per_conn}`);
    return lines.join("\n");
  }
  const L = r.latency_ms;
  const F = r.first_chunk_ms;
  if (r.mode === "crowd") {
    lines[0] += `  ${r.connected} users at once`;
    lines.push(`answered ${r.answered}/${r.connected}; errors ${JSON.stringify(r.errors)}; left in flight ${r.left_in_flight}`);
    lines.push(`first chunk ms  p50 ${F.p50}  p99 ${F.p99}  max ${F.max}`);
    if (r.ack_ms) lines.push(`echo ms         p50 ${r.ack_ms.p50}  p99 ${r.ack_ms.p99}  max ${r.ack_ms.max}`);
    lines.push(`whole answer ms p50 ${L.p50}  p99 ${L.p99}  max ${L.max}`);
    lines.push(`${r.target} RSS +${r.rss_growth_mib[r.target]} MiB; ${r.peak_answers_in_flight} answers in flight at most -> ${r.kib_per_answer_in_flight} KiB per answer in flight`);
  } else {
    lines[0] += `  clients=${r.connected}${r.held_idle ? " +" + r.held_idle + " idle" : ""}${r.rate_target ? " rate=" + r.rate_target + "/s" : ""} window=${r.window_s}s`;
    lines.push(`turns ${r.turns} (${r.turns_per_s}/s); chunk frames ${r.chunk_frames} (${r.chunk_frames_per_s}/s, ${r.chunk_frames_per_answer} per answer)`);
    lines.push(`latency ms  p50 ${L.p50}  p90 ${L.p90}  p99 ${L.p99}  max ${L.max}   first chunk p50 ${F.p50} p99 ${F.p99}`);
    lines.push(`errors ${JSON.stringify(r.errors)}; left in flight ${r.left_in_flight}`);
  }
  const turns = r.mode === "crowd" ? r.answered : r.turns;
  lines.push(...procTable(r, turns, r.chunks_per_answer || r.chunk_frames_per_answer));
  return lines.join("\n");
}

async function main() {
  const started = new Date().toISOString();
  const body = MODE === "idle" ? await runIdle() : MODE === "crowd" ? await runCrowd() : await runLoop();
  const result = {
    mode: MODE,
    proto: PROTO,
    label: opt.label,
    url: opt.url,
    started,
    chunks_per_answer: K || null,
    chunk_bytes: opt["chunk-bytes"] ? Number(opt["chunk-bytes"]) : null,
    pace_ms: opt.pace ? Number(opt.pace) : null,
    ...body,
  };
  console.log(report(result));
  if (opt.out) fs.writeFileSync(opt.out, JSON.stringify(result, null, 1) + "\n");
  setTimeout(() => process.exit(0), 300);
}

main().catch((e) => {
  console.error("[load] failed:", e?.stack ?? e);
  process.exit(1);
});
