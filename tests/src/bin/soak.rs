//! Soak test: 8 worker processes run a mixed workload on one bounded store for a set
//! duration while a supervisor SIGKILLs a random worker every few seconds and starts
//! it again; at the end (and after every kill) the supervisor proves that nothing
//! acknowledged was lost. `scripts/soak.sh DURATION` runs it.
//!
//! Usage: `soak DURATION` (`90s`, `30m`, `1h`, or seconds). Settings from the
//! environment: `SOAK_WORKERS` (8), `SOAK_SURVIVORS` (2: workers 0.. that are never
//! killed, so that their memory and descriptors can be followed for the whole run),
//! `SOAK_MAX_SIZE` (bytes, 128 MiB), `SOAK_KEYS` (plain keys per worker, 768: their
//! values would take about 200 MiB, so eviction runs all along),
//! `SOAK_SEED`, `SOAK_DIR` (where the store is made; a temporary directory otherwise,
//! removed at the end unless the run failed), `SOAK_SABOTAGE=1` (the supervisor itself
//! deletes the newest acknowledged value of each killed worker before verifying it: the
//! run must then fail, which `tests/tests/soak.rs` checks).
//!
//! The workload of each worker (`soak worker …`, the same binary): `get` of any
//! worker's keys (every value read must be bytes some writer wrote), `set` (a tenth
//! with the worker's tag), `set_many` of 2–6 keys, `delete`, `incr` of the worker's own
//! counter and of a counter all workers share, transactions (two sets and a delete),
//! `evict_tag` of the worker's tag, and sets with an expiry of 0.2–3 s; values from
//! about 20 B to 1 MiB ([`soak_payload`]); the store is bounded by `max_size`, so
//! least-recently-used entries are evicted all along.
//!
//! The journal: each worker writes its own keys only (`k/W/I`, `x/W/I` with an expiry,
//! `c/W`), with values derived from `(key, version)`; it reports each write on its
//! stdout before it starts (`I op`) and after it returned (`A op`), one line per write
//! (a pipe the supervisor reads on a thread, so a SIGKILL loses no line already
//! written). The supervisor keeps the model of every key from the acknowledged writes.
//! A write announced but not acknowledged when its worker died may have happened or
//! not: after the kill, the supervisor reads the dead worker's keys, accepts either
//! outcome of that one write (all of it or none of it, for `set_many`, transactions and
//! `evict_tag`) and continues from what it found. Its own counter is then read, so it
//! is known exactly again; an increment of the shared counter left in flight cannot be
//! told apart from the others' increments, so it is counted as "maybe": at the end the
//! shared counter must be between the acknowledged increments and that plus the
//! maybes (the documented slack, printed).
//!
//! What is legitimately missing: a key whose last write expired (an expired value must
//! never be read after its deadline), and a key evicted as least recently used. An
//! eviction removes the oldest entries first, down to 90 % of `max_size`, so a value
//! acknowledged within the last [`RECENT`] must still be there (the workload writes far
//! less than 90 % of the bound in that time; the figures show the rate); older missing
//! values are counted as evicted. A value present must be exactly the last
//! acknowledged version (or that of the write in flight): an older version is a lost
//! write.
//!
//! At the end, after the workers stopped: every key as above, counters exact, `check()`
//! clean, as many value files as file-backed rows, the values within `max_size` once
//! the last eviction ran. During the run the supervisor samples `size()` every second:
//! eviction runs in the background, so the bound may be passed by what the workers
//! write before a background thread evicts (the slack: [`SIZE_SLACK`]). It also samples
//! the resident memory and open descriptors of the survivors and of itself: the largest
//! sample of the last tenth of the run must not pass the largest of the second tenth by
//! more than [`RSS_TOLERANCE_KIB`] plus a quarter, nor by more than [`FD_TOLERANCE`]
//! descriptors.
//!
//! Figures of a 30-minute run (`nice -n 19`, debug build, on the 2-core development
//! machine shared with other builds): 1 025 023 acknowledged operations (569/s: 307 483
//! gets, 229 585 sets, 103 077 expiring sets, 25 662 tagged sets, 71 742 `set_many`,
//! 82 454 deletes, 81 706 transactions, 20 512 `evict_tag`, 102 802 increments),
//! 19 969 MiB of values written, 417 kills (the write in flight was applied 21 times,
//! not applied 329 times), 3 601 values evicted and 3 502 expired, shared counter
//! 51 354 for 51 352 acknowledged increments and 22 in flight at a kill, size peak
//! 128.3 MiB for a 128 MiB `max_size` (121.6 MiB at the end), 630 orphaned value
//! files left by the kills and removed by `check(true)`, then `check()` clean; RSS of
//! the never-killed workers 13 -> 13 and 13 -> 12 MiB, 18 -> 18 descriptors each
//! (supervisor 17 -> 20 MiB, 33 -> 33). No failure.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sciqlop_cache::{Cache, CheckReport, SetOptions};
use sciqlop_cache_tests::{
    LineReader, env_usize, file_backed_rows, open_fds, parse_soak_payload, rss_kib, soak_payload,
    soak_payload_len, value_files,
};

