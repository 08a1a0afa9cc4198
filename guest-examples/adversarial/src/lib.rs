//! Adversarial and probing plugin used by the host's integration tests and benchmark.
//! Not an example: each mode misbehaves on purpose or pokes at one host rule.
//!
//! Results are printed as `ok:...` or `err:<error-variant>` so tests can check typed
//! errors without parsing prose.

use cache_guest::{Cache, Error, Plugin, kind};
// A few probes talk to the raw interface (handles, buffered transactions) directly.
use sciqlop_cache::wit_bindings::sciqlop::cache::{cache as wit, types::Error as WitError};

struct Adversary;

/// The WIT variant name of a raw interface error.
fn wit_kind(e: &WitError) -> &'static str {
    match e {
        WitError::NotFound => "not-found",
        WitError::AccessDenied => "access-denied",
        WitError::InvalidKey(_) => "invalid-key",
        WitError::TooLarge(_) => "too-large",
        WitError::QuotaExceeded(_) => "quota-exceeded",
        WitError::NotACounter => "not-a-counter",
        WitError::Overflow => "overflow",
        WitError::Conflict => "conflict",
        WitError::TransactionClosed => "transaction-closed",
        WitError::InvalidArgument(_) => "invalid-argument",
        WitError::Io(_) => "io",
    }
}

fn wit_out<T: std::fmt::Display>(r: Result<T, WitError>) -> String {
    match r {
        Ok(v) => format!("ok:{v}"),
        Err(e) => format!("err:{}", wit_kind(&e)),
    }
}

fn out<T: std::fmt::Display>(r: Result<T, Error>) -> String {
    match r {
        Ok(v) => format!("ok:{v}"),
        Err(e) => format!("err:{}", kind(&e)),
    }
}

fn arg(args: &[String], i: usize) -> Result<&str, String> {
    args.get(i)
        .map(String::as_str)
        .ok_or(format!("missing argument {i}"))
}

fn num(args: &[String], i: usize) -> Result<u64, String> {
    arg(args, i)?
        .parse()
        .map_err(|e| format!("argument {i}: {e}"))
}

