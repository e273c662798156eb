//! The conformance suite on the in-process backend, under tokio's paused clock, and the
//! typed layer's own cases (which do not depend on the backend, so they run here only).

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
