//! typedkv on a real redis-server (each test starts its own on a free loopback port): the
//! conformance suite, with batching off and on, and everything only a real server has.

// Tests report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod axum_service;
mod backend;
mod batching;
mod cache;
mod concern;
mod ids;
#[path = "../common/index_load.rs"]
mod index_load;
mod index_records;
mod indexes;
mod interop;
mod limits;
mod passwords;
mod tls;
mod transactions;

typedkv_testkit::conformance_tests!(
    redis,
    test = [tokio::test(flavor = "multi_thread", worker_threads = 2)],
    fixture = typedkv_testkit::fixture::redis()
);
