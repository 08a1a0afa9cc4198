//! `sqcache`: inspect, repair and fill sciqlop-cache stores from the shell, and migrate
//! Python diskcache directories. Run `sqcache --help`.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use sciqlop_cache::{CheckReport, SetOptions};
use sciqlop_cache_tooling::usage;
use serde_json::json;
use sqcache::human;
use sqcache::migrate::{self, MigrateOptions, PickledValues};
use sqcache::store::{AnyStore, StoreError, StoreExt, StoreKind, detect, open_as};

/// Inspect, repair and fill sciqlop-cache stores; migrate Python diskcache directories.
///
/// DIR is a store directory: a Cache, an Index or a Fanout of either; its kind is
/// detected from what is on disk (override with --kind). DIR may also be a store on a
/// Redis server, redis://HOST:PORT/DB?namespace=NAME, or on a Redis Cluster,
/// redis+cluster://HOST:PORT,HOST:PORT?namespace=NAME. Exit codes: 0 ok, 1 the
/// operation failed, 2 bad usage.
#[derive(Debug, Parser)]
#[command(name = "sqcache", version, max_term_width = 100)]
struct Cli {
    /// Print machine-readable JSON on stdout.
    #[arg(long, global = true)]
    json: bool,

    /// Open DIR as this kind instead of detecting it (also the kind made by --create).
    #[arg(long, global = true, value_enum, value_name = "KIND")]
    kind: Option<KindArg>,

    /// No progress bars (they are never drawn when stderr is not a terminal).
    #[arg(long, short, global = true)]
    quiet: bool,

    /// Longest wait for a lock another process holds (its write transaction), e.g. 5s;
    /// reads never wait. A wait longer than a second is announced on stderr.
    #[arg(long, global = true, value_parser = parse_duration, value_name = "DURATION", default_value = "10m")]
    timeout: Duration,

