//! Failover: a master of a live cluster is killed while 16 tasks write and read through one
//! pool. Calls on the dead master's slots fail with typed errors (never a panic or a hang)
//! until its replica is promoted, then everything succeeds again; acknowledged writes that
//! did not reach the replica in time are lost (Redis replicates asynchronously) and counted.

// Tests report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use typedkv::redis::RedisClusterPool;
use typedkv::{RedisClusterStore, Store, WriteConcern};
use typedkv_testkit::TestCluster;
use typedkv_testkit::cluster::NODE_TIMEOUT;
use typedkv_testkit::failover::{Load, RECOVERY_AFTER_PROMOTION};
use typedkv_testkit::transfers::{Transfers, assert_total_holds, wait_replicated};

const TASKS: usize = 16;
/// How long the test waits for the cluster itself to promote a replica.
const PROMOTION_LIMIT: Duration = Duration::from_secs(30);

/// Without batching, then with it (one after the other: two clusters failing over at once
/// would share the 2 cores and blur the timings).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_recover_after_a_master_is_killed() {
    failover(false).await;
    failover(true).await;
}

async fn failover(batching: bool) {
    let mut cluster = TestCluster::start().await;
    let pool = RedisClusterPool::builder(cluster.seeds())
        .batching(batching)
        .build()
        .unwrap();
    let store: RedisClusterStore<u64> = RedisClusterStore::builder(pool, "w").build().unwrap();
    store.set("warm-up", &0).await.unwrap();

    // redis-rs notices the new master on its next failed attempt or MOVED and refreshes its
    // slot map: within RECOVERY_AFTER_PROMOTION of the promotion.
    let load = Load::start(store.clone(), TASKS);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let victim = cluster.master_of("w:warm-up").await;
    let killed_at = load.mark();
    cluster.kill(victim);
    let promoted_after = cluster.wait_failover_from(victim, PROMOTION_LIMIT).await;
    tokio::time::sleep(RECOVERY_AFTER_PROMOTION + Duration::from_secs(2)).await;
    let report = load.stop(killed_at, &store).await;
    eprintln!(
        "failover report (batching {batching}): node timeout {NODE_TIMEOUT:?}; replica promoted \
         {promoted_after:?} after the kill; {report}"
    );
    report.assert_recovered(promoted_after, "w:");
}

/// The same kill with every write asking for one replica (`WriteConcern::replicas(1)`):
/// no acknowledged write is lost. The promoted replica has no replica of its own, so its
/// slots' writes are then reported unacknowledged (typed, naming their keys), while the
/// other masters' writes go on being acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_write_acknowledged_by_a_replica_is_lost_when_its_master_is_killed() {
    let mut cluster = TestCluster::start().await;
    // A connection per writing task: a concerned write holds one while it waits.
    let pool = RedisClusterPool::builder(cluster.seeds())
        .pool_size(TASKS + 2)
        .build()
        .unwrap();
    let one = WriteConcern::replicas(1).timeout(Duration::from_millis(500));
    let store: RedisClusterStore<u64> = RedisClusterStore::builder(pool, "w")
        .write_concern(one)
        .build()
        .unwrap();
    store.set("warm-up", &0).await.unwrap();

    let load = Load::start(store.clone(), TASKS);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let victim = cluster.master_of("w:warm-up").await;
    let killed_at = load.mark();
    cluster.kill(victim);
    let promoted_after = cluster.wait_failover_from(victim, PROMOTION_LIMIT).await;
    tokio::time::sleep(RECOVERY_AFTER_PROMOTION + Duration::from_secs(2)).await;
    // Read back through a pool made now, with the cluster's current slot map.
    let fresh = RedisClusterPool::builder(cluster.seeds()).build().unwrap();
    let reader: RedisClusterStore<u64> = RedisClusterStore::builder(fresh, "w").build().unwrap();
    let report = load.stop(killed_at, &reader).await;
    let unacknowledged = report.unacknowledged("w:");
    eprintln!(
        "failover with a concern of one replica: replica promoted {promoted_after:?} after the \
         kill; {report}; {unacknowledged} writes reported unacknowledged"
    );
    assert_eq!(report.lost, 0, "an acknowledged write was lost: {report}");
    assert!(report.acknowledged > 1000, "too few writes: {report}");
    // The other masters acknowledge writes after the failover.
    let promoted = cluster.master_of("w:warm-up").await;
    let mut i = 0;
    while cluster.master_of(&format!("w:after-{i}")).await == promoted {
        i += 1;
    }
    store.set(&format!("after-{i}"), &1).await.unwrap();
}

