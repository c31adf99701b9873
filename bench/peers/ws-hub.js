// A minimal ws broadcast hub: what AlertMe's fan-out does, without durability or parsing.
// Phones connect to /v1/phone?room=R and send text and binary frames; watchers connect to
// /v1/watch?room=R and receive every frame of their room's phone as is. Prints its port.
"use strict";
const { WebSocketServer } = require("ws");
const rooms = new Map(); // room -> Set of watcher sockets
const wss = new WebSocketServer({ host: "127.0.0.1", port: Number(process.argv[2] || 0), maxPayload: 64 * 1024 });
wss.on("connection", (ws, req) => {
  const url = new URL(req.url, "http://x");
  const room = url.searchParams.get("room") || "0";
  if (url.pathname === "/v1/watch") {
    if (!rooms.has(room)) rooms.set(room, new Set());
    rooms.get(room).add(ws);
    ws.on("close", () => rooms.get(room).delete(ws));
  } else {
    ws.on("message", (data, isBinary) => {
      const watchers = rooms.get(room);
      if (!watchers) return;
      for (const w of watchers) if (w.readyState === 1) w.send(data, { binary: isBinary });
    });
  }
});
wss.on("listening", () => console.log(`peer listening on ${wss.address().port}`));
