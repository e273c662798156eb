//! The conformance suite on a real redis-server (one private server per test).

typedkv_testkit::conformance_tests!(
    redis,
    test = [tokio::test(flavor = "multi_thread", worker_threads = 2)],
    fixture = typedkv_testkit::fixture::redis()
);
