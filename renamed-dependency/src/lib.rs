//! Nothing but its tests: `#[idempotent(crate = "idem")]` in a crate that depends on the
//! runtime as `idem`, in plain and HTTP mode.
