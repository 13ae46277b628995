//! The typestate is enforced by the compiler: see `ui/fail/typestate_*.rs`.

#[test]
fn typestate_misuse_does_not_compile() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui/fail/typestate_*.rs");
}
