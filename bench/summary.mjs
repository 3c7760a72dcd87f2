#!/usr/bin/env node
// Medians and ratios of a scripts/bench.sh run: reads the JSON of every run
// under a results folder (<shape>.<side>.<mode>.r<run>.json, written by
// bench/load.mjs) and prints Markdown tables for docs/BENCHMARKS.md.
//
//   node bench/summary.mjs bench/results/<timestamp>
import fs from "node:fs";
import path from "node:path";

const dir = process.argv[2];
if (!dir) {
  console.error("usage: node bench/summary.mjs RESULTS_DIR");
  process.exit(2);
}

const runs = new Map(); // "shape.side.mode" -> [result, ...]
for (const f of fs.readdirSync(dir).sort()) {
  const m = f.match(/^(\w+)\.([\w-]+)\.(\w+)\.r(\d+)\.json$/);
  if (!m) continue;
  const key = `${m[1]}.${m[2]}.${m[3]}`;
  if (!runs.has(key)) runs.set(key, []);
  runs.get(key).push(JSON.parse(fs.readFileSync(path.join(dir, f), "utf8")));
}
let meta = {};
try {
  meta = JSON.parse(fs.readFileSync(path.join(dir, "meta.json"), "utf8"));
} catch {
  // a folder put together by hand
}

const get = (o, p) => p.split(".").reduce((v, k) => (v == null ? undefined : v[k]), o);
function median(xs) {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (!s.length) return NaN;
  const h = s.length >> 1;
  return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2;
}
function fmt(x) {
  if (!Number.isFinite(x)) return "–";
  if (x === 0) return "0";
  const a = Math.abs(x);
  const d = a >= 1000 ? 0 : a >= 100 ? 0 : a >= 10 ? 1 : a >= 1 ? 2 : 3;
  return x.toLocaleString("en-US", { maximumFractionDigits: d, minimumFractionDigits: d });
}
/** Values of `field` over the runs of `key` (a function or a dotted path). */
function values(key, field) {
  const f = typeof field === "function" ? field : (r) => get(r, field);
  return (runs.get(key) ?? []).map(f).map(Number);
}
/** "median (min–max)" of a field over the runs of a group. */
function cell(key, field) {
  const xs = values(key, field).filter(Number.isFinite);
  if (!xs.length) return "–";
  const m = fmt(median(xs));
  const lo = Math.min(...xs);
  const hi = Math.max(...xs);
  return xs.length > 1 && lo !== hi ? `${m} (${fmt(lo)}–${fmt(hi)})` : m;
}
function ratio(key, base, field) {
  const r = median(values(key, field)) / median(values(base, field));
  return Number.isFinite(r) ? `${r.toFixed(2)}×` : "–";
}
const nRuns = (key) => (runs.get(key) ?? []).length;
const procCpu = (name) => (r) => r.procs?.find((p) => p.name === name)?.cpu_s;
const perTurnUs = (name) => (r) => {
  const turns = r.mode === "crowd" ? r.answered : r.turns;
  const cpu = procCpu(name)(r);
  return turns ? (cpu * 1e6) / turns : NaN;
};
const errorCount = (r) => Object.values(r.errors ?? {}).reduce((a, b) => a + b, 0) + (r.left_in_flight || 0) + (r.connect_failed || 0);
const kib = (field) => (r) => get(r, field) / 1024;
const out = [];
const table = (head, rows) => {
  out.push(`| ${head.join(" | ")} |`, `|${head.map(() => "---").join("|")}|`);
  for (const r of rows) out.push(`| ${r.join(" | ")} |`);
  out.push("");
};
const first = (key) => runs.get(key)?.[0];

/** Median CPU µs per turn of every process of a group: "gwA 120, worker1 700, … (mock* 90)". */
function whereCpuGoes(key, per = "turn") {
  const r0 = first(key);
  if (!r0?.procs) return "–";
  const k = r0.chunks_per_answer || 1;
  return r0.procs
    .map((p) => {
      const us = median(values(key, perTurnUs(p.name))) / (per === "chunk" ? k : 1);
      return `${p.name}${p.aux ? "*" : ""} ${fmt(us)}`;
    })
    .join(", ");
}

// ------------------------------------------------------------------ header
out.push(`# Side-by-side benchmark, ${meta.started ?? "?"}`);
out.push("");
if (meta.commit) {
  out.push(
    `chatbox ${meta.commit} (${meta.chatbox}); Socket.IO ${meta["socket.io"]} + @socket.io/redis-adapter ${meta.redis_adapter}; ` +
      `node ${meta.node}, Redis ${meta.redis}, ${meta.nats}; ${meta.cores} cores, load average at start ${meta.loadavg_at_start}. ` +
      `Knobs: ${Object.entries(meta.knobs ?? {}).map(([k, v]) => `${k}=${v}`).join(" ")}.`,
  );
  out.push("");
}
out.push("Cells: median of the runs (lowest–highest); ratio = chatbox ÷ peer, of the medians. Server CPU = every server-side process summed from /proc (chatbox: gateways + workers + Redis + NATS; peer: nodes + responder + Redis); the mock LLM (*) is measured apart.");
out.push("");

