// The page side: talks to the cache in worker.js with messages.
// `window.cache.call(op, ...args)` returns a Promise of the worker's answer (used by the
// headless browser test too); `window.cacheReady` resolves once the cache is open and this
// visit is counted, with `{ visits }`.

// `?name=x` on the page opens the cache "x" (default "demo").
const workerUrl = new URL("./worker.js", import.meta.url);
workerUrl.search = location.search;
const worker = new Worker(workerUrl, { type: "module" });
const pending = new Map();
let next = 0;

worker.onmessage = ({ data }) => {
  const p = pending.get(data.id);
  if (!p) return;
  pending.delete(data.id);
  if ("error" in data) p.reject(new Error(data.error));
  else p.resolve(data.value);
};

function call(op, ...args) {
  const id = next++;
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve, reject });
    worker.postMessage({ id, op, args });
  });
}

window.cache = { call };

const $ = (id) => document.getElementById(id);

// A value as text when it is UTF-8, else as its bytes.
function show(bytes) {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return `bytes [${Array.from(bytes).join(", ")}]`;
  }
}

async function render() {
  const keys = await call("keys");
  const rows = [];
  for (const k of keys) {
    const v = await call("get", k);
    const tr = document.createElement("tr");
    for (const text of [k, v === undefined ? "(expired)" : show(v)]) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.append(td);
    }
    rows.push(tr);
  }
  $("entries").replaceChildren(...rows);
  const s = await call("stats");
  $("stats").textContent = `${s.count} entries, ${s.size} bytes; this visit: ${s.hits} hits, ${s.misses} misses`;
}

window.cacheReady = (async () => {
  const info = await call("ready");
  const visits = await call("incr", "visits");
  $("visits").textContent = String(visits);
  $("status").textContent = `open: cache "${info.name}" (${info.persistent ? "OPFS, persistent" : "memory"})`;
  await render();
  return { visits };
})();
window.cacheReady.catch((e) => {
  $("status").textContent = `error: ${e.message}`;
  $("status").className = "error";
});

$("set").onsubmit = async (ev) => {
  ev.preventDefault();
  const opts = {};
  if ($("tag").value) opts.tag = $("tag").value;
  if ($("ttl").value) opts.expireMs = Number($("ttl").value) * 1000;
  await call("set", $("key").value, $("value").value, opts);
  await render();
};
$("evict").onclick = async () => {
  await call("evictTag", $("tag").value);
  await render();
};
$("clear").onclick = async () => {
  await call("clear");
  await render();
};
