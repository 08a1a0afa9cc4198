// The cache lives here: OPFS sync access handles (the opfs-sahpool VFS) exist only in
// dedicated workers. Messages: { id, op, args } -> { id, value } or { id, error }.
import init, { WebCache } from "./pkg/sciqlop_cache_web.js";

const NAME = new URL(self.location.href).searchParams.get("name") ?? "demo";

// A previous page's worker may still hold the OPFS handles for a moment after a reload:
// retry opening for a while before giving up.
async function openCache() {
  await init();
  let delay = 50;
  for (let attempt = 0; ; attempt++) {
    try {
      return await WebCache.open(NAME, { persistent: true, maxSize: 50 * 1024 * 1024 });
    } catch (e) {
      if (attempt >= 40) throw e;
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 500);
    }
  }
}

const opening = openCache();

const ops = {
  ready: (c) => ({ name: c.name, persistent: c.persistent }),
  get: (c, k) => c.get(k),
  getString: (c, k) => c.getString(k),
  set: (c, k, v, o) => c.set(k, v, o),
  delete: (c, k) => c.delete(k),
  contains: (c, k) => c.contains(k),
  incr: (c, k, d, i) => c.incr(k, d, i),
  evictTag: (c, t) => c.evictTag(t),
  stats: (c) => c.stats(),
  len: (c) => c.len(),
  keys: (c, p) => c.keys(p),
  clear: (c) => c.clear(),
  maintain: (c) => c.maintain(),
};

self.onmessage = async ({ data: { id, op, args } }) => {
  try {
    const cache = await opening;
    const f = ops[op];
    if (!f) throw new Error(`unknown op ${op}`);
    self.postMessage({ id, value: f(cache, ...(args ?? [])) });
  } catch (e) {
    self.postMessage({ id, error: String(e?.message ?? e) });
  }
};
