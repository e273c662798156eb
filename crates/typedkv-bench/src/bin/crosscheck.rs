//! An independent check of the main benchmark's typed/raw ratios for `get` and `set`: none
//! of its code (no time slices, warm-ups, medians of per-round ratios or shared helpers),
//! a fixed amount of work instead of a fixed time, in a process of its own.
//!
//! ```text
//! cargo run --release -p typedkv-bench --bin crosscheck -- [TASKS] [CALLS_PER_TASK] [PAIRS]
//! ```
//!
//! Each pair runs the same calls by hand-written redis-rs code (one multiplexed connection,
//! `bincode::serde::encode_to_vec`, `SET`/`GET`, nil check, `decode_from_slice`) and by a
//! `RedisStore` with default settings, in alternating order, and prints the time each took
//! and their ratio as throughput (raw time / typed time). The private redis-server is
//! started by `typedkv-testkit`, as the tests do.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use typedkv::redis::RedisPool;
use typedkv::{BoxError, RedisStore, Store};
use typedkv_testkit::TestRedis;

/// A value of the same shape as the main benchmark's, written here again on purpose.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Account {
    id: u64,
    name: String,
    email: String,
    age: u32,
    active: bool,
    tags: Vec<String>,
    score: f64,
    created_at: u64,
}

fn account() -> Account {
    Account {
        id: 42,
        name: "Ada Lovelace".into(),
        email: "ada@example.com".into(),
        age: 36,
        active: true,
        tags: vec!["admin".into(), "math".into(), "poet".into()],
        score: 99.5,
        created_at: 1_700_000_000,
    }
}

#[derive(Clone, Copy)]
enum Side {
    Raw,
    Typed,
}

/// Runs `calls` calls of `op` on each of `tasks` tasks; returns the wall time.
async fn run(
    side: Side,
    op: &'static str,
    tasks: usize,
    calls: usize,
    raw: &redis::aio::MultiplexedConnection,
    store: &Arc<RedisStore<Account>>,
) -> Result<Duration, BoxError> {
    let started = Instant::now();
    let workers: Vec<_> = (0..tasks)
        .map(|task| {
            let (mut raw, store) = (raw.clone(), Arc::clone(store));
            tokio::spawn(async move {
                let value = account();
                for call in 0..calls {
                    let id = format!("{task}.{}", call % 500);
                    match (side, op) {
                        (Side::Raw, "set") => {
                            let bytes =
                                bincode::serde::encode_to_vec(&value, bincode::config::standard())?;
                            let () = raw.set(format!("crosscheck-raw:{id}"), bytes).await?;
                        }
                        (Side::Raw, _) => {
                            let bytes: Option<Vec<u8>> =
                                raw.get(format!("crosscheck-raw:{id}")).await?;
                            let bytes = bytes.ok_or("raw: missing")?;
                            let (found, _): (Account, usize) = bincode::serde::decode_from_slice(
                                &bytes,
                                bincode::config::standard(),
                            )?;
                            std::hint::black_box(found);
                        }
                        (Side::Typed, "set") => store.set(&id, &value).await?,
                        (Side::Typed, _) => {
                            let found = store.get(&id).await?.ok_or("typed: missing")?;
                            std::hint::black_box(found);
                        }
                    }
                }
                Ok::<(), BoxError>(())
            })
        })
        .collect();
    for worker in workers {
        worker.await??;
    }
    Ok(started.elapsed())
}

async fn crosscheck(tasks: usize, calls: usize, pairs: usize) -> Result<(), BoxError> {
    let server = TestRedis::start().await;
    let raw = redis::Client::open(server.url())?
        .get_multiplexed_async_connection()
        .await?;
    let pool = RedisPool::from_url(server.url())?;
    pool.ping().await?;
    let store = Arc::new(RedisStore::builder(pool, "crosscheck").build()?);
    // Every key exists before anything is timed.
    run(Side::Raw, "set", tasks, calls.min(500), &raw, &store).await?;
    run(Side::Typed, "set", tasks, calls.min(500), &raw, &store).await?;
    println!("tasks {tasks}, {calls} calls per task, {pairs} pairs");
    for op in ["set", "get"] {
        let mut ratios = Vec::new();
        for pair in 0..pairs {
            let order = if pair % 2 == 0 {
                [Side::Raw, Side::Typed]
            } else {
                [Side::Typed, Side::Raw]
            };
            let mut took = [Duration::ZERO; 2];
            for side in order {
                let t = run(side, op, tasks, calls, &raw, &store).await?;
                took[matches!(side, Side::Typed) as usize] = t;
            }
            let ratio = took[0].as_secs_f64() / took[1].as_secs_f64();
            println!(
                "{op} pair {pair}: raw {:?} typed {:?} typed/raw throughput {ratio:.3}",
                took[0], took[1]
            );
            ratios.push(ratio);
        }
        ratios.sort_by(f64::total_cmp);
        println!(
            "{op}: typed/raw throughput, median of pairs {:.3}",
            ratios[pairs / 2]
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>());
    let mut next = |default: usize| args.next().unwrap_or(Ok(default));
    let (tasks, calls, pairs) = match (next(64), next(2000), next(5)) {
        (Ok(t), Ok(c), Ok(p)) if t > 0 && c > 0 && p > 0 => (t, c, p),
        _ => {
            eprintln!("usage: crosscheck [TASKS] [CALLS_PER_TASK] [PAIRS] (positive numbers)");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cannot start tokio: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(crosscheck(tasks, calls, pairs)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("crosscheck failed: {e}");
            ExitCode::FAILURE
        }
    }
}
