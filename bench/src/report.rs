//! From the CSV files of a run: the merged CSV, PNG charts and a markdown table.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use plotters::prelude::*;

use crate::plugin::{GUEST, NATIVE};
use crate::stats::{HEADER, Row, read_csv};

/// Report order of implementations (others follow alphabetically).
const ORDER: &[&str] = &[
    "sciqlop-cache",
    "sciqlop-index",
    "sciqlop-fanout",
    "rusqlite-raw",
    "cacache",
    "diskcache",
    "diskcache-fanout",
    GUEST,
    NATIVE,
];

/// diskcache figures of the issue, measured earlier on this machine (µs).
const ISSUE_DISKCACHE: &[(&str, f64)] = &[
    ("set", 72.0),
    ("get", 7.0),
    ("batched set", 24.0),
    ("1 MiB set", 1996.0),
    ("1 MiB get", 157.0),
];

fn rank(imp: &str) -> (usize, String) {
    (
        ORDER.iter().position(|&o| o == imp).unwrap_or(ORDER.len()),
        imp.to_owned(),
    )
}

fn color(imp: &str) -> RGBColor {
    match imp {
        "sciqlop-cache" => RGBColor(31, 119, 180),
        "sciqlop-index" => RGBColor(44, 160, 44),
        "sciqlop-fanout" => RGBColor(148, 103, 189),
        "rusqlite-raw" => RGBColor(90, 90, 90),
        "cacache" => RGBColor(255, 127, 14),
        "diskcache" => RGBColor(214, 39, 40),
        "diskcache-fanout" => RGBColor(227, 119, 194),
        _ => RGBColor(23, 190, 207),
    }
}

/// All rows of a run, indexed.
pub struct Results {
    pub rows: Vec<Row>,
}

impl Results {
    /// Reads every `*.csv` under `raw`.
    pub fn load(raw: &Path) -> Result<Results> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(raw)
            .with_context(|| format!("reading {}", raw.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "csv"))
            .collect();
        files.sort();
        let mut rows = Vec::new();
        for f in &files {
            rows.extend(read_csv(f)?);
        }
        rows.sort_by(|a, b| {
            (&a.workload, rank(&a.imp), &a.op, a.param).cmp(&(
                &b.workload,
                rank(&b.imp),
                &b.op,
                b.param,
            ))
        });
        Ok(Results { rows })
    }

    pub fn impls(&self) -> Vec<String> {
        let mut v: Vec<String> = self.rows.iter().map(|r| r.imp.clone()).collect();
        v.sort_by_key(|i| rank(i));
        v.dedup();
        v
    }

    fn find(&self, imp: &str, workload: &str, param: u64, op: &str) -> Option<&Row> {
        self.rows
            .iter()
            .find(|r| r.imp == imp && r.workload == workload && r.param == param && r.op == op)
    }

    fn params(&self, workload: &str) -> Vec<u64> {
        let mut v: Vec<u64> = self
            .rows
            .iter()
            .filter(|r| r.workload == workload)
            .map(|r| r.param)
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// (param, value) points of one implementation's series.
    fn series(
        &self,
        imp: &str,
        workload: &str,
        op: &str,
        value: impl Fn(&Row) -> Option<f64>,
    ) -> Vec<(f64, f64)> {
        self.rows
            .iter()
            .filter(|r| r.imp == imp && r.workload == workload && r.op == op)
            .filter_map(|r| value(r).map(|v| (r.param as f64, v)))
            .filter(|&(_, v)| v.is_finite() && v > 0.0)
            .collect()
    }
}

fn mean(r: &Row) -> Option<f64> {
    r.stats.map(|s| s.mean)
}

fn p50(r: &Row) -> Option<f64> {
    r.stats.map(|s| s.p50)
}

