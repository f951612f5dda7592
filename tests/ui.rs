//! Compile tests of the macros: every supported function shape expands and compiles
//! (`tests/ui/pass`), and every misuse fails with one error at the offending token
//! (`tests/ui/fail`, expected output in the `.stderr` files beside each case); several
//! misuses fail with all their errors at once (`bad-ttl-and-unknown-placeholder.rs`,
//! `invalidates-two-bad-keys.rs`).
//!
//! After changing a message, regenerate the expected output with
//! `TRYBUILD=overwrite cargo test --test ui` and read the diff.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/pass/*.rs");
    cases.compile_fail("tests/ui/fail/*.rs");
}