/// `CachedStore` on a cluster through a failover: a killed master ends tracking (the cache
/// flushes), tracking resumes on the new set of masters, and a write by another client to a
/// key of the promoted replica evicts its entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_tracks_the_new_master_after_a_failover() {
    use typedkv::CachedStore;
    let mut cluster = TestCluster::start().await;
    let store: RedisClusterStore<u64> = RedisClusterStore::builder(cluster.pool(), "c")
        .build()
        .unwrap();
    let cache = CachedStore::builder(store).build().await.unwrap();
    let other: RedisClusterStore<u64> = RedisClusterStore::builder(cluster.pool(), "c")
        .build()
        .unwrap();
    other.set("k", &1).await.unwrap();
    assert_eq!(cache.get("k").await.unwrap(), Some(1));

    let victim = cluster.master_of("c:k").await;
    cluster.kill(victim);
    cluster.wait_failover_from(victim, PROMOTION_LIMIT).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    // Tracking again, on the masters serving every slot now.
    while !cache.is_tracking() || cluster.master_of("c:k").await == victim {
        assert!(
            std::time::Instant::now() < deadline,
            "tracking did not resume"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    loop {
        match cache.get("k").await {
            Ok(Some(_)) => break,
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no answer after the failover"
        );
    }
    other.set("k", &2).await.unwrap();
    while cache.get("k").await.ok().flatten() != Some(2) {
        assert!(
            std::time::Instant::now() < deadline,
            "no invalidation from the new master"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A master hangs (SIGSTOP) under 8 tasks of transfers in one hash-tagged store, and 4
/// more start on a pool made while it hangs: every transaction ends by its deadline,
/// committed or with an error; its replica is promoted and transfers commit again (the
/// pools leave the hung master); on the new master the total holds and none is negative.
/// Without batching, then with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_end_by_their_deadline_and_keep_their_total_when_a_master_hangs() {
    transfers_through_a_hung_master(false).await;
    transfers_through_a_hung_master(true).await;
}

async fn transfers_through_a_hung_master(batching: bool) {
    const DEADLINE: Duration = Duration::from_secs(2);
    let cluster = TestCluster::start().await;
    let pool = RedisClusterPool::builder(cluster.seeds())
        .batching(batching)
        .response_timeout(Some(Duration::from_millis(500)))
        .connect_timeout(Duration::from_millis(500))
        .create_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let bank = |pool: RedisClusterPool| {
        RedisClusterStore::<i64>::builder(pool, "bank")
            .hash_tag(true)
            .build()
            .unwrap()
    };
    let accounts = bank(pool);
    let key = accounts.keyspace().key("marker").unwrap();
    let transfers = Transfers::start(accounts, 8, DEADLINE).await;
    let victim = cluster.master_of(&key).await;
    wait_replicated(&mut cluster.node_connection(victim).await, &key, 1).await;
    transfers.wait_for_commits(50, PROMOTION_LIMIT).await;

    cluster.signal(victim, "-STOP");
    // A pool made while the master hangs (its seeds include the hung node): its
    // transactions end by their deadline too, and commit once the replica is promoted.
    let fresh = RedisClusterPool::builder(cluster.seeds())
        .batching(batching)
        .response_timeout(Some(Duration::from_millis(500)))
        .connect_timeout(Duration::from_millis(500))
        .create_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let late = Transfers::join(bank(fresh), 4, DEADLINE);
    cluster.wait_failover_from(victim, PROMOTION_LIMIT).await;
    transfers.wait_for_commits(50, PROMOTION_LIMIT).await;
    late.wait_for_commits(50, PROMOTION_LIMIT).await;
    cluster.signal(victim, "-CONT");
    // The deadline, and slack for a loaded machine to run the task that hears of it.
    for slowest in [transfers.stop().await, late.stop().await] {
        assert!(
            slowest <= DEADLINE * 3 / 2,
            "a transaction took {slowest:?}"
        );
    }
    assert_total_holds(&bank(cluster.pool())).await;
}
