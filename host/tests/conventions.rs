//! The `sciqlop-cache-host` binary follows `sqcache`'s conventions: exit codes 0 ok / 1
//! the operation failed / 2 bad usage, one-line `error: …` messages and no backtraces
//! (even with RUST_BACKTRACE set), `--json`, `--repeat` at least 1, keys printed one per
//! line; and files that are no component are named with what to build instead.

use std::path::Path;
use std::process::Command;

use json::Read as _;

use sciqlop_cache_host::{PluginPolicy, PluginScope};

mod common;

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs the binary with backtraces asked for, as a user debugging something would.
fn host(args: &[&str]) -> Out {
    let out = Command::new(env!("CARGO_BIN_EXE_sciqlop-cache-host"))
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .env("RUST_LIB_BACKTRACE", "1")
        .output()
        .expect("running sciqlop-cache-host");
    Out {
        code: out.status.code().expect("exit code, not a signal"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Asserts `o` failed with exit code `code` and one line `error: …` on stderr holding
/// `needle`, without a backtrace or a panic.
#[track_caller]
fn assert_error(o: &Out, code: i32, needle: &str) {
    assert_eq!(
        o.code, code,
        "exit code\nstdout: {}\nstderr: {}",
        o.stdout, o.stderr
    );
    assert!(
        o.stderr.starts_with("error: ") && o.stderr.lines().count() == 1,
        "one line `error: …` expected: {:?}",
        o.stderr
    );
    assert!(
        o.stderr.contains(needle),
        "{needle:?} not in {:?}",
        o.stderr
    );
    let lower = o.stderr.to_lowercase();
    for bad in ["panicked", "backtrace", "stack backtrace", "caused by"] {
        assert!(!lower.contains(bad), "{bad:?} in {:?}", o.stderr);
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn usage_errors_exit_2_without_backtraces() {
    let root = tempfile::tempdir().expect("tempdir");
    let r = path_str(root.path());
    let memo = format!("memo={}", common::wasm("memoize").display());

    // No root anywhere.
    let o = host(&["run", "--plugin", &memo, "--", "primes", "10"]);
    assert_error(&o, 2, "--root is required");
    // A plugin NAME without a path and no config file.
    let o = host(&["run", "--root", r, "--plugin", "memo", "--", "primes", "10"]);
    assert_error(&o, 2, "use --plugin memo=PATH");
    // An invalid plugin name.
    let o = host(&["keys", "--root", r, "--plugin", "../up"]);
    assert_error(&o, 2, "invalid name \"../up\"");
    // --repeat 0 would run nothing: refused (it used to run once).
    let o = host(&[
        "run", "--root", r, "--plugin", &memo, "--repeat", "0", "--", "primes", "10",
    ]);
    assert_eq!(o.code, 2, "{}{}", o.stdout, o.stderr);
    assert!(
        o.stderr.contains("--repeat") && o.stdout.is_empty(),
        "{}{}",
        o.stdout,
        o.stderr
    );
    assert!(!root.path().join("plugins/memo").exists(), "nothing ran");
}

#[test]
fn failed_operations_exit_1_in_one_line() {
    let root = tempfile::tempdir().expect("tempdir");
    let r = path_str(root.path());
    let adv = format!("adv={}", common::wasm("adversarial").display());

    // The plugin's `run` returns an error.
    let o = host(&["run", "--root", r, "--plugin", &adv, "--", "no-such-mode"]);
    assert_error(&o, 1, "plugin adv failed: unknown mode no-such-mode");
    // The plugin traps (a guest panic, which the guest itself reports on stderr first):
    // the host's line says why, without the host's Rust backtrace or the guest's.
    let o = host(&[
        "run",
        "--root",
        r,
        "--plugin",
        &adv,
        "--",
        "trap-in-tx",
        "s",
    ]);
    assert_eq!(o.code, 1, "{}{}", o.stdout, o.stderr);
    let last = o.stderr.lines().last().unwrap_or_default();
    assert_eq!(
        last, "error: plugin adv trapped: wasm trap: wasm `unreachable` instruction executed",
        "{}",
        o.stderr
    );
    let host_part = &o.stderr[o.stderr.find("error: ").expect("an error line")..];
    assert!(
        !host_part.to_lowercase().contains("backtrace"),
        "{}",
        o.stderr
    );
    // No data for that plugin.
    let o = host(&["keys", "--root", r, "--plugin", "nobody"]);
    assert_error(&o, 1, "plugin nobody has no data under");
    // A config file that does not parse: where, and where the format is documented.
    let cfg = root.path().join("host.toml");
    std::fs::write(&cfg, "[defaults]\nmax_byte = 3\n").expect("write config");
    let o = host(&[
        "run",
        "--config",
        path_str(&cfg),
        "--root",
        r,
        "--plugin",
        &adv,
    ]);
    assert_error(&o, 1, "line 2, column 1: unknown field `max_byte`");
    assert!(o.stderr.contains("see host/README.md"), "{}", o.stderr);
    // Success is 0, with the plugin's output.
    let o = host(&["run", "--root", r, "--plugin", &adv, "--", "noop"]);
    assert_eq!(
        (o.code, o.stdout.as_str()),
        (0, "ok:noop\n"),
        "{}",
        o.stderr
    );
}

#[test]
fn a_missing_component_is_named_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("nothere.wasm");
    let plugin = format!("p={}", missing.display());
    let o = host(&["run", "--root", path_str(dir.path()), "--plugin", &plugin]);
    assert_error(&o, 1, "reading component");
    assert_eq!(
        o.stderr.matches(path_str(&missing)).count(),
        1,
        "{}",
        o.stderr
    );
    assert_eq!(
        o.stderr.matches("No such file").count(),
        1,
        "the cause is said once: {}",
        o.stderr
    );
}

#[test]
fn files_that_are_no_component_say_what_to_build() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = path_str(dir.path());
    let run = |file: &str, bytes: &[u8]| {
        let path = dir.path().join(file);
        std::fs::write(&path, bytes).expect("write");
        let plugin = format!("p={}", path.display());
        (host(&["run", "--root", r, "--plugin", &plugin]), path)
    };

    // The smallest core module: magic and version 1.
    let (o, path) = run("core.wasm", b"\0asm\x01\0\0\0");
    assert_error(
        &o,
        1,
        &format!(
            "{} is a core WebAssembly module, not a component: build the plugin for \
             wasm32-wasip2 (cargo build --target wasm32-wasip2), or wrap it with \
             `wasm-tools component new`",
            path.display()
        ),
    );
    let (o, path) = run("core.wat", b";; a module\n(module)\n");
    assert_error(
        &o,
        1,
        &format!(
            "{} is a core WebAssembly module in text form, not a component",
            path.display()
        ),
    );
    let (o, path) = run("notes.txt", b"hello world\n");
    assert_error(
        &o,
        1,
        &format!(
            "{} is not a WebAssembly component (it starts with \"hello wo\"): build the \
             plugin for wasm32-wasip2",
            path.display()
        ),
    );
    let (o, path) = run("native.so", b"\x7fELF\x02\x01\x01\0\0\0\0\0");
    assert_error(
        &o,
        1,
        &format!(
            "{} is not a WebAssembly component (it starts with \"\\x7fELF\\x02\\x01\\x01\\x00\")",
            path.display()
        ),
    );
    let (o, path) = run("empty.wasm", b"");
    assert_error(
        &o,
        1,
        &format!(
            "{} is empty: build the plugin for wasm32-wasip2",
            path.display()
        ),
    );
    // Guard: component text still reaches wasmtime (which links it and finds no entry).
    let (o, _) = run("empty-component.wat", b"(component)\n");
    assert_error(
        &o,
        1,
        "exports neither the plugin world's `run` nor wasi:cli/run",
    );
}

#[test]
fn json_results_and_errors() {
    let root = tempfile::tempdir().expect("tempdir");
    let r = path_str(root.path());
    let memo = format!("memo={}", common::wasm("memoize").display());

    let o = host(&[
        "--json", "run", "--root", r, "--plugin", &memo, "--repeat", "2", "--", "primes", "100",
    ]);
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    let v = json::parse(&o.stdout);
    assert_eq!(v.at("plugin").str(), "memo");
    let runs = v.at("runs").arr();
    assert_eq!(runs.len(), 2, "{}", o.stdout);
    assert!(runs[0].str().contains("25") && runs[0].str().contains("computed"));
    assert!(runs[1].str().contains("cached"), "{}", o.stdout);

    // A value that is not UTF-8, written natively into another store of the plugin.
    let scope = PluginScope::open(root.path(), "memo", PluginPolicy::default()).expect("scope");
    scope
        .store("bin")
        .expect("store")
        .set("raw", [0xffu8, 0x00, 0x10])
        .expect("set");
    drop(scope);
    let o = host(&["keys", "--root", r, "--plugin", "memo", "--json"]);
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    let keys = json::parse(&o.stdout);
    let entry = |store: &str, key: &str| {
        keys.arr()
            .iter()
            .find(|e| e.at("store").str() == store && e.at("key").str() == key)
            .unwrap_or_else(|| panic!("{store}/{key} not in {}", o.stdout))
    };
    let primes = entry("memo", "primes-below:100");
    assert_eq!(primes.at("value").str(), "25");
    assert_eq!(primes.at("size").num(), 2.0);
    let raw = entry("bin", "raw");
    assert_eq!(raw.at("value_hex").str(), "ff0010");
    assert_eq!(raw.at("size").num(), 3.0);

    // Errors are JSON on stdout too, with the plain message on stderr.
    let o = host(&["--json", "keys", "--root", r, "--plugin", "nobody"]);
    assert_eq!(o.code, 1);
    let e = json::parse(&o.stdout);
    assert!(e.at("error").str().starts_with("plugin nobody has no data"));
    assert_eq!(e.at("exit_code").num(), 1.0);
    assert!(o.stderr.starts_with("error: plugin nobody has no data"));
    // A usage error found after parsing, and one clap finds.
    let o = host(&["--json", "run", "--plugin", &memo]);
    assert_eq!(o.code, 2, "{}{}", o.stdout, o.stderr);
    let e = json::parse(&o.stdout);
    assert!(e.at("error").str().contains("--root is required"));
    assert_eq!(e.at("exit_code").num(), 2.0);
    let o = host(&["run", "--json", "--root", r]);
    assert_eq!(o.code, 2, "{}{}", o.stdout, o.stderr);
    let e = json::parse(&o.stdout);
    assert!(e.at("error").str().contains("--plugin"), "{}", o.stdout);
    assert_eq!(e.at("exit_code").num(), 2.0);
}

#[test]
fn keys_with_control_characters_take_one_line() {
    let root = tempfile::tempdir().expect("tempdir");
    let scope = PluginScope::open(root.path(), "p", PluginPolicy::default()).expect("scope");
    let s = scope.store("s").expect("store");
    s.set("line\nbreak", "tab\there").expect("set");
    s.set("plain", "value").expect("set");
    drop(s);
    drop(scope);
    let o = host(&["keys", "--root", path_str(root.path()), "--plugin", "p"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(
        o.stdout, "\"s/line\\nbreak\"\t\"tab\\there\"\ns/plain\tvalue\n",
        "one key per line, escaped only when needed"
    );
    // JSON gives them as they are.
    let o = host(&[
        "--json",
        "keys",
        "--root",
        path_str(root.path()),
        "--plugin",
        "p",
    ]);
    let keys = json::parse(&o.stdout);
    assert_eq!(keys.arr()[0].at("key").str(), "line\nbreak");
    assert_eq!(keys.arr()[0].at("value").str(), "tab\there");
}

#[test]
fn a_closed_stdout_is_a_quiet_success() {
    use std::io::Read;
    let root = tempfile::tempdir().expect("tempdir");
    let scope = PluginScope::open(root.path(), "p", PluginPolicy::default()).expect("scope");
    let s = scope.store("s").expect("store");
    // About 500 kB of lines: more than a pipe buffers.
    for i in 0..1000 {
        let key = format!("{i:04}{}", "k".repeat(496));
        s.set(&key, "v").expect("set");
    }
    drop(s);
    drop(scope);
    let mut child = Command::new(env!("CARGO_BIN_EXE_sciqlop-cache-host"))
        .args(["keys", "--root", path_str(root.path()), "--plugin", "p"])
        .env("RUST_BACKTRACE", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut first = [0u8; 16];
    let read = child.stdout.take().expect("stdout").read_exact(&mut first);
    // The reader is gone (`| head -c 16`).
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    read.unwrap_or_else(|e| panic!("reading the first line: {e}; stderr: {stderr}"));
    assert_eq!(&first, b"s/0000kkkkkkkkkk");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Reading what the binary prints.
mod json {
    pub use serde_json::Value;

    /// Parses one JSON document (and nothing after it but whitespace).
    #[track_caller]
    pub fn parse(text: &str) -> Value {
        serde_json::from_str(text).unwrap_or_else(|e| panic!("invalid JSON ({e}): {text:?}"))
    }

    /// Accessors that fail the test with the document in the message.
    pub trait Read {
        fn at(&self, key: &str) -> &Value;
        fn str(&self) -> &str;
        fn num(&self) -> f64;
        fn arr(&self) -> &[Value];
    }

    impl Read for Value {
        #[track_caller]
        fn at(&self, key: &str) -> &Value {
            self.get(key)
                .unwrap_or_else(|| panic!("no {key:?} in {self}"))
        }

        #[track_caller]
        fn str(&self) -> &str {
            self.as_str()
                .unwrap_or_else(|| panic!("not a string: {self}"))
        }

        #[track_caller]
        fn num(&self) -> f64 {
            self.as_f64()
                .unwrap_or_else(|| panic!("not a number: {self}"))
        }

        #[track_caller]
        fn arr(&self) -> &[Value] {
            self.as_array()
                .map(Vec::as_slice)
                .unwrap_or_else(|| panic!("not an array: {self}"))
        }
    }
}
