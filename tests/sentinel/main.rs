//! typedkv on Redis Sentinel (one master, two replicas, three sentinels on loopback): the
//! whole conformance suite on the master the sentinels name, then a failover under load.
//!
//! The setup takes seconds to start, so this binary starts one per test and runs the suite
//! on it, flushing the master between cases. The same over TLS is `tls.rs`.

// Tests report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod concern;
mod tls;

use std::time::Duration;

use typedkv::redis::RedisSentinelPool;

/// Tests take turns, two at a time: each starts six servers, and more setups at once on two
/// cores made the failover timings (and, before `TestSentinel::start` retried, the ports
/// the harness picks) collide.
static SETUPS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);
use typedkv::{Error, RedisSentinelStore, Store};
use typedkv_testkit::conformance;
use typedkv_testkit::failover::{Load, RECOVERY_AFTER_PROMOTION};
use typedkv_testkit::sentinel::{DOWN_AFTER, MASTER_NAME};
use typedkv_testkit::transfers::{Transfers, assert_total_holds, wait_replicated};
use typedkv_testkit::{TestSentinel, error_chain, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typedkv_on_sentinel() {
    let _turn = SETUPS.acquire().await.unwrap();
    let sentinel = TestSentinel::start().await;
    let failed = conformance::run_all(|| sentinel.fixture()).await;
    assert!(
        failed.is_empty(),
        "conformance cases failed on the sentinel setup: {failed:?}"
    );
    a_wrong_master_name_is_a_clear_error(&sentinel).await;
    passwords_never_appear(&sentinel).await;
    // Last: it locks the testkit's own helpers out of the sentinels.
    sentinels_that_require_a_login_get_the_one_in_their_urls(&sentinel).await;
}

/// Sentinels whose `default` user is switched off (Redis ACL) answer a pool that logs in
/// as the user in their URLs, and refuse one that does not: `Error::Refused` with their
/// code, not a transient error to retry.
async fn sentinels_that_require_a_login_get_the_one_in_their_urls(sentinel: &TestSentinel) {
    for port in sentinel.sentinel_ports() {
        let mut conn = sentinel.connection(port).await;
        for command in [
            &[
                "SETUSER",
                "app",
                "on",
                ">sentinel-pw",
                "allchannels",
                "+@all",
            ][..],
            &["SETUSER", "default", "off"][..],
        ] {
            let _: () = redis::cmd("ACL")
                .arg(command)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
    }
    let login_urls: Vec<String> = sentinel
        .sentinel_urls()
        .iter()
        .map(|url| url.replace("redis://", "redis://app:sentinel-pw@"))
        .collect();
    let pool = RedisSentinelPool::builder(login_urls, MASTER_NAME)
        .build()
        .unwrap();
    let store: RedisSentinelStore<u64> = RedisSentinelStore::builder(pool, "acl").build().unwrap();
    store.set("1", &1).await.unwrap();
    assert_eq!(store.get("1").await.unwrap(), Some(1));

    let anonymous = sentinel
        .pool_builder()
        .create_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let store: RedisSentinelStore<u64> = RedisSentinelStore::builder(anonymous, "acl")
        .build()
        .unwrap();
    let err = store.get("1").await.unwrap_err();
    assert_eq!(err.code(), Some("NOAUTH"), "{err:?}");
    assert!(!err.is_transient());
}

/// A master name the sentinels do not know fails the call with a connection error naming
/// the key, within the create timeout.
async fn a_wrong_master_name_is_a_clear_error(sentinel: &TestSentinel) {
    let pool = RedisSentinelPool::builder(sentinel.sentinel_urls(), "no-such-master")
        .create_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let store: RedisSentinelStore<u64> = RedisSentinelStore::builder(pool, "n").build().unwrap();
    let started = std::time::Instant::now();
    let err = store.get("1").await.unwrap_err();
    // The 1 s create timeout, with a margin for a loaded machine (the default is 3 s).
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(
            err,
            Error::Connection { .. } | Error::Timeout { .. } | Error::Pool { .. }
        ),
        "{err:?}"
    );
    assert_eq!(err.key(), Some("n:1"));
}

/// Passwords of the master and of the sentinels appear in no `Debug` or error.
async fn passwords_never_appear(sentinel: &TestSentinel) {
    let urls: Vec<String> = sentinel
        .sentinel_urls()
        .iter()
        .map(|url| url.replace("redis://", "redis://:sentinel-s3cret@"))
        .collect();
    let builder = RedisSentinelPool::builder(urls, MASTER_NAME)
        .master_username("app")
        .master_password("master-s3cret")
        .create_timeout(Duration::from_secs(1));
    let mut shown = format!("{builder:?}");
    let pool = builder.build().unwrap();
    shown.push_str(&format!("{pool:?} {}", pool.redacted_urls()));
    let store: RedisSentinelStore<u64> = RedisSentinelStore::builder(pool, "p").build().unwrap();
    shown.push_str(&error_chain(&store.get("1").await.unwrap_err()));
    for secret in ["sentinel-s3cret", "master-s3cret"] {
        assert!(!shown.contains(secret), "{secret} shown: {shown}");
    }
}

/// The master is killed while 16 tasks write and read: calls fail only until the sentinels
/// promote a replica (plus the bound below), each within its timeouts, and the acknowledged
/// writes lost to asynchronous replication are counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_recover_after_the_master_is_killed() {
    let _turn = SETUPS.acquire().await.unwrap();
    let mut sentinel = TestSentinel::start().await;
    let pool = failover_pool(&sentinel);
    let store: RedisSentinelStore<u64> = RedisSentinelStore::builder(pool, "w").build().unwrap();
    store.set("warm-up", &0).await.unwrap();

    let load = Load::start(store.clone(), 16);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let victim = sentinel.master_port().await;
    let killed = load.mark();
    sentinel.kill(victim);
    let promoted_after = sentinel
        .wait_failover_from(victim, Duration::from_secs(30))
        .await;
    tokio::time::sleep(RECOVERY_AFTER_PROMOTION + Duration::from_secs(2)).await;
    let report = load.stop(killed, &sentinel.master_store("w").await).await;
    eprintln!(
        "sentinel failover report: down-after {DOWN_AFTER:?}; replica promoted {promoted_after:?} \
         after the kill; {report}"
    );
    report.assert_recovered(promoted_after, "w:");
    // Each call ends within its bounds: a fresh connection (1 s), a reply (0.5 s), once more
    // for a read resent after a dead connection, and 20% slack.
    let bound = Duration::from_millis(1500 * 2 * 12 / 10);
    assert!(report.slowest <= bound, "a call took {:?}", report.slowest);
}