// ------------------------------------------------------------------ burst + idle
const hasBurst = runs.has("burst.peer.closed") || runs.has("burst.chatbox.closed");
const hasIdle = runs.has("idle.peer.idle");
if (hasBurst || hasIdle) {
  const b = first("burst.peer.open") ?? first("burst.chatbox.open");
  const c = first("burst.peer.closed") ?? first("burst.chatbox.closed");
  const i = first("idle.peer.idle") ?? first("idle.chatbox.idle");
  const win = first("burst.chatbox-window.closed") ? "chatbox, default chunk window" : null;
  out.push(hasBurst ? `## Burst: ${(b ?? c).chunks_per_answer} chunks of ${(b ?? c).chunk_bytes} bytes per answer from a zero-latency model` : "## Idle connections");
  out.push("");
  const head = ["figure", "Socket.IO 4 peer", "chatbox, chunk per frame", "ratio"];
  if (win) head.push(win, "ratio");
  const sides = ["peer", "chatbox", ...(win ? ["chatbox-window"] : [])];
  const row = (label, shape, mode, field) => {
    const base = `${shape}.peer.${mode}`;
    const cells = [label];
    for (const s of sides) {
      const key = `${shape}.${s}.${mode}`;
      if (shape === "idle" && s === "chatbox-window") {
        cells.push("(same as chunk per frame)", "");
        continue;
      }
      cells.push(cell(key, field));
      if (s !== "peer") cells.push(ratio(key, base, field));
    }
    return cells;
  };
  const rate = b?.rate_target ?? "RATE";
  const rows = [];
  if (hasBurst) {
    rows.push(
      row(`server CPU-s per 1000 turns at ${rate} turns/s`, "burst", "open", "cpu_s_per_1000_turns"),
      row(`p50 send → last chunk at ${rate}/s, ms`, "burst", "open", "latency_ms.p50"),
      row(`p99 send → last chunk at ${rate}/s, ms`, "burst", "open", "latency_ms.p99"),
      row(`turns/s reached at ${rate}/s`, "burst", "open", "turns_per_s"),
      row(`saturated turns/s, closed loop C=${c?.clients}`, "burst", "closed", "turns_per_s"),
      row("server CPU-s per 1000 turns, saturated", "burst", "closed", "cpu_s_per_1000_turns"),
      row("p99 saturated, ms", "burst", "closed", "latency_ms.p99"),
      row(`machine busy cores at ${rate}/s`, "burst", "open", "machine_busy_cores"),
      row("machine busy cores, saturated", "burst", "closed", "machine_busy_cores"),
      row("load generator CPU-s, saturated window", "burst", "closed", "loadgen_cpu_s"),
      row(`errors at ${rate}/s`, "burst", "open", (r) => errorCount(r)),
      row("errors, saturated", "burst", "closed", (r) => errorCount(r)),
    );
  }
  if (hasIdle) {
    rows.push(row(`RSS per idle authenticated connection, KiB (N=${i?.requested}, gateway/node A)`, "idle", "idle", kib("bytes_per_conn")));
  }
  table(head, rows);
  if (hasBurst) {
    out.push("Where the CPU goes, median µs per turn per process:");
    out.push("");
    for (const s of sides) {
      for (const mode of ["open", "closed"]) {
        const key = `burst.${s}.${mode}`;
        if (runs.has(key)) out.push(`- ${s}, ${mode === "open" ? `${rate}/s` : "saturated"}: ${whereCpuGoes(key)}`);
      }
    }
    out.push("");
  }
  if (hasIdle) {
    out.push("Idle connections, median growth per connection of every process, bytes:");
    out.push("");
    for (const s of ["peer", "chatbox"]) {
      const key = `idle.${s}.idle`;
      const r0 = first(key);
      if (!r0) continue;
      const parts = r0.procs.map((p) => `${p.name} ${fmt(median(values(key, (r) => r.procs.find((q) => q.name === p.name)?.bytes_per_conn)))}`);
      out.push(`- ${s}: ${parts.join(", ")}`);
    }
    out.push("");
  }
}

