"""Turns the Python benchmark's results.csv into table.md and PNG charts.

    python report.py results.csv OUT_DIR
"""

from __future__ import annotations

import csv
import sys
from collections import defaultdict
from pathlib import Path

IMPLS = ["ours", "original", "diskcache", "diskcache-rs"]
NAMES = {"ours": "sciqlop-cache (ours)", "original": "pysciqlop-cache 0.3.6", "diskcache": "diskcache 5.6.3",
         "diskcache-rs": "diskcache-rs 0.4.10"}
# (label, workload, op, entries, value size)
HEADLINE = [
    ("100 B set (1e3 entries)", "scaling", "set", 1000, 100),
    ("100 B get (1e3 entries)", "scaling", "get", 1000, 100),
    ("100 B get miss (1e3 entries)", "scaling", "get-miss", 1000, 100),
    ("100 B set (1e6 entries)", "scaling", "set", 1_000_000, 100),
    ("100 B get (1e6 entries)", "scaling", "get", 1_000_000, 100),
    ("100 B get miss (1e6 entries)", "scaling", "get-miss", 1_000_000, 100),
    ("batched set (1000 per transaction)", "batched", "batched-set", 1000, 100),
    ("16 KiB set", "valuesize", "set", 0, 16384),
    ("16 KiB get", "valuesize", "get", 0, 16384),
    ("1 MiB set", "valuesize", "set", 0, 1 << 20),
    ("1 MiB get", "valuesize", "get", 0, 1 << 20),
    ("set, 4 processes", "processes", "set (4 procs)", 4, 100),
    ("get, 4 processes", "processes", "get (4 procs)", 4, 100),
]
# The targets: original mean / our mean.
TARGETS = {
    "100 B set (1e3 entries)": 1.8,
    "100 B get (1e3 entries)": 1.8,
    "batched set (1000 per transaction)": 1.5,
    "16 KiB set": 2.0,
    "1 MiB set": 2.5,
    "1 MiB get": 1.5,
}


def fmt(x: float) -> str:
    return f"{x:.3g}" if x < 100 else f"{x:.0f}"


def main() -> None:
    src, out = Path(sys.argv[1]), Path(sys.argv[2])
    rows = list(csv.DictReader(src.open()))
    data = {}
    for r in rows:
        data[(r["impl"], r["workload"], r["op"], int(r["entries"]), int(r["value_size"]))] = r
    lines = []
    machine = out / "machine.md"
    if machine.exists():
        lines += ["Machine and run:", "", machine.read_text().strip(), ""]
    lines += ["Mean / p50 / p99 µs per operation (lower is better):", "",
              "| workload | " + " | ".join(NAMES[i] for i in IMPLS) + " |",
              "|---|" + "---:|" * len(IMPLS)]
    for label, *k in HEADLINE:
        cells = []
        for impl in IMPLS:
            r = data.get((impl, *k))
            cells.append("n/a" if r is None else
                         f"{fmt(float(r['mean_us']))} / {fmt(float(r['p50_us']))} / {fmt(float(r['p99_us']))}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    extra = data.get(("ours", "batched", "batched-set (set_many)", 1000, 100))
    if extra:
        lines += ["", f"Ours with `set_many` (1000 entries per call): {fmt(float(extra['mean_us']))} µs per entry."]
    lines += ["", "Speed-up of ours (ratio of means; > 1: ours is faster):", "",
              "| workload | vs original | target | met | vs diskcache | vs diskcache-rs |", "|---|---:|---:|:---:|---:|---:|"]
    for label, *k in HEADLINE:
        o = data.get(("ours", *k))
        if o is None:
            continue
        om = float(o["mean_us"])
        ratio = {i: (float(data[(i, *k)]["mean_us"]) / om if (i, *k) in data else None) for i in IMPLS[1:]}
        t = TARGETS.get(label)
        met = "" if t is None or ratio["original"] is None else ("yes" if ratio["original"] >= t else "**no**")
        cell = lambda v: "n/a" if v is None else f"{v:.2f}"  # noqa: E731
        lines.append(f"| {label} | {cell(ratio['original'])} | {'' if t is None else t} | {met} | "
                     f"{cell(ratio['diskcache'])} | {cell(ratio['diskcache-rs'])} |")
    (out / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    charts(data, out)


def charts(data, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    for ax, op in zip(axes, ["set", "get", "get-miss"]):
        for impl in IMPLS:
            pts = sorted((k[3], float(r["p50_us"])) for k, r in data.items()
                         if k[0] == impl and k[1] == "scaling" and k[2] == op)
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=NAMES[impl])
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"100 B {op}: p50 µs vs entries")
        ax.set_xlabel("entries")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(out / "scaling.png", dpi=110)
    fig, ax = plt.subplots(figsize=(11, 4.5))
    labels = [h[0] for h in HEADLINE if h[1] != "scaling" or h[3] == 1000]
    keys = [tuple(h[1:]) for h in HEADLINE if h[1] != "scaling" or h[3] == 1000]
    width = 0.2
    for j, impl in enumerate(IMPLS):
        ys = [float(data[(impl, *k)]["mean_us"]) if (impl, *k) in data else 0 for k in keys]
        ax.bar([i + (j - 1.5) * width for i in range(len(keys))], ys, width, label=NAMES[impl])
    ax.set_yscale("log")
    ax.set_xticks(range(len(keys)))
    ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("mean µs per op (log)")
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "workloads.png", dpi=110)


if __name__ == "__main__":
    main()
