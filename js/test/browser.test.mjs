// The page at `GET /` in headless Chromium: it connects over Cap'n Web, creates, edits and
// deletes Things through its forms, shows server errors, and shows Things written by
// another (Node) session live, through its events subscription. Ends with a screenshot at
// target/browser/page.png.
//
//   node --test js/test/browser.test.mjs
//
// Environment:
//   DOTDO_HTTP=http://127.0.0.1:18900   a running dotdo server (else target/debug/examples/
//                                       js_server is started, from the repo root, on a free port)
//   DOTDO_REQUIRE_BROWSER=1             fail, rather than skip, without /usr/bin/chromium
//   DOTDO_PAGE_FROM_SOURCE=1            serve rpc-core/server/page/index.html from this
//                                       checkout (with ?server= pointing at the dotdo server)
//                                       instead of the page built into the server

import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import http from "node:http";
import path from "node:path";
import { newWebSocketRpcSession } from "capnweb";
import WebSocket from "ws";
import { dotdoServer, repoRoot, wsUrl } from "./support.mjs";

globalThis.WebSocket ??= WebSocket;

const CHROMIUM = "/usr/bin/chromium";
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
const WAIT_MS = 20000;
const SCREENSHOT = path.join(repoRoot, "target/browser/page.png");

/** `DOTDO_HTTP`, or js_server started (from the repo root) on a free port. */
const startServer = () => dotdoServer();

/**
 * DOTDO_PAGE_FROM_SOURCE: a static server of this checkout's page and capnweb module, so
 * the page can be tested before the server is rebuilt. Returns its base URL and `close`.
 */
async function startPageServer() {
  const files = {
    "/": ["rpc-core/server/page/index.html", "text/html; charset=utf-8"],
    "/capnweb.js": ["js/node_modules/capnweb/dist/index.js", "text/javascript; charset=utf-8"],
  };
  const srv = http.createServer((req, res) => {
    const file = files[new URL(req.url, "http://x").pathname];
    if (!file) return res.writeHead(404).end();
    res.writeHead(200, { "content-type": file[1] }).end(readFileSync(path.join(repoRoot, file[0])));
  });
  await new Promise((resolve) => srv.listen(0, "127.0.0.1", resolve));
  return {
    http: `http://127.0.0.1:${srv.address().port}`,
    close: () => new Promise((resolve) => srv.close(resolve)),
  };
}

