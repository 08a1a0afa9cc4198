//! The checked-in C header is what cbindgen makes of the sources now.

use std::path::Path;

#[test]
fn checked_in_header_is_up_to_date() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_crate(dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header");
    let mut fresh = Vec::new();
    bindings.write(&mut fresh);
    let path = dir.join("include/sciqlop_cache.h");
    if std::env::var_os("SQC_UPDATE_HEADER").is_some() {
        std::fs::write(&path, &fresh).expect("writing the header");
        return;
    }
    let current = std::fs::read(&path).unwrap_or_default();
    assert!(
        current == fresh,
        "{} is stale: the C ABI in capi/src changed. Regenerate it with\n  \
         SQC_UPDATE_HEADER=1 cargo test -p sciqlop-cache-capi --test header\n\
         and commit it.",
        path.display()
    );
}

#[test]
fn every_exported_function_is_declared_in_the_header() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let header = std::fs::read_to_string(dir.join("include/sciqlop_cache.h")).expect("header");
    let mut n = 0;
    for entry in std::fs::read_dir(dir.join("src")).expect("src") {
        let src = std::fs::read_to_string(entry.expect("entry").path()).expect("source");
        for (_, rest) in src
            .match_indices("extern \"C\" fn ")
            .map(|(i, _)| src.split_at(i + 14))
        {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            assert!(
                header.contains(&format!("{name}(")),
                "{name} is exported but not in the header (cbindgen does not see functions made by macros)"
            );
            n += 1;
        }
    }
    assert!(n > 40, "found only {n} exported functions");
}
