//! `CachedStore` against a real redis-server: writes by any client evict, a lost tracking
//! connection flushes, entries never outlive their key, and a fill racing an invalidation
//! never leaves a stale value behind.

// Tests report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;
use std::time::{Duration, Instant};

use typedkv::redis::RedisPool;
use typedkv::{CachedStore, RedisStore, Store, StoreExt, TRACKING_CLIENT_NAME, Update};
use typedkv_testkit::TestRedis;
use typedkv_testkit::conformance::values::{Profile, profile};
use typedkv_testkit::foreign_keys::set_as_another_program;

/// How long an invalidation may take to arrive before a test gives up: typically < 1 ms on
/// loopback; generous, since a test that waits on an event costs nothing more when it is
/// met early, and a loaded 2-core machine can stall a thread for a while.
const DEADLINE: Duration = Duration::from_secs(5);

fn users(pool: &RedisPool) -> RedisStore<Profile> {
    RedisStore::builder(pool.clone(), "user").build().unwrap()
}

async fn cached(server: &TestRedis) -> CachedStore<Profile> {
    CachedStore::builder(users(&server.pool()))
        .build()
        .await
        .unwrap()
}

/// Polls `check` until it holds; how long that took. Panics after [`DEADLINE`].
async fn eventually<F, Fut>(what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(
            started.elapsed() < DEADLINE,
            "{what}: not within {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    started.elapsed()
}

/// Waits until the invalidation Redis sends for the cache's own write (broadcast tracking
/// echoes every write) has arrived. Until then a fill may race it and, rightly, not be
/// cached, so tests that count hits right after a write wait for it first.
async fn set_and_await_echo(cache: &CachedStore<Profile>, id: &str, value: &Profile) {
    let before = cache.stats().invalidations;
    cache.set(id, value).await.unwrap();
    eventually("the echo of the cache's own write", || async {
        cache.stats().invalidations > before
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_by_other_clients_evict_cached_values() {
    let server = TestRedis::start().await;
    let cache = cached(&server).await;
    set_and_await_echo(&cache, "1", &profile(1)).await;
    assert_eq!(cache.get("1").await.unwrap(), Some(profile(1))); // miss, cached
    assert_eq!(cache.get("1").await.unwrap(), Some(profile(1))); // hit
    assert_eq!(cache.stats().hits, 1);

    // Another process writes.
    let mut other = server.raw_connection().await;
    set_as_another_program(&mut other, "user:1", &profile(2)).await;
    let took = eventually("the other client's write", || async {
        cache.get("1").await.unwrap() == Some(profile(2))
    })
    .await;
    eprintln!("invalidation after another client's SET seen in {took:?}");
    for _ in 0..100 {
        assert_eq!(cache.get("1").await.unwrap(), Some(profile(2)));
    }

    // redis-cli deletes it.
    let deleted = Command::new("redis-cli")
        .args(["-p", &server.port().to_string(), "DEL", "user:1"])
        .output()
        .unwrap();
    assert!(deleted.status.success());
    eventually("redis-cli's DEL", || async {
        cache.get("1").await.unwrap().is_none()
    })
    .await;
    assert!(cache.stats().invalidations >= 2, "{:?}", cache.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_through_the_store_are_read_back_at_once() {
    let server = TestRedis::start().await;
    let cache = cached(&server).await;
    cache.set("1", &profile(1)).await.unwrap();
    cache.get("1").await.unwrap();
    cache.set("1", &profile(2)).await.unwrap();
    assert_eq!(cache.get("1").await.unwrap(), Some(profile(2)));
    cache
        .update_with("1", |_| Update::Set(profile(3)))
        .await
        .unwrap();
    assert_eq!(cache.get("1").await.unwrap(), Some(profile(3)));
    cache.delete("1").await.unwrap();
    assert_eq!(cache.get("1").await.unwrap(), None);
}

/// A `CachedStore` takes part in a transaction as the store it caches (also behind
/// `dyn Store`): the transaction reads Redis, not the cache, and its commit evicts what it
/// wrote before it returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_stores_take_part_in_transactions() {
    let server = TestRedis::start().await;
    let cache = cached(&server).await;
    set_and_await_echo(&cache, "1", &profile(1)).await;
    assert_eq!(cache.get("1").await.unwrap(), Some(profile(1)));
    let cached_hits = cache.stats().hits;
    assert_eq!(cache.get("1").await.unwrap(), Some(profile(1)));
    assert_eq!(cache.stats().hits, cached_hits + 1, "the value is cached");

    let stats = cache.stats();
    let dynamic: &dyn Store<Profile> = &cache;
    let read = typedkv::Transactions::of(dynamic)
        .unwrap()
        .run(|tx| async move {
            let read = tx.get(dynamic, "1").await?;
            tx.set(dynamic, "1", &profile(2))?;
            Ok::<_, typedkv::Error>(read)
        })
        .await
        .unwrap();
    assert_eq!(read, Some(profile(1)));
    let after = cache.stats();
    assert_eq!(
        (after.hits, after.misses),
        (stats.hits, stats.misses),
        "read the cache"
    );
    // Evicted before the commit returned: read back at once, without waiting for Redis.
    assert_eq!(cache.get("1").await.unwrap(), Some(profile(2)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_tracking_connection_flushes_and_tracking_comes_back() {
    let server = TestRedis::start().await;
    let cache = cached(&server).await;
    set_and_await_echo(&cache, "1", &profile(1)).await;
    cache.get("1").await.unwrap();
    assert_eq!(cache.stats().entries, 1);

    // Whether or not tracking is back already, the cache was emptied when it dropped.
    drop_cached_entries(&server, &cache).await;
    let mut raw = server.raw_connection().await;

    // A write by another client while tracking may be down is never hidden by the cache.
    set_as_another_program(&mut raw, "user:1", &profile(4)).await;
    eventually("the write after the flush", || async {
        cache.get("1").await.unwrap() == Some(profile(4))
    })
    .await;

    // Tracking is re-established, and caching resumes.
    eventually("tracking again", || async { cache.is_tracking() }).await;
    let clients: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!(clients.contains(TRACKING_CLIENT_NAME), "{clients}");
    let hits = cache.stats().hits;
    cache.get("1").await.unwrap();
    cache.get("1").await.unwrap();
    assert!(cache.stats().hits > hits, "{:?}", cache.stats());
    set_as_another_program(&mut raw, "user:1", &profile(5)).await;
    eventually("invalidations after reconnecting", || async {
        cache.get("1").await.unwrap() == Some(profile(5))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_never_outlive_their_key() {
    let server = TestRedis::start().await;
    let mut raw = server.raw_connection().await;
    // Redis then deletes expired keys only when they are accessed, so it sends no
    // invalidation at expiry: only the entry's own deadline can stop a stale hit.
    let _: () = redis::cmd("DEBUG")
        .arg("SET-ACTIVE-EXPIRE")
        .arg(0)
        .query_async(&mut raw)
        .await
        .unwrap();
    // Long enough that the write, its echo and two reads fit inside it on a loaded machine
    // (with 300 ms, the entry had expired before the second read in 1 of 5 loaded runs).
    let ttl = Duration::from_secs(2);
    let store = RedisStore::builder(server.pool(), "session")
        .ttl(ttl)
        .build()
        .unwrap();
    let cache: CachedStore<Profile> = CachedStore::builder(store).build().await.unwrap();
    set_and_await_echo(&cache, "1", &profile(1)).await;
    // Redis ran the write before it answered, so the key is gone by `ttl` after this (taken
    // before the write, the wait fell short by however long a loaded machine held the write).
    let acknowledged = Instant::now();
    assert_eq!(cache.get("1").await.unwrap(), Some(profile(1)));
    assert_eq!(cache.get("1").await.unwrap(), Some(profile(1)));
    assert_eq!(cache.stats().hits, 1);
    tokio::time::sleep_until((acknowledged + ttl + Duration::from_millis(5)).into()).await;
    assert_eq!(cache.get("1").await.unwrap(), None);
}

/// Another program writes 1, 2, 3, ... while readers hammer the cache:
/// once the last write's invalidation arrived, every reader sees the last value and keeps
/// seeing it (a fill that read an older value and raced that invalidation is not cached).
/// The race window is narrow, so this is the end-to-end check; the unit tests of
/// `cache/entries.rs` pin the rule deterministically.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_fills_never_cache_an_older_value() {
    let server = TestRedis::start().await;
    let cache: CachedStore<u64> = CachedStore::builder(
        RedisStore::builder(server.pool(), "counter")
            .build()
            .unwrap(),
    )
    .build()
    .await
    .unwrap();
    let mut writer_conn = server.raw_connection().await;
    set_as_another_program(&mut writer_conn, "counter:n", &0u64).await;
    const LAST: u64 = 2000;
    let writer = tokio::spawn(async move {
        for n in 1..=LAST {
            set_as_another_program(&mut writer_conn, "counter:n", &n).await;
        }
    });
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                loop {
                    let n = cache.get("n").await.unwrap().unwrap();
                    if n == LAST {
                        break;
                    }
                    assert!(started.elapsed() < Duration::from_secs(20), "stuck at {n}");
                    // A hit never waits, so without this the readers would keep both
                    // runtime threads from the writer and from redis-rs' connection tasks.
                    tokio::task::yield_now().await;
                }
                for _ in 0..100 {
                    assert_eq!(cache.get("n").await.unwrap(), Some(LAST));
                }
            })
        })
        .collect();
    writer.await.unwrap();
    for reader in readers {
        reader.await.unwrap();
    }
    let stats = cache.stats();
    assert!(stats.hits > 0 && stats.invalidations > 0, "{stats:?}");
    eprintln!("{stats:?}");
}

/// An encrypted store under the cache: the cache holds decrypted values and is invalidated
/// like any other; a value moved by redis-cli's `COPY` or `RENAME` fails to decrypt under
/// its new key, through the cache as through the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_values_are_cached_decrypted_and_moved_ones_refused() {
    use typedkv::{DecodeProblem, EncryptionKey, Error, Keyring};
    let sealed = |pool: &RedisPool| -> RedisStore<Profile> {
        RedisStore::builder(pool.clone(), "user")
            .encryption(Keyring::new(1, EncryptionKey::from_bytes([0x42; 32])))
            .build()
            .unwrap()
    };
    let server = TestRedis::start().await;
    let cache = CachedStore::builder(sealed(&server.pool()))
        .build()
        .await
        .unwrap();
    set_and_await_echo(&cache, "1", &profile(1)).await;
    assert_eq!(cache.get("1").await.unwrap(), Some(profile(1)));
    assert_eq!(cache.get("1").await.unwrap(), Some(profile(1)));
    assert_eq!(cache.stats().hits, 1);

    let other = sealed(&RedisPool::from_url(server.url()).unwrap());
    other.set("1", &profile(2)).await.unwrap();
    eventually("the other client's write", || async {
        cache.get("1").await.unwrap() == Some(profile(2))
    })
    .await;

    let cli = |args: &[&str]| {
        let port = server.port().to_string();
        let out = Command::new("redis-cli")
            .args(["-p", port.as_str()])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    };
    cli(&["COPY", "user:1", "user:copied"]);
    cli(&["RENAME", "user:1", "user:renamed"]);
    for id in ["copied", "renamed"] {
        match cache.get(id).await {
            Err(Error::Decode {
                problem: DecodeProblem::Unauthentic { key_id: 1 },
                key,
                ..
            }) => assert_eq!(key, format!("user:{id}")),
            other => panic!("{id}: {other:?}"),
        }
    }
    eventually("the RENAME's invalidation", || async {
        cache.get("1").await.unwrap().is_none()
    })
    .await;
}

/// A cache with fail-safe reads (bound `max_staleness`, soft timeout `soft`) on a pool with
/// short timeouts, so a stopped server fails reads quickly.
async fn fail_safe(
    server: &TestRedis,
    max_staleness: Duration,
    soft: Option<Duration>,
) -> CachedStore<Profile> {
    let pool = RedisPool::builder(server.url())
        .response_timeout(Some(Duration::from_millis(200)))
        .create_timeout(Duration::from_millis(300))
        .connect_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let builder = CachedStore::builder(users(&pool)).fail_safe(max_staleness);
    let builder = match soft {
        Some(wait) => builder.soft_timeout(wait),
        None => builder,
    };
    builder.build().await.unwrap()
}

/// Kills the cache's tracking connection (every normal client of `server`: at least one)
/// and waits until the cache dropped its entries, so the next read has to go to Redis.
async fn drop_cached_entries(server: &TestRedis, cache: &CachedStore<Profile>) {
    drop_all_cached_entries(server, &[cache]).await;
}

/// [`drop_cached_entries`] for several caches of `server` at once.
async fn drop_all_cached_entries(server: &TestRedis, caches: &[&CachedStore<Profile>]) {
    let flushes: Vec<u64> = caches.iter().map(|cache| cache.stats().flushes).collect();
    let mut raw = server.raw_connection().await;
    let killed: u64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("normal")
        .arg("SKIPME")
        .arg("yes")
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!(killed >= 1);
    eventually("the flushes", || async {
        caches
            .iter()
            .zip(&flushes)
            .all(|(cache, before)| cache.stats().flushes > *before)
    })
    .await;
}

/// The server hangs (SIGSTOP): fail-safe reads answer the last value, marked stale with its
/// age, while it is within the bound, then the error; once the server is back, current
/// values again. A soft timeout answers the stale value without waiting for Redis' error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_safe_reads_answer_the_last_value_while_the_server_hangs() {
    use typedkv::StaleBecause;
    let server = TestRedis::start().await;
    // The stale answers below come after dropping the entries and a 200 ms timeout, all
    // within the bound: 3 s leave a loaded machine room for that.
    let bound = Duration::from_secs(3);
    let cache = fail_safe(&server, bound, None).await;
    let soft = fail_safe(&server, bound, Some(Duration::from_millis(50))).await;
    // Written once: a write through either would make the other forget the value.
    cache.set("1", &profile(1)).await.unwrap();
    for cache in [&cache, &soft] {
        let read = cache.get_fail_safe("1").await.unwrap().unwrap();
        assert!(!read.is_stale());
    }
    drop_all_cached_entries(&server, &[&cache, &soft]).await;
    let stopped_at = Instant::now();
    server.signal("-STOP");

    let read = cache.get_fail_safe("1").await.unwrap().unwrap();
    assert_eq!(*read.value, profile(1));
    let stale = read.stale.expect("answered while the server hangs: stale");
    assert!(
        matches!(stale.because, StaleBecause::Failed(ref e) if e.is_timeout()),
        "{stale:?}"
    );
    assert!(stale.age <= bound, "{stale:?}");
    // `get` never answers stale values: it reports the error.
    assert!(cache.get("1").await.unwrap_err().is_timeout());

    // `SoftTimeout`, not `Failed`: answered before the read's 200 ms response timeout
    // ended it. (The elapsed bound only catches a hang: timers run late on a loaded machine.)
    let started = Instant::now();
    let read = soft.get_fail_safe("1").await.unwrap().unwrap();
    assert!(matches!(
        read.stale.unwrap().because,
        StaleBecause::SoftTimeout(_)
    ));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(*read.value, profile(1));

    // Past the bound: the error.
    tokio::time::sleep(bound.saturating_sub(stopped_at.elapsed()) + Duration::from_millis(100))
        .await;
    let err = cache.get_fail_safe("1").await.unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    // A write fails; it never pretends to succeed.
    assert!(cache.set("2", &profile(2)).await.is_err());

    server.signal("-CONT");
    eventually("current values once the server is back", || async {
        matches!(cache.get_fail_safe("1").await, Ok(Some(read)) if !read.is_stale())
    })
    .await;
}

/// The server is killed, then restarted: connection errors answer the last value; a value
/// this process wrote over is never answered; after the restart, the (empty) server's
/// answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_safe_reads_survive_a_killed_server_and_never_answer_overwritten_values() {
    let mut server = TestRedis::start().await;
    let cache = fail_safe(&server, Duration::from_secs(10), None).await;
    cache.set("kept", &profile(1)).await.unwrap();
    cache.set("overwritten", &profile(2)).await.unwrap();
    for id in ["kept", "overwritten"] {
        cache.get_fail_safe(id).await.unwrap().unwrap();
    }
    cache.set("overwritten", &profile(3)).await.unwrap(); // forgets profile(2)

    server.stop();
    // Until the cache notices its tracking connection died, it answers from its entries.
    eventually("the lost tracking", || async { !cache.is_tracking() }).await;
    let read = cache.get_fail_safe("kept").await.unwrap().unwrap();
    assert_eq!((&*read.value, read.is_stale()), (&profile(1), true));
    match &read.stale.unwrap().because {
        typedkv::StaleBecause::Failed(e) => assert!(e.is_transient(), "{e:?}"),
        other => panic!("{other:?}"),
    }
    let err = cache.get_fail_safe("overwritten").await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");

    server.restart().await; // empty: nothing persisted
    eventually("the restarted server's answer", || async {
        matches!(cache.get_fail_safe("kept").await, Ok(None))
    })
    .await;
}

/// Two fail-safe caches of one namespace built apart in one process, beside a plain store:
/// a value written over (or deleted) through any store of the process, the store behind a
/// cache and a transaction included, is evicted from both caches before the write returns
/// and never answered by either while the server hangs; a value nobody wrote over is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_safe_reads_never_answer_what_any_store_of_the_process_wrote_over() {
    let server = TestRedis::start().await;
    let bound = Duration::from_secs(30);
    let (a, b) = (
        fail_safe(&server, bound, None).await,
        fail_safe(&server, bound, None).await,
    );
    let plain = users(&server.pool());
    let ids = [
        "kept",
        "by-a",
        "by-plain",
        "by-a-store",
        "deleted",
        "by-tx",
        "tx-deleted",
    ];
    for id in ids {
        a.set(id, &profile(1)).await.unwrap();
        for cache in [&a, &b] {
            let read = cache.get_fail_safe(id).await.unwrap().unwrap();
            assert_eq!(*read.value, profile(1), "{id}");
        }
    }
    a.set("by-a", &profile(2)).await.unwrap();
    plain.set("by-plain", &profile(2)).await.unwrap();
    a.store().set("by-a-store", &profile(2)).await.unwrap();
    b.delete("deleted").await.unwrap();
    let in_tx = &plain;
    typedkv::transaction(plain.backend(), |tx| async move {
        tx.set(in_tx, "by-tx", &profile(2))?;
        tx.delete(in_tx, "tx-deleted")
    })
    .await
    .unwrap();
    // Evicted from both caches before the writes returned: no invalidation awaited.
    for cache in [&a, &b] {
        assert_eq!(cache.get("by-plain").await.unwrap(), Some(profile(2)));
    }

    // Reads must go to the (hung) server, not to the tracked entries.
    drop_all_cached_entries(&server, &[&a, &b]).await;
    server.signal("-STOP");
    for cache in [&a, &b] {
        let kept = cache.get_fail_safe("kept").await.unwrap().unwrap();
        assert_eq!((&*kept.value, kept.is_stale()), (&profile(1), true));
        for id in ["by-a", "by-a-store", "deleted", "by-tx", "tx-deleted"] {
            match cache.get_fail_safe(id).await {
                Err(e) => assert!(e.is_transient(), "{id}: {e:?}"),
                Ok(read) => panic!("{id}: answered {read:?}, which this process wrote over"),
            }
        }
        // Read again after its write: the new value, current when read.
        let read = cache.get_fail_safe("by-plain").await.unwrap().unwrap();
        assert_eq!(*read.value, profile(2));
    }
    server.signal("-CONT");
}

/// The caches of a process hear its writes by server and namespace: a write to the same
/// namespace on another server (another tenant, another test) leaves the cache's entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_to_another_server_leave_the_cache_alone() {
    let (server, elsewhere) = (TestRedis::start().await, TestRedis::start().await);
    let cache = cached(&server).await;
    set_and_await_echo(&cache, "1", &profile(1)).await;
    assert_eq!(cache.get("1").await.unwrap(), Some(profile(1)));
    users(&elsewhere.pool())
        .set("1", &profile(2))
        .await
        .unwrap();
    assert_eq!(cache.get("1").await.unwrap(), Some(profile(1)));
    assert_eq!(cache.stats().hits, 1);
}

/// `get_or_insert_with_fail_safe`: loads and stores a missing value; while the server is
/// down, answers the last known value without calling the loader, and for a key never seen
/// the error (the loader's value could not be stored).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_safe_get_or_insert_with_never_loads_what_it_cannot_store() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let mut server = TestRedis::start().await;
    let cache = fail_safe(&server, Duration::from_secs(10), None).await;
    let loads = Arc::new(AtomicUsize::new(0));
    let loader = |value: Profile| {
        let loads = Arc::clone(&loads);
        move || async move {
            loads.fetch_add(1, Ordering::SeqCst);
            Ok::<_, std::convert::Infallible>(typedkv::Loaded::new(value))
        }
    };
    let read = cache
        .get_or_insert_with_fail_safe("a", loader(profile(1)))
        .await
        .unwrap();
    assert_eq!((&*read.value, read.is_stale()), (&profile(1), false));
    assert_eq!(cache.store().get("a").await.unwrap(), Some(profile(1)));

    server.stop();
    eventually("the lost tracking", || async { !cache.is_tracking() }).await;
    let read = cache
        .get_or_insert_with_fail_safe("a", loader(profile(2)))
        .await
        .unwrap();
    assert_eq!((&*read.value, read.is_stale()), (&profile(1), true));
    let err = cache
        .get_or_insert_with_fail_safe("b", loader(profile(3)))
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert_eq!(
        loads.load(Ordering::SeqCst),
        1,
        "only the first call loaded"
    );
}
