//! Indexed stores on a private 3+3 cluster: a store spread over 16 partitions against the
//! same store hash-tagged onto one master, for indexed writes and `find_by`. All six
//! servers and the client share this machine's cores, so the spread of the writes over the
//! masters (`INFO commandstats`, printed) is the proof that the store scales out; the ratio
//! says what the spread costs or gains here.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use futures::TryStreamExt;
use typedkv::redis::RedisClusterPool;
use typedkv::{Index, RedisClusterStore, Store};
use typedkv_testkit::TestCluster;

use crate::args::Args;
use crate::cases::until;
use crate::measure::{BenchResult, Compared, compare, ops_per_sec};
use crate::payload::BenchUser;
use crate::report::Row;

/// Partitions of the spread store.
const PARTITIONS: u16 = 16;
/// Distinct ages, and entities per age, in the `find_by` case.
const AGES: u32 = 100;
const MATCHES: u32 = 10;
/// Ids each writing task cycles through.
const IDS_PER_TASK: u64 = 1000;

/// The bench's store with an equality index on the age, spread or tagged.
fn store(
    pool: &RedisClusterPool,
    namespace: &str,
    partitioned: bool,
) -> BenchResult<RedisClusterStore<BenchUser>> {
    let builder = RedisClusterStore::builder(pool.clone(), namespace)
        .index(Index::equality("age", |u: &BenchUser| {
            [u.age().to_string()]
        }));
    let builder = match partitioned {
        true => builder.partitions(PARTITIONS),
        false => builder.hash_tag(true),
    };
    Ok(builder.build()?)
}

/// Indexed `set`s from `tasks` tasks until the deadline: task `t`'s `i`-th write moves
/// entity `t-(i mod 1000)` to age `i mod 100`.
async fn writes(
    store: RedisClusterStore<BenchUser>,
    task: usize,
    deadline: Instant,
) -> BenchResult<u64> {
    until!(deadline, |i| async {
        let id = format!("{task}-{}", i % IDS_PER_TASK);
        Ok(store.set(&id, &BenchUser::aged((i % 100) as u32)).await?)
    })
}

/// `find_by` of one age (10 entities) until the deadline.
async fn queries(
    store: RedisClusterStore<BenchUser>,
    task: usize,
    deadline: Instant,
) -> BenchResult<u64> {
    until!(deadline, |i| async {
        let age = ((i + task as u64) % u64::from(AGES)).to_string();
        let found: Vec<_> = store.find_by("age", age.as_bytes()).try_collect().await?;
        if found.len() != MATCHES as usize {
            return Err(format!("find_by found {}", found.len()).into());
        }
        Ok(())
    })
}

/// The partitioned store against the hash-tagged one at 64 tasks: indexed writes, then
/// `find_by`, with the writes each master ran.
pub(crate) async fn on_a_cluster(args: &Args) -> BenchResult<Vec<Row>> {
    let cluster = TestCluster::start().await;
    let pool = RedisClusterPool::from_urls(cluster.seeds())?;
    pool.ping().await?;
    let spread = store(&pool, "bench-spread", true)?;
    let tagged = store(&pool, "bench-tagged", false)?;
    let mut rows = Vec::new();
    let tasks = 64;

    let compared = side_by_side(&spread, &tagged, tasks, args, writes).await?;
    rows.push(Row::compared(
        "cluster set+1index partitioned/tagged",
        tasks,
        compared,
        1.0,
        "ops/s",
    ));
    let shares = writes_per_master(&cluster, &spread, tasks, args).await?;
    eprintln!("partitioned store, script calls per master: {shares}");

    for store in [&spread, &tagged] {
        store.clear().await?;
        let entities: Vec<(String, BenchUser)> = (0..AGES * MATCHES)
            .map(|n| (format!("u{n}"), BenchUser::aged(n % AGES)))
            .collect();
        let entries: Vec<(&str, &BenchUser)> =
            entities.iter().map(|(id, u)| (id.as_str(), u)).collect();
        store.set_many(&entries).await?;
    }
    let compared = side_by_side(&spread, &tagged, tasks, args, queries).await?;
    rows.push(Row::compared(
        "cluster find_by(10) partitioned/tagged",
        tasks,
        compared,
        1.0,
        "queries/s",
    ));
    Ok(rows)
}

/// `op` on the partitioned store against `op` on the tagged one, interleaved.
async fn side_by_side<F, Fut>(
    spread: &RedisClusterStore<BenchUser>,
    tagged: &RedisClusterStore<BenchUser>,
    tasks: usize,
    args: &Args,
    op: F,
) -> BenchResult<Compared>
where
    F: Fn(RedisClusterStore<BenchUser>, usize, Instant) -> Fut + Copy + Send + Sync + 'static,
    Fut: Future<Output = BenchResult<u64>> + Send + 'static,
{
    let (a, b) = (spread.clone(), tagged.clone());
    compare(
        tasks,
        args.slice(),
        args.rounds,
        Arc::new(move |task, deadline| op(a.clone(), task, deadline)),
        Arc::new(move |task, deadline| op(b.clone(), task, deadline)),
    )
    .await
}

/// Each master's share of the indexed writes of `store` from `tasks` tasks for a slice
/// (`cmdstat_evalsha` calls, counted from zero), by port.
async fn writes_per_master(
    cluster: &TestCluster,
    store: &RedisClusterStore<BenchUser>,
    tasks: usize,
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
    let run = Arc::new(move |task, deadline| writes(store.clone(), task, deadline));
    ops_per_sec(tasks, args.slice(), run).await?;
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
