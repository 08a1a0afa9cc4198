//! A plain `fn main` program (the `command` world: wasi:cli + the cache): counts how
//! many times each name was given, across runs.
//!
//! Usage: `counter-cmd NAME...` prints `NAME: COUNT` for each name.

wit_bindgen::generate!({
    path: "../../wit",
    world: "imports",
});

use sciqlop::cache::cache::open;

fn main() {
    let store = match open("counters") {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot open store: {e:?}");
            std::process::exit(2);
        }
    };
    for name in std::env::args().skip(1) {
        match store.incr(&name, 1, 0) {
            Ok(n) => println!("{name}: {n}"),
            Err(e) => {
                eprintln!("{name}: {e:?}");
                std::process::exit(1);
            }
        }
    }
}
