//! Integration tests of `idempotent`; see `tests/`. The library part holds what several test
//! files (and the benchmarks) share: the `redis-server` harness.

pub mod redis_server;
