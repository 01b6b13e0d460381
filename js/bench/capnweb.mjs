// dotdo's Cap'n Web gateway against capnweb's own Node server, in one run, from one
// Node client process, with the official `capnweb` client:
//
//   (a) ws_seq_calls_per_s           sequential echo calls over one WebSocket
//   (b) ws_1000_inflight_calls_per_s echo calls with 1,000 in flight over one WebSocket
//   (c) http_chain3_{pipelined,awaited}_ms
//                                    a 3-call dependent chain (next(1) -> next(a) -> next(b))
//                                    in one HTTP batch, vs. each step awaited (3 batches):
//                                    the median chain
//
//   node js/bench/capnweb.mjs
//
// Environment:
//   DOTDO_BENCH_SECS  seconds per figure and server (default 3)
//   DOTDO_HTTP        a running dotdo server (e.g. http://127.0.0.1:8797); otherwise
//   DOTDO_JS_SERVER   the js_server binary to spawn; by default
//                     target/release/examples/js_server, else target/debug (figures
//                     of a debug build mean nothing).
//
// dotdo serves the demo Directory behind `api.demo()`: the WebSocket figures hold that
// stub once (`d.echo(i)`), and a batch chain is demo() + 3 calls in one request, while
// an awaited step is demo() + next() in one request. Exits non-zero on a wrong answer.

import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { newHttpBatchRpcSession, newWebSocketRpcSession } from "capnweb";
import WebSocket from "ws";
import { dotdoServer, repoRoot } from "../test/support.mjs";

globalThis.WebSocket ??= WebSocket;

const SECS = Number(process.env.DOTDO_BENCH_SECS ?? 3);
if (!(SECS > 0)) throw new Error(`DOTDO_BENCH_SECS must be a positive number, not ${process.env.DOTDO_BENCH_SECS}`);
const MS = SECS * 1000;
const WARMUP_MS = Math.min(500, MS / 3);
const ROUNDS = 3;
const IN_FLIGHT = 1000;

const now = () => performance.now();

function check(got, want, what) {
  if (got !== want) throw new Error(`wrong answer from ${what}: ${JSON.stringify(got)}, expected ${want}`);
}

// ---- the two servers, as the same three operations --------------------------------

/**
 * A server under test: `ws()` opens a WebSocket session and returns `{ echo, close }`;
 * `chain(pipelined)` runs one 3-call chain over HTTP batch and returns its result.
 */
function dotdoTarget(http) {
  const wsUrl = `${http.replace(/^http/, "ws")}/capnweb`;
  const batchUrl = `${http}/capnweb`;
  return {
    name: "dotdo",
    async ws() {
      const api = newWebSocketRpcSession(wsUrl);
      const d = await api.demo();
      return { echo: (x) => d.echo(x), close: () => api[Symbol.dispose]() };
    },
    async chain(pipelined) {
      if (pipelined) {
        const d = newHttpBatchRpcSession(batchUrl).demo();
        const a = d.next(1);
        const b = d.next(a);
        return d.next(b);
      }
      let v = 1;
      for (let i = 0; i < 3; i++) v = await newHttpBatchRpcSession(batchUrl).demo().next(v);
      return v;
    },
  };
}

function capnwebTarget(port) {
  const wsUrl = `ws://127.0.0.1:${port}/`;
  const batchUrl = `http://127.0.0.1:${port}/api`;
  return {
    name: "capnweb",
    async ws() {
      const api = newWebSocketRpcSession(wsUrl);
      return { echo: (x) => api.echo(x), close: () => api[Symbol.dispose]() };
    },
    async chain(pipelined) {
      if (pipelined) {
        const api = newHttpBatchRpcSession(batchUrl);
        const a = api.next(1);
        const b = api.next(a);
        return api.next(b);
      }
      let v = 1;
      for (let i = 0; i < 3; i++) v = await newHttpBatchRpcSession(batchUrl).next(v);
      return v;
    },
  };
}

// ---- the measurements ------------------------------------------------------------

/** (a) Sequential echo calls per second over one WebSocket, for `ms`. */
async function wsSequential(target, ms) {
  const s = await target.ws();
  try {
    check(await s.echo(0), 0, `${target.name} echo`);
    let n = 0;
    const t0 = now();
    while (now() - t0 < ms) {
      check(await s.echo(n), n, `${target.name} echo`);
      n++;
    }
    return [n / ((now() - t0) / 1000), n];
  } finally {
    s.close();
  }
}

/** (b) Echo calls per second with IN_FLIGHT calls outstanding over one WebSocket. */
async function wsInFlight(target, ms) {
  const s = await target.ws();
  try {
    check(await s.echo(0), 0, `${target.name} echo`);
    let n = 0;
    const t0 = now();
    do {
      const calls = [];
      for (let i = 0; i < IN_FLIGHT; i++) calls.push(s.echo(n + i));
      const got = await Promise.all(calls);
      for (let i = 0; i < IN_FLIGHT; i++) check(got[i], n + i, `${target.name} echo (in flight)`);
      n += IN_FLIGHT;
    } while (now() - t0 < ms);
    return [n / ((now() - t0) / 1000), n];
  } finally {
    s.close();
  }
}

/**
 * (c) Milliseconds per 3-call chain over HTTP batch: the median chain (at least 5).
 * The median, not the mean: about 1% of requests take 5-60 ms on either server (the
 * Node client's pauses), which would make the mean of a short run noise.
 */
async function httpChain(target, pipelined, ms) {
  const times = [];
  const t0 = now();
  do {
    const t = now();
    check(await target.chain(pipelined), 4, `${target.name} chain`);
    times.push(now() - t);
  } while (now() - t0 < ms || times.length < 5);
  return [median(times), times.length];
}