/// Writes results.csv, the PNG charts and table.md into `out`.
pub fn report(out: &Path) -> Result<()> {
    let res = Results::load(&out.join("raw"))?;
    let mut csv = String::from(HEADER);
    csv.push('\n');
    for r in &res.rows {
        csv.push_str(&r.to_csv());
        csv.push('\n');
    }
    std::fs::write(out.join("results.csv"), csv)?;
    match load_font() {
        Ok(font) => {
            eprintln!("font: {}", font.display());
            charts(&res, out)?;
        }
        Err(e) => eprintln!("warning: no charts: {e:#}"),
    }
    let machine = std::fs::read_to_string(out.join("machine.txt")).unwrap_or_default();
    std::fs::write(out.join("table.md"), table(&res, &machine))?;
    eprintln!(
        "wrote {0}/results.csv, {0}/table.md and charts",
        out.display()
    );
    Ok(())
}

/// Registers a TTF font with plotters' ab_glyph backend (no system font library needed
/// at build time). `SQBENCH_FONT` overrides the search.
fn load_font() -> Result<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::env::var_os("SQBENCH_FONT")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    candidates.extend(
        [
            "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
            "/usr/share/fonts/dejavu/DejaVuSans.ttf",
            "/usr/share/fonts/TTF/DejaVuSans.ttf",
            "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
            "/Library/Fonts/Arial.ttf",
            "C:\\Windows\\Fonts\\arial.ttf",
        ]
        .map(PathBuf::from),
    );
    for path in candidates {
        if let Ok(bytes) = std::fs::read(&path) {
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
                .map_err(|_| anyhow!("{} is not a usable TTF font", path.display()))?;
            return Ok(path);
        }
    }
    Err(anyhow!(
        "no TTF font found: install fonts-dejavu-core or set SQBENCH_FONT to a .ttf file"
    ))
}

struct Panel {
    title: String,
    x_label: &'static str,
    y_label: &'static str,
    x_bytes: bool,
    series: Vec<(String, Vec<(f64, f64)>)>,
}

fn human(x: f64, bytes: bool) -> String {
    let (k, units): (f64, [&str; 4]) = if bytes {
        (1024.0, ["B", "KiB", "MiB", "GiB"])
    } else {
        (1000.0, ["", "k", "M", "G"])
    };
    let mut x = x;
    let mut u = 0;
    while x >= k && u < 3 {
        x /= k;
        u += 1;
    }
    let num = if x >= 10.0 || (x - x.round()).abs() < 1e-9 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    };
    if bytes {
        format!("{num} {}", units[u])
    } else {
        format!("{num}{}", units[u])
    }
}

fn plot(path: &Path, title: &str, cols: usize, panels: Vec<Panel>) -> Result<()> {
    let panels: Vec<Panel> = panels
        .into_iter()
        .filter(|p| p.series.iter().any(|(_, s)| !s.is_empty()))
        .collect();
    if panels.is_empty() {
        return Ok(());
    }
    let cols = cols.min(panels.len()).max(1);
    let rows = panels.len().div_ceil(cols);
    let size = (650 * cols as u32, 480 * rows as u32 + 50);
    let e = |e: &dyn std::fmt::Display| anyhow!("drawing {}: {e}", path.display());
    let root = BitMapBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let root = root.titled(title, ("sans-serif", 26)).map_err(|x| e(&x))?;
    let areas = root.split_evenly((rows, cols));
    for (area, p) in areas.iter().zip(&panels) {
        let pts = p.series.iter().flat_map(|(_, s)| s.iter());
        let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for &(x, y) in pts {
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
        let (x0, x1) = (x0 / 1.5, x1 * 1.5);
        let (y0, y1) = (y0 / 1.6, y1 * 2.5);
        let mut ch = ChartBuilder::on(area)
            .caption(&p.title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(70)
            .build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())
            .map_err(|x| e(&x))?;
        let xb = p.x_bytes;
        ch.configure_mesh()
            .x_desc(p.x_label)
            .y_desc(p.y_label)
            .light_line_style(RGBColor(238, 238, 238))
            .x_labels(8)
            .y_labels(8)
            // Decimal units on the axis: ticks fall on powers of ten.
            .x_label_formatter(&|x| {
                let h = human(*x, false);
                if xb { format!("{h}B") } else { h }
            })
            .y_label_formatter(&|y| {
                if *y >= 100.0 {
                    format!("{y:.0}")
                } else if *y >= 1.0 {
                    format!("{y:.1}")
                } else {
                    format!("{y:.2}")
                }
            })
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(|x| e(&x))?;
        for (name, s) in &p.series {
            if s.is_empty() {
                continue;
            }
            let c = color(name);
            ch.draw_series(LineSeries::new(s.iter().copied(), c.stroke_width(2)))
                .map_err(|x| e(&x))?
                .label(name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(3))
                });
            ch.draw_series(s.iter().map(|&pt| Circle::new(pt, 3, c.filled())))
                .map_err(|x| e(&x))?;
        }
        ch.configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(|x| e(&x))?;
    }
    root.present().map_err(|x| e(&x))?;
    Ok(())
}

