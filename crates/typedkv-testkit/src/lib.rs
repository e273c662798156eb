//! Test harness for [typedkv]: private redis-server processes on loopback, and the
//! backend conformance suite.
//!
//! The suite is one `pub async fn` per behaviour in [`conformance`], each generic over the
//! [`Backend`](typedkv::Backend). [`conformance_tests!`] expands all of them into one test per
//! behaviour for a fixture constructor, so every backend (and yours) runs the same checks:
//!
//! ```no_run
//! // tests/memory/main.rs
//! typedkv_testkit::conformance_tests!(
//!     memory,
//!     test = [tokio::test(start_paused = true)],
//!     fixture = typedkv_testkit::fixture::memory()
//! );
//! ```
//!
//! Redis fixtures start their own `redis-server` on a free loopback port (never 6379) and
//! stop it when the test ends.

// Test-support code: a failed expectation is reported by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[cfg(feature = "cluster")]
pub mod cluster;
pub mod conformance;
pub mod failover;
pub mod fixture;
pub mod foreign_keys;
#[cfg(feature = "sentinel")]
pub mod sentinel;
pub mod server;
pub mod transfers;

#[cfg(feature = "cluster")]
pub use crate::cluster::TestCluster;
pub use crate::fixture::Fixture;
#[cfg(feature = "sentinel")]
pub use crate::sentinel::TestSentinel;
pub use crate::server::TestRedis;

/// A fixed xorshift stream for task `task`: random enough for load tests, and the same on
/// every run.
pub(crate) fn xorshift(task: u64) -> impl FnMut() -> u64 {
    let mut seed = task.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    }
}

/// A single-threaded Tokio runtime with I/O and timers, for property tests, whose cases
/// are plain functions that each block on their own async body.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime starts")
}

/// Polls `check` every 20 ms until it holds. Panics (this is test code) after 10 s.
pub async fn eventually<F, Fut>(mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = std::time::Instant::now();
    while !check().await {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "gave up waiting after 10 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// How many times the server behind `conn` has run `command` (lower case, as `INFO
/// commandstats` names it): to prove what a client sent, e.g. that calls were coalesced into
/// `MGET`s. Panics (this is test code) if the server cannot be asked.
pub async fn command_calls(conn: &mut impl redis::aio::ConnectionLike, command: &str) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .expect("INFO commandstats");
    let prefix = format!("cmdstat_{command}:calls=");
    info.lines()
        .find_map(|line| line.strip_prefix(prefix.as_str()))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |calls| calls.parse().expect("a count of calls"))
}

/// `error` and each of its causes, each as `Display` then `Debug`, space-separated: for
/// asserting what an error shows anywhere in its chain (a password must never appear; a
/// TLS failure must mention the certificate).
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut shown = String::new();
    let mut next = Some(error);
    while let Some(cause) = next {
        shown.push_str(&format!("{cause} {cause:?} "));
        next = cause.source();
    }
    shown
}
