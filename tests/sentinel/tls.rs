//! typedkv on Redis Sentinel over TLS: every server speaks only TLS, the sentinels with
//! certificates from one CA and the master and replicas from another, so each check of a
//! certificate shows separately.

// Tests report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use typedkv::redis::{RedisPoolBuilder, RedisSentinelPool, Sentinel};
use typedkv::{CachedStore, Error, RedisSentinelStore, Store};
use typedkv_testkit::{TestSentinel, conformance, error_chain, eventually};

/// The suite on the master the sentinels name, over TLS to both; then certificates that
/// must be refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typedkv_on_sentinel_over_tls() {
    let _turn = crate::SETUPS.acquire().await.unwrap();
    let sentinel = TestSentinel::start_tls().await;
    assert!(
        sentinel
            .sentinel_urls()
            .iter()
            .all(|url| url.starts_with("rediss://127.0.0.1:"))
    );
    let failed = conformance::run_all(|| sentinel.fixture()).await;
    assert!(
        failed.is_empty(),
        "conformance cases failed over TLS: {failed:?}"
    );
    certificates_are_verified(&sentinel).await;
}

/// A sentinel or data node whose certificate the pool does not trust fails the call with a
/// connection error that names the certificate, within the create timeout; so does a
/// master reached without TLS.
async fn certificates_are_verified(sentinel: &TestSentinel) {
    let builder = || {
        RedisSentinelPool::builder(
            sentinel.sentinel_urls(),
            typedkv_testkit::sentinel::MASTER_NAME,
        )
        .create_timeout(Duration::from_secs(1))
    };
    // The system's roots, which trust neither CA: the sentinels are refused.
    assert_refused(builder(), "certificate").await;
    // The sentinels' CA only: they answer, and the master they name is refused.
    let sentinels_only = sentinel.sentinels_only_ca().unwrap();
    assert_refused(
        builder().tls_root_certificates(sentinels_only),
        "certificate",
    )
    .await;
    // Both CAs, but plain TCP to the TLS-only master.
    let both = sentinel.tls_ca().unwrap();
    let plain_master = builder().tls_root_certificates(both).master_tls(false);
    assert_refused(plain_master, "").await;
}

/// A call through a pool from `builder` fails with `Error::Connection` (or, for a server
/// that never answers the handshake, a timeout) within the create timeout, and its cause
/// chain mentions `cause`.
async fn assert_refused(builder: RedisPoolBuilder<Sentinel>, cause: &str) {
    let store: RedisSentinelStore<u64> = RedisSentinelStore::builder(builder.build().unwrap(), "t")
        .build()
        .unwrap();
    let started = Instant::now();
    let err = store.get("1").await.unwrap_err();
    // The 1 s create timeout, with a margin for a loaded machine (the default is 3 s).
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(err, Error::Connection { .. } | Error::Timeout { .. }),
        "{err:?}"
    );
    assert_eq!(err.key(), Some("t:1"));
    let chain = error_chain(&err).to_lowercase();
    assert!(chain.contains(cause), "{chain}");
}

/// Over TLS, the pool follows a manual failover under load (calls fail only until the
/// switch, then over a thousand succeed), replicas serve reads, and the local cache's tracking connection (TLS too) gets
/// invalidations before and after the switch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_replica_reads_and_the_cache_over_tls() {
    let _turn = crate::SETUPS.acquire().await.unwrap();
    let sentinel = TestSentinel::start_tls().await;
    let pool = sentinel
        .pool_builder()
        .response_timeout(Some(Duration::from_millis(500)))
        .build()
        .unwrap();
    let store: RedisSentinelStore<u64> = RedisSentinelStore::builder(pool, "f").build().unwrap();
    let cache = CachedStore::builder(store.clone()).build().await.unwrap();
    let replicas = sentinel
        .pool_builder()
        .read_from_replicas(true)
        .build()
        .unwrap();
    let from_replicas: RedisSentinelStore<u64> =
        RedisSentinelStore::builder(replicas, "f").build().unwrap();

    cache.set("cached", &1).await.unwrap();
    assert_eq!(cache.get("cached").await.unwrap(), Some(1));
    // Writes by another client: this process' own stores would evict in process.
    sentinel
        .master_store("f")
        .await
        .set("cached", &2)
        .await
        .unwrap();
    eventually(|| async { cache.get("cached").await.unwrap() == Some(2) }).await;
    eventually(|| async { from_replicas.get("cached").await.unwrap() == Some(2) }).await;

    sentinel
        .manual_failover_under_load(&store, "f", "TLS manual failover")
        .await;

    eventually(|| async { cache.is_tracking() }).await;
    sentinel
        .master_store("f")
        .await
        .set("cached", &3)
        .await
        .unwrap();
    eventually(|| async { cache.get("cached").await.unwrap() == Some(3) }).await;
    eventually(|| async { from_replicas.get("cached").await.unwrap() == Some(3) }).await;
}
