//! Runnable examples of `idempotent`; see `examples/`.