// ---- servers ---------------------------------------------------------------------

/** Spawns js/bench/capnweb-server.mjs on a free port; `{ port, stop }`. */
async function startCapnwebServer() {
  const script = fileURLToPath(new URL("./capnweb-server.mjs", import.meta.url));
  const child = spawn(process.execPath, [script, "0"], { stdio: ["ignore", "pipe", "inherit"] });
  const killOnExit = () => child.kill("SIGKILL");
  process.on("exit", killOnExit);
  const port = await new Promise((resolve, reject) => {
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/listening (\d+)/);
      if (m) resolve(Number(m[1]));
    });
    child.once("exit", (code) => reject(new Error(`capnweb-server.mjs exited (${code}) before listening`)));
  });
  const exited = new Promise((resolve) => child.once("exit", resolve));
  return {
    port,
    pid: child.pid,
    async stop() {
      process.off("exit", killOnExit);
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        await exited;
      }
    },
  };
}

function dotdoBinary() {
  if (process.env.DOTDO_JS_SERVER) return process.env.DOTDO_JS_SERVER;
  const release = path.join(repoRoot, "target/release/examples/js_server");
  return existsSync(release) ? release : path.join(repoRoot, "target/debug/examples/js_server");
}

// ---- main ------------------------------------------------------------------------

function fmt(v, digits) {
  return digits === 0 ? String(Math.round(v)) : v.toFixed(digits);
}

function median(xs) {
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.floor(s.length / 2)];
}

/** CPU time (user + system, ms) a process has used so far, from /proc; null if unknown. */
function cpuMs(pid) {
  if (!pid) return null;
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
    // utime and stime are fields 14 and 15 of the whole line, in clock ticks (100/s).
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return null;
  }
}

/**
 * Measures `fn(target, ms)` on both targets and prints one line: a warm-up of each,
 * then ROUNDS rounds alternating dotdo and capnweb (MS in all per server); the median
 * round of each (`fn` returns the figure and how many calls or chains it ran). Also the
 * servers' CPU time per call or chain over all the rounds (when both servers are
 * processes of this run): the one Node client is most of each figure's cost, so that is
 * where the servers differ most clearly.
 */
async function figure(name, fn, targets, digits, unit) {
  await fn(targets.dotdo, WARMUP_MS);
  await fn(targets.capnweb, WARMUP_MS);
  const d = [];
  const c = [];
  const cpu = { dotdo: 0, capnweb: 0 };
  const calls = { dotdo: 0, capnweb: 0 };
  const round = async (which, into) => {
    const before = cpuMs(targets[which].pid);
    const [v, count] = await fn(targets[which], MS / ROUNDS);
    calls[which] += count;
    const after = cpuMs(targets[which].pid);
    cpu[which] = before === null || after === null || cpu[which] === null ? null : cpu[which] + after - before;
    into.push(v);
  };
  for (let r = 0; r < ROUNDS; r++) {
    await round("dotdo", d);
    await round("capnweb", c);
  }
  const [dm, cm] = [median(d), median(c)];
  console.log(`${name} dotdo=${fmt(dm, digits)} capnweb=${fmt(cm, digits)} ratio=${(dm / cm).toFixed(2)}x`);
  if (cpu.dotdo !== null && cpu.capnweb !== null) {
    const [du, cu] = [(cpu.dotdo * 1000) / calls.dotdo, (cpu.capnweb * 1000) / calls.capnweb];
    const base = name.replace(/_(calls_per_s|ms)$/, "");
    console.log(
      `${base}_server_cpu_us_per_${unit} dotdo=${du.toFixed(1)} capnweb=${cu.toFixed(1)} ratio=${(cu / du).toFixed(2)}x less`,
    );
  }
  return { name, dotdo: dm, capnweb: cm };
}

async function main() {
  const bin = dotdoBinary();
  const [dotdo, capnweb] = await Promise.all([dotdoServer(bin), startCapnwebServer()]);
  try {
    const which = dotdo.spawned ? `${path.relative(repoRoot, bin)} at ${dotdo.http}` : `DOTDO_HTTP=${dotdo.http}`;
    console.log(`# dotdo: ${which}; capnweb: js/bench/capnweb-server.mjs on port ${capnweb.port}`);
    if (dotdo.spawned && bin.includes(`${path.sep}debug${path.sep}`)) {
      console.log("# warning: a debug build of dotdo; its figures mean nothing");
    }
    console.log(
      `# ${SECS} s per figure and server (median of ${ROUNDS} alternating rounds); node ${process.version}; ratio = dotdo/capnweb`,
    );
    const targets = {
      dotdo: { ...dotdoTarget(dotdo.http), pid: dotdo.pid },
      capnweb: { ...capnwebTarget(capnweb.port), pid: capnweb.pid },
    };
    await figure("ws_seq_calls_per_s", wsSequential, targets, 0, "call");
    await figure(`ws_${IN_FLIGHT}_inflight_calls_per_s`, wsInFlight, targets, 0, "call");
    await figure("http_chain3_pipelined_ms", (t, ms) => httpChain(t, true, ms), targets, 3, "chain");
    await figure("http_chain3_awaited_ms", (t, ms) => httpChain(t, false, ms), targets, 3, "chain");
  } finally {
    await Promise.all([dotdo.stop(), capnweb.stop()]);
  }
}

try {
  await main();
  process.exit(0);
} catch (e) {
  console.error(`bench failed: ${e.stack ?? e}`);
  process.exit(1);
}
