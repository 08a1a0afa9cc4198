//! Rate limiter and job counter: `hit CLIENT [LIMIT] [WINDOW_SECONDS]` admits at most
//! LIMIT hits per client per fixed window. The window counter and the client's total of
//! admitted jobs are updated in one transaction: a denied hit is rolled back, so neither
//! counter moves, and a crash between the two writes cannot leave them disagreeing.
//!
//! Usage: `hit CLIENT [LIMIT] [WINDOW_SECONDS]` (defaults 5 per 60 s), `total CLIENT`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cache_guest::{Cache, Error, Plugin, SetOptions, describe};

struct RateLimit;

enum Outcome {
    Cache(Error),
    Denied,
}

impl From<Error> for Outcome {
    fn from(e: Error) -> Self {
        Outcome::Cache(e)
    }
}

fn num(args: &[String], i: usize, default: u64, what: &str) -> Result<u64, String> {
    match args.get(i) {
        Some(s) => s.parse().map_err(|e| format!("bad {what}: {e}")),
        None => Ok(default),
    }
}

impl Plugin for RateLimit {
    fn run(args: Vec<String>) -> Result<String, String> {
        let cache = Cache::open("ratelimit").map_err(|e| describe(&e))?;
        match args.first().map(String::as_str) {
            Some("hit") => {
                let client = args.get(1).ok_or("missing CLIENT")?;
                let limit = i64::try_from(num(&args, 2, 5, "LIMIT")?).map_err(|e| e.to_string())?;
                let window = num(&args, 3, 60, "WINDOW_SECONDS")?.max(1);
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_err(|e| e.to_string())?;
                let slot = now.as_secs() / window;
                let window_key = format!("window:{client}:{slot}");
                let total_key = format!("total:{client}");
                let mut attempts = 0;
                loop {
                    attempts += 1;
                    let result = cache.transact(|tx| {
                        let used = tx.incr(&window_key, 1, 0)?;
                        if used > limit {
                            return Err(Outcome::Denied);
                        }
                        if used == 1 {
                            // First hit of the window: let the counter expire with it.
                            let opts = SetOptions::new().expire(Duration::from_secs(window));
                            tx.set_with(&window_key, used.to_string(), &opts)?;
                        }
                        let total = tx.incr(&total_key, 1, 0)?;
                        Ok((used, total))
                    });
                    return match result {
                        Ok((used, total)) => Ok(format!(
                            "allowed {used}/{limit} in this {window} s window (total jobs {total})"
                        )),
                        Err(Outcome::Denied) => {
                            Ok(format!("denied: limit {limit} per {window} s reached"))
                        }
                        Err(Outcome::Cache(Error::Conflict)) if attempts < 10 => continue,
                        Err(Outcome::Cache(e)) => Err(describe(&e)),
                    };
                }
            }
            Some("total") => {
                let client = args.get(1).ok_or("missing CLIENT")?;
                let total = cache
                    .get(&format!("total:{client}"))
                    .map_err(|e| describe(&e))?;
                Ok(total.map_or("0".into(), |v| String::from_utf8_lossy(&v).into_owned()))
            }
            _ => Err("usage: hit CLIENT [LIMIT] [WINDOW_SECONDS] | total CLIENT".into()),
        }
    }
}

cache_guest::export_plugin!(RateLimit);
