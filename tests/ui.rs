//! Compile tests of the macros: every supported function shape expands and compiles
//! (`tests/ui/pass`), and every misuse fails with one error at the offending token
//! (`tests/ui/fail`, expected output in the `.stderr` files beside each case); several
//! misuses fail with all their errors at once (`bad-ttl-and-unknown-placeholder.rs`,
//! `invalidates-two-bad-keys.rs`).
//!
//! `scripts/test` runs them on its first pass only (`REDIS_CACHED_RERUN` on the others).
//!
//! After changing a message, regenerate the expected output with
//! `TRYBUILD=overwrite cargo test --test ui` and read the diff.

#[test]
fn ui() {
    // scripts/test runs the suite once per server version; these cases need no server.
    if std::env::var_os("REDIS_CACHED_RERUN").is_some() {
        use std::io::Write;
        let _ = std::io::stderr().write_all(
            b"SKIPPED ui: a rerun on another server (REDIS_CACHED_RERUN); run on the first pass\n",
        );
        return;
    }
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/pass/*.rs");
    cases.compile_fail("tests/ui/fail/*.rs");
}
