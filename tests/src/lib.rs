//! Integration tests of `idempotent`; see `tests/`.
