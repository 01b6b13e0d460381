// dotdo's Cap'n Web gateway as the official `capnweb` client (and raw sockets) sees it.
//
//   node --test js/test/gateway.test.mjs
//
// Against DOTDO_HTTP (e.g. http://127.0.0.1:18850) when set; otherwise this file
// starts target/debug/examples/js_server (or DOTDO_JS_SERVER) on a free port and stops
// it at the end.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { newHttpBatchRpcSession, newWebSocketRpcSession, RpcTarget } from "capnweb";
import WebSocket from "ws";
import { batchUrl, dotdoServer, health, wsUrl } from "./support.mjs";

globalThis.WebSocket ??= WebSocket;

const ADMIN_KEY = "js-test-admin-key";
const DEADLINE_MS = 10000;

let server;
const openSessions = [];

before(async () => {
  server = await dotdoServer();
});

after(async () => {
  for (const s of openSessions.splice(0)) s[Symbol.dispose]();
  await server?.stop();
});

// ---- helpers ---------------------------------------------------------------------

let seq = 0;
/** A name no other test (nor an earlier run against the same server) uses. */
function unique(prefix) {
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${++seq}`;
}

/** A WebSocket session's main stub (the Gateway), closed at the end of the file. */
function wsSession() {
  const api = newWebSocketRpcSession(wsUrl(server.http));
  openSessions.push(api);
  return api;
}

/** An HTTP batch session's main stub: one POST for what is called before the first await. */
function batchSession() {
  return newHttpBatchRpcSession(batchUrl(server.http));
}

/** Closes a WebSocket session early. */
function closeSession(api) {
  const i = openSessions.indexOf(api);
  if (i >= 0) openSessions.splice(i, 1);
  api[Symbol.dispose]();
}

/** Awaits `promise`, which must reject with an Error whose `code` is `code`. */
async function rejectsWith(promise, code) {
  let value;
  try {
    value = await promise;
  } catch (e) {
    assert.ok(e instanceof Error, `rejected with a non-Error: ${e}`);
    assert.equal(e.code, code, `expected ${code}, got ${e.code}: ${e.message}`);
    return e;
  }
  assert.fail(`expected ${code}, but it resolved to ${JSON.stringify(value)}`);
}

/** The server's metrics (`GET /health`). */
async function metrics() {
  return (await health(server.http)).metrics ?? {};
}

/** Proves the server still serves: a fresh HTTP batch session and a fresh WebSocket one. */
async function assertServerUp() {
  assert.equal(await batchSession().demo().next(41), 42);
  const api = newWebSocketRpcSession(wsUrl(server.http));
  try {
    assert.equal(await api.demo().echo(7), 7);
  } finally {
    api[Symbol.dispose]();
  }
}

/** Runs `fn` counting the HTTP requests made through `fetch` meanwhile. */
async function countingRequests(fn) {
  const real = globalThis.fetch;
  let requests = 0;
  globalThis.fetch = (...args) => {
    requests++;
    return real(...args);
  };
  try {
    return { value: await fn(), requests };
  } finally {
    globalThis.fetch = real;
  }
}

/** Waits until `check()` (sync or async) is true, polling; fails after DEADLINE_MS. */
async function eventually(check, what) {
  const deadline = Date.now() + DEADLINE_MS;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A raw WebSocket on the gateway, speaking Cap'n Web messages by hand. */
class RawSocket {
  static async open() {
    const ws = new WebSocket(wsUrl(server.http));
    const raw = new RawSocket(ws);
    await new Promise((resolve, reject) => {
      ws.once("open", resolve);
      ws.once("error", reject);
    });
    return raw;
  }

  constructor(ws) {
    this.ws = ws;
    this.queue = [];
    this.waiter = null;
    this.errors = [];
    ws.on("message", (data) => {
      this.queue.push(String(data));
      this.wake();
    });
    // An error (e.g. a reset while we still send a huge message) also ends in `close`.
    ws.on("error", (e) => this.errors.push(e));
    this.closed = new Promise((resolve) =>
      ws.on("close", (code) => {
        this.closeCode = code;
        this.wake();
        resolve(code);
      }),
    );
  }

  wake() {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  /** Sends a message: an array (JSON-encoded here) or raw text. */
  send(message) {
    this.ws.send(typeof message === "string" ? message : JSON.stringify(message));
  }

  /** The next message, parsed; `null` once the socket closed with none left. */
  async next() {
    const deadline = Date.now() + DEADLINE_MS;
    for (;;) {
      if (this.queue.length) return JSON.parse(this.queue.shift());
      if (this.closeCode !== undefined) return null;
      if (Date.now() > deadline) assert.fail("no message from the server in time");
      await new Promise((resolve) => {
        this.waiter = resolve;
        setTimeout(resolve, 100);
      });
    }
  }

  /** Waits for the server to close the socket; its close code. */
  async waitClosed() {
    const timeout = new Promise((_, reject) =>
      setTimeout(() => reject(new Error("the server did not close the socket")), DEADLINE_MS).unref(),
    );
    return Promise.race([this.closed, timeout]);
  }

  close() {
    this.ws.close();
  }
}

/** The `code` of an `["error", type, message, stack, {code}]` expression. */
function errorCode(expr) {
  assert.ok(Array.isArray(expr) && expr[0] === "error", `not an error expression: ${JSON.stringify(expr)}`);
  return expr[4]?.code;
}

/** Asserts `message` is `["abort", error]` with `code`. */
function assertAbort(message, code) {
  assert.ok(Array.isArray(message) && message[0] === "abort", `expected an abort, got ${JSON.stringify(message)}`);
  assert.equal(errorCode(message[1]), code, JSON.stringify(message));
}

/** POSTs raw batch lines; the answer's lines, parsed. */
async function rawBatch(lines) {
  const r = await fetch(batchUrl(server.http), { method: "POST", body: lines.join("\n") });
  assert.equal(r.status, 200);
  const text = await r.text();
  return text === "" ? [] : text.split("\n").map((l) => JSON.parse(l));
}

/** A `Tree` (demo.capnp) `levels` deep. */
function tree(levels) {
  let t = { children: [] };
  for (let i = 0; i < levels; i++) t = { children: [t] };
  return t;
}

// ---- tests -----------------------------------------------------------------------

describe("storage over WebSocket", () => {
  it("creates, gets, updates ($inc), queries, counts and deletes with typed values", async () => {
    const api = wsSession();
    const st = api.object("Customer", unique("crud")).storage();

    const created = await st.create({ type: "Customer", data: { name: "Ada", visits: 1, tags: ["a"] } });
    assert.equal(typeof created.id, "string");
    assert.ok(created.id.length > 0);
    assert.equal(created.type, "Customer");
    assert.deepEqual(created.data, { name: "Ada", visits: 1, tags: ["a"] });
    assert.equal(created.version, 1);
    assert.equal(typeof created.createdAt, "number");
    assert.ok(created.createdAt > 1.5e12, `createdAt ${created.createdAt} is not ms since the epoch`);
    assert.equal(created.deletedAt, 0);

    const got = await st.get(created.id);
    assert.deepEqual(got, created);

    const updated = await st.update({ id: created.id, patch: { $inc: { visits: 2 }, city: "London" } });
    assert.equal(updated.version, 2);
    assert.deepEqual(updated.data, { name: "Ada", visits: 3, tags: ["a"], city: "London" });
    // Positional arguments work too.
    const again = await st.update(created.id, { $inc: { visits: 1 } });
    assert.equal(again.data.visits, 4);
    assert.equal(again.version, 3);

    const bob = await st.create({ type: "Customer", data: { name: "Bob", visits: 10 } });
    const page = await st.query({ type: "Customer", sort: ["data.name"] });
    assert.deepEqual(
      page.things.map((t) => t.data.name),
      ["Ada", "Bob"],
    );
    assert.equal(page.cursor, "");
    assert.equal(await st.count({ type: "Customer" }), 2);
    assert.equal(await st.count({ type: "Customer", where: { "data.visits": { $gt: 5 } } }), 1);

    assert.equal(await st.delete({ id: bob.id }), true);
    assert.equal(await st.delete(bob.id), false);
    await rejectsWith(st.get(bob.id), "NOT_FOUND");
    assert.equal(await st.count({ type: "Customer" }), 1);
  });

  it("answers several fields as an object and bigints past 2^53", async () => {
    const api = wsSession();
    const st = api.object("Customer", unique("fields")).storage();
    const up = await st.upsert({ type: "Customer", id: "c1", data: { n: 1 } });
    assert.equal(up.created, true);
    assert.equal(up.thing.id, "c1");
    const first = await st.findFirst({ type: "Customer" });
    assert.deepEqual([first.found, first.thing.data], [true, { n: 1 }]);

    const d = api.demo();
    assert.equal(await d.echo(2 ** 40), 2 ** 40);
    assert.equal(await d.echo(2n ** 60n), 2n ** 60n);
  });
});

describe("pipelining over HTTP batch", () => {
  it("runs a 3-call dependent chain in one HTTP request", async () => {
    const before = await metrics();
    const { value, requests } = await countingRequests(async () => {
      const st = batchSession().object("Customer", unique("chain")).storage();
      const created = st.create({ type: "Customer", data: { name: "Ada", visits: 1 } });
      const updated = st.update({ id: created.id, patch: { $inc: { visits: 2 } } });
      const got = st.get(updated.id);
      return Promise.all([created, updated, got]);
    });
    const after = await metrics();
    assert.equal(requests, 1, "the whole chain must be one HTTP request");
    // A host without server metrics in /health (the Cloudflare Worker) counts no batch.
    if (before.capnweb_batches !== undefined) {
      assert.ok(after.capnweb_batches - before.capnweb_batches >= 1, "the server counted no batch");
    }
    const [created, updated, got] = value;
    assert.equal(updated.id, created.id);
    assert.equal(got.id, created.id);
    assert.equal(got.version, 2);
    assert.equal(got.data.visits, 3);
  });

  it("needs one request per call when each result is awaited first", async () => {
    const name = unique("awaited");
    const { value, requests } = await countingRequests(async () => {
      let v = 1;
      for (let i = 0; i < 3; i++) v = await batchSession().demo().next(v);
      const count = await batchSession().object("Customer", name).storage().count({});
      return [v, count];
    });
    assert.deepEqual(value, [4, 0]);
    assert.equal(requests, 4);
  });

  it("pipelines through returned capabilities (demo files)", async () => {
    const { value, requests } = await countingRequests(() =>
      batchSession().demo().open("root").child("a").child("b").read(),
    );
    assert.equal(requests, 1);
    assert.equal(value, "contents of root/a/b");
  });
});

describe("callbacks over WebSocket", () => {
  it("calls a JS RpcTarget back and returns its answer", async () => {
    const api = wsSession();
    class Shout extends RpcTarget {
      notify(value) {
        return `${value.toUpperCase()}!`;
      }
    }
    assert.equal(await api.demo().subscribe(new Shout(), "hello"), "HELLO!");
  });

  it("delivers events sent by another session to a JS Handler", async () => {
    const name = unique("events");
    const listener = wsSession();
    const sender = wsSession();
    const received = [];
    class Handler extends RpcTarget {
      handle(event) {
        received.push(event);
      }
    }
    const sub = listener.object("Customer", name).events().subscribe("Customer.*", new Handler());
    await sub; // subscribed before anything is sent

    const thing = await sender.object("Customer", name).storage().create({ type: "Customer", data: { name: "Z" } });
    const sent = await sender.object("Customer", name).events().send("Customer.pinged", { n: 1, ok: true });
    await sender.object("Customer", name).events().send("Order.placed", { n: 2 }); // not matched

    await eventually(() => received.length >= 2, "two events");
    const [createdEvent, pinged] = received;
    assert.equal(createdEvent.type, "Customer.created");
    assert.equal(createdEvent.data.id, thing.id);
    assert.equal(pinged.type, "Customer.pinged");
    assert.deepEqual(pinged.data, { n: 1, ok: true });
    assert.equal(pinged.id, sent.id);
    assert.equal(typeof pinged.seq, "number");
    assert.ok(pinged.seq > createdEvent.seq);
    assert.equal(await sub.dropped(), 0);

    // After cancel, nothing more reaches this handler (a second subscriber proves the
    // later event was delivered).
    await sub.cancel();
    const second = [];
    class Second extends RpcTarget {
      handle(event) {
        second.push(event);
      }
    }
    await listener.object("Customer", name).events().subscribe("Customer.*", new Second());
    await sender.object("Customer", name).events().send("Customer.after", {});
    await eventually(() => second.length >= 1, "the second subscriber's event");
    assert.equal(second[0].type, "Customer.after");
    assert.ok(!received.some((e) => e.type === "Customer.after" || e.type === "Order.placed"));
  });
});

describe(".map() over results", () => {
  async function seeded(api, n) {
    const st = api.object("Customer", unique("map")).storage();
    const things = await st.bulkCreate(Array.from({ length: n }, (_, i) => ({ type: "Item", data: { n: i } })));
    return { st, ids: things.map((t) => t.id) };
  }

  it("maps a query's things to their ids in one round trip", async () => {
    const api = wsSession();
    const { st, ids } = await seeded(api, 3);
    const got = await st.query({ type: "Item", sort: ["data.n"] }).things.map((t) => t.id);
    assert.deepEqual(got, ids);
  });

  it("builds objects and calls a captured stub per element", async () => {
    const api = wsSession();
    const { st, ids } = await seeded(api, 3);
    const query = st.query({ type: "Item", sort: ["data.n"] });
    const shaped = await query.things.map((t) => ({ id: t.id, n: t.data.n }));
    assert.deepEqual(
      shaped,
      ids.map((id, n) => ({ id, n })),
    );
    const fetched = await query.things.map((t) => st.get(t.id));
    assert.deepEqual(
      fetched.map((t) => [t.id, t.data.n, t.version]),
      ids.map((id, n) => [id, n, 1]),
    );
  });

  it("maps inside one HTTP batch", async () => {
    const name = unique("mapbatch");
    await batchSession()
      .object("Customer", name)
      .storage()
      .bulkCreate([
        { type: "Item", data: { n: 1 } },
        { type: "Item", data: { n: 2 } },
      ]);
    const { value, requests } = await countingRequests(() => {
      const st = batchSession().object("Customer", name).storage();
      return st.query({ type: "Item", sort: ["data.n"] }).things.map((t) => st.get(t.id).data.n);
    });
    assert.equal(requests, 1);
    assert.deepEqual(value, [1, 2]);
  });
});

describe("tokens", () => {
  async function mint(api, target, scope, methods = ["*"]) {
    return api.broker(ADMIN_KEY).mint({ target, methods, scope, ttlMs: 60000, subject: "gateway-test" });
  }

  it("a read token allows reads and refuses writes with INSUFFICIENT_SCOPE", async () => {
    const api = wsSession();
    const target = `Counter/${unique("scoped")}`;
    const [cls, name] = target.split("/");
    assert.equal(await api.object(cls, name).increment(5), 5);

    const token = await mint(api, target, "read");
    assert.equal(typeof token, "string");
    const obj = api.broker("").redeem(token, target);
    assert.equal(await obj.get(), 5);
    assert.equal((await obj.info()).name, name);
    await rejectsWith(obj.increment(1), "INSUFFICIENT_SCOPE");
    await rejectsWith(obj.reset(), "INSUFFICIENT_SCOPE");
    assert.equal(await obj.get(), 5, "a refused call must not have run");
  });

  it("a write token allows writes but not admin methods", async () => {
    const api = wsSession();
    const target = `Counter/${unique("write")}`;
    const obj = api.broker("").redeem(await mint(api, target, "write"), target);
    assert.equal(await obj.increment(2), 2);
    await rejectsWith(obj.reset(), "INSUFFICIENT_SCOPE");
  });

  it("a token limited to some methods refuses the others with FORBIDDEN", async () => {
    const api = wsSession();
    const target = `Counter/${unique("methods")}`;
    const obj = api.broker("").redeem(await mint(api, target, "write", ["counter.get"]), target);
    assert.equal(await obj.get(), 0);
    await rejectsWith(obj.increment(1), "FORBIDDEN");
  });

  it("a read token reaches the object's storage through the membrane", async () => {
    // The gateway calls as a remote peer does, so the membrane wraps the module the
    // getter hands out: reads work, writes are INSUFFICIENT_SCOPE.
    const api = wsSession();
    const target = `Customer/${unique("membrane")}`;
    const [cls, name] = target.split("/");
    await api.object(cls, name).storage().create({ type: "Customer", data: { n: 1 } });
    const obj = api.broker("").redeem(await mint(api, target, "read"), target);
    assert.equal(await obj.storage().count({ type: "Customer" }), 1);
    await rejectsWith(obj.storage().create({ type: "Customer", data: {} }), "INSUFFICIENT_SCOPE");
  });

  it("refuses forged, garbled, wrong-target, revoked tokens and minting without the admin key", async () => {
    const api = wsSession();
    const target = `Counter/${unique("forged")}`;
    const broker = api.broker(ADMIN_KEY);
    const token = await mint(api, target, "read");
    const claims = await broker.verify(token);
    assert.equal(claims.target, target);
    assert.equal(claims.scope, "read");
    assert.deepEqual(claims.methods, ["*"]);
    assert.equal(typeof claims.expiresAt, "number");

    const parts = token.split(".");
    const sig = parts.pop();
    const forged = [...parts, (sig[0] === "A" ? "B" : "A") + sig.slice(1)].join(".");
    await rejectsWith(broker.verify(forged), "INVALID_SIGNATURE");
    await rejectsWith(api.broker("").redeem(forged, target).get(), "INVALID_SIGNATURE");
    await rejectsWith(broker.verify("not-a-token"), "MALFORMED");
    await rejectsWith(api.broker("").redeem("garbage.token", target).get(), "MALFORMED");
    await rejectsWith(api.broker("").redeem(token, "Counter/someone-else").get(), "WRONG_TARGET");
    await rejectsWith(api.broker("not-the-key").mint({ target, methods: ["*"], scope: "admin" }), "FORBIDDEN");

    const obj = api.broker("").redeem(token, target);
    assert.equal(await obj.get(), 0);
    await broker.revoke(claims.tokenId);
    await rejectsWith(obj.get(), "REVOKED");
    await rejectsWith(broker.verify(token), "REVOKED");
  });
});

describe("user classes from their own schemas", () => {
  it("Counter: increment, get, reset, tick, info", async () => {
    const api = wsSession();
    const name = unique("counter");
    const c = api.object("Counter", name);
    assert.equal(await c.increment(2), 2);
    assert.equal(await c.increment(3), 5);
    assert.equal(await c.get(), 5);
    assert.equal(await c.reset(), undefined);
    assert.equal(await c.get(), 0);
    assert.equal(await c.tick(), undefined);
    assert.equal(await c.get(), 1);
    assert.equal(await c.increment(-4), -3);
    const info = await c.info();
    assert.equal(info.class, "Counter");
    assert.equal(info.name, name);
    // The same object from another session (and transport) sees the same state.
    assert.equal(await batchSession().object("Counter", name).get(), -3);
  });

  it("Cart and Inventory: reserve, check out, count orders", async () => {
    const api = wsSession();
    const sku = unique("sku");
    const inventory = api.object("Inventory", "main");
    assert.equal(await inventory.restock(sku, 10), 10);
    assert.equal(await inventory.available(sku), 10);

    const cart = api.object("Cart", unique("cart"));
    const lines = await cart.add(sku, 3);
    assert.equal(lines.length, 1);
    assert.equal(lines[0].sku, sku);
    assert.equal(lines[0].quantity, 3);
    assert.equal(typeof lines[0].reservation, "string");
    assert.equal(await inventory.available(sku), 7);
    await rejectsWith(cart.add(sku, 100), "CONFLICT");
    // A refused add keeps the cart's line (re-reserved: its reservation id may change).
    assert.deepEqual(
      (await cart.lines()).map((l) => [l.sku, l.quantity]),
      [[sku, 3]],
    );
    assert.equal(await inventory.available(sku), 7);

    const order = await cart.checkout();
    assert.equal(typeof order, "string");
    assert.deepEqual(await cart.lines(), []);
    assert.equal(await inventory.available(sku), 7);
    // The cart counts its orders from its own `Order.created` events.
    await eventually(async () => (await cart.orders()) === 1, "the cart to count its order");
    await rejectsWith(cart.checkout(), "INVALID_ARGUMENT");
  });

  it("a workflow from JavaScript: start() then result() pipelined, woken by an event", async () => {
    const api = wsSession();
    const sku = unique("sku");
    assert.equal(await api.object("Inventory", "main").restock(sku, 5), 5);
    const cart = api.object("Cart", unique("cart"));
    const id = unique("order");
    const run = cart.workflow().start("order", { sku, quantity: 2, amount: 10 }, id);
    // The run charges (retried once), then waits for the shipment event.
    await eventually(async () => (await run.status()).status === "waiting", "the run to wait for the shipment");
    await cart.events().send("Shipment.sent", { order: id });
    const out = await run.result();
    assert.equal(out.order, id);
    assert.equal(out.approvedBy, "auto");
    assert.deepEqual(out.charge, { charged: 10, attempt: 2 });
    const steps = (await run.history()).map((s) => [s.name, s.status, s.attempts]);
    assert.deepEqual(steps, [
      ["reserve", "completed", 1],
      ["charge", "completed", 2],
      ["shipped", "completed", 1],
      ["commit", "completed", 1],
    ]);
    await rejectsWith(cart.workflow().start("nosuch", {}, ""), "NOT_FOUND");
  });
});

describe("bad input gets typed errors and the server stays up", () => {
  it("wrong argument types and counts are INVALID_ARGUMENT; the session goes on", async () => {
    const api = wsSession();
    const c = api.object("Counter", unique("badargs"));
    const st = api.object("Customer", unique("badargs")).storage();
    await rejectsWith(c.increment("x"), "INVALID_ARGUMENT");
    await rejectsWith(api.demo().echo(-1), "INVALID_ARGUMENT");
    await rejectsWith(api.demo().echo(2n ** 70n), "INVALID_ARGUMENT");
    await rejectsWith(st.get(123), "INVALID_ARGUMENT");
    await rejectsWith(st.create({ type: "T", dta: {} }), "INVALID_ARGUMENT");
    await rejectsWith(st.create("T", {}, "", "extra"), "INVALID_ARGUMENT");
    await rejectsWith(st.query("{not json"), "INVALID_ARGUMENT");
    assert.equal(await c.increment(1), 1, "the same session still serves");
    await assertServerUp();
  });

  it("an unknown method is UNIMPLEMENTED", async () => {
    const api = wsSession();
    await rejectsWith(api.nope(), "UNIMPLEMENTED");
    await rejectsWith(api.demo().nope(1), "UNIMPLEMENTED");
    await rejectsWith(api.object("Counter", unique("nope")).decrement(1), "UNIMPLEMENTED");
    assert.equal(await api.demo().next(1), 2, "the same session still serves");
  });

  it("an unknown export id is NOT_FOUND; the session goes on", async () => {
    const raw = await RawSocket.open();
    try {
      raw.send(["push", ["pipeline", 999, ["x"], []]]);
      raw.send(["pull", 1]);
      const m = await raw.next();
      assert.equal(m[0], "reject", JSON.stringify(m));
      assert.equal(m[1], 1);
      assert.equal(errorCode(m[2]), "NOT_FOUND");

      raw.send(["push", ["pipeline", 0, ["demo"], []]]);
      raw.send(["push", ["pipeline", 2, ["next"], [7]]]);
      raw.send(["pull", 3]);
      assert.deepEqual(await raw.next(), ["resolve", 3, 8]);
    } finally {
      raw.close();
    }
  });

  it("bad JSON aborts the session with INVALID_ARGUMENT; new sessions are served", async () => {
    const raw = await RawSocket.open();
    raw.send("{this is not json");
    assertAbort(await raw.next(), "INVALID_ARGUMENT");
    await raw.waitClosed();
    await assertServerUp();
  });

  it("a message over max_message_bytes (8 MiB) is LIMIT_EXCEEDED or closes the socket", async () => {
    const raw = await RawSocket.open();
    raw.send(["push", ["pipeline", 0, ["demo"], []]]);
    raw.send(["push", ["pipeline", 1, ["open"], ["x".repeat(9 << 20)]]]);
    const m = await raw.next();
    // The server aborts; if the socket is reset while we still send, the abort may be lost.
    if (m !== null) assertAbort(m, "LIMIT_EXCEEDED");
    await raw.waitClosed();
    await assertServerUp();
  });

  it("an HTTP batch over max_batch_bytes (16 MiB) is LIMIT_EXCEEDED; the client's next batch works", async () => {
    // The server answers as soon as the body passes the limit and closes the
    // connection, saying so (`Connection: close`), so a keep-alive client does not send
    // its next batch on the dead connection.
    const r = await fetch(batchUrl(server.http), { method: "POST", body: "x".repeat(17 << 20) });
    assert.equal(r.status, 200);
    assertAbort(JSON.parse(await r.text()), "LIMIT_EXCEEDED");
    assert.equal(r.headers.get("connection"), "close", "the server closes this connection: it must say so");
    await rejectsWith(batchSession().demo().open("x".repeat(17 << 20)), "LIMIT_EXCEEDED");
    assert.equal(await batchSession().demo().next(1), 2, "the same client's next batch");
    await assertServerUp();
  });

  it("a too-deep expression is LIMIT_EXCEEDED; the session goes on", async () => {
    let deep = 1;
    for (let i = 0; i < 100; i++) deep = { a: deep };
    const raw = await RawSocket.open();
    try {
      raw.send(["push", ["pipeline", 0, ["demo"], []]]);
      raw.send(["push", ["pipeline", 1, ["echo"], [deep]]]);
      raw.send(["pull", 2]);
      const m = await raw.next();
      assert.equal(m[0], "reject", JSON.stringify(m));
      assert.equal(errorCode(m[2]), "LIMIT_EXCEEDED");
      raw.send(["push", ["pipeline", 1, ["next"], [1]]]);
      raw.send(["pull", 3]);
      assert.deepEqual(await raw.next(), ["resolve", 3, 2]);
    } finally {
      raw.close();
    }
  });

  it("a very deep message (past the JSON parser's own recursion limit) is LIMIT_EXCEEDED too", async () => {
    // The JSON parser's own limit (128 levels) and the gateway's (64) give the same code.
    const api = wsSession();
    const d = api.demo();
    assert.equal(await d.depth(tree(10)), 11);
    assert.equal(await d.depth(tree(30)), 31);
    await rejectsWith(d.depth(tree(40)), "LIMIT_EXCEEDED"); // ~120 JSON levels
    await rejectsWith(d.depth(tree(100)), "LIMIT_EXCEEDED"); // ~300 JSON levels
    assert.equal(await d.depth(tree(3)), 4, "the same session still serves");
  });

  it("an HTTP batch with a malformed line is answered with an abort line", async () => {
    const lines = await rawBatch(['["push",["pipeline",0,["demo"],[]]]', "{bad", '["pull",1]']);
    assert.equal(lines.length, 1, JSON.stringify(lines));
    assertAbort(lines[0], "INVALID_ARGUMENT");
    const unknown = await rawBatch(['["huh",1]']);
    assertAbort(unknown.at(-1), "INVALID_ARGUMENT");
    await assertServerUp();
  });

  it("an HTTP batch with an unknown method rejects that call only", async () => {
    const lines = await rawBatch([
      '["push",["pipeline",0,["demo"],[]]]',
      '["push",["pipeline",1,["nope"],[]]]',
      '["push",["pipeline",1,["next"],[1]]]',
      '["pull",2]',
      '["pull",3]',
    ]);
    const byId = new Map(lines.map((l) => [l[1], l]));
    assert.equal(byId.get(2)[0], "reject");
    assert.equal(errorCode(byId.get(2)[2]), "UNIMPLEMENTED");
    assert.deepEqual(byId.get(3), ["resolve", 3, 2]);
  });

  it("an HTTP batch over max_batch_messages rejects every call with LIMIT_EXCEEDED", async () => {
    const d = batchSession().demo();
    const calls = Array.from({ length: 5000 }, (_, i) => d.echo(i));
    const outcomes = await Promise.allSettled(calls);
    assert.ok(outcomes.every((o) => o.status === "rejected" && o.reason.code === "LIMIT_EXCEEDED"));
    await assertServerUp();
  });

  it("GET /capnweb without an upgrade is a 400 with a typed JSON error", async () => {
    const r = await fetch(batchUrl(server.http));
    assert.equal(r.status, 400);
    assert.equal((await r.json()).code, "INVALID_ARGUMENT");
  });
});

describe("metrics per transport", () => {
  it("counts WebSocket sessions and HTTP batches in /health", async () => {
    const m0 = await metrics();
    assert.equal(typeof m0.capnweb_sessions, "number");
    assert.equal(typeof m0.capnweb_batches, "number");

    const api = newWebSocketRpcSession(wsUrl(server.http));
    assert.equal(await api.demo().echo(1), 1);
    const m1 = await metrics();
    assert.ok(m1.capnweb_sessions >= m0.capnweb_sessions + 1, "capnweb_sessions did not increase");
    closeSession(api);

    assert.equal(await batchSession().demo().echo(2), 2);
    assert.equal(await batchSession().demo().echo(3), 3);
    const m2 = await metrics();
    assert.ok(m2.capnweb_batches >= m1.capnweb_batches + 2, "capnweb_batches did not increase by 2");
    assert.ok(m2.capnweb_messages > m0.capnweb_messages, "capnweb_messages did not increase");
  });
});

describe("namespaces", () => {
  it("come from the Host header, as on the binary transports", async () => {
    // The first label of a host name with three or more labels names the namespace.
    const name = unique("ns");
    const open = (host) => {
      const ws = new WebSocket(wsUrl(server.http), host ? { headers: { host } } : undefined);
      const api = newWebSocketRpcSession(ws);
      openSessions.push(api);
      return api;
    };
    const acme = open(`acme.dotdo.test:${new URL(server.http).port}`);
    const plain = open(null);
    assert.equal((await acme.object("Customer", name).info()).namespace, "acme");
    assert.equal((await plain.object("Customer", name).info()).namespace, "default");
    // Same class and name, two namespaces: two objects, two stores.
    await acme.object("Customer", name).storage().create({ type: "Customer", data: { in: "acme" } });
    assert.equal(await acme.object("Customer", name).storage().count({ type: "Customer" }), 1);
    assert.equal(await plain.object("Customer", name).storage().count({ type: "Customer" }), 0);
  });
});