fn charts(res: &Results, out: &Path) -> Result<()> {
    let impls = res.impls();
    let series = |workload: &str, op: &str, f: &dyn Fn(&Row) -> Option<f64>| {
        impls
            .iter()
            .map(|i| (i.clone(), res.series(i, workload, op, f)))
            .collect::<Vec<_>>()
    };
    let scaling = ["set", "get-hit", "get-miss", "delete"]
        .iter()
        .map(|op| Panel {
            title: format!("{op}: p50 latency vs entries"),
            x_label: "entries in the store",
            y_label: "p50 µs/op",
            x_bytes: false,
            series: series("scaling", op, &p50),
        })
        .collect();
    plot(
        &out.join("scaling.png"),
        "Latency vs store size (100 B values, log-log)",
        2,
        scaling,
    )?;
    plot(
        &out.join("batch.png"),
        "Batched writes: amortized cost per set (100 B values)",
        1,
        vec![Panel {
            title: "mean µs per set vs sets per transaction".into(),
            x_label: "sets per transaction",
            y_label: "µs/op (amortized)",
            x_bytes: false,
            series: series("batch", "batch-set", &mean),
        }],
    )?;
    let vs = ["set", "get"]
        .iter()
        .flat_map(|op| {
            [
                Panel {
                    title: format!("{op}: mean latency vs value size"),
                    x_label: "value size",
                    y_label: "mean µs/op",
                    x_bytes: true,
                    series: series("valuesize", op, &mean),
                },
                Panel {
                    title: format!("{op}: throughput vs value size"),
                    x_label: "value size",
                    y_label: "MB/s",
                    x_bytes: true,
                    series: series("valuesize", op, &|r: &Row| r.mb_per_s),
                },
            ]
        })
        .collect();
    plot(&out.join("valuesize.png"), "Value size", 2, vs)?;
    let kops = |r: &Row| r.mb_per_s.map(|m| m * 1e6 / 100.0 / 1e3);
    let conc = ["threads", "procs"]
        .iter()
        .flat_map(|kind| {
            ["set", "get"].map(|op| Panel {
                title: format!("{op}, {kind}: aggregate throughput"),
                x_label: if *kind == "threads" {
                    "threads"
                } else {
                    "processes"
                },
                y_label: "k ops/s (all workers)",
                x_bytes: false,
                series: series(&format!("concurrency-{kind}"), op, &kops),
            })
        })
        .collect();
    plot(
        &out.join("concurrency.png"),
        "Concurrency: Cache vs FanoutCache (100 B values)",
        2,
        conc,
    )?;
    Ok(())
}

fn fmt_us(v: Option<f64>) -> String {
    match v {
        None => "n/a".into(),
        Some(v) if v >= 100.0 => format!("{v:.0}"),
        Some(v) if v >= 10.0 => format!("{v:.1}"),
        Some(v) => format!("{v:.2}"),
    }
}

/// The headline figures: (label, per-implementation value).
/// Headline lines: a label and the mean of each implementation.
type Lines = Vec<(String, BTreeMap<String, (f64, f64)>)>;

