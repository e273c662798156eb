//! Indexes under load on the 3+3 cluster, hash-tagged stores (each store in one slot, the one
//! atomic script): the shared load cases of `tests/common/index_load.rs`.

use std::time::Duration;

use typedkv_testkit::TestCluster;

use crate::index_load::*;

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
}
