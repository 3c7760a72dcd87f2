#!/usr/bin/env node
// The peer's LLM stand-in: a Socket.IO client on node B, in the room
// `workers`. Each `job` is answered with K chunks of S bytes addressed to the
// job's session; the last one says done. Paced like the chatbox side's mock
// model (`mock-llm --chunk-delay`): the first chunk at once, then one every
// PACE ms; PACE 0 sends the whole answer in one burst.
//
//   node bench/peer/responder.js --url http://127.0.0.1:3202 --chunks 20 --chunk-bytes 16 --pace 0
"use strict";

const { parseArgs } = require("node:util");
const { io } = require("socket.io-client");

const { values: opt } = parseArgs({
  options: {
    url: { type: "string", default: "http://127.0.0.1:3202" },
    chunks: { type: "string", default: "20" },
    "chunk-bytes": { type: "string", default: "16" },
    pace: { type: "string", default: "0" },
  },
});
const K = Math.max(1, Number(opt.chunks));
const text = "x".repeat(Number(opt["chunk-bytes"]));
const PACE = Number(opt.pace);
const log = (...a) => console.log("[peer responder]", ...a);

const socket = io(opt.url, { transports: ["websocket"], auth: { role: "responder" } });
let jobs = 0;
let inFlight = 0;

function chunk(job, seq) {
  socket.emit("chunk", { session: job.session, id: job.id, seq, done: seq === K - 1, text });
}

socket.on("job", (job) => {
  jobs++;
  if (PACE <= 0) {
    for (let seq = 0; seq < K; seq++) chunk(job, seq);
    return;
  }
  inFlight++;
  let seq = 0;
  const next = () => {
    chunk(job, seq);
    if (++seq < K) setTimeout(next, PACE);
    else inFlight--;
  };
  next();
});

socket.on("connect", () => log(`connected to ${opt.url} (K=${K}, S=${text.length}, pace ${PACE} ms)`));
socket.on("connect_error", (e) => log("connect error:", e.message));
socket.on("disconnect", (why) => log("disconnected:", why));

const stop = () => {
  log(`stopping: ${jobs} jobs, ${inFlight} in flight`);
  socket.close();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
