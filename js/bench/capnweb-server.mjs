// The baseline for js/bench/capnweb.mjs: capnweb's own Node server with the same small
// API as the anchor (echo, next), HTTP batch on POST /api and WebSocket on any path.
//
//   node js/bench/capnweb-server.mjs [PORT]     (0 or none: a free port)
//
// Prints `listening <port>` once it serves.

import http from "node:http";
import { newWebSocketRpcSession, nodeHttpBatchRpcResponse, RpcTarget } from "capnweb";
import WebSocket, { WebSocketServer } from "ws";

globalThis.WebSocket ??= WebSocket;

class Api extends RpcTarget {
  echo(x) {
    return x;
  }
  next(n) {
    return n + 1;
  }
}

const server = http.createServer(async (req, res) => {
  if (req.url === "/api" && req.method === "POST") {
    try {
      await nodeHttpBatchRpcResponse(req, res, new Api());
    } catch (e) {
      res.writeHead(500);
      res.end(String(e));
    }
    return;
  }
  res.writeHead(404);
  res.end();
});
const wss = new WebSocketServer({ server });
wss.on("connection", (ws) => {
  newWebSocketRpcSession(ws, new Api());
});

const port = Number(process.argv[2] ?? 0);
server.listen(port, "127.0.0.1", () => console.log(`listening ${server.address().port}`));
process.on("SIGTERM", () => process.exit(0));
