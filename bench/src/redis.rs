//! `sqbench redis`: the Redis engine against its floor. On one `redis-server` started
//! here (loopback, no persistence): the Redis engine's `Cache` get and set (set with a
//! tag and an expiry), pipelined `set_many`, raw `redis` crate GET/SET on the same
//! server with the same kind of client (the floor), the local SQLite `Cache` for
//! comparison, `redis-benchmark` for reference, and the engine's throughput from 1, 2, 4
//! and 8 client processes. Prints a markdown table; asserts nothing.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use sciqlop_cache::{Cache, SetOptions};
use sciqlop_cache_redis::testing::Server;
use sciqlop_cache_redis::{OpenRedis, RedisCache};

/// Value length of every operation (bytes).
const VALUE: usize = 100;
/// Keys cycled through.
const KEYS: usize = 1000;
/// Entries per `set_many` call.
const BATCH: usize = 100;

fn keys() -> Vec<String> {
    (0..KEYS).map(|i| format!("key{i:05}")).collect()
}

/// Mean µs per call of `f` over `n` calls (after `n / 10` warm-up calls).
fn time(n: usize, mut f: impl FnMut(usize) -> Result<()>) -> Result<f64> {
    for i in 0..n / 10 {
        f(i)?;
    }
    let start = Instant::now();
    for i in 0..n {
        f(i)?;
    }
    Ok(start.elapsed().as_secs_f64() * 1e6 / n as f64)
}

/// One row: what, µs/op, ops/s.
struct Row(String, f64);

/// Runs the comparison with `ops` operations per measurement: each one-client figure is
/// the best of three rounds (the machine is shared; the best round is the least
/// disturbed one).
pub fn run(ops: usize, procs: &[usize]) -> Result<()> {
    let server = Server::start().context("starting redis-server")?;
    let url = server.url("bench");
    let mut rows = one_client(&server, &url, ops)?;
    for _ in 0..2 {
        for (best, again) in rows.iter_mut().zip(one_client(&server, &url, ops)?) {
            best.1 = best.1.min(again.1);
        }
    }
    report(rows, ops, procs, &server, &url)
}

/// One round of the one-client measurements.
fn one_client(server: &Server, url: &str, ops: usize) -> Result<Vec<Row>> {
    let keys = keys();
    let value = vec![7u8; VALUE];
    let opts = SetOptions::new()
        .expire(Duration::from_secs(3600))
        .tag("bench");
    let mut rows = Vec::new();

    let client = redis::Client::open(format!("redis://127.0.0.1:{}/0", server.port()))?;
    let mut raw = client.get_connection()?;
    rows.push(Row(
        "raw redis SET (PX)".into(),
        time(ops, |i| {
            redis::cmd("SET")
                .arg(&keys[i % KEYS])
                .arg(&value)
                .arg("PX")
                .arg(3_600_000)
                .exec(&mut raw)?;
            Ok(())
        })?,
    ));
    rows.push(Row(
        "raw redis GET".into(),
        time(ops, |i| {
            let _: Option<Vec<u8>> = redis::cmd("GET").arg(&keys[i % KEYS]).query(&mut raw)?;
            Ok(())
        })?,
    ));
    rows.push(Row(
        format!("raw redis pipelined SET x{BATCH} (per entry)"),
        time(ops / BATCH, |i| {
            let mut p = redis::pipe();
            for j in 0..BATCH {
                p.cmd("SET")
                    .arg(&keys[(i * BATCH + j) % KEYS])
                    .arg(&value)
                    .ignore();
            }
            p.exec(&mut raw)?;
            Ok(())
        })? / BATCH as f64,
    ));
    let _: () = redis::cmd("FLUSHALL").query(&mut raw)?;

    let cache = RedisCache::open(url)?;
    cache.clear()?;
    rows.push(Row(
        "Redis engine set (tag + expiry)".into(),
        time(ops, |i| {
            Ok(cache.set_with(&keys[i % KEYS], &value, &opts)?)
        })?,
    ));
    rows.push(Row(
        "Redis engine set (plain)".into(),
        time(ops, |i| Ok(cache.set(&keys[i % KEYS], &value)?))?,
    ));
    rows.push(Row(
        "Redis engine get (hit)".into(),
        time(ops, |i| {
            cache.get(&keys[i % KEYS])?;
            Ok(())
        })?,
    ));
    rows.push(Row(
        "Redis engine incr".into(),
        time(ops, |_| {
            cache.incr("counter", 1, 0)?;
            Ok(())
        })?,
    ));
    rows.push(Row(
        format!("Redis engine set_many x{BATCH} (per entry)"),
        time(ops / BATCH, |i| {
            let batch: Vec<(&str, &[u8])> = (0..BATCH)
                .map(|j| (keys[(i * BATCH + j) % KEYS].as_str(), value.as_slice()))
                .collect();
            Ok(cache.set_many_with(batch, &opts)?)
        })? / BATCH as f64,
    ));

    let dir = tempfile::tempdir()?;
    let local = Cache::open(dir.path())?;
    rows.push(Row(
        "SQLite Cache set (tag + expiry)".into(),
        time(ops, |i| {
            Ok(local.set_with(&keys[i % KEYS], &value, &opts)?)
        })?,
    ));
    rows.push(Row(
        "SQLite Cache get (hit)".into(),
        time(ops, |i| {
            local.get(&keys[i % KEYS])?;
            Ok(())
        })?,
    ));

    Ok(rows)
}

