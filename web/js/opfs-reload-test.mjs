// Real-browser test: headless Chromium loads the example page (web/examples/page, built
// with its pkg/), writes entries through the cache in its dedicated worker (OPFS,
// opfs-sahpool VFS), reloads the page, and reads them back.
//
//   node web/js/opfs-reload-test.mjs [page dir] [chromium binary]
//
// Chromium is driven over the DevTools protocol on a pipe (--remote-debugging-pipe), so
// nothing but node and the browser is needed. Exit status 0 on success.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { serve } from "./serve.mjs";

const here = fileURLToPath(new URL(".", import.meta.url));
const pageDir = process.argv[2] ?? join(here, "../examples/page");
const browser = process.argv[3] ?? process.env.CHROMIUM ?? "/usr/bin/chromium";
// A deadline for the whole run, so a hung browser fails the test instead of blocking CI.
const DEADLINE_MS = 120_000;

function fail(msg) {
  console.error(`opfs-reload-test: FAIL: ${msg}`);
  process.exitCode = 1;
  throw new Error(msg);
}

function check(cond, msg) {
  if (!cond) fail(msg);
}

/** A DevTools protocol client over Chromium's pipe (fd 3: commands, fd 4: replies). */
function devtools(proc) {
  const toBrowser = proc.stdio[3];
  const fromBrowser = proc.stdio[4];
  let next = 1;
  const calls = new Map();
  const waiters = [];
  let buf = Buffer.alloc(0);
  fromBrowser.on("data", (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    let end;
    while ((end = buf.indexOf(0)) >= 0) {
      const msg = JSON.parse(buf.subarray(0, end).toString("utf8"));
      buf = buf.subarray(end + 1);
      if (msg.id !== undefined) {
        const c = calls.get(msg.id);
        calls.delete(msg.id);
        if (msg.error) c?.reject(new Error(`${c.method}: ${msg.error.message}`));
        else c?.resolve(msg.result);
      } else {
        for (const w of [...waiters]) {
          if (w.method === msg.method && w.sessionId === msg.sessionId) {
            waiters.splice(waiters.indexOf(w), 1);
            w.resolve(msg.params);
          }
        }
      }
    }
  });
  return {
    send(method, params = {}, sessionId) {
      const id = next++;
      toBrowser.write(JSON.stringify({ id, method, params, sessionId }) + "\0");
      return new Promise((resolve, reject) => calls.set(id, { resolve, reject, method }));
    },
    event(method, sessionId) {
      return new Promise((resolve) => waiters.push({ method, sessionId, resolve }));
    },
  };
}

const profile = mkdtempSync(join(tmpdir(), "sciqlop-chromium-"));
const server = await serve(pageDir);
const chrome = spawn(
  browser,
  [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    `--user-data-dir=${profile}`,
    "--remote-debugging-pipe",
    "about:blank",
  ],
  { stdio: ["ignore", "ignore", "pipe", "pipe", "pipe"] },
);
let stderr = "";
chrome.stderr.on("data", (d) => (stderr += d));
const timer = setTimeout(() => {
  console.error(`opfs-reload-test: FAIL: no result after ${DEADLINE_MS} ms\n${stderr}`);
  chrome.kill("SIGKILL");
  process.exit(1);
}, DEADLINE_MS);

