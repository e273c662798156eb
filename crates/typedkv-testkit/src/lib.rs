//! Test harness for [typedkv]: private redis-server processes on loopback, and the
//! backend conformance suite.
//!
//! The suite is one `pub async fn` per behaviour in [`conformance`], each generic over the
//! [`Backend`](typedkv::Backend). [`conformance_tests!`] expands all of them into one test per
//! behaviour for a fixture constructor, so every backend (and yours) runs the same checks:
//!
//! ```no_run
//! // tests/memory.rs
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
pub mod fixture;
pub mod server;

#[cfg(feature = "cluster")]
pub use crate::cluster::TestCluster;
pub use crate::fixture::Fixture;
pub use crate::server::TestRedis;