/// The master hangs (SIGSTOP) under 8 tasks of transfers: every transaction ends by its
/// deadline, committed or with an error; the sentinels promote a replica and transfers
/// commit again; on the new master the total over the accounts holds and none is negative
/// (a commit is one script, replicated whole or not at all).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_end_by_their_deadline_and_keep_their_total_when_the_master_hangs() {
    const DEADLINE: Duration = Duration::from_secs(2);
    let _turn = SETUPS.acquire().await.unwrap();
    let sentinel = TestSentinel::start().await;
    let pool = failover_pool(&sentinel);
    let accounts: RedisSentinelStore<i64> =
        RedisSentinelStore::builder(pool, "bank").build().unwrap();
    let transfers = Transfers::start(accounts, 8, DEADLINE).await;
    let victim = sentinel.master_port().await;
    wait_replicated(&mut sentinel.connection(victim).await, "marker", 2).await;
    transfers
        .wait_for_commits(50, Duration::from_secs(30))
        .await;

    sentinel.signal(victim, "-STOP");
    sentinel
        .wait_failover_from(victim, Duration::from_secs(30))
        .await;
    transfers
        .wait_for_commits(50, Duration::from_secs(30))
        .await;
    sentinel.signal(victim, "-CONT");
    let slowest = transfers.stop().await;
    // The deadline, and slack for a loaded machine to run the task that hears of it.
    assert!(
        slowest <= DEADLINE * 3 / 2,
        "a transaction took {slowest:?}"
    );
    let fresh = RedisSentinelStore::builder(sentinel.pool(), "bank")
        .build()
        .unwrap();
    assert_total_holds(&fresh).await;
}