/// A value acknowledged this recently must not have been evicted.
const RECENT: Duration = Duration::from_millis(1000);
/// How far `size()` may pass `max_size` while the workers write (eviction runs in the
/// background, woken by the writes): 8 workers each with a batch of up to six 1 MiB
/// values in flight, and a second of writes before an eviction catches up.
const SIZE_SLACK: u64 = 64 << 20;
/// Growth of resident memory allowed between the early and the late samples, on top
/// of a quarter of the early figure (allocator caches of 1 MiB values).
const RSS_TOLERANCE_KIB: u64 = 16 * 1024;
/// Growth of open descriptors allowed (reader connections opened on demand).
const FD_TOLERANCE: u64 = 8;
/// How long a worker may take to end once stopped (it finishes its operation first).
const STOP_WAIT: Duration = Duration::from_secs(120);
/// Past the duration by this much, the soak gives up as hung (exit 1), whatever it
/// waits for.
const WATCHDOG_MARGIN: Duration = Duration::from_secs(900);
/// Expiring keys per worker.
const X_KEYS: usize = 12;
/// The counter every worker increments.
const SHARED_COUNTER: &str = "c/all";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("worker") {
        worker(&args[2..]);
        return;
    }
    let Some(duration) = args.get(1).and_then(|a| parse_duration(a)) else {
        eprintln!("usage: soak DURATION   (for example 90s, 30m, 1h)");
        std::process::exit(2);
    };
    std::process::exit(if supervise(duration) { 0 } else { 1 });
}

fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num.parse().ok()?;
    let secs = match unit {
        "s" => n,
        "m" | "min" => n * 60,
        "h" => n * 3600,
        _ => return None,
    };
    Some(Duration::from_secs(secs))
}

// ---------------------------------------------------------------------------------
// The worker.

fn fail(what: &str, e: &dyn std::fmt::Display) -> ! {
    eprintln!("soak worker error in {what}: {e}");
    std::process::exit(1);
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    // One write per line; a supervisor that went away ends the worker.
    if out
        .write_all(format!("{line}\n").as_bytes())
        .and_then(|()| out.flush())
        .is_err()
    {
        std::process::exit(3);
    }
}

