//! The `#[idempotent]` attribute macro. Use it through `idempotent-runtime`.