/// The local cache on Sentinel, with fail-safe reads, through a failover: invalidations
/// arrive before it; while the master is gone, reads answer the last value, marked stale;
/// after the promotion, current values, and tracking (so invalidations) on the new master.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_follows_a_failover_and_answers_stale_values_meanwhile() {
    let _turn = SETUPS.acquire().await.unwrap();
    use typedkv::CachedStore;
    let mut sentinel = TestSentinel::start().await;
    let pool = || {
        sentinel
            .pool_builder()
            .response_timeout(Some(Duration::from_millis(300)))
            .create_timeout(Duration::from_millis(500))
            .build()
            .unwrap()
    };
    let store: RedisSentinelStore<u64> = RedisSentinelStore::builder(pool(), "c").build().unwrap();
    let cache = CachedStore::builder(store)
        .fail_safe(Duration::from_secs(30))
        .build()
        .await
        .unwrap();
    cache.set("1", &1).await.unwrap();
    assert!(!cache.get_fail_safe("1").await.unwrap().unwrap().is_stale());
    // Another client (one this process' caches do not hear in process) writes.
    sentinel.master_store("c").await.set("1", &2).await.unwrap();
    eventually(|| async { cache.get("1").await.unwrap() == Some(2) }).await;

    let victim = sentinel.master_port().await;
    sentinel.kill(victim);
    eventually(|| async { !cache.is_tracking() }).await;
    let read = cache.get_fail_safe("1").await.unwrap().unwrap();
    assert_eq!((*read.value, read.is_stale()), (2, true));

    sentinel
        .wait_failover_from(victim, Duration::from_secs(30))
        .await;
    eventually(|| async {
        matches!(cache.get_fail_safe("1").await, Ok(Some(read)) if !read.is_stale())
    })
    .await;
    eventually(|| async { cache.is_tracking() }).await;
    sentinel.master_store("c").await.set("1", &3).await.unwrap();
    eventually(|| async { cache.get("1").await.unwrap() == Some(3) }).await;
}

/// A manual failover (`SENTINEL FAILOVER`) while 16 tasks write and read: the old master
/// stays up and takes writes until Sentinel demotes it, seconds after announcing the new
/// one; the pool moves at the announcement, so no call fails and no write acknowledged
/// after it is lost (those acknowledged before it are, and are counted); a pool made after
/// the switch goes to the new master.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_failover_moves_the_pool_to_the_new_master() {
    let _turn = SETUPS.acquire().await.unwrap();
    let sentinel = TestSentinel::start().await;
    let pool = sentinel
        .pool_builder()
        .response_timeout(Some(Duration::from_millis(500)))
        .build()
        .unwrap();
    let store: RedisSentinelStore<u64> = RedisSentinelStore::builder(pool, "m").build().unwrap();
    store.set("warm-up", &0).await.unwrap();
    sentinel
        .manual_failover_under_load(&store, "m", "manual failover report")
        .await;
    // A pool made now, with the old master still up and not yet demoted, writes to the new
    // one (redis-rs' own lookup named the old master for seconds longer).
    let fresh: RedisSentinelStore<u64> = RedisSentinelStore::builder(sentinel.pool(), "m")
        .build()
        .unwrap();
    fresh.set("fresh", &1).await.unwrap();
    let master = sentinel.master_store("m").await;
    assert_eq!(master.get("fresh").await.unwrap(), Some(1));
}