try {
  const cdp = devtools(chrome);
  const { targetId } = await cdp.send("Target.createTarget", { url: "about:blank" });
  const { sessionId } = await cdp.send("Target.attachToTarget", { targetId, flatten: true });
  await cdp.send("Page.enable", {}, sessionId);
  await cdp.send("Runtime.enable", {}, sessionId);

  /** Evaluates `expr` (awaiting promises) in the page; returns its JSON value. */
  async function evaluate(expr) {
    const r = await cdp.send(
      "Runtime.evaluate",
      { expression: expr, awaitPromise: true, returnByValue: true },
      sessionId,
    );
    if (r.exceptionDetails) {
      fail(`${expr}: ${r.exceptionDetails.exception?.description ?? r.exceptionDetails.text}`);
    }
    return r.result.value;
  }

  /** Loads (or reloads) the page and waits until its cache is open. */
  async function load(how) {
    const loaded = cdp.event("Page.loadEventFired", sessionId);
    if (how === "reload") await cdp.send("Page.reload", { ignoreCache: true }, sessionId);
    else await cdp.send("Page.navigate", { url: server.url + "index.html" }, sessionId);
    await loaded;
    return evaluate(`(async () => {
      while (!window.cacheReady) await new Promise((r) => setTimeout(r, 20));
      return await window.cacheReady;
    })()`);
  }

  const first = await load("navigate");
  check(first.visits === 1, `first visit counted as ${first.visits}`);
  const info = await evaluate(`cache.call("ready")`);
  check(info.persistent === true, "the page's cache is not persistent");

  // Write: strings with tags and expiry, bytes, a counter.
  const N = 50;
  await evaluate(`(async () => {
    for (let i = 0; i < ${N}; i++)
      await cache.call("set", "entry/" + i, "value " + i, { tag: i % 2 ? "odd" : "even" });
    await cache.call("set", "bytes", new Uint8Array([0, 1, 2, 250, 255]));
    await cache.call("set", "short-lived", "x", { expireMs: 0 });
    await cache.call("set", "long-lived", "y", { expireMs: 3600e3 });
    await cache.call("incr", "counter", 40);
  })()`);
  check((await evaluate(`cache.call("evictTag", "odd")`)) === N / 2, "evictTag odd");

  // Reload: a new page, a new worker, the same OPFS storage.
  const second = await load("reload");
  check(second.visits === 2, `visits after reload: ${second.visits} (expected 2)`);
  const back = await evaluate(`(async () => {
    const out = { entries: [] };
    for (let i = 0; i < ${N}; i++) out.entries.push((await cache.call("getString", "entry/" + i)) ?? null);
    out.bytes = Array.from(await cache.call("get", "bytes"));
    out.shortLived = (await cache.call("get", "short-lived")) ?? null;
    out.longLived = await cache.call("getString", "long-lived");
    out.counter = await cache.call("incr", "counter", 2);
    out.stats = await cache.call("stats");
    out.visitsText = document.getElementById("visits").textContent;
    return out;
  })()`);
  for (let i = 0; i < N; i++) {
    const want = i % 2 ? null : `value ${i}`;
    check(back.entries[i] === want, `entry/${i} after reload: ${back.entries[i]} (expected ${want})`);
  }
  check(JSON.stringify(back.bytes) === "[0,1,2,250,255]", `bytes after reload: ${back.bytes}`);
  check(back.shortLived === null, "an expired entry came back");
  check(back.longLived === "y", `long-lived after reload: ${back.longLived}`);
  check(back.counter === 42, `counter after reload: ${back.counter} (expected 42)`);
  // even entries, bytes, long-lived, counter, visits
  check(back.stats.count === N / 2 + 4, `count after reload: ${back.stats.count}`);
  check(back.visitsText === "2", `the page shows ${back.visitsText} visits`);
  console.log(
    `opfs-reload-test: ok (${N / 2 + 4} entries survived a reload in ${browser}; visits ${first.visits} -> ${second.visits})`,
  );
} catch (e) {
  if (!process.exitCode) console.error(`opfs-reload-test: FAIL: ${e.stack ?? e}`);
  process.exitCode = 1;
  if (stderr.trim()) console.error(`--- chromium stderr ---\n${stderr}`);
} finally {
  clearTimeout(timer);
  server.close();
  chrome.kill();
  await new Promise((r) => chrome.once("exit", r));
  // Chromium's helper processes may still be writing into the profile after the main
  // process exits: retry, and never fail the test over the clean-up of a temp folder.
  try {
    rmSync(profile, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 });
  } catch (e) {
    console.warn(`opfs-reload-test: could not remove ${profile}: ${e.message}`);
  }
}