fn report(rows: Vec<Row>, ops: usize, procs: &[usize], server: &Server, url: &str) -> Result<()> {
    println!("\n### Redis engine, one client ({VALUE}-byte values, {ops} ops each, best of 3)\n");
    println!("| operation | µs/op | ops/s |");
    println!("|---|---:|---:|");
    for Row(what, us) in &rows {
        println!("| {what} | {us:.1} | {:.0} |", 1e6 / us);
    }
    let find = |w: &str| rows.iter().find(|r| r.0 == w).map(|r| r.1);
    if let (Some(e), Some(r)) = (
        find("Redis engine set (tag + expiry)"),
        find("raw redis SET (PX)"),
    ) {
        println!("\nset with tag and expiry / raw SET: {:.2}x", e / r);
    }
    if let (Some(e), Some(r)) = (find("Redis engine get (hit)"), find("raw redis GET")) {
        println!("get / raw GET: {:.2}x", e / r);
    }
    if let (Some(one), Some(many)) = (
        find("Redis engine set (tag + expiry)"),
        find(&format!("Redis engine set_many x{BATCH} (per entry)")),
    ) {
        println!("set_many throughput / single sets: {:.1}x", one / many);
    }

    println!("\n### Redis engine, several client processes (set + get pairs)\n");
    println!("| processes | total ops/s |");
    println!("|---:|---:|");
    let exe = std::env::current_exe()?;
    for &n in procs {
        let start = Instant::now();
        let children = (0..n)
            .map(|id| {
                Command::new(&exe)
                    .args(["redis-worker", "--url", url, "--id"])
                    .arg(id.to_string())
                    .arg("--ops")
                    .arg(ops.to_string())
                    .stdout(Stdio::null())
                    .spawn()
                    .context("spawning a worker")
            })
            .collect::<Result<Vec<_>>>()?;
        for mut c in children {
            anyhow::ensure!(c.wait()?.success(), "a worker failed");
        }
        let total = (n * ops * 2) as f64;
        println!("| {n} | {:.0} |", total / start.elapsed().as_secs_f64());
    }

    println!("\n### redis-benchmark on the same server (reference)\n");
    let out = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &server.port().to_string()])
        .args(["-t", "set,get", "-n", &ops.max(10_000).to_string(), "-q"])
        .args(["-d", &VALUE.to_string(), "-c", "1"])
        .output();
    match out {
        Ok(o) => {
            let text = String::from_utf8_lossy(&o.stdout);
            // Its progress lines end in \r; the results in \n.
            for line in text
                .split(['\n', '\r'])
                .filter(|l| l.contains("requests per second"))
            {
                println!("    {}", line.trim());
            }
        }
        Err(e) => println!("redis-benchmark not run: {e}"),
    }
    Ok(())
}

/// One worker process: `ops` set + get pairs on its own keys.
pub fn worker(url: &str, id: usize, ops: usize) -> Result<()> {
    let cache = RedisCache::open(url)?;
    let value = vec![7u8; VALUE];
    for i in 0..ops {
        let k = format!("w{id}/{}", i % KEYS);
        cache.set(&k, &value)?;
        cache.get(&k)?;
    }
    Ok(())
}