    /// Open the store read-only: writes are refused. A store this user cannot write
    /// (a read-only mount, another account's cache) opens read-only without it.
    #[arg(long, global = true)]
    read_only: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum KindArg {
    Cache,
    Index,
    FanoutCache,
    FanoutIndex,
}

impl From<KindArg> for StoreKind {
    fn from(k: KindArg) -> Self {
        match k {
            KindArg::Cache => StoreKind::Cache,
            KindArg::Index => StoreKind::Index,
            KindArg::FanoutCache => StoreKind::FanoutCache,
            KindArg::FanoutIndex => StoreKind::FanoutIndex,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum MigrateType {
    Cache,
    Index,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Entries, bytes of values and bytes on disk: the API's `len()`, `size()` and
    /// `volume()` (the API's `stats()`, hit and miss counts, belong to one process and
    /// are not stored).
    Stats {
        /// Store directory.
        dir: PathBuf,
    },
    /// Verify the store (SQLite integrity, value files, totals); exit 1 when damaged.
    Check {
        /// Store directory.
        dir: PathBuf,
        /// Repair what is found: remove orphaned files and rows whose file is lost,
        /// correct sizes and totals.
        #[arg(long)]
        fix: bool,
    },
    /// Copy everything readable from the store SRC, whose database is damaged, into a
    /// new store DST, and name what could not be read (SRC is left as it is).
    Salvage {
        /// The damaged store's directory.
        src: PathBuf,
        /// The new store (a new or empty directory).
        dst: PathBuf,
    },
    /// List live keys in byte order.
    Ls {
        /// Store directory.
        dir: PathBuf,
        /// Only keys starting with this.
        #[arg(long, short, default_value = "")]
        prefix: String,
        /// At most this many keys.
        #[arg(long, short = 'n')]
        limit: Option<usize>,
        /// End each key with a NUL byte instead of a newline (for `xargs -0`; keys may
        /// hold newlines).
        #[arg(long = "null", short = '0', conflicts_with = "json")]
        null: bool,
    },
    /// Show KEY's metadata: size, expiry, tag, where its value is stored.
    Info {
        /// Store directory.
        dir: PathBuf,
        /// The key.
        key: String,
    },
    /// Write the value of KEY to stdout (raw bytes) or to a file.
    Get {
        /// Store directory.
        dir: PathBuf,
        /// The key.
        key: String,
        /// Write the value to this file instead of stdout (`-`: stdout).
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Store a value: VALUE, the content of -i FILE, or stdin.
    Set {
        /// Store directory.
        dir: PathBuf,
        /// The key.
        key: String,
        /// The value (UTF-8 text as given).
        #[arg(conflicts_with = "input")]
        value: Option<String>,
        /// Read the value from this file (`-` for stdin).
        #[arg(long, short)]
        input: Option<PathBuf>,
        /// Expire after this long: 30s, 10m, 2h, 1day, 1h 30m…
        #[arg(long, value_parser = parse_expiry, value_name = "DURATION", allow_hyphen_values = true)]
        expire: Option<Duration>,
        /// Tag the entry (for evict-tag).
        #[arg(long)]
        tag: Option<String>,
        /// Create the store (of --kind, default cache) if DIR holds none.
        #[arg(long)]
        create: bool,
        /// Shard count of a fanout made by --create (default 8).
        #[arg(long, value_name = "N", requires = "create")]
        shards: Option<u32>,
    },
    /// Remove KEY; exit 1 when it was absent.
    Del {
        /// Store directory.
        dir: PathBuf,
        /// The keys.
        #[arg(required = true, num_args = 1..)]
        keys: Vec<String>,
    },
    /// Add DELTA (default 1, may be negative) to the counter at KEY; prints the new value.
    Incr {
        /// Store directory.
        dir: PathBuf,
        /// The key.
        key: String,
        /// Amount to add.
        #[arg(default_value_t = 1, allow_negative_numbers = true)]
        delta: i64,
        /// Starting value of an absent counter.
        #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
        default: i64,
        /// Create the store (of --kind, default cache) if DIR holds none.
        #[arg(long)]
        create: bool,
        /// Shard count of a fanout made by --create (default 8).
        #[arg(long, value_name = "N", requires = "create")]
        shards: Option<u32>,
    },
    /// Give a live entry a new expiry (none: it never expires); exit 1 when absent.
    Touch {
        /// Store directory.
        dir: PathBuf,
        /// The key.
        key: String,
        /// New expiry, from now: 30s, 10m, 2h…
        #[arg(long, value_parser = parse_expiry, value_name = "DURATION", allow_hyphen_values = true)]
        expire: Option<Duration>,
    },
    /// Remove every entry tagged TAG.
    EvictTag {
        /// Store directory.
        dir: PathBuf,
        /// The tag.
        tag: String,
    },
    /// Remove every expired entry now.
    Expire {
        /// Store directory.
        dir: PathBuf,
    },
    /// Remove every entry (asks first unless --yes).
    Clear {
        /// Store directory.
        dir: PathBuf,
        /// Do not ask for confirmation.
        #[arg(long, short)]
        yes: bool,
    },
    /// Bytes on disk: database, WAL and value files.
    Volume {
        /// Store directory.
        dir: PathBuf,
    },
    /// Copy a Python diskcache directory (Cache, FanoutCache or Index) into DST.
    ///
    /// Keys become text (str as is, UTF-8 bytes as their text, int and float as Python
    /// prints them); str, bytes, int and float values, expiry, tags and access order are
    /// kept. Entries with no faithful form (expired, pickled keys, non-UTF-8 bytes keys,
    /// keys whose text collides with a str key, pickled values unless
    /// --copy-pickled-values) are skipped and listed. Exit 1 when an entry failed.
    Migrate {
        /// The diskcache directory.
        src: PathBuf,
        /// The sciqlop-cache directory (created when missing or empty).
        dst: PathBuf,
        /// Old spelling of --kind cache|index (kept for scripts).
        #[arg(
            long = "type",
            id = "type",
            value_enum,
            value_name = "TYPE",
            hide = true
        )]
        dest_type: Option<MigrateType>,
        /// Make the new destination a fanout of this many shards.
        #[arg(long, value_name = "N")]
        shards: Option<u32>,
        /// Delete each entry from SRC once it is committed in DST (re-run after an
        /// interruption: it finishes without duplicates or loss).
        #[arg(long = "drop")]
        drop_source: bool,
        /// Copy pickled values as opaque pickle bytes instead of skipping them.
        #[arg(long)]
        copy_pickled_values: bool,
        /// Entries per destination transaction.
        #[arg(long, default_value_t = 1000, hide = true)]
        batch_size: usize,
        /// List every skipped entry (by default the first 20).
        #[arg(long, short)]
        verbose: bool,
    },
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    if s.trim_start().starts_with('-') {
        return Err(
            "a duration cannot be negative (expected one like 30s, 10m, 2h or 1day)".into(),
        );
    }
    humantime::parse_duration(s)
        .map_err(|e| format!("{e} (expected a duration with a unit, like 30s, 10m, 2h or 1day)"))
}

/// An expiry: a duration above zero (an entry that expires at once is a mistake; no
/// `--expire` means no expiry).
fn parse_expiry(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        d if d.is_zero() => Err(
            "an expiry of zero would expire the entry at once (leave --expire out for none)".into(),
        ),
        d => Ok(d),
    }
}

/// An entry's metadata as `--json` shows it with values.
fn entry_json(key: &str, info: &sciqlop_cache::EntryInfo) -> serde_json::Value {
    let expire = info.expire.map(|t| {
        let secs = t
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        json!({"unix": secs, "utc": humantime::format_rfc3339_seconds(t).to_string()})
    });
    json!({"key": key, "size": info.size, "expire": expire, "tag": info.tag})
}

fn main() -> ExitCode {
    sciqlop_cache_tooling::main::<Cli>(sciqlop_cache_tooling::json_requested(), |cli| run(&cli))
}

struct Ctx<'a> {
    cli: &'a Cli,
    out: std::io::StdoutLock<'static>,
}

impl Ctx<'_> {
    fn kind(&self) -> Option<StoreKind> {
        self.cli.kind.map(Into::into)
    }