// ------------------------------------------------------------------ paced
if (runs.has("paced.peer.open") || runs.has("paced.chatbox.open")) {
  const p = first("paced.peer.open") ?? first("paced.chatbox.open");
  const k = p.chunks_per_answer;
  out.push(`## Paced: ${k} chunks of ${p.chunk_bytes} bytes per answer, one every ${p.pace_ms} ms; ${p.rate_target} turns/s over ${p.clients} clients`);
  out.push("");
  const r = (label, field) => [label, cell("paced.peer.open", field), cell("paced.chatbox.open", field), ratio("paced.chatbox.open", "paced.peer.open", field)];
  table(["figure", "Socket.IO 4 peer", "chatbox", "ratio"], [
    r("server CPU-s per 1000 turns", "cpu_s_per_1000_turns"),
    r("server CPU µs per chunk", (x) => (x.cpu_s_per_1000_turns * 1000) / k),
    r("turns/s reached", "turns_per_s"),
    r("p50 send → last chunk, ms", "latency_ms.p50"),
    r("p99 send → last chunk, ms", "latency_ms.p99"),
    r("p99 send → first chunk, ms", "first_chunk_ms.p99"),
    r("machine busy cores", "machine_busy_cores"),
    r("errors", (x) => errorCount(x)),
  ]);
  out.push("Per process, median µs per chunk:");
  out.push("");
  for (const s of ["peer", "chatbox"]) if (runs.has(`paced.${s}.open`)) out.push(`- ${s}: ${whereCpuGoes(`paced.${s}.open`, "chunk")}`);
  out.push("");
}

// ------------------------------------------------------------------ crowd
const crowds = [...runs.keys()].filter((k) => k.startsWith("crowd.")).map((k) => k.split(".")[2]);
if (crowds.length) {
  const sizes = [...new Set(crowds)].sort((a, b) => Number(a.slice(5)) - Number(b.slice(5)));
  const c0 = first(`crowd.peer.${sizes[0]}`) ?? first(`crowd.chatbox.${sizes[0]}`);
  out.push(`## Crowd: N users send at the same moment; ${c0.chunks_per_answer} chunks of ${c0.chunk_bytes} bytes per answer, one every ${c0.pace_ms} ms`);
  out.push("");
  const rows = [];
  for (const n of sizes) {
    for (const s of ["peer", "chatbox"]) {
      const key = `crowd.${s}.${n}`;
      if (!runs.has(key)) continue;
      const r0 = first(key);
      rows.push([
        `${n.slice(5)}`,
        s,
        `${cell(key, "first_chunk_ms.p50")} / ${cell(key, "first_chunk_ms.p99")}`,
        s === "chatbox" ? `${cell(key, "ack_ms.p50")} / ${cell(key, "ack_ms.p99")}` : "–",
        `${cell(key, "latency_ms.p50")} / ${cell(key, "latency_ms.p99")} / ${cell(key, "latency_ms.max")}`,
        `${r0.target} +${cell(key, (r) => r.rss_growth_mib[r.target])}`,
        cell(key, "peak_answers_in_flight"),
        cell(key, "kib_per_answer_in_flight"),
        cell(key, "cpu_s_per_1000_turns"),
        cell(key, (r) => errorCount(r)),
      ]);
    }
  }
  table(["users", "side", "first chunk p50 / p99, ms", "accepted (queued or echo) p50 / p99, ms", "whole answer p50 / p99 / max, ms", "RSS growth, MiB", "answers in flight (peak)", "KiB per answer in flight", "server CPU-s / 1000 turns", "errors"], rows);
}

// ------------------------------------------------------------------ scale
const scale = [...runs.keys()].filter((k) => k.startsWith("scale."));
if (scale.length) {
  out.push("## chatbox: cost as work grows");
  out.push("");
  const order = (k) => {
    const m = k.match(/chatbox-(\d+)w\./);
    const n = k.match(/chatbox-conns(\d+)\./);
    return m ? Number(m[1]) : n ? 1e9 + Number(n[1]) : 2e9;
  };
  const rows = scale.sort((a, b) => order(a) - order(b)).map((key) => {
    const r0 = first(key);
    const side = key.split(".")[1];
    const what = side.endsWith("w")
      ? `${side.slice(8, -1)} worker(s), closed loop C=${r0.clients}`
      : `${side.slice(13)} connected (${r0.clients} active), ${r0.rate_target} turns/s`;
    return [what, cell(key, "turns_per_s"), cell(key, "cpu_s_per_1000_turns"), cell(key, "latency_ms.p50"), cell(key, "latency_ms.p99"), whereCpuGoes(key), cell(key, (r) => errorCount(r))];
  });
  table(["configuration", "turns/s", "server CPU-s / 1000 turns", "p50 ms", "p99 ms", "µs per turn per process (median)", "errors"], rows);
}

if (!runs.size) out.push("(no results in this folder)");
console.log(out.join("\n"));
