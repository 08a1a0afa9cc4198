//! Focused reproductions of bugs the property and torture suites found in core. Each test
//! states the promise it checks; they fail until core is fixed.

use std::time::Duration;

use sciqlop_cache::{Cache, Error, SetOptions};
use sciqlop_cache_tests::{temp_files, value_files};

fn store(dir: &std::path::Path) -> Cache {
    Cache::builder()
        .file_threshold(64)
        .maintenance_interval(Duration::ZERO)
        .open(dir)
        .expect("open")
}

/// Found by `model::cache_matches_model` (minimal case: `incr("a")`, then `add("a", 64
/// bytes)`). `add` writes a file-backed value to `data/tmp/` before it knows whether the
/// key is free; when it refuses, the temporary file is dropped without being removed, so
/// every refused `add` of a large value leaks a file (disk usage grows, `check(false)`
/// reports an orphan).
#[test]
fn refused_add_of_a_file_value_leaves_no_file_behind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = store(dir.path());
    cache.set("k", b"small").expect("set");
    for _ in 0..3 {
        assert!(
            !cache.add("k", vec![1u8; 1000]).expect("add"),
            "key is live"
        );
    }
    assert_eq!(
        temp_files(dir.path()),
        Vec::<std::path::PathBuf>::new(),
        "refused add left temporary value files"
    );
    assert!(value_files(dir.path()).is_empty());
    let report = cache.check(false).expect("check");
    assert!(report.ok, "{report:?}");
}

/// Same leak on another path: `set_with` of a file-backed value with an expiry too far
/// in the future is rejected (`InvalidArgument`) after the value was written to
/// `data/tmp/`, and the temporary file stays.
#[test]
fn rejected_set_of_a_file_value_leaves_no_file_behind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = store(dir.path());
    let r = cache.set_with(
        "k",
        vec![1u8; 1000],
        &SetOptions::new().expire(Duration::MAX),
    );
    assert!(matches!(r, Err(Error::InvalidArgument(_))), "{r:?}");
    assert_eq!(
        temp_files(dir.path()),
        Vec::<std::path::PathBuf>::new(),
        "rejected set left a temporary value file"
    );
    let report = cache.check(false).expect("check");
    assert!(report.ok, "{report:?}");
}

/// Found by `bad_disks::value_files_deleted_truncated_or_extended`. A value file that
/// grew behind the store's back is reported as `ValueFileTruncated { actual }` with
/// `actual` = recorded size + 1 (the reader stops one byte past the expected end), not
/// the size on disk that the field and the message ("has N bytes") claim.
#[test]
fn grown_value_file_reports_its_real_size() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = store(dir.path());
    cache.set("k", vec![1u8; 1000]).expect("set");
    let files = value_files(dir.path());
    assert_eq!(files.len(), 1);
    std::fs::OpenOptions::new()
        .append(true)
        .open(&files[0])
        .and_then(|mut f| std::io::Write::write_all(&mut f, &[0u8; 500]))
        .expect("grow the file");
    let e = cache.get("k").expect_err("grown file");
    assert!(
        matches!(
            e,
            Error::ValueFileTruncated {
                expected: 1000,
                actual: 1500,
                ..
            }
        ),
        "expected actual = 1500 (size on disk): {e:?} / {e}"
    );
}