    fn open(&self, dir: &Path) -> Result<AnyStore> {
        open_store(dir, self.kind(), false, None)
    }

    fn print_json(&mut self, v: &serde_json::Value) -> Result<()> {
        serde_json::to_writer_pretty(&mut self.out, v)?;
        writeln!(self.out)?;
        Ok(())
    }

    fn progress(&self, len: Option<u64>, msg: &str) -> ProgressBar {
        if self.cli.quiet || self.cli.json || !std::io::stderr().is_terminal() {
            return ProgressBar::hidden();
        }
        // A length of 0 (not known yet) is a spinner: a bar would be drawn full.
        let pb = match len.filter(|&n| n > 0) {
            Some(n) => ProgressBar::new(n).with_style(bar_style()),
            None => ProgressBar::new_spinner(),
        };
        pb.set_message(msg.to_owned());
        pb.enable_steady_tick(Duration::from_millis(120));
        pb
    }
}

fn open_store(
    dir: &Path,
    kind: Option<StoreKind>,
    create: bool,
    shards: Option<u32>,
) -> Result<AnyStore> {
    if let Some(url) = sqcache::store::location_of(dir) {
        return Ok(sqcache::store::open_location(url, kind, create)?);
    }
    if shards.is_some() && !kind.is_some_and(StoreKind::is_fanout) {
        return Err(usage(
            "--shards makes a fanout: give --kind fanout-cache or fanout-index",
        ));
    }
    let opened = match detect(dir) {
        Ok(found) => match kind {
            Some(k) if k.is_fanout() != found.is_fanout() => {
                bail!("{} holds a store of kind {found}, not {k}", dir.display())
            }
            Some(k) => open_as(dir, k, None),
            None => open_as(dir, found, None),
        },
        Err(StoreError::Missing(_) | StoreError::NotAStore { .. })
            if create && !dir.join(migrate::DISKCACHE_DB).exists() =>
        {
            open_as(dir, kind.unwrap_or(StoreKind::Cache), shards)
        }
        Err(e) => return Err(e.into()),
    };
    Ok(opened?)
}

/// A flag set when the user presses Ctrl-C (SIGINT) or the process gets SIGTERM: a
/// long job stops at its next commit and says so. A second Ctrl-C stops at once.
fn stop_on_interrupt() -> std::sync::Arc<std::sync::atomic::AtomicBool> {
    use std::sync::atomic::{AtomicBool, Ordering};
    let flag = std::sync::Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    let installed = ctrlc::set_handler(move || {
        if f.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("interrupted: stopping after the batch being written (Ctrl-C again to stop now)");
    });
    if let Err(e) = installed {
        eprintln!(
            "warning: Ctrl-C will stop the migration between commits only by killing it ({e})"
        );
    }
    flag
}

/// The style of progress bars of a known length.
fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{msg} [{bar:40.cyan/blue}] {human_pos}/{human_len} ({rate}, {eta} left)",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .with_key(
        "rate",
        |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = write!(w, "{:.0}/s", s.per_sec());
        },
    )
    .progress_chars("=> ")
}

