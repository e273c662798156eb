//! What one batched `get` costs in instructions, ours against the lean coalescer's, counted
//! by callgrind: repeatable whatever else the machine does, where time is not.
//!
//! ```text
//! cargo build --release -p typedkv-bench --bin percall
//! valgrind --tool=callgrind --callgrind-out-file=cg.pool.1 target/release/percall pool 64 500
//! valgrind --tool=callgrind --callgrind-out-file=cg.pool.2 target/release/percall pool 64 1500
//! ```
//!
//! `percall pool|coalescer [TASKS] [CALLS_PER_TASK]` runs that many byte-level `GET`s of
//! ~90-byte values on `TASKS` tasks: through a `RedisPool` (batching on, as by default; no
//! typed layer, no decoding) or through the bench's lean coalescer (`coalescer.rs`, the
//! same file). Each run also pays for starting up; the difference between two runs of
//! different lengths is the cost of the extra calls alone: divide it by the extra calls.
//! Per function, `callgrind_annotate --inclusive=yes` of both files says where it goes.
//! The private redis-server is started by `typedkv-testkit` and is not counted (valgrind
//! does not follow children unless told to).

use std::process::ExitCode;
use std::time::Instant;

use typedkv::redis::RedisPool;
use typedkv::{Backend, BoxError};
use typedkv_testkit::TestRedis;

#[path = "../coalescer.rs"]
#[allow(dead_code, unreachable_pub)] // Its `set` is the main bench's.
mod coalescer;

/// Keys read, each written once before.
const KEYS: usize = 1000;

#[derive(Clone, Copy, PartialEq)]
enum Path {
    Pool,
    Coalescer,
}

/// Runs `calls` `GET`s on each of `tasks` tasks by `path`; prints calls per second.
async fn percall(path: Path, tasks: usize, calls: usize) -> Result<(), BoxError> {
    let server = TestRedis::start().await;
    let client = redis::Client::open(server.url())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    for n in 0..KEYS {
        let () = redis::cmd("SET")
            .arg(format!("percall:{n}"))
            .arg(vec![7u8; 90])
            .query_async(&mut conn)
            .await?;
    }
    let pool = RedisPool::builder(server.url()).build()?;
    let lean = coalescer::Coalescer::start(conn);
    // Both connected and warm before the calls that count.
    pool.get("percall:0").await?;
    lean.get("percall:0".to_owned()).await?;
    let started = Instant::now();
    let workers: Vec<_> = (0..tasks)
        .map(|task| {
            let (pool, lean) = (pool.clone(), lean.clone());
            tokio::spawn(async move {
                for call in 0..calls {
                    let key = format!("percall:{}", (task * 7919 + call) % KEYS);
                    let found = match path {
                        Path::Pool => pool.get(&key).await?,
                        Path::Coalescer => lean.get(key).await?,
                    };
                    if found.is_none() {
                        return Err::<(), BoxError>("a key written before is missing".into());
                    }
                }
                Ok(())
            })
        })
        .collect();
    for worker in workers {
        worker.await??;
    }
    let total = (tasks * calls) as f64;
    println!("{:.0} calls/s", total / started.elapsed().as_secs_f64());
    Ok(())
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let path = match args.next().as_deref() {
        Some("pool") => Some(Path::Pool),
        Some("coalescer") => Some(Path::Coalescer),
        _ => None,
    };
    let mut next = |default: usize| args.next().map_or(Ok(default), |a| a.parse::<usize>());
    let (path, tasks, calls) = match (path, next(64), next(1000)) {
        (Some(path), Ok(t), Ok(c)) if t > 0 && c > 0 => (path, t, c),
        _ => {
            eprintln!("usage: percall pool|coalescer [TASKS] [CALLS_PER_TASK] (positive numbers)");
            return ExitCode::from(2);
        }
    };
    // Two workers whatever this machine has, as on the project's 2-core VM: how the calls
    // spread over threads changes the batches, and with them the count per call.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cannot start tokio: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(percall(path, tasks, calls)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("percall failed: {e}");
            ExitCode::FAILURE
        }
    }
}
