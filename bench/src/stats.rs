//! Latency summaries and the CSV schema shared by every implementation (the Python
//! driver writes the same columns).

use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};

/// The CSV header, identical for every implementation.
pub const HEADER: &str = "impl,workload,param,op,n,mean_us,p50_us,p99_us,mb_per_s";

/// One CSV row. `stats` is `None` for a workload the implementation cannot run, with
/// the reason in `na_reason` (written as `n/a` in the numeric columns and
/// `n/a: <reason>` in `mb_per_s`).
#[derive(Debug, Clone)]
pub struct Row {
    pub imp: String,
    pub workload: String,
    pub param: u64,
    pub op: String,
    pub n: u64,
    pub stats: Option<Summary>,
    pub mb_per_s: Option<f64>,
    pub na_reason: Option<String>,
}

#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub mean: f64,
    pub p50: f64,
    pub p99: f64,
}

/// Mean, p50, p99 in µs of latencies in ns.
pub fn summarize(ns: &mut [u64]) -> Summary {
    if ns.is_empty() {
        return Summary {
            mean: f64::NAN,
            p50: f64::NAN,
            p99: f64::NAN,
        };
    }
    ns.sort_unstable();
    let n = ns.len();
    let mean = ns.iter().map(|&x| x as f64).sum::<f64>() / n as f64 / 1000.0;
    let pct = |p: f64| ns[((n as f64 * p) as usize).min(n - 1)] as f64 / 1000.0;
    Summary {
        mean,
        p50: pct(0.5),
        p99: pct(0.99),
    }
}

/// Runs `f(i)` for i in 0..n and returns each call's duration in ns.
pub fn time_each(n: usize, mut f: impl FnMut(usize) -> Result<()>) -> Result<Vec<u64>> {
    let mut ns = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        f(i)?;
        ns.push(t.elapsed().as_nanos() as u64);
    }
    Ok(ns)
}

impl Row {
    /// A measured row; `bytes_per_op` gives `mb_per_s` from the mean (0: none).
    pub fn measured(
        imp: &str,
        workload: &str,
        param: u64,
        op: &str,
        ns: &mut [u64],
        bytes_per_op: u64,
    ) -> Row {
        let s = summarize(ns);
        Row {
            imp: imp.into(),
            workload: workload.into(),
            param,
            op: op.into(),
            n: ns.len() as u64,
            stats: Some(s),
            mb_per_s: (bytes_per_op > 0).then(|| bytes_per_op as f64 / s.mean),
            na_reason: None,
        }
    }

    pub fn na(imp: &str, workload: &str, param: u64, op: &str, reason: &str) -> Row {
        Row {
            imp: imp.into(),
            workload: workload.into(),
            param,
            op: op.into(),
            n: 0,
            stats: None,
            mb_per_s: None,
            na_reason: Some(reason.into()),
        }
    }

    pub fn to_csv(&self) -> String {
        let mut s = format!(
            "{},{},{},{},{},",
            self.imp, self.workload, self.param, self.op, self.n
        );
        match (&self.stats, &self.na_reason) {
            (Some(st), _) => {
                let _ = write!(s, "{:.3},{:.3},{:.3},", st.mean, st.p50, st.p99);
                if let Some(m) = self.mb_per_s {
                    let _ = write!(s, "{m:.3}");
                }
            }
            (None, reason) => {
                let reason = reason
                    .as_deref()
                    .unwrap_or("not measured")
                    .replace(',', ";");
                let _ = write!(s, "n/a,n/a,n/a,n/a: {reason}");
            }
        }
        s
    }

    pub fn parse(line: &str) -> Result<Row> {
        let f: Vec<&str> = line.splitn(9, ',').collect();
        if f.len() != 9 {
            bail!("expected 9 columns, got {}: {line:?}", f.len());
        }
        let num = |s: &str| -> Option<f64> { s.trim().parse::<f64>().ok() };
        let stats = match (num(f[5]), num(f[6]), num(f[7])) {
            (Some(mean), Some(p50), Some(p99)) => Some(Summary { mean, p50, p99 }),
            _ => None,
        };
        let na_reason = stats
            .is_none()
            .then(|| f[8].trim().trim_start_matches("n/a:").trim().to_owned());
        Ok(Row {
            imp: f[0].into(),
            workload: f[1].into(),
            param: f[2].parse().with_context(|| format!("param in {line:?}"))?,
            op: f[3].into(),
            n: f[4].parse().with_context(|| format!("n in {line:?}"))?,
            stats,
            mb_per_s: num(f[8]),
            na_reason,
        })
    }
}

/// Appends rows to a CSV file (writing the header when the file is new), printing each.
pub struct CsvOut {
    file: std::fs::File,
}

impl CsvOut {
    pub fn create(path: &Path) -> Result<CsvOut> {
        let mut file =
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        use std::io::Write;
        writeln!(file, "{HEADER}")?;
        Ok(CsvOut { file })
    }

    pub fn push(&mut self, row: &Row) -> Result<()> {
        use std::io::Write;
        let line = row.to_csv();
        eprintln!("  {line}");
        writeln!(self.file, "{line}")?;
        self.file.flush()?;
        Ok(())
    }
}

/// Reads a CSV written by [`CsvOut`] or the Python driver.
pub fn read_csv(path: &Path) -> Result<Vec<Row>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut lines = text.lines();
    match lines.next() {
        Some(h) if h.trim() == HEADER => {}
        other => bail!("{}: unexpected header {other:?}", path.display()),
    }
    lines
        .filter(|l| !l.trim().is_empty())
        .map(Row::parse)
        .collect()
}
