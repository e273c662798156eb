//! Indexes under load on the 3+3 cluster: hash-tagged stores (each store in one slot, the one
//! atomic script) with the shared load cases of `tests/common/index_load.rs`, and a store
//! spread over 16 partitions, whose writes spread over the masters and whose indexes a
//! repair makes exact after a master is killed under load.

use std::collections::BTreeMap;
use std::time::Duration;

use redis::AsyncCommands;
use typedkv::Store;
use typedkv::redis::RedisClusterPool;
use typedkv_testkit::TestCluster;
use typedkv_testkit::conformance::partitions::{Member, members_with};
use typedkv_testkit::failover::RECOVERY_AFTER_PROMOTION;

use crate::index_load::*;

/// How long the test waits for the cluster itself to promote a replica.
const PROMOTION_LIMIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indexes_under_load() {
    let cluster = TestCluster::start().await;
    let stress = Duration::from_secs(2);
    indexes_agree_with_a_scan_after_random_writes(cluster.pool(), true, stress).await;
    one_of_64_writers_wins_a_unique_value(cluster.pool(), true).await;
    range_pages_hold_while_writers_run(cluster.pool(), true).await;
    // Every key of the hash-tagged store lives on the master of slot "{ttl}".
    let master = cluster.master_of("{ttl}").await;
    ttl_entities_leave_redis_with_their_index_entries(cluster.pool(), |_| master, true).await;
    cluster.flush().await;
    partitioned_indexes_agree_with_a_scan(cluster.pool(), stress).await;
    one_index_agrees_with_a_scan(cluster.pool(), true, stress).await;
    partitioned_writes_spread_over_the_masters(&cluster).await;
}

/// A master of a store of 16 partitions killed under 64 writers: once its replica serves
/// its slots and every partition answers, `repair_indexes` leaves every index exactly what
/// a full scan says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_indexes_are_repaired_after_a_master_is_killed() {
    let mut cluster = TestCluster::start().await;
    let pool = cluster.pool();
    let victim = cluster.master_ports().await[0];
    let kill = async {
        cluster.kill(victim);
        let promoted_after = cluster.wait_failover_from(victim, PROMOTION_LIMIT).await;
        eprintln!("replica promoted {promoted_after:?} after the kill");
    };
    // Calls recover within RECOVERY_AFTER_PROMOTION (the failover test's promise); the
    // margin is for 64 writers sharing 2 cores with six servers.
    let recovery = RECOVERY_AFTER_PROMOTION + Duration::from_secs(20);
    partitioned_indexes_are_repaired_after_a_master_dies(pool, kill, recovery).await;
}

/// 3,000 indexed writes to a store of 16 partitions: each master runs 25–42% of the
/// write scripts (`INFO commandstats`, one script per write with batching off) and holds
/// the entities it wrote, where a hash-tagged store puts every one on one master.
async fn partitioned_writes_spread_over_the_masters(cluster: &TestCluster) {
    let pool = RedisClusterPool::builder(cluster.seeds())
        .batching(false)
        .build()
        .unwrap();
    let store = members_with(&pool, "scale", |b| b.partitions(16));
    let mut ports = std::collections::BTreeSet::new();
    for space in store.index_spaces() {
        ports.insert(cluster.master_of(&space.entity_prefix).await);
    }
    let mut masters = BTreeMap::new();
    for port in ports {
        masters.insert(port, cluster.node_connection(port).await);
    }
    assert_eq!(
        masters.len(),
        3,
        "the partitions' masters: {:?}",
        masters.keys()
    );
    for conn in masters.values_mut() {
        let () = redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query_async(conn)
            .await
            .unwrap();
    }
    let writes = 3000;
    let tasks: Vec<_> = (0..64)
        .map(|task| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in (task..writes).step_by(64) {
                    let member = Member {
                        team: format!("team-{}", i % 7),
                        tags: vec![],
                        score: i as i64,
                    };
                    store.set(&format!("e{i}"), &member).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let mut total = 0;
    let mut per_master = BTreeMap::new();
    for (port, conn) in &mut masters {
        let stats: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(conn)
            .await
            .unwrap();
        let scripts = calls_of(&stats, "evalsha") + calls_of(&stats, "eval");
        let mut keys: Vec<String> = conn.keys("{scale#*}:*").await.unwrap();
        keys.retain(|key| !key.contains("}#"));
        total += scripts;
        per_master.insert(*port, (scripts, keys.len()));
    }
    eprintln!("indexed writes per master (scripts, entities): {per_master:?}");
    assert_eq!(total, writes, "{per_master:?}");
    for (port, (scripts, entities)) in per_master {
        let share = scripts as f64 / writes as f64;
        assert!((0.25..=0.42).contains(&share), "master {port}: {share:.2}");
        assert_eq!(entities as u64, scripts, "master {port}");
    }
    assert_eq!(store.count_by("team", b"team-3").await.unwrap(), 429);
}

/// The `calls=` of command `name` in an `INFO commandstats` reply.
fn calls_of(stats: &str, name: &str) -> u64 {
    stats
        .lines()
        .find_map(|line| line.strip_prefix(&format!("cmdstat_{name}:calls=")))
        .and_then(|rest| rest.split(',').next())
        .and_then(|calls| calls.parse().ok())
        .unwrap_or(0)
}
