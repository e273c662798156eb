//! Failover: a master of a live cluster is killed while 16 tasks write and read through one
//! pool. Calls on the dead master's slots fail with typed errors (never a panic or a hang)
//! until its replica is promoted, then everything succeeds again; acknowledged writes that
//! did not reach the replica in time are lost (Redis replicates asynchronously) and counted.

// Tests report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use typedkv::redis::RedisClusterPool;
use typedkv::{Error, RedisClusterStore, Store};
use typedkv_testkit::TestCluster;
use typedkv_testkit::cluster::NODE_TIMEOUT;

const TASKS: usize = 16;
/// The promised bound: once the cluster has promoted the replica, every call succeeds again
/// within this long (redis-rs notices the new master on its next failed attempt or MOVED and
/// refreshes its slot map).
const RECOVERY_AFTER_PROMOTION: Duration = Duration::from_secs(2);
/// How long the test waits for the cluster itself to promote a replica.
const PROMOTION_LIMIT: Duration = Duration::from_secs(30);

/// One call's outcome, when it ended.
struct Outcome {
    at: Instant,
    error: Option<Error>,
}

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

    let stop = Arc::new(AtomicBool::new(false));
    let outcomes = Arc::new(Mutex::new(Vec::<Outcome>::new()));
    let workers: Vec<_> = (0..TASKS)
        .map(|task| {
            let (store, stop, outcomes) = (store.clone(), stop.clone(), outcomes.clone());
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let id = format!("{task}-{i}");
                    let written = store.set(&id, &i).await;
                    if written.is_ok() {
                        acknowledged.push((id.clone(), i));
                    }
                    let read = store.get(&id).await.map(drop);
                    let mut outcomes = outcomes.lock().unwrap();
                    for result in [written, read] {
                        outcomes.push(Outcome {
                            at: Instant::now(),
                            error: result.err(),
                        });
                    }
                }
                acknowledged
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_secs(1)).await;
    let victim = cluster.master_of("w:warm-up").await;
    let killed_at = Instant::now();
    cluster.kill(victim);
    let promoted_after = cluster.wait_failover_from(victim, PROMOTION_LIMIT).await;
    tokio::time::sleep(RECOVERY_AFTER_PROMOTION + Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let mut acknowledged = Vec::new();
    for worker in workers {
        acknowledged.extend(worker.await.expect("no worker panicked"));
    }

    let outcomes = std::mem::take(&mut *outcomes.lock().unwrap());
    let failures: Vec<&Outcome> = outcomes.iter().filter(|o| o.error.is_some()).collect();
    for failure in &failures {
        let error = failure.error.as_ref().unwrap();
        assert!(
            error.is_timeout() || matches!(error, Error::Connection { .. } | Error::Refused { .. }),
            "unexpected error kind during failover: {error}"
        );
        assert!(
            error.key().is_some_and(|key| key.starts_with("w:")),
            "{error}"
        );
    }
    let last_failure = failures.iter().map(|o| o.at).max();
    let outage = last_failure.map(|at| at.duration_since(killed_at));
    let after_outage = outcomes
        .iter()
        .filter(|o| last_failure.is_none_or(|last| o.at > last))
        .count();

    let mut lost = 0;
    for chunk in acknowledged.chunks(500) {
        let ids: Vec<&str> = chunk.iter().map(|(id, _)| id.as_str()).collect();
        let stored = store.get_many(&ids).await.unwrap();
        lost += chunk
            .iter()
            .zip(stored)
            .filter(|((_, value), stored)| *stored != Some(*value))
            .count();
    }
    let mut kinds: Vec<String> = failures
        .iter()
        .filter_map(|o| o.error.as_ref())
        .map(|e| match e.code() {
            Some(code) => code.to_owned(),
            None if e.is_timeout() => "timeout".to_owned(),
            None => "connection".to_owned(),
        })
        .collect();
    kinds.sort();
    kinds.dedup();
    eprintln!(
        "failover report (batching {batching}): node timeout {NODE_TIMEOUT:?}; replica promoted {promoted_after:?} \
         after the kill; last failed call {outage:?} after the kill; {} calls, {} failed, {} \
         succeeded after the last failure; {} writes acknowledged, {lost} lost; errors seen: \
         {kinds:?}",
        outcomes.len(),
        failures.len(),
        acknowledged.len(),
        after_outage,
    );
    if let Some(outage) = outage {
        assert!(
            outage <= promoted_after + RECOVERY_AFTER_PROMOTION,
            "calls still failed {outage:?} after the kill, replica promoted after {promoted_after:?}"
        );
    }
    assert!(
        after_outage > 1000,
        "too few calls after recovery: {after_outage}"
    );
}
