//! The host's TOML configuration (`ConfigFile::parse`): arbitrary text, and files made
//! of the real sections and fields with arbitrary values (huge, zero, negative, wrong
//! types, unknown fields, odd plugin names and paths).
//!
//! Checked: parsing gives a configuration or a one-line `HostError::Config` naming the
//! line and column; a parsed configuration's policies carry exactly the values written
//! (section over `[defaults]` over the built-in limits); a plugin's namespace opens
//! with any such policy (or fails with a typed error for an invalid name) and serves a
//! store call within its limits; never a panic.

#![no_main]

use std::fmt::Write as _;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use sciqlop_cache_host::bindings::sciqlop::cache::cache::{Host as CacheHost, HostStore};
use sciqlop_cache_host::{CacheCtx, CacheCtxView, ConfigFile, HostError, Limits, PluginScope};
use wasmtime::component::{Resource, ResourceTable};

#[derive(Arbitrary, Debug)]
enum Num {
    U(u64),
    I(i64),
    Small(u16),
    Max,
    Float(f64),
    Text(String),
}

impl Num {
    fn toml(&self) -> String {
        match self {
            Num::U(u) => u.to_string(),
            Num::I(i) => i.to_string(),
            Num::Small(s) => s.to_string(),
            Num::Max => u64::MAX.to_string(),
            Num::Float(f) => format!("{f:?}"),
            Num::Text(s) => format!("{s:?}"),
        }
    }
}

const FIELDS: [&str; 8] = [
    "max_bytes",
    "max_value_size",
    "max_key_len",
    "max_handles",
    "max_memory",
    "timeout_ms",
    "stores",
    "path",
];

#[derive(Arbitrary, Debug)]
struct Section {
    name: String,
    pool: u8,
    fields: Vec<(u8, Num)>,
    stores: Option<Vec<String>>,
    path: Option<String>,
}

#[derive(Arbitrary, Debug)]
enum Input {
    Raw(String),
    Made {
        root: Option<String>,
        defaults: Vec<(u8, Num)>,
        plugins: Vec<Section>,
        tail: String,
    },
}

const NAMES: [&str; 6] = ["memoize", "a.b", "-x", "..", "", "ü"];

fn quoted_key(s: &str) -> String {
    format!("{s:?}")
}

fn render(input: &Input) -> String {
    match input {
        Input::Raw(s) => s.clone(),
        Input::Made {
            root,
            defaults,
            plugins,
            tail,
        } => {
            let mut t = String::new();
            if let Some(r) = root {
                let _ = writeln!(t, "root = {r:?}");
            }
            if !defaults.is_empty() {
                t.push_str("[defaults]\n");
                for (f, v) in defaults.iter().take(8) {
                    let _ = writeln!(t, "{} = {}", FIELDS[*f as usize % 6], v.toml());
                }
            }
            for s in plugins.iter().take(4) {
                let name = if s.pool % 2 == 0 {
                    NAMES[s.pool as usize / 2 % NAMES.len()].to_owned()
                } else {
                    s.name.clone()
                };
                let _ = writeln!(t, "[plugins.{}]", quoted_key(&name));
                for (f, v) in s.fields.iter().take(8) {
                    let _ = writeln!(t, "{} = {}", FIELDS[*f as usize % 6], v.toml());
                }
                if let Some(st) = &s.stores {
                    let _ = writeln!(t, "stores = {st:?}");
                }
                if let Some(p) = &s.path {
                    let _ = writeln!(t, "path = {p:?}");
                }
            }
            t.push_str(tail);
            t
        }
    }
}

fuzz_target!(|input: Input| {
    let text = render(&input);
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = match ConfigFile::parse(&text, tmp.path()) {
        Ok(c) => c,
        Err(HostError::Config(m)) => {
            assert!(!m.contains('\n'), "a multi-line message: {m:?}");
            return;
        }
        Err(e) => panic!("parse failed with a non-configuration error: {e}"),
    };
    let base = cfg.defaults.apply(&Limits::default());
    let names: Vec<String> = cfg
        .plugins
        .keys()
        .cloned()
        .chain(["unlisted".to_owned()])
        .collect();
    for name in names.iter().take(3) {
        let policy = cfg.policy(name);
        let _ = cfg.plugin_path(name);
        match cfg.plugins.get(name) {
            Some(s) => {
                assert_eq!(
                    policy.limits.max_bytes,
                    s.max_bytes.unwrap_or(base.max_bytes)
                );
                assert_eq!(
                    policy.limits.max_key_len,
                    s.max_key_len.unwrap_or(base.max_key_len)
                );
                if let Some(st) = &s.stores {
                    assert_eq!(&policy.stores, st);
                }
            }
            None => assert_eq!(policy.limits, base),
        }
        let scope = match PluginScope::open(tmp.path(), name, policy.clone()) {
            Ok(s) => s,
            Err(HostError::InvalidName(_)) => {
                assert!(!sciqlop_cache_host::valid_name(name));
                continue;
            }
            Err(e) => {
                // Typed: e.g. limits the core refuses.
                let _ = e.to_string();
                continue;
            }
        };
        // A store call under these limits: refused or served, never a panic.
        let mut ctx = CacheCtx::new(scope);
        let mut table = ResourceTable::new();
        let mut view = CacheCtxView {
            ctx: &mut ctx,
            table: &mut table,
        };
        let store = policy.stores.first().cloned().unwrap_or_default();
        if let Ok(Ok(h)) = CacheHost::open(&mut view, store) {
            let rep = h.rep();
            let r = HostStore::set(
                &mut view,
                Resource::new_borrow(rep),
                "k".into(),
                vec![7; 100],
                None,
            )
            .expect("set traps");
            let g = HostStore::get(&mut view, Resource::new_borrow(rep), "k".into())
                .expect("get traps");
            if r.is_ok() && policy.limits.max_bytes >= 1 << 20 {
                assert_eq!(g.ok().flatten(), Some(vec![7; 100]));
            }
            let _ = HostStore::size(&mut view, Resource::new_borrow(rep)).expect("size traps");
            HostStore::drop(&mut view, Resource::new_own(rep)).expect("drop traps");
        }
    }
});