fn headline(res: &Results) -> (u64, u64, Lines) {
    let sizes = res.params("scaling");
    let at = if sizes.contains(&1000) {
        1000
    } else {
        sizes.first().copied().unwrap_or(0)
    };
    let batches = res.params("batch");
    let batch = batches
        .iter()
        .copied()
        .filter(|&b| b <= 1000)
        .max()
        .unwrap_or(0);
    let mib = 1 << 20;
    let specs: Vec<(String, &str, u64, &str)> = vec![
        ("set".into(), "scaling", at, "set"),
        ("get".into(), "scaling", at, "get-hit"),
        ("get (miss)".into(), "scaling", at, "get-miss"),
        ("delete".into(), "scaling", at, "delete"),
        ("batched set".into(), "batch", batch, "batch-set"),
        ("1 MiB set".into(), "valuesize", mib, "set"),
        ("1 MiB get".into(), "valuesize", mib, "get"),
    ];
    let lines = specs
        .into_iter()
        .map(|(label, w, p, op)| {
            let m = res
                .impls()
                .into_iter()
                .filter_map(|i| {
                    let s = res.find(&i, w, p, op)?.stats?;
                    Some((i, (s.mean, s.p50)))
                })
                .collect();
            (label, m)
        })
        .collect();
    (at, batch, lines)
}

