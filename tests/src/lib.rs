//! Integration tests of `idempotent`; see `tests/`. The library part holds what several test
//! files (and the benchmarks) share: the `redis-server` harness, HTTP helpers, a log capture.

pub mod fault_proxy;
pub mod gate;
pub mod http;
pub mod log;
pub mod nats_server;
pub mod postgres_server;
pub mod reaper;
pub mod redis_server;
pub mod sql;
pub mod valkey;
pub mod wait;