/// A partition: the sentinels lose the master (its `default` user, theirs, is switched off
/// and their links killed) while it keeps serving the pool's own user. They promote a
/// replica and cannot demote the old master, which would take writes for ever: the pool
/// leaves it when a sentinel announces `+switch-master`, and writes land on the new master.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_leaves_a_partitioned_master_at_the_switch_announcement() {
    let _turn = SETUPS.acquire().await.unwrap();
    let sentinel = TestSentinel::start().await;
    let store: RedisSentinelStore<u64> =
        RedisSentinelStore::builder(app_pool(&sentinel).await, "p")
            .build()
            .unwrap();
    store.set("before", &1).await.unwrap();

    let (old, mut master) = partition_the_master(&sentinel).await;
    let new = moved_to_the_new_master(&sentinel, &store, old).await;
    // Once moved, the pool stays on the new master.
    store.set("final", &3).await.unwrap();
    for (port, conn, want) in [(new, &mut node(new).await, true), (old, &mut master, false)] {
        let found: bool = redis::cmd("EXISTS")
            .arg("p:final")
            .query_async(conn)
            .await
            .unwrap();
        assert_eq!(found, want, "p:final on {port}");
    }
}

/// The local cache through the same partition, with readers racing the switch. The old
/// master is never demoted, so the cache's tracking connection to it stays open and hears
/// nothing of the new master's writes: the cache must move at the announcement, flushing
/// what it read before or during the switch. Every value another client writes to the new
/// master after the switch, round after round, is what the cache answers. (Another client:
/// writes through this process' own stores evict in process, whatever the tracking does.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_follows_a_switch_the_old_master_never_hears_of() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let _turn = SETUPS.acquire().await.unwrap();
    let sentinel = TestSentinel::start().await;
    let pool = app_pool(&sentinel).await;
    let store: RedisSentinelStore<u64> = RedisSentinelStore::builder(pool, "q").build().unwrap();
    let cache = typedkv::CachedStore::builder(store.clone())
        .build()
        .await
        .unwrap();
    store.set("k", &0).await.unwrap();
    eventually(|| async { cache.get("k").await.ok().flatten() == Some(0) }).await;

    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let (cache, stop) = (cache.clone(), Arc::clone(&stop));
            tokio::spawn(async move {
                let mut reads = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let _ = cache.get("k").await;
                    reads += 1;
                    tokio::task::yield_now().await;
                }
                reads
            })
        })
        .collect();
    let (old, _master) = partition_the_master(&sentinel).await;
    moved_to_the_new_master(&sentinel, &store, old).await;
    let other_client = sentinel.master_store("q").await;
    // Tracking drops with the switch and resumes on the new master: wait for that event,
    // so the rounds below check invalidations from the new master, not reads that go
    // through while nothing is cached.
    eventually(|| async { cache.is_tracking() }).await;
    for round in 1..=20 {
        other_client.set("k", &round).await.unwrap();
        eventually(|| async { cache.get("k").await.ok().flatten() == Some(round) }).await;
    }
    stop.store(true, Ordering::Relaxed);
    for reader in readers {
        assert!(reader.await.unwrap() > 0);
    }
    assert!(cache.is_tracking());
}

/// A pool for calls through a failover: a reply within 0.5 s, a new connection within 1 s.
fn failover_pool(sentinel: &TestSentinel) -> RedisSentinelPool {
    sentinel
        .pool_builder()
        .response_timeout(Some(Duration::from_millis(500)))
        .create_timeout(Duration::from_secs(1))
        .build()
        .unwrap()
}

/// A pool logging in as `app`, a user made on every data node, so the sentinels' `default`
/// user can be switched off on the master while the pool keeps being served.
async fn app_pool(sentinel: &TestSentinel) -> RedisSentinelPool {
    for port in sentinel.data_ports() {
        let _: () = redis::cmd("ACL")
            .arg(&["SETUSER", "app", "on", ">app-pw", "~*", "+@all"][..])
            .query_async(&mut node(port).await)
            .await
            .unwrap();
    }
    sentinel
        .pool_builder()
        .master_username("app")
        .master_password("app-pw")
        .build()
        .unwrap()
}

