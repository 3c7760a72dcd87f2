#!/usr/bin/env node
// The peer's server node: Socket.IO 4 (websocket transport only) with the
// Redis adapter as its backplane. scripts/bench.sh starts two of them on one
// Redis; clients connect to node A, the responder to node B.
//
//   node bench/peer/node.js --port 3201 --redis redis://127.0.0.1:6393 --name A
//
// Who connects says so in the handshake's `auth`:
//   {session: "<id>"}      a user: joins the room named after its session; each
//                          `msg` {id, text} goes to the room `workers` as a `job`
//                          {session, id, text}: through Redis to the node that
//                          holds the responder.
//   {role: "responder"}    the LLM stand-in: joins `workers`; each `chunk`
//                          {session, id, seq, done, text} goes to the session's
//                          room: through Redis back to the node that holds the user.
// Both hops go through the adapter, as a deployment of two or more nodes does.
"use strict";

const http = require("node:http");
const { parseArgs } = require("node:util");
const { Server } = require("socket.io");
const { createAdapter } = require("@socket.io/redis-adapter");
const { createClient } = require("redis");

const { values: opt } = parseArgs({
  options: {
    port: { type: "string", default: "3201" },
    host: { type: "string", default: "127.0.0.1" },
    redis: { type: "string", default: "redis://127.0.0.1:6379" },
    name: { type: "string", default: "" },
  },
});
const name = opt.name || opt.port;
const log = (...a) => console.log(`[peer node ${name}]`, ...a);

async function start() {
  const publisher = createClient({ url: opt.redis });
  const subscriber = publisher.duplicate();
  for (const [what, c] of [["publisher", publisher], ["subscriber", subscriber]]) {
    c.on("error", (e) => log(`redis ${what}:`, e.message));
  }
  await publisher.connect();
  await subscriber.connect();

  const server = http.createServer((_req, res) => res.writeHead(404).end());
  const io = new Server(server, {
    transports: ["websocket"],
    serveClient: false,
    adapter: createAdapter(publisher, subscriber),
  });

  const counts = { users: 0, responders: 0, jobs: 0, chunks: 0 };
  io.on("connection", (socket) => {
    const auth = socket.handshake.auth ?? {};
    if (auth.role === "responder") {
      counts.responders++;
      socket.join("workers");
      socket.on("chunk", (c) => {
        counts.chunks++;
        io.to(c.session).emit("chunk", { id: c.id, seq: c.seq, done: c.done, text: c.text });
      });
      socket.on("disconnect", () => counts.responders--);
      return;
    }
    if (typeof auth.session !== "string" || auth.session === "") {
      socket.disconnect(true);
      return;
    }
    const session = auth.session;
    counts.users++;
    socket.join(session);
    socket.on("msg", (m) => {
      counts.jobs++;
      io.to("workers").emit("job", { session, id: m?.id, text: m?.text });
    });
    socket.on("disconnect", () => counts.users--);
  });

  server.listen(Number(opt.port), opt.host, () => log(`listening on ${opt.host}:${opt.port}, redis ${opt.redis}`));

  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    log(`stopping: ${JSON.stringify(counts)}`);
    io.close();
    Promise.allSettled([publisher.quit(), subscriber.quit()]).finally(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

start().catch((e) => {
  log("failed:", e);
  process.exit(1);
});