/// Whether opening failed on a damaged database.
fn is_corrupt(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        matches!(
            c.downcast_ref::<sciqlop_cache::Error>(),
            Some(sciqlop_cache::Error::Corrupt { .. })
        )
    })
}

/// Prints what `salvage` read (`copied`: and copied) and what it could not.
fn print_salvage(
    cx: &mut Ctx<'_>,
    src: &Path,
    r: &sciqlop_cache::SalvageReport,
    copied: bool,
) -> Result<()> {
    let lost_ranges: Vec<serde_json::Value> = r
        .lost_ranges
        .iter()
        .map(|l| json!({"namespace": l.namespace, "after": l.after, "before": l.before}))
        .collect();
    let lost_values: Vec<serde_json::Value> = r
        .lost_values
        .iter()
        .map(|(k, why)| json!({"key": k, "why": why}))
        .collect();
    if cx.cli.json {
        return cx.print_json(&json!({
            "path": src, "kind": r.kind, "ok": false,
            if copied { "copied" } else { "readable" }: r.copied,
            "sqlite_errors": r.sqlite_errors,
            "lost_ranges": lost_ranges, "lost_values": lost_values,
        }));
    }
    let o = &mut cx.out;
    writeln!(o, "path:             {}", src.display())?;
    writeln!(o, "kind:             {}", r.kind)?;
    writeln!(o, "sqlite integrity: FAILED")?;
    for e in &r.sqlite_errors {
        writeln!(o, "  {e}")?;
    }
    writeln!(
        o,
        "{} {} live entries",
        if copied {
            "copied:          "
        } else {
            "readable:        "
        },
        r.copied
    )?;
    for l in &r.lost_ranges {
        let ns = if l.namespace.is_empty() {
            String::new()
        } else {
            format!(" in namespace {:?}", l.namespace)
        };
        writeln!(
            o,
            "lost keys{ns}:        after {} and before {} (damaged pages)",
            l.after
                .as_deref()
                .map_or("the first".into(), |k| format!("{k:?}")),
            l.before
                .as_deref()
                .map_or("the last".into(), |k| format!("{k:?}"))
        )?;
    }
    for (k, why) in &r.lost_values {
        writeln!(o, "lost value:       {k:?}: {why}")?;
    }
    Ok(())
}

/// [`open_store`] for the commands that take `--create`: a missing directory's error
/// says so.
fn open_or_create(
    dir: &Path,
    kind: Option<StoreKind>,
    create: bool,
    shards: Option<u32>,
) -> Result<AnyStore> {
    if !create
        && sqcache::store::location_of(dir).is_none()
        && std::fs::symlink_metadata(dir).is_err()
    {
        bail!(
            "directory {} does not exist (pass --create to make a store there)",
            dir.display()
        );
    }
    open_store(dir, kind, create, shards)
}

fn not_found(dir: &Path, key: &str) -> anyhow::Error {
    anyhow!("key {key:?} not found in {}", dir.display())
}