/// Cuts the master off from the sentinels (their user switched off, their links killed),
/// not from `app`; its port and a connection to it.
async fn partition_the_master(sentinel: &TestSentinel) -> (u16, redis::aio::MultiplexedConnection) {
    let old = sentinel.master_port().await;
    let mut master = node(old).await;
    let _: () = redis::cmd("ACL")
        .arg(&["SETUSER", "default", "off"][..])
        .query_async(&mut master)
        .await
        .unwrap();
    let _: u64 = redis::cmd("CLIENT")
        .arg(&["KILL", "USER", "default"][..])
        .query_async(&mut master)
        .await
        .unwrap();
    (old, master)
}

/// Waits for the sentinels to promote a replica of `old`, then until `store` writes to it
/// (the announcement reaches the pool's watcher within moments of the switch); its port.
async fn moved_to_the_new_master(
    sentinel: &TestSentinel,
    store: &RedisSentinelStore<u64>,
    old: u16,
) -> u16 {
    sentinel
        .wait_failover_from(old, Duration::from_secs(30))
        .await;
    let new = sentinel.master_port().await;
    eventually(|| async {
        store.set("moved", &1).await.is_ok()
            && redis::cmd("EXISTS")
                .arg(format!("{}:moved", store.namespace()))
                .query_async::<bool>(&mut node(new).await)
                .await
                .unwrap_or(false)
    })
    .await;
    new
}

/// A connection to the data node on `port` as the `app` user, or, before it exists, as
/// `default`.
async fn node(port: u16) -> redis::aio::MultiplexedConnection {
    for url in [
        format!("redis://app:app-pw@127.0.0.1:{port}"),
        format!("redis://127.0.0.1:{port}"),
    ] {
        if let Ok(client) = redis::Client::open(url)
            && let Ok(conn) = client.get_multiplexed_async_connection().await
        {
            return conn;
        }
    }
    panic!("cannot connect to the data node on {port}")
}

/// `read_from_replicas`: plain reads go to the replicas (their keyspace hits count them) and
/// see writes once replicated; with both replicas killed, reads go to the master.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_from_replicas_go_to_replicas_and_fall_back_to_the_master() {
    let _turn = SETUPS.acquire().await.unwrap();
    let mut sentinel = TestSentinel::start().await;
    let pool = sentinel
        .pool_builder()
        .read_from_replicas(true)
        .build()
        .unwrap();
    let store: RedisSentinelStore<u64> = RedisSentinelStore::builder(pool, "r").build().unwrap();
    let master = sentinel.master_port().await;
    let replicas: Vec<u16> = sentinel
        .data_ports()
        .into_iter()
        .filter(|port| *port != master)
        .collect();
    let hits = |port: u16| async move {
        let info: String = redis::cmd("INFO")
            .arg("stats")
            .query_async(&mut node(port).await)
            .await
            .unwrap();
        info.lines()
            .find_map(|line| line.strip_prefix("keyspace_hits:"))
            .and_then(|hits| hits.trim().parse::<u64>().ok())
            .unwrap()
    };
    let before = hits(replicas[0]).await + hits(replicas[1]).await;
    for i in 0..50u64 {
        store.set(&i.to_string(), &i).await.unwrap();
    }
    eventually(|| async {
        let mut all = true;
        for i in 0..50u64 {
            all &= store.get(&i.to_string()).await.unwrap() == Some(i);
        }
        all
    })
    .await;
    let after = hits(replicas[0]).await + hits(replicas[1]).await;
    assert!(
        after >= before + 50,
        "replicas served {} reads",
        after - before
    );

    for replica in replicas {
        sentinel.kill(replica);
    }
    eventually(|| async { store.get("1").await.ok() == Some(Some(1)) }).await;
    assert_eq!(
        store.get_many(&["1", "2"]).await.unwrap(),
        [Some(1), Some(2)]
    );
}
