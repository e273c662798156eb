//! Write concerns on Sentinel (one master, two replicas): a write is acknowledged only once
//! the replicas asked for have it, so a failover keeps every acknowledged write; a stopped
//! replica fails writes that need it with the typed error, within the concern's wait.

use std::time::{Duration, Instant};

use typedkv::{Error, RedisSentinelStore, Store, WriteConcern};
use typedkv_testkit::TestSentinel;
use typedkv_testkit::failover::Load;
use typedkv_testkit::sentinel::MOVE_AFTER_SWITCH;

use crate::SETUPS;

/// Every replica of the test's deployment (two), waited for 500 ms.
const BOTH_REPLICAS: WriteConcern = WriteConcern::replicas(2).timeout(Duration::from_millis(500));

fn store(
    sentinel: &TestSentinel,
    namespace: &str,
    concern: WriteConcern,
) -> RedisSentinelStore<u64> {
    let pool = sentinel
        .pool_builder()
        .response_timeout(Some(Duration::from_millis(500)))
        .create_timeout(Duration::from_secs(1))
        // A connection per writing task: a concerned write holds one while it waits.
        .pool_size(18)
        .build()
        .unwrap();
    RedisSentinelStore::builder(pool, namespace)
        .write_concern(concern)
        .build()
        .unwrap()
}

/// Waits (at most 30 s) until `store` writes again, acknowledged.
async fn writes_again(store: &RedisSentinelStore<u64>) {
    let started = Instant::now();
    while store.set("probe", &1).await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "writes never resumed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A planned `SENTINEL FAILOVER` under 24 writing tasks, 8 on a store asking for both
/// replicas, 8 on one asking for none and 8 on one asking for every replica connected, in
/// the same failover: the first loses no acknowledged write (the old master's writes in
/// the gap, which no replica receives, are errors instead); the others' losses are
/// counted, as the README reports them (the old master counts fewer replicas as they
/// leave it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planned_failover_loses_no_write_acknowledged_by_every_replica() {
    let _turn = SETUPS.acquire().await.unwrap();
    let sentinel = TestSentinel::start().await;
    let concerned = store(&sentinel, "w2", BOTH_REPLICAS);
    let plain = store(&sentinel, "w0", WriteConcern::none());
    let all = WriteConcern::all_replicas().timeout(BOTH_REPLICAS.timeout);
    let connected = store(&sentinel, "wa", all);
    for store in [&concerned, &plain, &connected] {
        store.set("warm-up", &0).await.unwrap();
    }

    let loads = [
        Load::start(concerned.clone(), 8),
        Load::start(plain.clone(), 8),
        Load::start(connected.clone(), 8),
    ];
    tokio::time::sleep(Duration::from_secs(1)).await;
    let old = sentinel.master_port().await;
    let started = loads[0].mark();
    sentinel.manual_failover().await;
    let switched_after = sentinel
        .wait_failover_from(old, Duration::from_secs(30))
        .await;
    // The concerned store writes again once the old master is back as a replica.
    writes_again(&concerned).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut reports = Vec::new();
    for (load, namespace) in loads.into_iter().zip(["w2", "w0", "wa"]) {
        let master = sentinel.master_store(namespace).await;
        reports.push(load.stop(started, &master).await);
    }
    let [with_concern, without, with_all] = &reports[..] else {
        unreachable!("three loads")
    };
    eprintln!(
        "planned failover, switched {switched_after:?} after the command:\n  \
         both replicas: {with_concern}\n  no concern: {without}\n  \
         every replica connected: {with_all}"
    );
    // Without a concern, or counting the replicas connected, writes acknowledged in the
    // gap are lost, but none acknowledged after the pool moved: connections kept for
    // concerned writes leave the old master with the lanes.
    for (report, prefix) in [(without, "w0:"), (with_all, "wa:")] {
        report.unacknowledged(prefix);
        if let Some(last_lost) = report.last_lost {
            assert!(
                last_lost <= switched_after + MOVE_AFTER_SWITCH,
                "a write acknowledged {last_lost:?} after the command was lost ({prefix}); \
                 the sentinels switched after {switched_after:?}"
            );
        }
    }
    let refused = with_concern.unacknowledged("w2:");
    eprintln!("  both replicas: {refused} writes reported unacknowledged");
    assert_eq!(
        with_concern.lost, 0,
        "an acknowledged write was lost: {with_concern}"
    );
    assert!(
        with_concern.acknowledged > 1000,
        "too few writes: {with_concern}"
    );
}

/// A killed master under 16 writing tasks asking for every replica the master reports: no
/// acknowledged write is lost, and once a replica is promoted writes are acknowledged again
/// (by the replicas the new master has).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_master_loses_no_write_acknowledged_by_every_replica() {
    let _turn = SETUPS.acquire().await.unwrap();
    let mut sentinel = TestSentinel::start().await;
    let all = WriteConcern::all_replicas().timeout(Duration::from_millis(500));
    let store = store(&sentinel, "k", all);
    store.set("warm-up", &0).await.unwrap();

    let load = Load::start(store.clone(), 16);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let victim = sentinel.master_port().await;
    let killed = load.mark();
    sentinel.kill(victim);
    let promoted_after = sentinel
        .wait_failover_from(victim, Duration::from_secs(30))
        .await;
    writes_again(&store).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let report = load.stop(killed, &sentinel.master_store("k").await).await;
    eprintln!("killed master, promoted {promoted_after:?} after the kill, all replicas: {report}");
    report.unacknowledged("k:");
    assert_eq!(report.lost, 0, "an acknowledged write was lost: {report}");
    assert!(
        report.after_outage > 100,
        "too few writes after the failover: {report}"
    );
}

/// A replica stopped (SIGSTOP): a write asking for both replicas fails with
/// `Unacknowledged` (one of two) within the concern's wait plus a reply's; one asking for
/// one replica is acknowledged; so is every write once the replica runs again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_replica_fails_writes_that_need_it_within_the_wait() {
    let _turn = SETUPS.acquire().await.unwrap();
    let sentinel = TestSentinel::start().await;
    let both = store(&sentinel, "s", BOTH_REPLICAS);
    let one = store(
        &sentinel,
        "s",
        WriteConcern::replicas(1).timeout(Duration::from_millis(500)),
    );
    both.set("before", &1).await.unwrap();

    let master = sentinel.master_port().await;
    let replica = *sentinel
        .data_ports()
        .iter()
        .find(|&&p| p != master)
        .unwrap();
    sentinel.signal(replica, "-STOP");
    for i in 0..5 {
        let started = Instant::now();
        match both.set(&format!("a{i}"), &i).await {
            Err(Error::Unacknowledged {
                acknowledged: 1,
                required: 2,
                ref keys,
                ..
            }) => {
                assert_eq!(keys.first(), Some(format!("s:a{i}").as_str()));
            }
            other => panic!("expected Unacknowledged (1 of 2), got {other:?}"),
        }
        let took = started.elapsed();
        assert!(
            took >= BOTH_REPLICAS.timeout
                && took <= BOTH_REPLICAS.timeout + Duration::from_millis(500),
            "the write took {took:?}"
        );
        one.set(&format!("b{i}"), &i).await.unwrap();
    }
    sentinel.signal(replica, "-CONT");
    writes_again(&both).await;
    assert_eq!(
        both.get("a4").await.unwrap(),
        Some(4),
        "an unacknowledged write may be there"
    );
}
