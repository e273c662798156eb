//! The conformance suite on the in-process backend, under tokio's paused clock.

typedkv_testkit::conformance_tests!(
    memory,
    test = [tokio::test(start_paused = true)],
    fixture = typedkv_testkit::fixture::memory()
);
