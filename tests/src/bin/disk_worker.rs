//! Bad-disk child: runs store operations in conditions the test process should not put
//! itself in (another user, a file size limit) and reports what happened on stdout.
//!
//! - `disk_worker ro DIR NEW_DIR KEYS…`: opens the existing store `DIR` (expected to be
//!   unwritable), reads `KEYS`, tries a write; then tries to create a store at `NEW_DIR`.
//! - `disk_worker watch DIR KEY UNTIL`: keeps the unwritable store open and reads `KEY`
//!   until its value is `UNTIL`, printing what it sees (another process writes it).
//! - `disk_worker fill DIR LIMIT`: sets `RLIMIT_FSIZE` to `LIMIT` bytes (ignoring
//!   `SIGXFSZ`, so writes fail with `EFBIG` instead of killing the process), writes a
//!   value larger than the limit, then values until a write fails, then reads back and
//!   tries a few more writes. Prints `OK key version` after each successful write.
//! - `disk_worker hold DIR KEY`: opens `DIR`, sets `KEY` inside a transaction, prints
//!   `HOLDING` and sleeps with the transaction open (so holding the write lock and the
//!   writers' turnstile) until it is killed.
//!
//! Error lines carry the error's variant (`{:?}` up to the first `{`/`(`) and message.

use std::time::Duration;

use sciqlop_cache::{Cache, Error};
use sciqlop_cache_tests::{SMALL_THRESHOLD, describe, payload};

fn variant(e: &Error) -> String {
    let d = format!("{e:?}");
    d.split(['{', '(', ' ']).next().unwrap_or("").to_owned()
}

fn err_line(what: &str, e: &Error) -> String {
    format!(
        "{what} err {} {}",
        variant(e),
        e.to_string().replace('\n', " ")
    )
}

fn open(dir: &str) -> Result<Cache, Error> {
    Cache::builder()
        .file_threshold(SMALL_THRESHOLD)
        .maintenance_interval(Duration::ZERO)
        .open(dir)
}

fn read_only(dir: &str, new_dir: &str, keys: &[String]) {
    match open(dir) {
        Err(e) => println!("{}", err_line("OPEN", &e)),
        Ok(c) => {
            println!("OPEN ok");
            for k in keys {
                match c.get(k) {
                    Ok(v) => println!("GET {k} {}", describe(k, v.as_deref())),
                    Err(e) => println!("{}", err_line(&format!("GET {k}"), &e)),
                }
            }
            match c.set("new-key", b"x") {
                Ok(()) => println!("SET ok"),
                Err(e) => println!("{}", err_line("SET", &e)),
            }
            match c.set("new-file-key", vec![7u8; 1000]) {
                Ok(()) => println!("SETFILE ok"),
                Err(e) => println!("{}", err_line("SETFILE", &e)),
            }
            match c.check(false) {
                Ok(r) => println!("CHECK {}", r.ok),
                Err(e) => println!("{}", err_line("CHECK", &e)),
            }
        }
    }
    match open(new_dir) {
        Ok(_) => println!("NEW ok"),
        Err(e) => println!("{}", err_line("NEW", &e)),
    }
}

/// Keeps the (unwritable) store `dir` open and reads `key` every few milliseconds,
/// printing each value it sees change (`SEEN value`, `SEEN -` for none) and each error,
/// until it reads `until` (then `DONE`) or 30 s pass.
fn watch(dir: &str, key: &str, until: &str) {
    let c = match open(dir) {
        Ok(c) => c,
        Err(e) => return println!("{}", err_line("OPEN", &e)),
    };
    println!("OPEN ok");
    let mut last: Option<String> = None;
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        match c.get(key) {
            Ok(v) => {
                let shown = v.map_or("-".to_owned(), |v| String::from_utf8_lossy(&v).into_owned());
                if last.as_deref() != Some(&shown) {
                    println!("SEEN {shown}");
                    last = Some(shown.clone());
                }
                if shown == until {
                    println!("DONE");
                    return;
                }
            }
            Err(e) => println!("{}", err_line("GET", &e)),
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    println!("TIMEOUT");
}

#[allow(unsafe_code)]
fn limit_file_size(bytes: u64) {
    let lim = libc::rlimit {
        rlim_cur: bytes as libc::rlim_t,
        rlim_max: bytes as libc::rlim_t,
    };
    // SAFETY: plain system calls with valid arguments; no memory is shared.
    unsafe {
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &lim), 0, "setrlimit");
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}

fn fill(dir: &str, limit: u64) {
    let c = open(dir).expect("open before the limit");
    limit_file_size(limit);
    match c.set("huge", vec![9u8; 2 * limit as usize]) {
        Ok(()) => println!("HUGE ok"),
        Err(e) => println!("{}", err_line("HUGE", &e)),
    }
    let mut acked = Vec::new();
    for i in 0..200_000u64 {
        let k = format!("f{i:06}");
        match c.set(&k, payload(&k, i)) {
            Ok(()) => {
                println!("OK {k} {i}");
                acked.push((k, i));
            }
            Err(e) => {
                println!("FAILED {k} {i}");
                println!("{}", err_line("FULL", &e));
                break;
            }
        }
    }
    let mut bad = 0;
    for (k, i) in acked.iter().rev().take(50) {
        match c.get(k) {
            Ok(Some(v)) if v == payload(k, *i) => {}
            other => {
                bad += 1;
                println!("READBAD {k} {other:?}");
            }
        }
    }
    println!("READ {bad}");
    for j in 0..3 {
        let k = format!("after{j}");
        match c.set(&k, payload(&k, 1)) {
            Ok(()) => println!("OK {k} 1"),
            Err(e) => {
                println!("FAILED {k} 1");
                println!("{}", err_line("AFTER", &e));
            }
        }
    }
    match c.check(false) {
        Ok(r) => println!("CHECK {}", r.ok),
        Err(e) => println!("{}", err_line("CHECK", &e)),
    }
}

fn hold(dir: &str, key: &str) {
    let cache = open(dir).unwrap_or_else(|e| {
        println!("{}", err_line("OPEN", &e));
        std::process::exit(1)
    });
    let r: Result<(), Error> = cache.transact(|tx| {
        tx.set(key, b"never committed")?;
        println!("HOLDING");
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    if let Err(e) = r {
        println!("{}", err_line("HOLD", &e));
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("ro") if args.len() >= 4 => read_only(&args[2], &args[3], &args[4..]),
        Some("fill") if args.len() == 4 => fill(&args[2], args[3].parse().expect("LIMIT")),
        Some("watch") if args.len() == 5 => watch(&args[2], &args[3], &args[4]),
        Some("hold") if args.len() == 4 => hold(&args[2], &args[3]),
        _ => {
            eprintln!(
                "usage: disk_worker ro DIR NEW_DIR KEYS… | fill DIR LIMIT | watch DIR KEY UNTIL | hold DIR KEY"
            );
            std::process::exit(2);
        }
    }
}