fn run(cli: &Cli) -> Result<ExitCode> {
    let timeout = cli.timeout;
    sqcache::store::set_settings(sqcache::store::Settings {
        timeout: Some(timeout),
        read_only: cli.read_only,
        on_wait: Some(std::sync::Arc::new(move |db: &Path, _| {
            eprintln!(
                "waiting for another process's lock on {} (up to --timeout {})…",
                db.display(),
                humantime::format_duration(timeout)
            );
        })),
    });
    let mut cx = Ctx {
        cli,
        out: std::io::stdout().lock(),
    };
    let json = cli.json;
    match &cli.command {
        Command::Stats { dir } => {
            let s = cx.open(dir)?;
            let (entries, size, volume) = (s.len()?, s.size()?, s.volume()?);
            if json {
                cx.print_json(&json!({
                    "path": s.path(), "kind": s.store_kind(), "shards": s.shard_count(),
                    "entries": entries, "size": size, "volume": volume,
                }))?;
            } else {
                let o = &mut cx.out;
                writeln!(o, "path:    {}", s.path().display())?;
                writeln!(o, "kind:    {}", s.store_kind())?;
                if s.store_kind().is_fanout() {
                    writeln!(o, "shards:  {}", s.shard_count())?;
                }
                writeln!(o, "entries: {entries}")?;
                writeln!(
                    o,
                    "size:    {} of values ({size} bytes)",
                    human::bytes(size)
                )?;
                if s.capabilities().value_files {
                    writeln!(
                        o,
                        "volume:  {} on disk ({volume} bytes)",
                        human::bytes(volume)
                    )?;
                } else {
                    writeln!(
                        o,
                        "volume:  {} of server memory ({volume} bytes; the {} server's whole used memory, every store on it)",
                        human::bytes(volume),
                        s.capabilities().name
                    )?;
                }
            }
        }
        Command::Check { dir, fix } => {
            let s = match cx.open(dir) {
                Err(e) if is_corrupt(&e) => {
                    // Too damaged to open: say what is readable.
                    let r = sciqlop_cache::salvage(dir, None)?;
                    print_salvage(&mut cx, dir, &r, false)?;
                    cx.out.flush()?;
                    eprintln!(
                        "error: the database of {} is damaged: copy what is readable into a new store with `sqcache salvage {} NEW_DIR`",
                        dir.display(),
                        dir.display()
                    );
                    return Ok(ExitCode::from(1));
                }
                r => r?,
            };
            let shards = s.shard_count();
            let pb = cx.progress(
                Some(u64::from(shards)),
                if *fix { "repairing" } else { "checking" },
            );
            let mut total = CheckReport::all_ok();
            for i in 0..shards {
                total.merge(&s.check_shard(i, *fix)?);
                pb.inc(1);
            }
            pb.finish_and_clear();
            let r = total;
            if json {
                cx.print_json(&json!({
                    "ok": r.ok, "fixed": r.fixed, "sqlite_integrity_ok": r.sqlite_integrity_ok,
                    "sqlite_errors": r.sqlite_errors,
                    "counters_consistent": r.counters_consistent,
                    "orphaned_files": r.orphaned_files, "dangling_rows": r.dangling_rows,
                    "damaged_files": r.damaged_files,
                    "size_mismatches": r.size_mismatches, "foreign_tables": r.foreign_tables,
                    "removed_keys": r.removed_keys,
                }))?;
            } else {
                let yes = |b: bool| if b { "yes" } else { "no" };
                let on_disk = s.capabilities().value_files;
                let o = &mut cx.out;
                if on_disk {
                    writeln!(
                        o,
                        "sqlite integrity:    {}",
                        if r.sqlite_integrity_ok {
                            "ok"
                        } else {
                            "FAILED"
                        }
                    )?;
                    for e in &r.sqlite_errors {
                        writeln!(o, "  {e}")?;
                    }
                } else {
                    writeln!(o, "engine:              {}", s.capabilities().name)?;
                }
                writeln!(o, "totals consistent:   {}", yes(r.counters_consistent))?;
                if on_disk {
                    writeln!(o, "orphaned files:      {}", r.orphaned_files)?;
                    writeln!(
                        o,
                        "rows without file:   {} ({} missing, {} damaged: truncated, extended or changed)",
                        r.dangling_rows,
                        r.dangling_rows - r.damaged_files,
                        r.damaged_files
                    )?;
                    writeln!(o, "size mismatches:     {}", r.size_mismatches)?;
                } else {
                    writeln!(
                        o,
                        "lost values:         {} (entries whose value the server no longer holds)",
                        r.dangling_rows
                    )?;
                }
                if !r.foreign_tables.is_empty() {
                    writeln!(
                        o,
                        "foreign tables:      {} (written by another program; left as they are)",
                        r.foreign_tables.join(", ")
                    )?;
                }
                if *fix {
                    writeln!(o, "repaired:            {}", yes(r.fixed))?;
                    let lost = if on_disk { "value file" } else { "value" };
                    for k in &r.removed_keys {
                        writeln!(o, "  removed {k:?} (its {lost} was lost)")?;
                    }
                }
                writeln!(o, "ok:                  {}", yes(r.ok))?;
            }
            if !r.ok {
                cx.out.flush()?;
                let advice = if !r.sqlite_errors.is_empty() {
                    format!(
                        ": its database is damaged; copy what is readable into a new store with `sqcache salvage {} NEW_DIR`",
                        dir.display()
                    )
                } else if *fix {
                    " and could not be fully repaired".to_owned()
                } else {
                    " (repair it with `sqcache check --fix`)".to_owned()
                };
                eprintln!("error: {} is damaged{advice}", dir.display());
                return Ok(ExitCode::from(1));
            }
        }
        Command::Salvage { src, dst } => {
            if src.join(sqcache::store::FANOUT_MARKER).exists() {
                return Err(usage(format!(
                    "{} is a fanout: salvage each damaged shard directory ({}/000, …) into a new directory",
                    src.display(),
                    src.display()
                )));
            }
            let r = sciqlop_cache::salvage(src, Some(dst))?;
            print_salvage(&mut cx, src, &r, true)?;
        }
        Command::Ls {
            dir,
            prefix,
            limit,
            null,
        } => {
            let s = cx.open(dir)?;
            let limit = limit.unwrap_or(usize::MAX);
            let mut after: Option<String> = None;
            let mut n = 0usize;
            let mut all = Vec::new();
            while n < limit {
                let page = s.keys_page(prefix, after.as_deref(), (limit - n).min(1000))?;
                if page.is_empty() {
                    break;
                }
                n += page.len();
                after = page.last().cloned();
                if json {
                    all.extend(page);
                } else {
                    let end: &[u8] = if *null { b"\0" } else { b"\n" };
                    for k in page {
                        cx.out.write_all(k.as_bytes())?;
                        cx.out.write_all(end)?;
                    }
                }
            }
            if json {
                cx.print_json(&json!(all))?;
            }
        }
        Command::Info { dir, key } => {
            let s = cx.open(dir)?;
            let info = s.entry_info(key)?.ok_or_else(|| not_found(dir, key))?;
            let stored = if info.in_file { "own file" } else { "inline" };
            if json {
                let mut o = entry_json(key, &info);
                o["stored"] = json!(stored);
                cx.print_json(&o)?;
            } else {
                let expire = match info.expire {
                    Some(t) => {
                        let left = t
                            .duration_since(std::time::SystemTime::now())
                            .map(|d| Duration::from_secs(d.as_secs()))
                            .unwrap_or_default();
                        format!(
                            "{} (in {})",
                            humantime::format_rfc3339_seconds(t),
                            humantime::format_duration(left)
                        )
                    }
                    None => "never".into(),
                };
                writeln!(cx.out, "key:     {key:?}")?;
                writeln!(
                    cx.out,
                    "size:    {} ({} bytes)",
                    human::bytes(info.size),
                    info.size
                )?;
                writeln!(cx.out, "expires: {expire}")?;
                writeln!(cx.out, "tag:     {}", info.tag.as_deref().unwrap_or("none"))?;
                writeln!(cx.out, "stored:  {stored}")?;
            }
        }
        Command::Get { dir, key, output } => {
            let s = cx.open(dir)?;
            let (v, info) = s.get_entry(key)?.ok_or_else(|| not_found(dir, key))?;
            let output = output.as_ref().filter(|p| p.as_os_str() != "-");
            if let Some(path) = output {
                std::fs::write(path, &v)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                if json {
                    let mut o = entry_json(key, &info);
                    o["output"] = json!(path);
                    cx.print_json(&o)?;
                }
            } else if json {
                let mut o = entry_json(key, &info);
                match std::str::from_utf8(&v) {
                    Ok(text) => o["value"] = json!(text),
                    Err(_) => o["value_hex"] = json!(hex(&v)),
                }
                cx.print_json(&o)?;
            } else {
                cx.out.write_all(&v)?;
            }
        }
        Command::Set {
            dir,
            key,
            value,
            input,
            expire,
            tag,
            create,
            shards,
        } => {
            let bytes = match (value, input) {
                (Some(v), _) => v.clone().into_bytes(),
                (None, Some(p)) if p.as_os_str() == "-" => read_stdin()?,
                (None, Some(p)) => read_file(p)?,
                (None, None) => {
                    if std::io::stdin().is_terminal() {
                        return Err(usage("give the value as VALUE, with -i FILE, or on stdin"));
                    }
                    read_stdin()?
                }
            };
            let s = open_or_create(dir, cx.kind(), *create, *shards)?;
            let mut opts = SetOptions::new();
            if let Some(d) = expire {
                opts = opts.expire(*d);
            }
            if let Some(t) = tag {
                opts = opts.tag(t.clone());
            }
            s.set_checked(key, &bytes, &opts)?;
            if json {
                cx.print_json(&json!({"key": key, "size": bytes.len()}))?;
            }
        }
        Command::Del { dir, keys } => {
            let s = cx.open(dir)?;
            let mut results = Vec::with_capacity(keys.len());
            let mut absent = Vec::new();
            for key in keys {
                let deleted = s.delete(key)?;
                if !deleted {
                    absent.push(key);
                }
                results.push(json!({"key": key, "deleted": deleted}));
            }
            if json {
                cx.print_json(&json!(results))?;
                if !absent.is_empty() {
                    // The list says which were absent: one JSON document on stdout.
                    return Ok(ExitCode::from(1));
                }
            }
            match absent[..] {
                [] => {}
                [key] if keys.len() == 1 => return Err(not_found(dir, key)),
                _ => {
                    let shown: Vec<String> = absent.iter().map(|k| format!("{k:?}")).collect();
                    bail!(
                        "{} of {} keys not found in {}: {}",
                        absent.len(),
                        keys.len(),
                        dir.display(),
                        shown.join(", ")
                    )
                }
            }
        }
        Command::Incr {
            dir,
            key,
            delta,
            default,
            create,
            shards,
        } => {
            let s = open_or_create(dir, cx.kind(), *create, *shards)?;
            let v = s.incr(key, *delta, *default)?;
            if json {
                cx.print_json(&json!({"key": key, "value": v}))?;
            } else {
                writeln!(cx.out, "{v}")?;
            }
        }
        Command::Touch { dir, key, expire } => {
            let s = cx.open(dir)?;
            if !s.touch_checked(key, *expire)? {
                return Err(not_found(dir, key));
            }
            if json {
                cx.print_json(
                    &json!({"key": key, "expire_seconds": expire.map(|d| d.as_secs_f64())}),
                )?;
            }
        }
        Command::EvictTag { dir, tag } => {
            let s = cx.open(dir)?;
            let n = s.evict_tag_checked(tag)?;
            removed(&mut cx, n, &format!("tagged {tag:?}"))?;
        }
        Command::Expire { dir } => {
            let s = cx.open(dir)?;
            let n = s.expire_checked()?;
            removed(&mut cx, n, "expired")?;
        }
        Command::Clear { dir, yes } => {
            let s = cx.open(dir)?;
            if !yes {
                let n = s.len()?;
                if !std::io::stdin().is_terminal() {
                    return Err(usage(format!(
                        "refusing to clear {} ({n} entries) without confirmation: pass --yes",
                        dir.display()
                    )));
                }
                eprint!("Remove all {n} entries of {}? [y/N] ", dir.display());
                let mut answer = String::new();
                std::io::stdin().read_line(&mut answer)?;
                if !matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
                    eprintln!("nothing removed");
                    return Ok(ExitCode::from(1));
                }
            }
            let shards = s.shard_count();
            let pb = cx.progress(
                if shards > 1 {
                    Some(u64::from(shards))
                } else {
                    None
                },
                "clearing",
            );
            let mut n = 0;
            for i in 0..shards {
                n += s.clear_shard(i)?;
                pb.inc(1);
            }
            pb.finish_and_clear();
            removed(&mut cx, n, "")?;
        }
        Command::Volume { dir } => {
            let s = cx.open(dir)?;
            let v = s.volume()?;
            if json {
                cx.print_json(&json!({"volume": v}))?;
            } else {
                writeln!(cx.out, "{} ({v} bytes)", human::bytes(v))?;
            }
        }
        Command::Migrate {
            src,
            dst,
            dest_type,
            shards,
            drop_source,
            copy_pickled_values,
            batch_size,
            verbose,
        } => {
            let base = match dest_type {
                Some(MigrateType::Index) => StoreKind::Index,
                Some(MigrateType::Cache) => StoreKind::Cache,
                None => cx.kind().unwrap_or(StoreKind::Cache),
            };
            let kind = match (base, shards.is_some()) {
                (StoreKind::Cache, true) => Some(StoreKind::FanoutCache),
                (StoreKind::Index, true) => Some(StoreKind::FanoutIndex),
                _ if dest_type.is_some() || cx.kind().is_some() => Some(base),
                _ => None,
            };
            let opts = MigrateOptions {
                kind,
                shards: *shards,
                drop_source: *drop_source,
                pickled_values: if *copy_pickled_values {
                    PickledValues::CopyOpaque
                } else {
                    PickledValues::Skip
                },
                batch_size: *batch_size,
                stop: Some(stop_on_interrupt()),
                ..MigrateOptions::default()
            };
            let pb = cx.progress(None, "migrating");
            let mut sized = false;
            let report = migrate::migrate_with_progress(src, dst, &opts, &mut |p| {
                if p.total > 0 && !sized {
                    pb.set_style(bar_style());
                    sized = true;
                }
                pb.set_length(p.total);
                pb.set_position(p.done);
            })?;
            pb.finish_and_clear();
            if json {
                cx.print_json(&serde_json::to_value(&report)?)?;
            } else {
                let o = &mut cx.out;
                writeln!(
                    o,
                    "migrated {} of {} entries from {} to {} in {} ({:.0} entries/s)",
                    report.migrated,
                    report.source_entries,
                    src.display(),
                    dst.display(),
                    human::duration(report.elapsed),
                    report.rate()
                )?;
                if *drop_source {
                    writeln!(o, "dropped {} entries from the source", report.dropped)?;
                    if report.changed_in_source > 0 {
                        writeln!(
                            o,
                            "kept {} entries in the source that changed during the migration (run it again)",
                            report.changed_in_source
                        )?;
                    }
                }
                if report.vanished > 0 {
                    writeln!(
                        o,
                        "{} entries vanished from the source meanwhile",
                        report.vanished
                    )?;
                }
                if !report.skipped.is_empty() {
                    let counts: Vec<String> = report
                        .skip_counts()
                        .iter()
                        .map(|(code, n)| format!("{n} {code}"))
                        .collect();
                    writeln!(o, "skipped {}: {}", report.skipped.len(), counts.join(", "))?;
                    let shown = if *verbose { usize::MAX } else { 20 };
                    for s in report.skipped.iter().take(shown) {
                        let at = if s.shard.is_empty() {
                            String::new()
                        } else {
                            format!("shard {} ", s.shard)
                        };
                        writeln!(o, "  skipped {} ({at}row {}): {}", s.key, s.rowid, s.reason)?;
                    }
                    if report.skipped.len() > shown {
                        writeln!(
                            o,
                            "  … and {} more (list them all with --verbose)",
                            report.skipped.len() - shown
                        )?;
                    }
                }
                for e in &report.errors {
                    writeln!(o, "  failed {} (row {}): {}", e.key, e.rowid, e.error)?;
                }
            }
            if report.interrupted {
                cx.out.flush()?;
                eprintln!(
                    "error: interrupted after {} entries (all committed); run the same command again to finish{}",
                    report.migrated,
                    if *drop_source {
                        ""
                    } else {
                        " (entries already copied are copied again)"
                    }
                );
                return Ok(ExitCode::from(130));
            }
            if !report.errors.is_empty() {
                cx.out.flush()?;
                eprintln!(
                    "error: {} entries could not be migrated (they stay in the source)",
                    report.errors.len()
                );
                return Ok(ExitCode::from(1));
            }
        }
    }
    cx.out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn removed(cx: &mut Ctx<'_>, n: u64, what: &str) -> Result<()> {
    if cx.cli.json {
        cx.print_json(&json!({"removed": n}))
    } else {
        let sep = if what.is_empty() { "" } else { " " };
        writeln!(cx.out, "removed {n}{sep}{what} entries")?;
        Ok(())
    }
}

/// The largest value a store takes (values are read whole, so a larger one is refused
/// before it is read in full).
const MAX_VALUE: u64 = sciqlop_cache::DEFAULT_MAX_VALUE_SIZE;

fn too_large(what: &str) -> anyhow::Error {
    anyhow!(
        "{what} is larger than the largest value a store takes ({})",
        human::bytes(MAX_VALUE)
    )
}

fn read_stdin() -> Result<Vec<u8>> {
    let mut v = Vec::new();
    std::io::stdin()
        .take(MAX_VALUE + 1)
        .read_to_end(&mut v)
        .context("cannot read the value from stdin")?;
    if v.len() as u64 > MAX_VALUE {
        return Err(too_large("the value on stdin"));
    }
    Ok(v)
}

fn read_file(p: &Path) -> Result<Vec<u8>> {
    let len = std::fs::metadata(p)
        .with_context(|| format!("cannot read {}", p.display()))?
        .len();
    if len > MAX_VALUE {
        return Err(too_large(&p.display().to_string()));
    }
    std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