fn table(res: &Results, machine: &str) -> String {
    let impls = res.impls();
    let mut md = String::from("# sciqlop-cache benchmarks\n\n");
    if !machine.trim().is_empty() {
        md.push_str("Machine and run:\n\n");
        for l in machine.lines().filter(|l| !l.trim().is_empty()) {
            let _ = writeln!(md, "- {l}");
        }
        md.push('\n');
    }
    let (at, batch, lines) = headline(res);
    // Implementations without any headline figure (e.g. only in the concurrency runs).
    let head: Vec<&String> = impls
        .iter()
        .filter(|i| lines.iter().any(|(_, m)| m.contains_key(*i)))
        .collect();
    // Headline and targets are dropped below when no row has a headline figure (a run
    // of the plugin or concurrency workload alone).
    let before_headline = md.len();
    let _ = writeln!(
        md,
        "## Headline: mean µs per operation (100 B values, store of {at} entries; \
         batched = {batch} sets per transaction)\n"
    );
    let names: Vec<&str> = head.iter().map(|s| s.as_str()).collect();
    let _ = writeln!(md, "| op | {} |", names.join(" | "));
    let _ = writeln!(md, "|---|{}", "---:|".repeat(head.len()));
    for (label, m) in &lines {
        let cells: Vec<String> = head
            .iter()
            .map(|i| fmt_us(m.get(*i).map(|v| v.0)))
            .collect();
        let _ = writeln!(md, "| {label} | {} |", cells.join(" | "));
    }
    md.push('\n');

    // Targets of the issue: judged on means (as the issue's figures are); the ratio of
    // medians is shown too, being less sensitive to a loaded machine.
    let get = |label: &str, imp: &str| {
        lines
            .iter()
            .find(|(l, _)| l == label)
            .and_then(|(_, m)| m.get(imp).copied())
    };
    let mut targets = String::new();
    let mut target = |what: String, num: Option<(f64, f64)>, den: Option<(f64, f64)>, goal: f64| {
        let (ratio, p50, ok) = match (num, den) {
            (Some(n), Some(d)) if d.0 > 0.0 && d.1 > 0.0 => {
                let r = n.0 / d.0;
                (
                    format!("{r:.2}"),
                    format!("{:.2}", n.1 / d.1),
                    if r <= goal { "yes" } else { "**no**" },
                )
            }
            _ => ("n/a".into(), "n/a".into(), "n/a"),
        };
        let _ = writeln!(targets, "| {what} | {ratio} | {p50} | ≤ {goal:.2} | {ok} |");
    };
    for (label, goal) in [
        ("set", 1.0 / 5.0),
        ("batched set", 1.0 / 12.0),
        ("get", 1.0 / 4.0),
        ("1 MiB set", 1.0 / 4.0),
        ("1 MiB get", 1.0 / 2.0),
    ] {
        target(
            format!("{label}: sciqlop-cache / diskcache"),
            get(label, "sciqlop-cache"),
            get(label, "diskcache"),
            goal,
        );
    }
    for imp in ["sciqlop-cache", "sciqlop-index"] {
        for label in ["set", "get", "get (miss)", "delete", "batched set"] {
            target(
                format!("{label}: {imp} / rusqlite-raw"),
                get(label, imp),
                get(label, "rusqlite-raw"),
                1.3,
            );
        }
    }
    let sizes = res.params("scaling");
    if let (Some(&hi), true) = (sizes.last(), sizes.contains(&1000)) {
        for op in ["set", "get-hit", "get-miss", "delete"] {
            let p = |n| {
                res.find("sciqlop-cache", "scaling", n, op)
                    .and_then(p50)
                    .map(|v| (v, v))
            };
            target(
                format!("{op}: sciqlop-cache p50 at {hi} / p50 at 1000 entries (p50s only)"),
                p(hi),
                p(1000),
                1.3,
            );
        }
    }
    let _ = writeln!(md, "## Targets of the issue\n");
    let _ = writeln!(
        md,
        "| ratio | of means | of p50s | goal | met (means) |\n|---|---:|---:|---:|:---:|"
    );
    md.push_str(&targets);
    md.push('\n');
    let _ = writeln!(
        md,
        "diskcache measured in this run vs the issue's reference figures (µs): {}\n",
        ISSUE_DISKCACHE
            .iter()
            .map(|(l, v)| format!("{l} {} (ref {v})", fmt_us(get(l, "diskcache").map(|m| m.0))))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if head.is_empty() {
        md.truncate(before_headline);
    }

    // Full tables (a section only for the workloads of this run).
    let has = |prefix: &str| res.rows.iter().any(|r| r.workload.starts_with(prefix));
    let detail = |md: &mut String,
                  title: &str,
                  workload: &str,
                  op: &str,
                  param_name: &str,
                  bytes: bool,
                  cell: &dyn Fn(&Row) -> String| {
        let imps: Vec<&String> = impls
            .iter()
            .filter(|i| {
                res.rows
                    .iter()
                    .any(|r| &r.imp == *i && r.workload == workload)
            })
            .collect();
        if imps.is_empty() {
            return;
        }
        let _ = writeln!(md, "### {title}\n");
        let names: Vec<&str> = imps.iter().map(|s| s.as_str()).collect();
        let _ = writeln!(md, "| {param_name} | {} |", names.join(" | "));
        let _ = writeln!(md, "|---:|{}", "---:|".repeat(imps.len()));
        for p in res.params(workload) {
            let cells: Vec<String> = imps
                .iter()
                .map(|i| match res.find(i, workload, p, op) {
                    Some(r) if r.stats.is_some() => cell(r),
                    Some(r) => format!("n/a ({})", r.na_reason.as_deref().unwrap_or("")),
                    None => "".into(),
                })
                .collect();
            let _ = writeln!(md, "| {} | {} |", human(p as f64, bytes), cells.join(" | "));
        }
        md.push('\n');
    };
    let lat = |r: &Row| {
        let s = r.stats.expect("measured");
        format!(
            "{} / {} / {}",
            fmt_us(Some(s.mean)),
            fmt_us(Some(s.p50)),
            fmt_us(Some(s.p99))
        )
    };
    if has("scaling") {
        let _ = writeln!(md, "## Scaling (µs: mean / p50 / p99)\n");
    }
    for op in ["set", "get-hit", "get-miss", "delete"] {
        detail(&mut md, op, "scaling", op, "entries", false, &lat);
    }
    if has("valuesize") {
        let _ = writeln!(md, "## Value size (mean µs, MB/s)\n");
    }
    let vs = |r: &Row| {
        format!(
            "{} µs, {} MB/s",
            fmt_us(r.stats.map(|s| s.mean)),
            fmt_us(r.mb_per_s)
        )
    };
    for op in ["set", "get"] {
        detail(&mut md, op, "valuesize", op, "value", true, &vs);
    }
    if has("batch") {
        let _ = writeln!(
            md,
            "## Batch (amortized µs per set: mean / p50 / p99 over rounds)\n"
        );
    }
    detail(
        &mut md,
        "batch-set",
        "batch",
        "batch-set",
        "batch",
        false,
        &lat,
    );
    if has("concurrency") {
        let _ = writeln!(
            md,
            "## Concurrency (per-op p50 / p99 µs; aggregate k ops/s of all workers)\n"
        );
    }
    let conc = |r: &Row| {
        let s = r.stats.expect("measured");
        format!(
            "{} / {} µs, {} kops/s",
            fmt_us(Some(s.p50)),
            fmt_us(Some(s.p99)),
            fmt_us(r.mb_per_s.map(|m| m * 10.0))
        )
    };
    for kind in ["threads", "procs"] {
        for op in ["set", "get"] {
            detail(
                &mut md,
                &format!("{op}, {kind}"),
                &format!("concurrency-{kind}"),
                op,
                kind,
                false,
                &conc,
            );
        }
    }
    md.push_str(&plugin_section(res));
    md
}

/// `mean / p50 / p99` of a row, or why it is missing.
fn lat_cell(r: Option<&Row>) -> String {
    match r {
        Some(Row { stats: Some(s), .. }) => format!(
            "{} / {} / {}",
            fmt_us(Some(s.mean)),
            fmt_us(Some(s.p50)),
            fmt_us(Some(s.p99))
        ),
        Some(r) => format!("n/a ({})", r.na_reason.as_deref().unwrap_or("")),
        None => String::new(),
    }
}

/// The plugin boundary: a guest's calls through the host against the same calls made
/// natively, then instantiation (empty without plugin rows).
fn plugin_section(res: &Results) -> String {
    let find = |imp: &str, op: &str| {
        res.rows
            .iter()
            .find(|r| r.imp == imp && r.workload == "plugin" && r.op == op)
    };
    if !res.rows.iter().any(|r| r.workload == "plugin") {
        return String::new();
    }
    let mut md = String::from("## Plugin boundary\n\n");
    let _ = writeln!(
        md,
        "A guest (`guest-examples/adversarial`) calling the cache through the wasm host \
         (`{GUEST}`) against the same call made natively on the plugin's own scoped cache \
         (`{NATIVE}`), 100 B values. µs per call: one invocation looping N times minus one \
         looping once (instantiation and the invocation cancel out), thread CPU time when \
         available (see the machine lines above); mean / p50 / p99 over the repetitions' \
         per-call averages (n = repetitions × N calls).\n"
    );
    let _ = writeln!(
        md,
        "| µs per call | {GUEST} | {NATIVE} | guest − native (means) | guest / native (means) |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|");
    for (label, op) in [
        ("get", "get"),
        ("set", "set"),
        ("cheap host call (`stats`)", "host-call"),
    ] {
        let (g, n) = (find(GUEST, op), find(NATIVE, op));
        if g.is_none() && n.is_none() {
            continue;
        }
        let (diff, ratio) = match (g.and_then(mean), n.and_then(mean)) {
            (Some(g), Some(n)) if n > 0.0 => (fmt_us(Some(g - n)), format!("{:.2}", g / n)),
            _ => (String::new(), String::new()),
        };
        let _ = writeln!(
            md,
            "| {label} | {} | {} | {diff} | {ratio} |",
            lat_cell(g),
            lat_cell(n)
        );
    }
    md.push('\n');
    let modes = ["pooling", "on-demand"];
    if modes
        .iter()
        .any(|m| find(GUEST, &format!("instantiate-{m}")).is_some())
    {
        let _ = writeln!(
            md,
            "Instantiation from the pre-instantiated component (`InstancePre`: fresh store, \
             WASI context and instance) and a whole no-op invocation (instantiation and the \
             call of `run`), each call timed on the wall clock; µs mean / p50 / p99:\n"
        );
        let _ = writeln!(md, "| µs | pooling allocator | on-demand allocator |");
        let _ = writeln!(md, "|---|---:|---:|");
        for (label, op) in [
            ("instantiate", "instantiate"),
            ("whole no-op invocation", "run-noop"),
        ] {
            let cells: Vec<String> = modes
                .iter()
                .map(|m| lat_cell(find(GUEST, &format!("{op}-{m}"))))
                .collect();
            let _ = writeln!(md, "| {label} | {} |", cells.join(" | "));
        }
        md.push('\n');
    }
    md
}
