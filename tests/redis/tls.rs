//! `rediss://`: a store over TLS to a private TLS-only redis-server, certificates verified.

// Tests report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use typedkv::redis::RedisPool;
use typedkv::{Error, RedisStore, Store};
use typedkv_testkit::TestRedis;
use typedkv_testkit::conformance::values::{Profile, profile};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_works_over_verified_tls() {
    let server = TestRedis::start_tls().await;
    assert!(server.url().starts_with("rediss://127.0.0.1:"));
    let users: RedisStore<Profile> = RedisStore::builder(server.pool(), "user").build().unwrap();
    users.set("1", &profile(1)).await.unwrap();
    assert_eq!(users.get("1").await.unwrap(), Some(profile(1)));
    assert_eq!(
        users.get_many(&["1", "2"]).await.unwrap(),
        vec![Some(profile(1)), None]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_is_refused_with_a_clear_error() {
    let server = TestRedis::start_tls().await;
    // The system's roots do not include the test CA: verification must fail.
    assert_certificate_refused(RedisPool::from_url(server.url()).unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_ca_is_refused_with_a_clear_error() {
    let server = TestRedis::start_tls().await;
    // A CA made now, for the same address, that did not sign the server's certificate.
    let wrong_ca = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let pool = RedisPool::builder(server.url())
        .tls_root_certificates(wrong_ca.cert.pem())
        .build()
        .unwrap();
    assert_certificate_refused(pool).await;
}

/// A call on `pool` fails with `Error::Connection` whose cause chain talks of the
/// certificate.
async fn assert_certificate_refused(pool: RedisPool) {
    let err = RedisStore::<Profile>::builder(pool, "user")
        .build()
        .unwrap()
        .get("1")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Connection { .. }), "{err:?}");
    let chain = typedkv_testkit::error_chain(&err);
    assert!(chain.to_lowercase().contains("certificate"), "{chain}");
}

#[test]
fn tls_roots_need_a_tls_url() {
    let err = RedisPool::builder("redis://127.0.0.1:1")
        .tls_root_certificates(b"pem".to_vec())
        .build();
    assert!(matches!(err, Err(Error::InvalidConfig { .. })), "{err:?}");
}
