// Node side of the node-vs-native comparison: the workload of web/src/bench.rs in wasm.
//   node web/js/bench.mjs <dir of `wasm-bindgen --target nodejs` output> [n]
import { createRequire } from "node:module";
import { resolve } from "node:path";

const [dir, n = "20000"] = process.argv.slice(2);
const require = createRequire(import.meta.url);
const { benchSetGet } = require(resolve(dir, "sciqlop_cache_web.js"));
benchSetGet(1000); // warm-up: JIT the wasm
const r = benchSetGet(Number(n));
console.log(
  `node (wasm, memory VFS): n=${r.n} value=100B set ${r.setUs.toFixed(2)} us/op, get ${r.getUs.toFixed(2)} us/op`,
);