/// `soak worker DIR SLOT FIRST_VERSION SEED MAX_SIZE KEYS WORKERS STOP_FILE`
fn worker(args: &[String]) {
    if args.len() != 8 {
        fail("arguments", &format!("expected 8, got {args:?}"));
    }
    let num = |i: usize| -> u64 {
        args[i]
            .parse()
            .unwrap_or_else(|e| fail("arguments", &format!("{:?}: {e}", args[i])))
    };
    let dir = Path::new(&args[0]);
    let (slot, mut version, seed, max_size) = (num(1), num(2), num(3), num(4));
    let (keys, workers) = (num(5), num(6));
    let stop = Path::new(&args[7]);
    let cache = Cache::builder()
        .max_size(max_size)
        .open(dir)
        .unwrap_or_else(|e| fail("open", &e));
    let mut rng = fastrand::Rng::with_seed(seed);
    let tag = format!("t/{slot}");
    let own_counter = format!("c/{slot}");
    let own = |rng: &mut fastrand::Rng| format!("k/{slot}/{}", rng.u64(..keys));
    let mut n: u64 = 0;
    loop {
        n += 1;
        if n.is_multiple_of(16) && stop.exists() {
            return;
        }
        version += 1;
        match rng.u8(..100) {
            0..25 => {
                let w = rng.u64(..workers);
                let k = if rng.u8(..4) == 0 {
                    format!("x/{w}/{}", rng.usize(..X_KEYS))
                } else {
                    format!("k/{w}/{}", rng.u64(..keys))
                };
                if let Some(v) = cache.get(&k).unwrap_or_else(|e| fail("get", &e))
                    && parse_soak_payload(&k, &v).is_none()
                {
                    fail(
                        "get",
                        &format!("{k} holds {} bytes no writer wrote", v.len()),
                    );
                }
                say("A G");
            }
            25..50 => {
                let k = own(&mut rng);
                let tagged = rng.u8(..10) == 0;
                let op = format!("S {k} {version} {}", u8::from(tagged));
                say(&format!("I {op}"));
                let v = soak_payload(&k, version);
                if tagged {
                    cache.set_with(&k, &v, &SetOptions::new().tag(tag.as_str()))
                } else {
                    cache.set(&k, &v)
                }
                .unwrap_or_else(|e| fail("set", &e));
                say(&format!("A {op}"));
            }
            50..57 => {
                let mut ks: Vec<String> = (0..rng.usize(2..=6)).map(|_| own(&mut rng)).collect();
                ks.sort();
                ks.dedup();
                let op = format!("M {version} {}", ks.join(","));
                say(&format!("I {op}"));
                let entries: Vec<(&str, Vec<u8>)> = ks
                    .iter()
                    .map(|k| (k.as_str(), soak_payload(k, version)))
                    .collect();
                cache
                    .set_many(entries)
                    .unwrap_or_else(|e| fail("set_many", &e));
                say(&format!("A {op}"));
            }
            57..65 => {
                let k = own(&mut rng);
                let op = format!("D {k}");
                say(&format!("I {op}"));
                cache.delete(&k).unwrap_or_else(|e| fail("delete", &e));
                say(&format!("A {op}"));
            }
            65..75 => {
                let k = if rng.bool() {
                    own_counter.as_str()
                } else {
                    SHARED_COUNTER
                };
                let op = format!("C {k}");
                say(&format!("I {op}"));
                cache.incr(k, 1, 0).unwrap_or_else(|e| fail("incr", &e));
                say(&format!("A {op}"));
            }
            75..83 => {
                let (a, b, d) = loop {
                    let (a, b, d) = (own(&mut rng), own(&mut rng), own(&mut rng));
                    if a != b && b != d && a != d {
                        break (a, b, d);
                    }
                };
                let op = format!("T {version} {a},{b} {d}");
                say(&format!("I {op}"));
                cache
                    .transact(|tx| {
                        tx.set(&a, soak_payload(&a, version))?;
                        tx.set(&b, soak_payload(&b, version))?;
                        tx.delete(&d).map(drop)
                    })
                    .unwrap_or_else(|e: sciqlop_cache::Error| fail("transact", &e));
                say(&format!("A {op}"));
            }
            83..85 => {
                say("I E");
                cache
                    .evict_tag(&tag)
                    .unwrap_or_else(|e| fail("evict_tag", &e));
                say("A E");
            }
            85..95 => {
                let k = format!("x/{slot}/{}", rng.usize(..X_KEYS));
                let ttl = rng.u64(200..3000);
                let op = format!("X {k} {version} {ttl}");
                say(&format!("I {op}"));
                let opts = SetOptions::new().expire(Duration::from_millis(ttl));
                cache
                    .set_with(&k, soak_payload(&k, version), &opts)
                    .unwrap_or_else(|e| fail("set with expiry", &e));
                say(&format!("A {op}"));
            }
            _ => {
                let k = own(&mut rng);
                if let Some(v) = cache.get(&k).unwrap_or_else(|e| fail("get", &e))
                    && parse_soak_payload(&k, &v).is_none()
                {
                    fail(
                        "get",
                        &format!("{k} holds {} bytes no writer wrote", v.len()),
                    );
                }
                say("A G");
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// The supervisor's model.

/// A write as the journal names it.
#[derive(Debug, Clone)]
enum Op {
    Get,
    Set(String, u64, bool),
    SetMany(u64, Vec<String>),
    Delete(String),
    Incr(String),
    Tx(u64, Vec<String>, String),
    EvictTag,
    Expiring(String, u64, Duration),
}

impl Op {
    fn parse(s: &str) -> Option<Op> {
        let t: Vec<&str> = s.split(' ').collect();
        let list = |s: &str| s.split(',').map(str::to_owned).collect::<Vec<_>>();
        Some(match t[..] {
            ["G"] => Op::Get,
            ["S", k, v, tag] => Op::Set(k.to_owned(), v.parse().ok()?, tag == "1"),
            ["M", v, ks] => Op::SetMany(v.parse().ok()?, list(ks)),
            ["D", k] => Op::Delete(k.to_owned()),
            ["C", k] => Op::Incr(k.to_owned()),
            ["T", v, sets, d] => Op::Tx(v.parse().ok()?, list(sets), d.to_owned()),
            ["E"] => Op::EvictTag,
            ["X", k, v, ttl] => Op::Expiring(
                k.to_owned(),
                v.parse().ok()?,
                Duration::from_millis(ttl.parse().ok()?),
            ),
            _ => return None,
        })
    }

    fn kind(&self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::Set(_, _, false) => "set",
            Op::Set(_, _, true) => "set (tagged)",
            Op::SetMany(..) => "set_many",
            Op::Delete(_) => "delete",
            Op::Incr(k) if k == SHARED_COUNTER => "incr (shared)",
            Op::Incr(_) => "incr (own)",
            Op::Tx(..) => "transaction",
            Op::EvictTag => "evict_tag",
            Op::Expiring(..) => "set (expiring)",
        }
    }
}

/// What the model knows of one key.
#[derive(Debug, Clone, PartialEq)]
struct KeyState {
    /// The version stored (None: absent).
    version: Option<u64>,
    tagged: bool,
    /// For an expiring value: the latest moment it may still be read.
    expires: Option<Instant>,
    /// When the write was acknowledged (or, for a write in flight, announced).
    at: Instant,
}

impl KeyState {
    fn absent(at: Instant) -> Self {
        KeyState {
            version: None,
            tagged: false,
            expires: None,
            at,
        }
    }
}

/// The effects of `op` on the keys of a worker whose model is `keys`, at `at`.
fn effects(op: &Op, keys: &HashMap<String, KeyState>, at: Instant) -> Vec<(String, KeyState)> {
    let present = |v: u64, tagged: bool, expires: Option<Instant>| KeyState {
        version: Some(v),
        tagged,
        expires,
        at,
    };
    match op {
        Op::Get | Op::Incr(_) => Vec::new(),
        Op::Set(k, v, tagged) => vec![(k.clone(), present(*v, *tagged, None))],
        Op::SetMany(v, ks) => ks
            .iter()
            .map(|k| (k.clone(), present(*v, false, None)))
            .collect(),
        Op::Delete(k) => vec![(k.clone(), KeyState::absent(at))],
        Op::Tx(v, sets, d) => sets
            .iter()
            .map(|k| (k.clone(), present(*v, false, None)))
            .chain([(d.clone(), KeyState::absent(at))])
            .collect(),
        Op::EvictTag => keys
            .iter()
            .filter(|(_, s)| s.tagged && s.version.is_some())
            .map(|(k, _)| (k.clone(), KeyState::absent(at)))
            .collect(),
        Op::Expiring(k, v, ttl) => vec![(k.clone(), present(*v, false, Some(at + *ttl)))],
    }
}

/// How an observed key compares with a state of the model.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Verdict {
    Exact,
    Expired,
    Evicted,
}

fn judge(state: &KeyState, observed: Option<u64>, now: Instant) -> Result<Verdict, String> {
    match (state.version, observed) {
        (Some(want), Some(got)) if want == got => match state.expires {
            // A little margin: the read may have started before the deadline.
            Some(deadline) if now > deadline + Duration::from_millis(100) => Err(format!(
                "version {got} read {:?} after its expiry",
                now - deadline
            )),
            _ => Ok(Verdict::Exact),
        },
        (None, None) => Ok(Verdict::Exact),
        (None, Some(got)) => Err(format!("version {got} present, the key should be absent")),
        (Some(want), Some(got)) => Err(format!(
            "version {got} present instead of the acknowledged version {want}"
        )),
        (Some(want), None) => {
            if state.expires.is_some() {
                Ok(Verdict::Expired)
            } else if now.duration_since(state.at) < RECENT {
                Err(format!(
                    "acknowledged version {want} missing {:?} after it was written",
                    now.duration_since(state.at)
                ))
            } else {
                Ok(Verdict::Evicted)
            }
        }
    }
}

/// One worker slot: its process and the model of its keys.
struct Slot {
    child: Option<Child>,
    stderr: Option<LineReader>,
    pid: u32,
    /// Which process of this slot (0, 1, …): lines of a dead one are told apart.
    life: u64,
    keys: HashMap<String, KeyState>,
    counter: i64,
    pending: Option<(Op, Instant)>,
    /// The output of the current process ended (it was killed, stopped or failed).
    ended: bool,
}

enum Msg {
    Line(usize, u64, String, Instant),
    Eof(usize, u64),
}

#[derive(Default)]
struct Figures {
    acked: BTreeMap<&'static str, u64>,
    /// Bytes of values in acknowledged writes.
    written: u64,
    /// Time spent verifying after kills.
    verifying: Duration,
    kills: u64,
    in_flight_applied: u64,
    in_flight_not_applied: u64,
    evicted: u64,
    expired: u64,
    shared_acked: i64,
    shared_maybe: i64,
    size_peak: u64,
    volume_peak: u64,
    size_samples: u64,
    /// pid label → (seconds since start, RSS KiB, fds)
    samples: BTreeMap<String, Vec<(f64, u64, u64)>>,
}

struct Supervisor {
    dir: PathBuf,
    stop: PathBuf,
    max_size: u64,
    keys: u64,
    workers: usize,
    rng: fastrand::Rng,
    tx: mpsc::Sender<Msg>,
    rx: mpsc::Receiver<Msg>,
    slots: Vec<Slot>,
    spawned: u64,
    cache: Cache,
    fig: Figures,
    failures: Vec<String>,
    started: Instant,
    sabotage: bool,
}

impl Supervisor {
    fn spawn(&mut self, slot: usize) {
        self.spawned += 1;
        let exe = std::env::current_exe().expect("the soak binary's path");
        let mut child = Command::new(exe)
            .arg("worker")
            .arg(&self.dir)
            .arg(slot.to_string())
            .arg((self.spawned * 1_000_000_000).to_string())
            .arg(self.rng.u64(..).to_string())
            .arg(self.max_size.to_string())
            .arg(self.keys.to_string())
            .arg(self.workers.to_string())
            .arg(&self.stop)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn a soak worker");
        let s = &mut self.slots[slot];
        s.life += 1;
        s.ended = false;
        let life = s.life;
        s.pid = child.id();
        s.stderr = Some(LineReader::spawn(child.stderr.take().expect("stderr")));
        let out = child.stdout.take().expect("stdout");
        s.child = Some(child);
        let tx = self.tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx
                    .send(Msg::Line(slot, life, line, Instant::now()))
                    .is_err()
                {
                    return;
                }
            }
            let _ = tx.send(Msg::Eof(slot, life));
        });
    }

    /// Applies one message.
    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Eof(slot, life) => {
                if self.slots[slot].life == life {
                    self.slots[slot].ended = true;
                }
            }
            Msg::Line(slot, life, line, at) => {
                if self.slots[slot].life != life {
                    return;
                }
                let (phase, rest) = line.split_at(line.find(' ').unwrap_or(line.len()));
                let Some(op) = Op::parse(rest.trim_start()) else {
                    self.failures
                        .push(format!("worker {slot}: unexpected line {line:?}"));
                    return;
                };
                let s = &mut self.slots[slot];
                match phase {
                    "I" => s.pending = Some((op, at)),
                    "A" => {
                        *self.fig.acked.entry(op.kind()).or_default() += 1;
                        match &op {
                            Op::Incr(k) if k == SHARED_COUNTER => self.fig.shared_acked += 1,
                            Op::Incr(_) => s.counter += 1,
                            _ => {}
                        }
                        for (k, st) in effects(&op, &s.keys, at) {
                            if let Some(v) = st.version {
                                self.fig.written += soak_payload_len(&k, v) as u64;
                            }
                            s.keys.insert(k, st);
                        }
                        s.pending = None;
                    }
                    _ => self
                        .failures
                        .push(format!("worker {slot}: unexpected line {line:?}")),
                }
            }
        }
    }

    /// Handles messages until the output of `slot`'s current process ended. A process
    /// that is still writing after [`STOP_WAIT`] is a failure (a hang): it is killed.
    fn drain_until_eof(&mut self, slot: usize) {
        let deadline = Instant::now() + STOP_WAIT;
        while !self.slots[slot].ended {
            if Instant::now() > deadline {
                self.failures.push(format!(
                    "worker {slot}: did not end within {STOP_WAIT:?} (a hang?); killed"
                ));
                if let Some(child) = self.slots[slot].child.as_mut() {
                    let _ = child.kill();
                }
                // Its output ends now; lines still buffered are read as usual.
                while !self.slots[slot].ended {
                    match self.rx.recv_timeout(Duration::from_secs(10)) {
                        Ok(msg) => self.handle(msg),
                        Err(_) => return,
                    }
                }
                return;
            }
            match self.rx.recv_timeout(Duration::from_secs(1)) {
                Ok(msg) => self.handle(msg),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(e) => {
                    self.failures
                        .push(format!("worker {slot}: its output never ended ({e})"));
                    return;
                }
            }
        }
    }

    fn read_version(&mut self, key: &str) -> Option<u64> {
        match self.cache.get(key) {
            Ok(None) => None,
            Ok(Some(v)) => match parse_soak_payload(key, &v) {
                Some(ver) => Some(ver),
                None => {
                    self.failures
                        .push(format!("{key}: {} bytes no writer wrote", v.len()));
                    None
                }
            },
            Err(e) => {
                self.failures.push(format!("{key}: read failed: {e}"));
                None
            }
        }
    }

    /// Verifies the keys and counter of `slot`, whose process is dead: the model after
    /// the acknowledged writes, with the write in flight (if any) wholly applied or not
    /// at all. Continues from what was found.
    fn verify_slot(&mut self, slot: usize) {
        let now = Instant::now();
        let pending = self.slots[slot].pending.take();
        let mut keys: Vec<String> = self.slots[slot].keys.keys().cloned().collect();
        keys.sort();
        // A write in flight happened (if it did) before now: its expiry is at most
        // `now + ttl`.
        let after: HashMap<String, KeyState> = match &pending {
            Some((op, _)) => effects(op, &self.slots[slot].keys, now)
                .into_iter()
                .collect(),
            None => HashMap::new(),
        };
        for k in after.keys() {
            if !self.slots[slot].keys.contains_key(k) {
                keys.push(k.clone());
            }
        }
        let observed: Vec<Option<u64>> = keys.iter().map(|k| self.read_version(k)).collect();
        let model = self.slots[slot].keys.clone();
        let started = self.started;
        let before_of = |k: &str| {
            model
                .get(k)
                .cloned()
                .unwrap_or_else(|| KeyState::absent(started))
        };
        // The outcome with the write in flight not applied, then applied.
        let judge_all = |applied: bool| -> Result<Vec<Verdict>, String> {
            keys.iter()
                .zip(&observed)
                .map(|(k, o)| {
                    let st = match after.get(k) {
                        Some(a) if applied => a.clone(),
                        _ => before_of(k),
                    };
                    judge(&st, *o, now).map_err(|e| format!("{k}: {e}"))
                })
                .collect()
        };
        let not_applied = judge_all(false);
        let applied = if after.is_empty() {
            Err("no write in flight".to_owned())
        } else {
            judge_all(true)
        };
        // Prefer "applied" when the keys it touched hold exactly its versions.
        let exact_applied = applied
            .as_ref()
            .is_ok_and(|v| v.iter().all(|x| *x == Verdict::Exact));
        let (verdicts, took) = match (&not_applied, &applied) {
            (Ok(v), Ok(w)) => {
                if exact_applied {
                    (w.clone(), true)
                } else {
                    (v.clone(), false)
                }
            }
            (Ok(v), Err(_)) => (v.clone(), false),
            (Err(_), Ok(w)) => (w.clone(), true),
            (Err(e), Err(f)) => {
                self.failures.push(format!(
                    "worker {slot} (write in flight: {pending:?}): neither outcome matches the store: {e}; {f}"
                ));
                return;
            }
        };
        if !after.is_empty() {
            if took {
                self.fig.in_flight_applied += 1;
            } else {
                self.fig.in_flight_not_applied += 1;
            }
        }
        for (k, v) in keys.iter().zip(verdicts) {
            let st = match after.get(k) {
                Some(a) if took => a.clone(),
                _ => before_of(k),
            };
            match v {
                Verdict::Exact => {}
                Verdict::Expired => self.fig.expired += 1,
                Verdict::Evicted => self.fig.evicted += 1,
            }
            // Continue from what the store holds.
            let st = if v == Verdict::Exact {
                st
            } else {
                KeyState::absent(st.at)
            };
            self.slots[slot].keys.insert(k.clone(), st);
        }
        // The worker's own counter is known exactly again; the shared one is not.
        let own = format!("c/{slot}");
        let acked = self.slots[slot].counter;
        let in_flight = matches!(&pending, Some((Op::Incr(k), _)) if *k == own);
        if matches!(&pending, Some((Op::Incr(k), _)) if k == SHARED_COUNTER) {
            self.fig.shared_maybe += 1;
        }
        match self.cache.get_counter(&own) {
            Ok(got) => {
                let got = got.unwrap_or(0);
                if got == acked || (in_flight && got == acked + 1) {
                    self.slots[slot].counter = got;
                } else {
                    self.failures.push(format!(
                        "{own}: {got}, acknowledged increments {acked}{}",
                        if in_flight { " (+1 in flight)" } else { "" }
                    ));
                }
            }
            Err(e) => self.failures.push(format!("{own}: read failed: {e}")),
        }
    }

    /// SIGKILLs `slot`'s process, verifies its keys and starts it again.
    fn kill_and_restart(&mut self, slot: usize) {
        if let Some(mut child) = self.slots[slot].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.drain_until_eof(slot);
        self.fig.kills += 1;
        if self.sabotage {
            self.lose_newest_write(slot);
        }
        let t0 = Instant::now();
        self.verify_slot(slot);
        self.fig.verifying += t0.elapsed();
        self.spawn(slot);
    }

    /// Deletes the newest acknowledged value of `slot` behind the model's back: a lost
    /// write the verification must report.
    fn lose_newest_write(&mut self, slot: usize) {
        let newest = self.slots[slot]
            .keys
            .iter()
            .filter(|(_, s)| s.version.is_some() && s.expires.is_none())
            .max_by_key(|(_, s)| s.at)
            .map(|(k, _)| k.clone());
        if let Some(k) = newest
            && let Err(e) = self.cache.delete(&k)
        {
            self.failures.push(format!("sabotage: delete {k}: {e}"));
        }
    }

    /// A worker whose output ended without being killed: it failed.
    fn died(&mut self, slot: usize) {
        let status = self.slots[slot].child.take().map(|mut c| c.wait());
        let stderr = self.slots[slot]
            .stderr
            .take()
            .map(|r| r.lines().join("\n"))
            .unwrap_or_default();
        self.failures.push(format!(
            "worker {slot} ended on its own ({status:?}): {stderr}"
        ));
        self.verify_slot(slot);
        self.spawn(slot);
    }

    fn sample(&mut self, survivors: usize) {
        let t = self.started.elapsed().as_secs_f64();
        match (self.cache.size(), self.cache.volume()) {
            (Ok(size), Ok(volume)) => {
                self.fig.size_peak = self.fig.size_peak.max(size);
                self.fig.volume_peak = self.fig.volume_peak.max(volume);
                self.fig.size_samples += 1;
            }
            (Err(e), _) | (_, Err(e)) => self.failures.push(format!("size/volume: {e}")),
        }
        let mut pids: Vec<(String, u32)> = (0..survivors)
            .map(|s| (format!("worker {s}"), self.slots[s].pid))
            .collect();
        pids.push(("supervisor".to_owned(), std::process::id()));
        for (label, pid) in pids {
            if let (Some(rss), Some(fds)) = (rss_kib(pid), open_fds(pid)) {
                self.fig
                    .samples
                    .entry(label)
                    .or_default()
                    .push((t, rss, fds));
            }
        }
    }
}

