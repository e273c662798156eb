//! `--only concern`: a write acknowledged once one replica has it, on a private master with
//! one replica. typedkv's store with `WriteConcern::replicas(1)` against the hand-written
//! redis-rs way (`SET` and `WAIT 1` pipelined, each task on a connection of its own, since
//! `WAIT` blocks its connection), and both against plain writes without a concern (typed,
//! and redis-rs on its shared connection). At 1 and 64 tasks, with CPU per call on the
//! master; every write must have been acknowledged by the replica, or the case fails.

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;
use typedkv::redis::RedisPool;
use typedkv::{RedisStore, Store, WriteConcern};
use typedkv_testkit::TestRedis;

use crate::args::Args;
use crate::measure::BenchResult;
use crate::peer_cases::{Contender, contender, measure, timed_until};
use crate::probe::Probe;
use crate::report::Row;

/// Distinct keys each task cycles through.
const KEYS: u64 = 1_000;

/// The concern of the case: one replica, waited for as long as it takes a healthy one.
const ONE_REPLICA: WriteConcern = WriteConcern::replicas(1).timeout(Duration::from_secs(1));

/// The key of `task`'s `i`-th write of contender `name`.
fn key(name: &str, task: usize, i: u64) -> String {
    format!("typedkv-bench-concern-{name}:{task}-{}", i % KEYS)
}

/// The `concern set` rows at 1 and 64 tasks (ratios to hand-written `SET`+`WAIT`).
pub(crate) async fn concern(args: &Args) -> BenchResult<Vec<Row>> {
    let master = TestRedis::start().await;
    let replica = TestRedis::start().await;
    let mut to_replica = replica.raw_connection().await;
    let () = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(master.port())
        .query_async(&mut to_replica)
        .await?;
    let mut raw = master.raw_connection().await;
    let started = Instant::now();
    while redis::cmd("WAIT")
        .arg(1)
        .arg(100)
        .query_async::<i64>(&mut raw)
        .await?
        < 1
    {
        if started.elapsed() > Duration::from_secs(30) {
            return Err("the replica never caught up with the master".into());
        }
    }
    // Room for a connection per task, as the hand-written contender has.
    let pool = RedisPool::builder(master.url()).pool_size(72).build()?;
    pool.ping().await?;
    let plain = RedisStore::<u64>::builder(pool.clone(), "typedkv-bench-concern-typed").build()?;
    let concerned = RedisStore::<u64>::builder(pool, "typedkv-bench-concern-typed-w1")
        .write_concern(ONE_REPLICA)
        .build()?;
    let client = redis::Client::open(master.url())?;
    let mut dedicated = Vec::new();
    for _ in 0..64 {
        dedicated.push(client.get_multiplexed_async_connection().await?);
    }
    let contenders = [
        set_and_wait(Arc::new(dedicated)),
        typed(concerned, "typed replicas(1)"),
        raw_set(raw.clone()),
        typed(plain, "typed, no concern"),
    ];
    let probe = Probe::new(raw.clone(), true).await?;
    measure("concern", "set", &contenders, &[1, 64], args, Some(&probe)).await
}

/// `SET` and `WAIT 1 1000` in one pipeline on the task's own connection; an error unless
/// the replica had it.
fn set_and_wait(connections: Arc<Vec<MultiplexedConnection>>) -> Contender {
    contender("redis-rs SET+WAIT", move |task, deadline| {
        let mut conn = connections[task % connections.len()].clone();
        async move {
            timed_until!(deadline, |i| async {
                let (acknowledged,): (i64,) = redis::pipe()
                    .set(key("wait", task, i), i)
                    .ignore()
                    .cmd("WAIT")
                    .arg(1)
                    .arg(1_000)
                    .query_async(&mut conn)
                    .await?;
                match acknowledged {
                    1.. => Ok(()),
                    _ => Err("WAIT: the replica did not acknowledge a write".into()),
                }
            })
        }
    })
}

/// A plain `SET` on the shared connection.
fn raw_set(conn: MultiplexedConnection) -> Contender {
    contender("redis-rs SET", move |task, deadline| {
        let mut conn = conn.clone();
        async move {
            timed_until!(deadline, |i| async {
                let () = conn.set(key("raw", task, i), i).await?;
                Ok(())
            })
        }
    })
}

/// `store.set`, with the store's concern (an error unless it was met).
fn typed(store: RedisStore<u64>, name: &'static str) -> Contender {
    contender(name, move |task, deadline| {
        let store = store.clone();
        async move {
            timed_until!(deadline, |i| async {
                store.set(&format!("{task}-{}", i % KEYS), &i).await?;
                Ok(())
            })
        }
    })
}
