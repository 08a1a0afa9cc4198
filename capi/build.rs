//! Gives the shared library a soname carrying the ABI version (`SQC_ABI_VERSION` in
//! src/lib.rs; tests/header.rs checks that the two agree).

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libsciqlop_cache.so.1");
    }
}
