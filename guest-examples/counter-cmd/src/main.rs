//! A plain `fn main` program (the `command` world: wasi:cli + the cache): counts how
//! many times each name was given, across runs — with the same `sciqlop_cache::Cache`
//! API a native program uses.
//!
//! Usage: `counter-cmd NAME...` prints `NAME: COUNT` for each name.

use sciqlop_cache::engine::guest::Cache;

fn main() {
    let cache = match Cache::open("counters") {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cannot open store: {e}");
            std::process::exit(2);
        }
    };
    for name in std::env::args().skip(1) {
        match cache.incr(&name, 1, 0) {
            Ok(n) => println!("{name}: {n}"),
            Err(e) => {
                eprintln!("{name}: {e}");
                std::process::exit(1);
            }
        }
    }
}
