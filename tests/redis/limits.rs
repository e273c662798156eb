//! Limits a real server imposes: a full pool, maxmemory, ACL key patterns, very large values.
//! Each test starts its own redis-server and configures it over a raw connection.

// Tests report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use typedkv::redis::RedisPool;
use typedkv::{Error, Index, RedisStore, Store, StoreExt, Update};
use typedkv_testkit::TestRedis;

async fn config(server: &TestRedis, args: &[&str]) {
    let mut raw = server.raw_connection().await;
    let () = redis::cmd(args[0])
        .arg(&args[1..])
        .query_async(&mut raw)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_pool_answers_a_pool_error_after_its_wait_timeout() {
    let server = TestRedis::start().await;
    let wait = Duration::from_millis(300);
    let pool = RedisPool::builder(server.url())
        .pool_size(2)
        .shared_connections(1)
        .wait_timeout(wait)
        .build()
        .unwrap();
    pool.ping().await.unwrap(); // the shared connection holds one slot
    let held = pool.checkout().await.unwrap(); // the other
    let started = Instant::now();
    let Err(err) = pool.checkout().await else {
        panic!("a third connection from a pool of two");
    };
    let waited = started.elapsed();
    assert!(matches!(err, Error::Pool { .. }), "{err:?}");
    assert!(waited >= wait && waited < wait * 3, "{waited:?}");
    // Plain commands do not need a free slot: they share the lane.
    let store: RedisStore<u32> = RedisStore::builder(pool.clone(), "n").build().unwrap();
    store.set("1", &1).await.unwrap();
    drop(held);
    assert!(pool.checkout().await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maxmemory_refusal_is_a_typed_oom_error_and_stored_data_survives() {
    let server = TestRedis::start().await;
    let store: RedisStore<Vec<u8>> = RedisStore::builder(server.pool(), "blob").build().unwrap();
    store.set("kept", &vec![1; 1024]).await.unwrap();
    config(
        &server,
        &["CONFIG", "SET", "maxmemory-policy", "noeviction"],
    )
    .await;
    config(&server, &["CONFIG", "SET", "maxmemory", "1"]).await; // below current use
    let err = store.set("big", &vec![2; 1 << 20]).await.unwrap_err();
    assert_eq!(err.code(), Some("OOM"), "{err:?}");
    assert_eq!(err.key(), Some("blob:big"));
    assert_eq!(store.get("kept").await.unwrap(), Some(vec![1; 1024]));
    assert!(!store.exists("big").await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acl_user_limited_to_its_namespace_gets_noperm_elsewhere() {
    let server = TestRedis::start().await;
    config(
        &server,
        &[
            "ACL",
            "SETUSER",
            "app",
            "on",
            ">app-secret",
            "~user:*",
            "+@all",
        ],
    )
    .await;
    let url = format!("redis://app:app-secret@127.0.0.1:{}", server.port());
    let pool = RedisPool::from_url(url).unwrap();
    let users: RedisStore<String> = RedisStore::builder(pool.clone(), "user").build().unwrap();
    users.set("1", &"alice".into()).await.unwrap();
    assert_eq!(users.get("1").await.unwrap().as_deref(), Some("alice"));
    // The compare-and-swap script runs for the restricted user too.
    let updated = users.update_with("2", |v| Update::Set(format!("{}+", v.unwrap_or_default())));
    assert_eq!(updated.await.unwrap().as_deref(), Some("+"));

    let orders: RedisStore<String> = RedisStore::builder(pool, "order").build().unwrap();
    let err = orders.set("1", &"x".into()).await.unwrap_err();
    assert_eq!(err.code(), Some("NOPERM"), "{err:?}");
    assert_eq!(err.key(), Some("order:1"));
    assert!(!format!("{err} {err:?}").contains("app-secret"));
    let err = orders.get("1").await.unwrap_err();
    assert_eq!(err.code(), Some("NOPERM"), "{err:?}");
}

/// An indexed store's keys are `ns:*` and `ns#*` (indexes, records): an ACL user granted both
/// patterns uses its indexes; one granted only `ns:*` gets NOPERM and nothing is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_indexed_store_needs_its_index_keys_in_the_acl() {
    let server = TestRedis::start().await;
    for (user, keys) in [("full", "~user:* ~user#*"), ("part", "~user:*")] {
        let mut command = vec!["ACL", "SETUSER", user, "on", ">pw-secret", "+@all"];
        command.extend(keys.split(' '));
        config(&server, &command).await;
    }
    let store = |user: &str| -> RedisStore<String> {
        let url = format!("redis://{user}:pw-secret@127.0.0.1:{}", server.port());
        RedisStore::builder(RedisPool::from_url(url).unwrap(), "user")
            .index(Index::unique("name", |name: &String| [name.clone()]))
            .build()
            .unwrap()
    };
    let full = store("full");
    full.set("1", &"alice".into()).await.unwrap();
    assert_eq!(
        full.find_one_by("name", b"alice").await.unwrap().unwrap().0,
        "1"
    );
    let part = store("part");
    let err = part.set("2", &"bob".into()).await.unwrap_err();
    assert_eq!(err.code(), Some("NOPERM"), "{err:?}");
    assert!(!format!("{err} {err:?}").contains("pw-secret"));
    assert_eq!(full.get("2").await.unwrap(), None, "nothing written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_50_mib_value_round_trips_and_one_over_the_decode_limit_is_refused() {
    let server = TestRedis::start().await;
    let pool = RedisPool::builder(server.url())
        .response_timeout(Some(Duration::from_secs(10)))
        .build()
        .unwrap();
    let blobs: RedisStore<Vec<u8>> = RedisStore::builder(pool.clone(), "blob").build().unwrap();
    let big: Vec<u8> = (0..50 << 20).map(|i: u32| (i % 251) as u8).collect();
    blobs.set("50mib", &big).await.unwrap();
    assert_eq!(
        blobs.get("50mib").await.unwrap().map(|v| v.len()),
        Some(50 << 20)
    );

    let small_limit: RedisStore<Vec<u8>, _> = RedisStore::builder(pool, "blob")
        .codec(typedkv::Bincode::new().with_decode_limit(1 << 20))
        .build()
        .unwrap();
    let err = small_limit.get("50mib").await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Decode {
                problem: typedkv::DecodeProblem::TooLarge { .. },
                ..
            }
        ),
        "{err:?}"
    );
}
