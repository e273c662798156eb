//! Indexed stores on a private 3+3 cluster: a store spread over 16 partitions against the
//! same store hash-tagged onto one master, for indexed writes and `find_by`, each beside the
//! leanest hand-written code for the same layouts ([`Lean`]). All six servers and the client
//! share this machine's cores, so the spread of the writes over the masters
//! (`INFO commandstats`, printed) is the proof that the store scales out; the ratios, with
//! client and server CPU per call, say what the spread costs or gains here and how much of
//! that is the layout rather than our code.

use std::sync::Arc;
use std::time::Instant;

use typedkv::redis::RedisClusterPool;
use typedkv::{Keyspace, RedisClusterStore, Store};
use typedkv_testkit::TestCluster;

use crate::args::Args;
use crate::cases::until;
use crate::index_workload::{Lean, age_indexed, lean, population, typed, write_of};
use crate::measure::{BenchResult, ops_per_sec};
use crate::payload::BenchUser;
use crate::peer_cases::measure;
use crate::probe::Probe;
use crate::report::Row;

/// Partitions of the spread stores.
const PARTITIONS: u16 = 16;
/// Concurrent tasks.
const TASKS: [usize; 1] = [64];

/// The bench's store with an equality index on the age, spread or tagged.
fn store(
    pool: &RedisClusterPool,
    namespace: &str,
    partitioned: bool,
) -> BenchResult<RedisClusterStore<BenchUser>> {
    let builder = age_indexed(RedisClusterStore::builder(pool.clone(), namespace));
    let builder = match partitioned {
        true => builder.partitions(PARTITIONS),
        false => builder.hash_tag(true),
    };
    Ok(builder.build()?)
}

/// The typed stores and the lean code, tagged and partitioned, at 64 tasks: indexed writes
/// (rows `cluster indexes set ...`), then `find_by` (`cluster indexes find_by(10) ...`), each
/// against the typed tagged store, with CPU per call over all six nodes; and the writes each
/// master ran.
pub(crate) async fn on_a_cluster(args: &Args) -> BenchResult<Vec<Row>> {
    let cluster = TestCluster::start().await;
    let pool = RedisClusterPool::from_urls(cluster.seeds())?;
    pool.ping().await?;
    let spread = store(&pool, "bench-spread", true)?;
    let tagged = store(&pool, "bench-tagged", false)?;
    let conn = cluster.raw_connection().await;
    let lean_spread = Lean::new(conn.clone(), Keyspace::partitioned("lean", PARTITIONS)?)?;
    let lean_tagged = Lean::new(conn, Keyspace::hash_tagged("lean-tagged")?)?;
    let probe = Probe::of_cluster(&cluster).await?;
    let contenders = |write| {
        [
            typed("typed tagged", tagged.clone(), write),
            typed("typed partitioned", spread.clone(), write),
            lean("lean tagged", lean_tagged.clone(), write),
            lean("lean partitioned", lean_spread.clone(), write),
        ]
    };
    let mut rows = measure(
        "cluster indexes",
        "set",
        &contenders(true),
        &TASKS,
        args,
        Some(&probe),
    )
    .await?;
    let shares = writes_per_master(&cluster, &spread, args).await?;
    eprintln!("partitioned store, script calls per master: {shares}");

    cluster.flush().await;
    for (id, user) in population() {
        for store in [&spread, &tagged] {
            store.set(&id, &user).await?;
        }
        for lean in [&lean_spread, &lean_tagged] {
            lean.set(&id, &user).await?;
        }
    }
    rows.extend(
        measure(
            "cluster indexes",
            "find_by(10)",
            &contenders(false),
            &TASKS,
            args,
            Some(&probe),
        )
        .await?,
    );
    Ok(rows)
}

/// Each master's share of the indexed writes of `store` from 64 tasks for a slice
/// (`cmdstat_evalsha` calls, counted from zero), by port.
async fn writes_per_master(
    cluster: &TestCluster,
    store: &RedisClusterStore<BenchUser>,
    args: &Args,
) -> BenchResult<String> {
    let mut masters = Vec::new();
    for port in cluster.master_ports().await {
        let mut conn = cluster.node_connection(port).await;
        let () = redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query_async(&mut conn)
            .await?;
        masters.push((port, conn));
    }
    let store = store.clone();
    let run = Arc::new(move |task, deadline| {
        let store = store.clone();
        async move {
            until!(deadline, |i| async {
                let (id, user) = write_of(task, i);
                Ok(store.set(&id, &user).await?)
            })
        }
    });
    ops_per_sec(TASKS[0], args.slice(), run).await?;
    let mut shares = Vec::new();
    for (port, mut conn) in masters {
        let stats: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut conn)
            .await?;
        let calls = stats
            .lines()
            .find_map(|line| line.strip_prefix("cmdstat_evalsha:calls="))
            .and_then(|rest| rest.split(',').next())
            .and_then(|calls| calls.parse::<u64>().ok())
            .unwrap_or(0);
        shares.push((port, calls));
    }
    let total: u64 = shares.iter().map(|(_, calls)| calls).sum();
    Ok(shares
        .iter()
        .map(|(port, calls)| {
            let share = 100.0 * *calls as f64 / total.max(1) as f64;
            format!("{port}: {share:.0}%")
        })
        .collect::<Vec<_>>()
        .join(", "))
}
