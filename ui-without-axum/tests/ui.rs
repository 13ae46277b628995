//! `key = header` needs the runtime's `axum` feature: without it, a clear error at `header`.

#[test]
fn header_key_without_the_axum_feature_fails() {
    trybuild::TestCases::new().compile_fail("tests/ui/*.rs");
}