impl Plugin for Adversary {
    fn run(args: Vec<String>) -> Result<String, String> {
        let mode = arg(&args, 0)?;
        match mode {
            // --- misbehaviour ---
            "spin" => {
                let mut x: u64 = 0;
                loop {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            "bomb" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    let mut chunk = vec![0u8; 1 << 20];
                    chunk[0] = 1;
                    hoard.push(std::hint::black_box(chunk));
                }
            }
            "trap-in-tx" => {
                // Writes two keys in a transaction, then traps before committing.
                let cache = Cache::open(arg(&args, 1)?).map_err(|e| kind(&e).to_string())?;
                let _: Result<(), Error> = cache.transact(|tx| {
                    tx.set("a", "partial-a")?;
                    tx.incr("n", 1, 0)?;
                    tx.set("b", "partial-b")?;
                    panic!("trap in the middle of a transaction");
                });
                Ok("unreachable".into())
            }
            "drop-tx" => {
                // Writes in a transaction and drops it without committing.
                let store = wit::open(arg(&args, 1)?).map_err(|e| wit_kind(&e).to_string())?;
                let tx = store.begin().map_err(|e| wit_kind(&e).to_string())?;
                tx.set("a", b"dropped", None)
                    .map_err(|e| wit_kind(&e).to_string())?;
                drop(tx);
                Ok("ok:dropped".into())
            }
            "handles" => {
                // Opens the same store until the host refuses; keeps every handle.
                let name = arg(&args, 1)?;
                let mut held = Vec::new();
                loop {
                    match wit::open(name) {
                        Ok(s) => held.push(s),
                        Err(e) => {
                            return Ok(format!("opened {} then err:{}", held.len(), wit_kind(&e)));
                        }
                    }
                    if held.len() > 100_000 {
                        return Ok("no cap".into());
                    }
                }
            }
            "tx-hoard" => {
                // tx-hoard STORE N SIZE: opens up to N transactions at once and buffers
                // SIZE-byte values in each until the host refuses; keeps them all open.
                let store = wit::open(arg(&args, 1)?).map_err(|e| wit_kind(&e).to_string())?;
                let n = num(&args, 2)?;
                let size = usize::try_from(num(&args, 3)?).map_err(|e| e.to_string())?;
                let value = vec![b'h'; size];
                let mut txs = Vec::new();
                let mut buffered = 0u64;
                let mut refused = String::from("none");
                'outer: for t in 0..n {
                    let tx = match store.begin() {
                        Ok(tx) => tx,
                        Err(e) => {
                            refused = format!("begin:{}", wit_kind(&e));
                            break;
                        }
                    };
                    for i in 0.. {
                        match tx.set(&format!("hoard:{t}:{i}"), &value, None) {
                            Ok(()) => buffered += size as u64,
                            Err(e) => {
                                refused = format!("set:{}", wit_kind(&e));
                                break;
                            }
                        }
                        if i > 1_000_000 {
                            break 'outer;
                        }
                    }
                    txs.push(tx);
                }
                Ok(format!(
                    "ok:buffered={buffered} txs={} refused={refused}",
                    txs.len()
                ))
            }
            "batch-max" => {
                // batch-max STORE N SIZE: one set-many of N entries of SIZE bytes, one
                // get-many of N copies of a key holding the largest value the host takes.
                let store = wit::open(arg(&args, 1)?).map_err(|e| wit_kind(&e).to_string())?;
                let n = usize::try_from(num(&args, 2)?).map_err(|e| e.to_string())?;
                let size = usize::try_from(num(&args, 3)?).map_err(|e| e.to_string())?;
                let entries: Vec<(String, Vec<u8>)> = (0..n)
                    .map(|i| (format!("b:{i}"), vec![b'b'; size]))
                    .collect();
                let set = wit_out(store.set_many(&entries, None).map(|()| "set"));
                drop(entries);
                let mut big = 1usize << 20;
                while big > 0 && store.set("big", &vec![b'g'; big], None).is_err() {
                    big /= 2;
                }
                let keys: Vec<String> = (0..n).map(|_| "big".to_owned()).collect();
                let get = wit_out(store.get_many(&keys).map(|v| v.len()));
                Ok(format!("set-many {set}, get-many {get}"))
            }
            "stores" => {
                // stores PREFIX N: opens N distinct store names (each a namespace on
                // disk), dropping each handle at once.
                let prefix = arg(&args, 1)?;
                let n = num(&args, 2)?;
                for i in 0..n {
                    if let Err(e) = wit::open(&format!("{prefix}{i}")) {
                        return Ok(format!("opened {i} then err:{}", wit_kind(&e)));
                    }
                }
                Ok(format!("ok:opened {n}"))
            }
            // --- probes ---
            "open" => Ok(out(Cache::open(arg(&args, 1)?).map(|_| "opened"))),
            "set" => {
                let cache = Cache::open(arg(&args, 1)?).map_err(|e| format!("err:{}", kind(&e)))?;
                Ok(out(cache
                    .set(arg(&args, 2)?, arg(&args, 3)?)
                    .map(|()| "set")))
            }
            "get" => {
                let cache = Cache::open(arg(&args, 1)?).map_err(|e| format!("err:{}", kind(&e)))?;
                Ok(out(cache.get(arg(&args, 2)?).map(|v| match v {
                    Some(v) => String::from_utf8_lossy(&v).into_owned(),
                    None => "<none>".into(),
                })))
            }
            "set-size" => {
                // set STORE KEY SIZE: a value of SIZE bytes.
                let cache = Cache::open(arg(&args, 1)?).map_err(|e| format!("err:{}", kind(&e)))?;
                let size = usize::try_from(num(&args, 3)?).map_err(|e| e.to_string())?;
                Ok(out(cache
                    .set(arg(&args, 2)?, vec![b'x'; size])
                    .map(|()| "set")))
            }
            "set-key-len" => {
                // A key of N bytes.
                let cache = Cache::open(arg(&args, 1)?).map_err(|e| format!("err:{}", kind(&e)))?;
                let key = "k".repeat(usize::try_from(num(&args, 2)?).map_err(|e| e.to_string())?);
                Ok(out(cache.set(&key, "v").map(|()| "set")))
            }
            "fill" => {
                // fill STORE N SIZE: N values of SIZE bytes, then report len and size.
                let cache = Cache::open(arg(&args, 1)?).map_err(|e| format!("err:{}", kind(&e)))?;
                let n = num(&args, 2)?;
                let size = usize::try_from(num(&args, 3)?).map_err(|e| e.to_string())?;
                for i in 0..n {
                    if let Err(e) = cache.set(&format!("fill:{i:08}"), vec![b'f'; size]) {
                        return Ok(format!("err:{} at {i}", kind(&e)));
                    }
                }
                let len = cache.len().map_err(|e| kind(&e).to_string())?;
                let bytes = cache.size().map_err(|e| kind(&e).to_string())?;
                Ok(format!("ok:len={len} size={bytes}"))
            }
            "keys" => {
                let cache = Cache::open(arg(&args, 1)?).map_err(|e| format!("err:{}", kind(&e)))?;
                Ok(out(cache
                    .keys_with_prefix("")
                    .collect::<Result<Vec<String>, Error>>()
                    .map(|k| k.join(","))))
            }
            "len" => {
                let cache = Cache::open(arg(&args, 1)?).map_err(|e| format!("err:{}", kind(&e)))?;
                Ok(out(cache.len()))
            }
            "get-loop" => {
                // get STORE KEY N times (for the benchmark); prints the hits.
                let cache = Cache::open(arg(&args, 1)?).map_err(|e| format!("err:{}", kind(&e)))?;
                let key = arg(&args, 2)?;
                let n = num(&args, 3)?;
                let mut hits = 0u64;
                for _ in 0..n {
                    if cache.get(key).map_err(|e| kind(&e).to_string())?.is_some() {
                        hits += 1;
                    }
                }
                Ok(format!("ok:{hits}"))
            }
            "set-loop" => {
                // set-loop STORE KEY N SIZE: sets KEY to a SIZE-byte value N times (for
                // the benchmark), each value distinct (its first bytes are the index).
                let cache = Cache::open(arg(&args, 1)?).map_err(|e| format!("err:{}", kind(&e)))?;
                let key = arg(&args, 2)?;
                let n = num(&args, 3)?;
                let size = usize::try_from(num(&args, 4)?).map_err(|e| e.to_string())?;
                let mut value = vec![b'x'; size];
                let stamp = size.min(8);
                for i in 0..n {
                    value[..stamp].copy_from_slice(&i.to_le_bytes()[..stamp]);
                    cache.set(key, &value).map_err(|e| kind(&e).to_string())?;
                }
                Ok(format!("ok:{n}"))
            }
            "conflict" => {
                // A transaction reads a key, someone else changes it, the commit must fail.
                let store = wit::open(arg(&args, 1)?).map_err(|e| wit_kind(&e).to_string())?;
                store
                    .set("c", b"1", None)
                    .map_err(|e| wit_kind(&e).to_string())?;
                let tx = store.begin().map_err(|e| wit_kind(&e).to_string())?;
                let seen = tx.get("c").map_err(|e| wit_kind(&e).to_string())?;
                store
                    .set("c", b"2", None)
                    .map_err(|e| wit_kind(&e).to_string())?;
                tx.set("c", b"from-tx", None)
                    .map_err(|e| wit_kind(&e).to_string())?;
                tx.set("d", b"from-tx", None)
                    .map_err(|e| wit_kind(&e).to_string())?;
                let commit = wit_out(tx.commit().map(|()| "committed"));
                let seen = seen
                    .map(|v| String::from_utf8_lossy(&v).into_owned())
                    .unwrap_or_default();
                Ok(format!("read {seen}, commit {commit}"))
            }
            "stat" => {
                // len, size and stats of a store.
                let cache = Cache::open(arg(&args, 1)?).map_err(|e| format!("err:{}", kind(&e)))?;
                let len = cache.len().map_err(|e| kind(&e).to_string())?;
                let size = cache.size().map_err(|e| kind(&e).to_string())?;
                let st = cache.stats();
                Ok(format!(
                    "ok:len={len} size={size} hits={} misses={}",
                    st.hits, st.misses
                ))
            }
            "stats-loop" => {
                // stats-loop STORE KEY N: a cheap host call N times (KEY unused), the
                // cost of crossing the boundary.
                let cache = Cache::open(arg(&args, 1)?).map_err(|e| format!("err:{}", kind(&e)))?;
                let n = num(&args, 3)?;
                let mut total = 0u64;
                for _ in 0..n {
                    total = total.wrapping_add(cache.stats().hits);
                }
                Ok(format!("ok:{}", std::hint::black_box(total) & 1))
            }
            "noop" => Ok("ok:noop".into()),
            _ => Err(format!("unknown mode {mode}")),
        }
    }
}

cache_guest::export_plugin!(Adversary);