fn supervise(duration: Duration) -> bool {
    let workers = env_usize("SOAK_WORKERS", 8).max(2);
    let survivors = env_usize("SOAK_SURVIVORS", 2).min(workers - 1);
    let max_size = env_usize("SOAK_MAX_SIZE", 128 << 20) as u64;
    let keys = env_usize("SOAK_KEYS", 768).max(4) as u64;
    let seed = std::env::var("SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    let (tmp, root) = match std::env::var_os("SOAK_DIR") {
        Some(d) => (None, PathBuf::from(d)),
        None => {
            let t = tempfile::tempdir().expect("a temporary directory");
            let p = t.path().to_path_buf();
            (Some(t), p)
        }
    };
    std::fs::create_dir_all(&root).expect("the soak directory");
    let dir = root.join("store");
    let stop = root.join("stop");
    let _ = std::fs::remove_file(&stop);
    println!(
        "soak: {:?}, {workers} workers ({survivors} never killed), max_size {} MiB, {keys} keys per worker, seed {seed}, store {}",
        duration,
        max_size >> 20,
        dir.display()
    );
    let cache = Cache::builder()
        .max_size(max_size)
        .open(&dir)
        .expect("create the store");
    let (tx, rx) = mpsc::channel();
    let mut sup = Supervisor {
        dir: dir.clone(),
        stop: stop.clone(),
        max_size,
        keys,
        workers,
        rng: fastrand::Rng::with_seed(seed),
        tx,
        rx,
        slots: (0..workers)
            .map(|_| Slot {
                child: None,
                stderr: None,
                pid: 0,
                life: 0,
                keys: HashMap::new(),
                counter: 0,
                pending: None,
                ended: false,
            })
            .collect(),
        spawned: 0,
        cache,
        fig: Figures::default(),
        failures: Vec::new(),
        started: Instant::now(),
        sabotage: std::env::var("SOAK_SABOTAGE").is_ok_and(|v| v == "1"),
    };
    for slot in 0..workers {
        sup.spawn(slot);
    }
    // A hang anywhere (a worker, the store, the verification) ends the run as a
    // failure instead of blocking its caller (CI) forever; the workers end with it
    // (their stdout closes).
    std::thread::spawn(move || {
        std::thread::sleep(duration + WATCHDOG_MARGIN);
        println!(
            "soak: FAILED: still running {WATCHDOG_MARGIN:?} after the end of the run (a hang)"
        );
        std::process::exit(1);
    });
    let deadline = sup.started + duration;
    let mut next_kill = Instant::now() + Duration::from_millis(sup.rng.u64(1000..4000));
    let mut next_sample = Instant::now();
    let mut next_report = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline && sup.failures.len() < 20 {
        if let Ok(msg) = sup.rx.recv_timeout(Duration::from_millis(10)) {
            sup.handle(msg);
        }
        for slot in 0..workers {
            if sup.slots[slot].ended {
                sup.died(slot);
            }
        }
        let now = Instant::now();
        if now >= next_kill {
            let slot = sup.rng.usize(survivors..workers);
            sup.kill_and_restart(slot);
            next_kill = Instant::now() + Duration::from_millis(sup.rng.u64(1000..4000));
        }
        if now >= next_sample {
            sup.sample(survivors);
            next_sample = now + Duration::from_secs(1);
        }
        if now >= next_report {
            let ops: u64 = sup.fig.acked.values().sum();
            println!(
                "  {:>5.0} s: {ops} operations, {} kills, size peak {} MiB, {} failures",
                sup.started.elapsed().as_secs_f64(),
                sup.fig.kills,
                sup.fig.size_peak >> 20,
                sup.failures.len()
            );
            next_report = now + Duration::from_secs(60);
        }
    }
    let ran = sup.started.elapsed();
    sup.sample(survivors);
    // Stop: each worker finishes its operation and exits.
    std::fs::write(&stop, b"").expect("the stop file");
    for slot in 0..workers {
        sup.drain_until_eof(slot);
        if let Some(mut child) = sup.slots[slot].child.take() {
            let status = child.wait();
            let stderr = sup.slots[slot]
                .stderr
                .take()
                .map(|r| r.lines().join("\n"))
                .unwrap_or_default();
            if !status.as_ref().is_ok_and(|s| s.success()) {
                sup.failures
                    .push(format!("worker {slot} at the stop: {status:?}: {stderr}"));
            }
        }
    }
    for slot in 0..workers {
        sup.verify_slot(slot);
    }
    let shared = sup
        .cache
        .get_counter(SHARED_COUNTER)
        .ok()
        .flatten()
        .unwrap_or(0);
    let (lo, hi) = (
        sup.fig.shared_acked,
        sup.fig.shared_acked + sup.fig.shared_maybe,
    );
    if shared < lo || shared > hi {
        sup.failures.push(format!(
            "{SHARED_COUNTER}: {shared}, acknowledged increments {lo}, at most {hi} with those in flight at a kill"
        ));
    }
    // A process killed while writing a value file leaves it behind (orphaned, in
    // `data/tmp` or not yet referenced): the only thing a crash may leave. `check(true)`
    // removes it; then the store must be clean.
    let first = sup.cache.check(false);
    let orphans = match &first {
        Ok(r) => {
            let mut only_orphans = r.clone();
            only_orphans.ok = true;
            only_orphans.orphaned_files = 0;
            if !r.ok && only_orphans != CheckReport::all_ok() {
                sup.failures.push(format!(
                    "check() after the soak found more than orphans: {r:?}"
                ));
            }
            r.orphaned_files
        }
        Err(e) => {
            sup.failures.push(format!("check() after the soak: {e}"));
            0
        }
    };
    let _ = sup.cache.check(true);
    let report = sup.cache.check(false);
    match &report {
        Ok(r) if r.ok => {}
        other => sup
            .failures
            .push(format!("check() after check(true): {other:?}")),
    }
    // Files of rows deleted last are queued for deletion (the `discarded` queue, drained
    // by the upkeep): drain it, then every value file has its row.
    if let Err(e) = sup.cache.maintain() {
        sup.failures.push(format!("maintain(): {e}"));
    }
    let (files, rows) = (value_files(&dir).len() as u64, file_backed_rows(&dir));
    if files != rows {
        sup.failures
            .push(format!("{files} value files for {rows} file-backed rows"));
    }
    let evicted_at_end = sup.cache.evict().unwrap_or_else(|e| {
        sup.failures.push(format!("evict(): {e}"));
        0
    });
    let final_size = sup.cache.size().unwrap_or(u64::MAX);
    let final_volume = sup.cache.volume().unwrap_or(u64::MAX);
    let final_len = sup.cache.len().unwrap_or(u64::MAX);
    if final_size > max_size {
        sup.failures.push(format!(
            "size {final_size} over max_size {max_size} after evict()"
        ));
    }
    if sup.fig.size_peak > max_size + SIZE_SLACK {
        sup.failures.push(format!(
            "size reached {} during the run: more than max_size {max_size} + slack {SIZE_SLACK}",
            sup.fig.size_peak
        ));
    }
    // Memory and descriptors: the second tenth of the run against the last tenth.
    let secs = ran.as_secs_f64();
    let mut growth = Vec::new();
    for (label, samples) in &sup.fig.samples {
        let window = |from: f64, to: f64| {
            samples
                .iter()
                .filter(|(t, _, _)| *t >= from * secs && *t <= to * secs)
                .fold((0u64, 0u64), |(r, f), s| (r.max(s.1), f.max(s.2)))
        };
        let (early_rss, early_fds) = window(0.1, 0.2);
        let (late_rss, late_fds) = window(0.9, 1.01);
        growth.push(format!(
            "  {label:>10}: RSS {} -> {} MiB, fds {early_fds} -> {late_fds}",
            early_rss / 1024,
            late_rss / 1024
        ));
        if early_rss > 0 && late_rss > early_rss + early_rss / 4 + RSS_TOLERANCE_KIB {
            sup.failures.push(format!(
                "{label}: resident memory grew from {early_rss} KiB to {late_rss} KiB"
            ));
        }
        if early_fds > 0 && late_fds > early_fds + FD_TOLERANCE {
            sup.failures.push(format!(
                "{label}: open descriptors grew from {early_fds} to {late_fds}"
            ));
        }
    }

    let f = &sup.fig;
    let ops: u64 = f.acked.values().sum();
    println!("soak figures ({:.0} s, seed {seed}):", ran.as_secs_f64());
    println!(
        "  acknowledged operations: {ops} ({:.0}/s)",
        ops as f64 / secs.max(1e-9)
    );
    for (kind, n) in &f.acked {
        println!("    {kind:>15}: {n}");
    }
    println!(
        "  values written: {:.1} MiB ({:.2} MiB/s)",
        f.written as f64 / 1048576.0,
        f.written as f64 / 1048576.0 / secs.max(1e-9)
    );
    println!(
        "  kills: {} (write in flight applied {}, not applied {}; verifying took {:.1?} in all)",
        f.kills, f.in_flight_applied, f.in_flight_not_applied, f.verifying
    );
    println!(
        "  keys found missing: evicted {} (least recently used, written over {:?} before), expired {}",
        f.evicted, RECENT, f.expired
    );
    println!(
        "  shared counter {shared}: acknowledged {lo}, in flight at a kill {} (the slack)",
        f.shared_maybe
    );
    println!(
        "  size: peak {:.1} MiB in {} samples (max_size {} MiB, slack {} MiB); at the end {:.1} MiB in {final_len} entries ({evicted_at_end} evicted by the final evict()), volume {:.1} MiB (peak {:.1} MiB)",
        f.size_peak as f64 / 1048576.0,
        f.size_samples,
        max_size >> 20,
        SIZE_SLACK >> 20,
        final_size as f64 / 1048576.0,
        final_volume as f64 / 1048576.0,
        f.volume_peak as f64 / 1048576.0,
    );
    println!(
        "  value files {files}, file-backed rows {rows}, orphaned files left by kills {orphans} (removed by check(true)), then check: {}",
        match &report {
            Ok(r) if r.ok => "clean".to_owned(),
            other => format!("{other:?}"),
        }
    );
    println!("  memory and descriptors, second tenth of the run -> last tenth:");
    for g in &growth {
        println!("{g}");
    }
    if sup.failures.is_empty() {
        println!("soak: ok");
        true
    } else {
        println!("soak: {} FAILURES:", sup.failures.len());
        for e in &sup.failures {
            println!("  - {e}");
        }
        if let Some(t) = tmp {
            // Keep the store for a look.
            println!("  store kept in {}", t.keep().display());
        }
        false
    }
}
