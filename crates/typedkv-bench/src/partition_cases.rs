//! Indexed stores on a private 3+3 cluster: a store spread over 16 partitions against the
//! same store hash-tagged onto one master, for indexed writes and `find_by`, each beside the
//! leanest hand-written code for the same layouts ([`Lean`]). All six servers and the client
//! share this machine's cores, so the spread of the writes over the masters
//! (`INFO commandstats`, printed) is the proof that the store scales out; the ratios, with
//! client and server CPU per call, say what the spread costs or gains here and how much of
//! that is the layout rather than our code.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use futures::TryStreamExt;
use futures::future::try_join_all;
use redis::AsyncCommands;
use redis::cluster_async::ClusterConnection;
use typedkv::redis::RedisClusterPool;
use typedkv::{Index, Keyspace, RedisClusterStore, Store};
use typedkv_testkit::TestCluster;

use crate::args::Args;
use crate::cases::until;
use crate::measure::{BenchResult, ops_per_sec};
use crate::payload::{BenchUser, raw_decode, raw_encode};
use crate::peer_cases::{Contender, contender, measure, timed_until};
use crate::probe::Probe;
use crate::report::Row;

/// Partitions of the spread stores.
const PARTITIONS: u16 = 16;
/// Distinct ages, and entities per age, in the `find_by` case.
const AGES: u32 = 100;
const MATCHES: u32 = 10;
/// Ids each writing task cycles through.
const IDS_PER_TASK: u64 = 1000;
/// Concurrent tasks.
const TASKS: [usize; 1] = [64];

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

/// The write of the bench's loop: task `t`'s `i`-th write moves entity `t-(i mod 1000)` to
/// age `i mod 100`.
fn write_of(task: usize, i: u64) -> (String, BenchUser) {
    let id = format!("{task}-{}", i % IDS_PER_TASK);
    (id, BenchUser::aged((i % u64::from(AGES)) as u32))
}

/// The age task `task` asks for in its `i`-th query.
fn query_of(task: usize, i: u64) -> u32 {
    ((i + task as u64) % u64::from(AGES)) as u32
}

/// The hand-written way to keep one equality index on a cluster, as lean as it gets, in
/// typedkv's slots (its keyspace places every key, so both spread alike): per partition tag
/// a Redis set of ids per age, and per entity its value (bincode, no envelope) and a record
/// of its age. A write is one script (`GET` the record, `SREM` + `SADD` when the age moves,
/// `SET` value and record); `find_by` is one `SMEMBERS` per partition, then one `MGET` per
/// partition with matches, and decoding.
#[derive(Clone)]
struct Lean {
    conn: ClusterConnection,
    keyspace: Arc<Keyspace>,
    /// `{...}` of every partition.
    tags: Arc<Vec<String>>,
    script: Arc<redis::Script>,
}

/// [`Lean`]'s write.
const LEAN_WRITE: &str = r"
local old = redis.call('GET', KEYS[2])
if old ~= ARGV[2] then
  if old then redis.call('SREM', ARGV[4] .. old, ARGV[3]) end
  redis.call('SADD', KEYS[3], ARGV[3])
  redis.call('SET', KEYS[2], ARGV[2])
end
redis.call('SET', KEYS[1], ARGV[1])
return 1
";

impl Lean {
    fn new(conn: ClusterConnection, keyspace: Keyspace) -> BenchResult<Lean> {
        let mut tags = BTreeSet::new();
        for n in 0.. {
            if tags.len() == keyspace.partitions() {
                break;
            }
            tags.insert(tag(&keyspace.key(&n.to_string())?).to_owned());
        }
        Ok(Lean {
            conn,
            keyspace: Arc::new(keyspace),
            tags: Arc::new(tags.into_iter().collect()),
            script: Arc::new(redis::Script::new(LEAN_WRITE)),
        })
    }

    async fn set(&self, id: &str, user: &BenchUser) -> BenchResult<()> {
        let key = self.keyspace.key(id)?;
        let tag = tag(&key);
        let age = user.age();
        let () = self
            .script
            .key(&key)
            .key(format!("{tag}:age-of:{id}"))
            .key(format!("{tag}:age:{age}"))
            .arg(raw_encode(user)?)
            .arg(age)
            .arg(id)
            .arg(format!("{tag}:age:"))
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    async fn find_by(&self, age: u32) -> BenchResult<Vec<(String, BenchUser)>> {
        let members = self.tags.iter().map(|tag| async move {
            let ids: Vec<String> = self
                .conn
                .clone()
                .smembers(format!("{tag}:age:{age}"))
                .await?;
            let keys: Vec<String> = ids.iter().map(|id| format!("{tag}:{id}")).collect();
            let values: Vec<Option<Vec<u8>>> = match keys.is_empty() {
                true => Vec::new(),
                false => self.conn.clone().mget(&keys).await?,
            };
            BenchResult::Ok(ids.into_iter().zip(values))
        });
        let mut found = Vec::new();
        for (id, value) in try_join_all(members).await?.into_iter().flatten() {
            if let Some(bytes) = value {
                found.push((id, raw_decode(&bytes)?));
            }
        }
        Ok(found)
    }
}

/// `{...}` of a tagged key.
fn tag(key: &str) -> &str {
    key.find('}').map_or(key, |end| &key[..=end])
}

/// The writes, or the queries, of a typed store.
fn typed(name: &'static str, store: RedisClusterStore<BenchUser>, write: bool) -> Contender {
    contender(name, move |task, deadline| {
        let store = store.clone();
        async move {
            timed_until!(deadline, |i| async {
                if write {
                    let (id, user) = write_of(task, i);
                    return Ok(store.set(&id, &user).await?);
                }
                let age = query_of(task, i).to_string();
                let found: Vec<_> = store.find_by("age", age.as_bytes()).try_collect().await?;
                expect_matches(found.len())
            })
        }
    })
}

/// The writes, or the queries, of [`Lean`].
fn lean(name: &'static str, lean: Lean, write: bool) -> Contender {
    contender(name, move |task, deadline| {
        let lean = lean.clone();
        async move {
            timed_until!(deadline, |i| async {
                if write {
                    let (id, user) = write_of(task, i);
                    return lean.set(&id, &user).await;
                }
                expect_matches(lean.find_by(query_of(task, i)).await?.len())
            })
        }
    })
}

fn expect_matches(found: usize) -> BenchResult<()> {
    match found == MATCHES as usize {
        true => Ok(()),
        false => Err(format!("find_by found {found}, not {MATCHES}").into()),
    }
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
    for n in 0..AGES * MATCHES {
        let (id, user) = (format!("u{n}"), BenchUser::aged(n % AGES));
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
