//! Compile-fail tests of `#[idempotent]` without the `axum` feature; see `tests/`.
