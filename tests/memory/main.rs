//! typedkv in process: the conformance suite on the memory backend under tokio's paused
//! clock, the typed layer's own cases (they do not depend on the backend, so they run here
//! only), property tests of decoding, of values at rest and of partitioned ids, indexes
//! under load, and the README's snippets, compiled.

// Tests report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod at_rest;
mod decoding;
// The Redis-only helpers of the shared load cases are not used here.
#[allow(dead_code)]
#[path = "../common/index_load.rs"]
mod index_load;
mod partitioned_ids;
mod readme;

typedkv_testkit::conformance_tests!(
    memory,
    test = [tokio::test(start_paused = true)],
    fixture = typedkv_testkit::fixture::memory()
);

typedkv_testkit::typed_layer_tests!(
    typed_layer,
    test = [tokio::test(start_paused = true)],
    fixture = typedkv_testkit::fixture::memory()
);

/// Indexes under load on the memory backend (the in-process map under 64 writers).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indexes_under_load() {
    use std::time::Duration;
    let backend = typedkv::MemoryBackend::new();
    let stress = Duration::from_secs(2);
    index_load::indexes_agree_with_a_scan_after_random_writes(backend.clone(), false, stress).await;
    index_load::one_of_64_writers_wins_a_unique_value(backend.clone(), false).await;
    index_load::range_pages_hold_while_writers_run(backend.clone(), false).await;
    index_load::partitioned_indexes_agree_with_a_scan(backend.clone(), stress).await;
    index_load::one_index_agrees_with_a_scan(backend, false, stress).await;
}