test("the page at GET / manages Things and shows other sessions' writes live", async (t) => {
  if (!existsSync(CHROMIUM)) {
    const why = `no Chromium at ${CHROMIUM} (apt-get install -y chromium)`;
    if (process.env.DOTDO_REQUIRE_BROWSER === "1") assert.fail(`${why}, and DOTDO_REQUIRE_BROWSER=1`);
    t.skip(why);
    return;
  }
  const { chromium } = await import("playwright-core");

  const server = await startServer();
  t.after(() => server.stop());
  const dotdoHost = new URL(server.http).host;

  let pageBase = server.http;
  let pageQuery = "";
  if (process.env.DOTDO_PAGE_FROM_SOURCE === "1") {
    const pages = await startPageServer();
    t.after(() => pages.close());
    pageBase = pages.http;
    pageQuery = `&server=${encodeURIComponent(dotdoHost)}`;
  }

  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  t.after(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });

  // What the page did, for failure messages; and no request may leave the two servers.
  const problems = [];
  page.on("console", (m) => m.type() === "error" && problems.push(`console: ${m.text()}`));
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  const foreign = [];
  const allowed = new Set([new URL(pageBase).host, dotdoHost]);
  page.on("request", (r) => {
    const u = new URL(r.url());
    if (u.protocol !== "data:" && !allowed.has(u.host)) foreign.push(r.url());
  });
  const context = () => (problems.length ? `\npage said:\n  ${problems.join("\n  ")}` : "");

  const name = `run-${process.pid}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
  const response = await page.goto(`${pageBase}/?name=${name}${pageQuery}`);
  assert.equal(response.status(), 200);
  assert.ok(
    (await page.locator("#status").count()) === 1,
    `${pageBase}/ has no #status: is it the placeholder page? Rebuild the server ` +
      "(cargo build -p examples --example js_server) or set DOTDO_PAGE_FROM_SOURCE=1",
  );

  // Connected, and showing the object named in the URL.
  const status = page.locator("#status");
  await status.and(page.locator('[data-state="connected"]')).waitFor({ timeout: WAIT_MS }).catch((e) => {
    throw new Error(`the page did not connect: ${e.message}${context()}`);
  });
  assert.match(await status.textContent(), /connected/);
  assert.equal(await page.inputValue("#class"), "Thing");
  assert.equal(await page.inputValue("#name"), name);
  assert.equal(await page.locator("#things li[data-id]").count(), 0, "a fresh object has no Things");

  // Another session, from Node, on the same object.
  const api = newWebSocketRpcSession(wsUrl(server.http));
  t.after(() => api[Symbol.dispose]());
  const storage = api.object("Thing", name).storage();

  // 1. Created through the page's form: appears in the list.
  const fromPage = `written in the browser ${Math.random().toString(36).slice(2)}`;
  await page.fill("#create-type", "Note");
  await page.fill("#create-data", JSON.stringify({ text: fromPage, stars: 5 }));
  await page.click("#create-button");
  const pageItem = page.locator("#things li[data-id]", { hasText: fromPage });
  await pageItem.waitFor({ timeout: WAIT_MS }).catch((e) => {
    throw new Error(`the Thing created through the form is not listed: ${e.message}${context()}`);
  });
  const pageId = await pageItem.getAttribute("data-id");
  const stored = (await storage.query({ limit: 100 })).things;
  assert.equal(stored.length, 1);
  assert.equal(stored[0].id, pageId);
  assert.equal(stored[0].type, "Note");
  assert.deepEqual(stored[0].data, { text: fromPage, stars: 5 });
  assert.match(await pageItem.innerText(), /Note/);
  assert.match(await pageItem.innerText(), /"stars": 5/);

  // 2. Created from Node: appears with no page interaction (the events subscription).
  const fromNode = `written from Node ${Math.random().toString(36).slice(2)}`;
  const thing = await storage.create({ type: "Customer", data: { name: "Ada Lovelace", note: fromNode } });
  const nodeItem = page.locator(`#things li[data-id="${thing.id}"]`);
  await nodeItem.waitFor({ timeout: WAIT_MS }).catch((e) => {
    throw new Error(`the Thing created from Node did not show up live: ${e.message}${context()}`);
  });
  const nodeText = await nodeItem.innerText();
  assert.ok(nodeText.includes(fromNode), nodeText);
  assert.ok(nodeText.includes("Ada Lovelace"), nodeText);
  assert.ok(nodeText.includes("Customer"), nodeText);
  assert.equal(await page.locator("#things li[data-id]").count(), 2);

  // 3. Updated from Node: the page shows the merged data.
  await storage.update({ id: thing.id, patch: { born: 1815 } });
  await page.locator(`#things li[data-id="${thing.id}"]`, { hasText: '"born": 1815' }).waitFor({ timeout: WAIT_MS });
  assert.ok((await nodeItem.innerText()).includes(fromNode), "the merge patch kept the other fields");

  // 4. A server error is shown with its code.
  await page.fill("#create-type", "not an identifier");
  await page.fill("#create-data", "{}");
  await page.click("#create-button");
  const error = page.locator("#error");
  await error.waitFor({ state: "visible", timeout: WAIT_MS });
  assert.match(await error.innerText(), /INVALID_ARGUMENT/);
  await page.click("#error-close");
  await error.waitFor({ state: "hidden", timeout: WAIT_MS });
  await page.fill("#create-type", "Note");
  await page.fill("#create-data", '{ "text": "Hello from the browser" }');

  // 5. Edited through the page: it sends a merge patch of the changes (a removed key too).
  await nodeItem.getByRole("button", { name: "Edit" }).click();
  const edited = { name: "Ada Lovelace", born: 1815, known: "the first program" }; // "note" removed
  await nodeItem.locator("textarea").fill(JSON.stringify(edited, null, 2));
  await nodeItem.getByRole("button", { name: "Save" }).click();
  await page.locator(`#things li[data-id="${thing.id}"]`, { hasText: "the first program" }).waitFor({ timeout: WAIT_MS });
  assert.equal(await nodeItem.locator("textarea").count(), 0, "the edit form closed");
  const afterEdit = (await storage.query({ limit: 100 })).things.find((x) => x.id === thing.id);
  assert.deepEqual(afterEdit.data, edited);
  assert.equal(afterEdit.version, 3);

  // 6. Deleted through the page (the button asks for a second click).
  const doomed = await storage.create({ type: "Temp", data: { n: 1 } });
  const doomedItem = page.locator(`#things li[data-id="${doomed.id}"]`);
  await doomedItem.waitFor({ timeout: WAIT_MS });
  await doomedItem.getByRole("button", { name: "Delete" }).click();
  await doomedItem.getByRole("button", { name: "Sure?" }).click();
  await doomedItem.waitFor({ state: "detached", timeout: WAIT_MS });
  assert.deepEqual(
    (await storage.query({ limit: 100 })).things.map((x) => x.id).sort(),
    [pageId, thing.id].sort(),
  );
  assert.equal(await page.locator("#things li[data-id]").count(), 2);

  assert.deepEqual(foreign, [], "the page requested only its own server");
  assert.deepEqual(problems, [], "the page logged no errors");

  await page.mouse.move(0, 0); // no hover effects in the picture
  mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
  await page.screenshot({ path: SCREENSHOT, fullPage: true, animations: "disabled" });
  t.diagnostic(`screenshot: ${path.relative(repoRoot, SCREENSHOT)}`);
});
