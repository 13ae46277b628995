//! Compile-time behaviour of `#[idempotent]`: misuse fails with a message at the offending
//! token (`ui/fail/macro_*.rs`), correct use compiles under strict lints (`ui/pass`).

#[test]
fn macro_misuse_fails_and_correct_use_compiles() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui/fail/macro_*.rs");
    t.pass("ui/pass/*.rs");
}
