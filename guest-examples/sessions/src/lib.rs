//! Session/token store: `login` issues a random token that expires (sliding: each
//! successful `check` renews it), tagged with its user so `logout-all` ends every
//! session of a user at once through tag eviction.
//!
//! Usage: `login USER [TTL_SECONDS]`, `check TOKEN`, `logout TOKEN`, `logout-all USER`,
//! `count`.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::time::Duration;

use cache_guest::{Cache, Plugin, SetOptions, describe};

struct Sessions;

const DEFAULT_TTL_S: u64 = 1800;

/// 128 random bits. `RandomState` is seeded from the WASI random source, so hashing with
/// two fresh states gives unpredictable output without another dependency.
fn random_token() -> String {
    let a = RandomState::new().hash_one(0u8);
    let b = RandomState::new().hash_one(1u8);
    format!("{a:016x}{b:016x}")
}

fn session_key(token: &str) -> String {
    format!("session:{token}")
}

fn ttl_key(token: &str) -> String {
    format!("ttl:{token}")
}

fn user_tag(user: &str) -> String {
    format!("user:{user}")
}

fn arg<'a>(args: &'a [String], i: usize, what: &str) -> Result<&'a str, String> {
    args.get(i)
        .map(String::as_str)
        .ok_or(format!("missing {what}"))
}

impl Plugin for Sessions {
    fn run(args: Vec<String>) -> Result<String, String> {
        let cache = Cache::open("sessions").map_err(|e| describe(&e))?;
        let e = |e: cache_guest::Error| describe(&e);
        match args.first().map(String::as_str) {
            Some("login") => {
                let user = arg(&args, 1, "USER")?;
                let ttl = match args.get(2) {
                    Some(s) => s.parse::<u64>().map_err(|e| format!("bad TTL: {e}"))?,
                    None => DEFAULT_TTL_S,
                };
                let token = random_token();
                let opts = SetOptions::new().expire(Duration::from_secs(ttl)).tag(user_tag(user));
                // Both entries of a session are written together.
                cache
                    .set_many_with(
                        [
                            (session_key(&token), user.as_bytes().to_vec()),
                            (ttl_key(&token), ttl.to_string().into_bytes()),
                        ],
                        &opts,
                    )
                    .map_err(e)?;
                Ok(token)
            }
            Some("check") => {
                let token = arg(&args, 1, "TOKEN")?;
                let Some(user) = cache.get(&session_key(token)).map_err(e)? else {
                    return Ok("invalid".into());
                };
                let ttl = cache
                    .get(&ttl_key(token))
                    .map_err(e)?
                    .and_then(|v| String::from_utf8(v).ok()?.parse::<u64>().ok())
                    .unwrap_or(DEFAULT_TTL_S);
                let expire = Some(Duration::from_secs(ttl));
                cache.touch(&session_key(token), expire).map_err(e)?;
                cache.touch(&ttl_key(token), expire).map_err(e)?;
                Ok(format!("valid: {}", String::from_utf8_lossy(&user)))
            }
            Some("logout") => {
                let token = arg(&args, 1, "TOKEN")?;
                let existed = cache.delete(&session_key(token)).map_err(e)?;
                cache.delete(&ttl_key(token)).map_err(e)?;
                Ok(if existed { "logged out" } else { "no such session" }.into())
            }
            Some("logout-all") => {
                let user = arg(&args, 1, "USER")?;
                let n = cache.evict_tag(&user_tag(user)).map_err(e)?;
                Ok(format!("ended {} sessions of {user}", n / 2))
            }
            Some("count") => {
                cache.expire().map_err(e)?;
                let keys: Vec<String> = cache
                    .keys_with_prefix("session:")
                    .collect::<Result<_, _>>()
                    .map_err(e)?;
                Ok(keys.len().to_string())
            }
            _ => Err("usage: login USER [TTL_SECONDS] | check TOKEN | logout TOKEN | logout-all USER | count".into()),
        }
    }
}

cache_guest::export_plugin!(Sessions);
