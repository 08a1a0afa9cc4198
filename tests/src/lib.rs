//! Helpers shared by the cross-crate integration tests (child-process workers live in
//! `src/bin/`).
