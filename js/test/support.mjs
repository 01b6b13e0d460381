// Shared by the gateway tests and the Cap'n Web benchmark: finding or starting a dotdo
// server, and small helpers around it. Importing this module has no side effects
// (`node --test js/test/` also runs it as a file, with no tests in it).

import { spawn } from "node:child_process";
import { existsSync, rmSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** The repository's root directory (this file is `js/test/support.mjs`). */
export const repoRoot = fileURLToPath(new URL("../../", import.meta.url));

/** `http://host:port` without a trailing slash. */
function trimBase(url) {
  return url.replace(/\/+$/, "");
}

/** The WebSocket URL of the Cap'n Web gateway of `http`. */
export function wsUrl(http) {
  return `${http.replace(/^http/, "ws")}/capnweb`;
}

/** The HTTP batch URL of the Cap'n Web gateway of `http`. */
export function batchUrl(http) {
  return `${http}/capnweb`;
}

/** A TCP port nothing listens on right now. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** `GET /health` as JSON. */
export async function health(http) {
  const r = await fetch(`${http}/health`);
  if (!r.ok) throw new Error(`GET ${http}/health: ${r.status}`);
  return r.json();
}

/** Polls `GET /health` until it answers, the child exits, or `ms` pass. */
async function waitUp(http, child, ms) {
  const deadline = Date.now() + ms;
  let last;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`the server exited (${child.exitCode ?? child.signalCode}) before answering`);
    }
    try {
      await health(http);
      return;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`the server did not answer ${http}/health within ${ms} ms: ${last?.message}`);
}

/**
 * Spawns `binary PORT` (a dotdo `js_server` example build) on a free port and waits
 * until it serves. Returns `{ http, pid, stop }`; `stop()` kills it and removes the
 * data directory `js_server` makes (`$TMPDIR/dotdo-js-server-<pid>`).
 */
export async function spawnJsServer(binary) {
  if (!existsSync(binary)) {
    throw new Error(
      `the dotdo test server ${binary} is missing: build it with ` +
        "`cargo build -p examples --example js_server` or set DOTDO_HTTP to a running server",
    );
  }
  const port = await freePort();
  const http = `http://127.0.0.1:${port}`;
  // From the repo root, so the server finds js/node_modules/capnweb for GET /capnweb.js.
  const child = spawn(binary, [String(port)], { cwd: repoRoot, stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stdout.resume();
  child.stderr.on("data", (d) => {
    if (stderr.length < 16384) stderr += d;
  });
  const killOnExit = () => child.kill("SIGKILL");
  process.on("exit", killOnExit);
  const exited = new Promise((resolve) => child.once("exit", resolve));
  const stop = async () => {
    process.off("exit", killOnExit);
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 3000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(path.join(os.tmpdir(), `dotdo-js-server-${child.pid}`), { recursive: true, force: true });
  };
  try {
    await waitUp(http, child, 30000);
  } catch (e) {
    await stop();
    throw new Error(`${binary} ${port}: ${e.message}\n${stderr}`);
  }
  return { http, pid: child.pid, spawned: true, stop };
}

/**
 * The dotdo server to test: `DOTDO_HTTP` when set (left running), else `binary` (by
 * default `DOTDO_JS_SERVER` or `target/debug/examples/js_server`) spawned on a free port.
 */
export async function dotdoServer(binary) {
  if (process.env.DOTDO_HTTP) {
    return { http: trimBase(process.env.DOTDO_HTTP), pid: null, spawned: false, stop: async () => {} };
  }
  const bin = binary ?? process.env.DOTDO_JS_SERVER ?? path.join(repoRoot, "target/debug/examples/js_server");
  return spawnJsServer(bin);
}
