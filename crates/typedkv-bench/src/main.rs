//! The typedkv benchmark: typed store vs hand-written redis-rs code, in one process, on one
//! server, interleaved, medians reported. See BENCHMARKS.md for how to read it.
//!
//! ```text
//! cargo run --release -p typedkv-bench -- [--secs N] [--rounds N] [--json] [--chart PATH]
//! ```

mod allocs;
mod args;
mod at_rest_cases;
mod cache_cases;
mod cases;
mod chart;
mod coalescer;
mod concern_cases;
mod counting_alloc;
mod index_cases;
mod index_workload;
mod measure;
mod partition_cases;
mod payload;
mod peer_cases;
mod probe;
mod report;
mod transaction_cases;

use std::process::ExitCode;
use std::sync::Arc;

use typedkv::redis::RedisPool;
use typedkv::{RedisStore, Store};
use typedkv_testkit::TestRedis;

use crate::args::{Args, USAGE};
use crate::cases::{Bench, PREFIX};
use crate::measure::BenchResult;
use crate::report::{Row, Target, print_header, print_row, print_targets};

#[global_allocator]
static ALLOC: counting_alloc::CountingAlloc = counting_alloc::CountingAlloc;

fn main() -> ExitCode {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) if message.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("{message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    // Before any other thread exists (see `Bench::codecs`).
    let single_threaded = if args.runs("codec") {
        Bench::codecs(&args, "codec_bincode_1thread")
    } else {
        Ok(Vec::new())
    };
    let single_threaded = match single_threaded {
        Ok(rows) => rows,
        Err(e) => {
            eprintln!("benchmark failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cannot start tokio: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args, single_threaded)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("benchmark failed: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args, single_threaded: Vec<Row>) -> BenchResult<()> {
    // A private server unless the caller names one; `_server` stops it at the end.
    let (url, _server, shared) = match std::env::var("REDIS_URL") {
        Ok(url) => (url, None, true),
        Err(_) => {
            let server = TestRedis::start().await;
            (server.url(), Some(server), false)
        }
    };
    let pool = RedisPool::builder(url.clone())
        .shared_connections(args.shared_connections)
        .build()?;
    pool.ping().await?;
    let raw = redis::Client::open(url.as_str())?
        .get_multiplexed_async_connection()
        .await?;
    eprintln!(
        "typedkv-bench: Redis at {}, {:?} per case in {} rounds, about {:?} in all",
        pool.redacted_url(),
        args.per_case,
        args.rounds,
        cases::estimate(&args)
    );
    let bench = Arc::new(Bench {
        store: RedisStore::builder(pool.clone(), PREFIX).build()?,
        raw,
        value: payload::sample(),
        args: args.clone(),
        ids: cases::all_ids(),
    });
    prefill(&bench).await?;

    let mut rows = Vec::new();
    let mut record = |row: Row| {
        print_row(&row, args.json);
        rows.push(row);
    };
    print_header(args.json);
    for tasks in [1, 16, 64] {
        if args.runs("set") {
            record(bench.set(tasks).await?);
        }
        if args.runs("get") {
            record(bench.get(tasks).await?);
        }
    }
    let peer_ops: Vec<_> = [peer_cases::Op::Get, peer_cases::Op::Set]
        .into_iter()
        // `--only "peer get"` runs one operation, `--only peer` both.
        .filter(|op| args.runs(&format!("peer {}", op.name())))
        .collect();
    if !peer_ops.is_empty() {
        // Connected only now: other runs open no connections of the peers.
        let peers = peer_cases::Peers::connect(&url, args.shared_connections, !shared).await?;
        for op in peer_ops {
            bench
                .peers(&peers, op)
                .await?
                .into_iter()
                .for_each(&mut record);
        }
    }
    if args.runs("cluster") {
        peer_cases::on_a_cluster(&args)
            .await?
            .into_iter()
            .for_each(&mut record);
    }
    for in_flight in [1, 16] {
        if args.runs("set_many") {
            record(bench.set_many(in_flight).await?);
        }
        if args.runs("get_many") {
            record(bench.get_many(in_flight).await?);
        }
    }
    // `--only set+` runs the indexed writes, `--only set+unique` one of them; `--tasks`
    // picks the task counts.
    for tasks in [1, 64].into_iter().filter(|&tasks| args.runs_at(tasks)) {
        if args.runs("set+1index") {
            record(bench.set_indexed(tasks, 1).await?);
        }
        if args.runs("set+3indexes") {
            record(bench.set_indexed(tasks, 3).await?);
        }
        if args.runs("set+unique") {
            bench
                .set_unique(tasks)
                .await?
                .into_iter()
                .for_each(&mut record);
        }
    }
    // `--only "indexes set"` runs the writes, `--only indexes` writes and queries.
    let index_ops: Vec<bool> = [(true, "indexes set"), (false, "indexes find_by")]
        .into_iter()
        .filter(|(_, case)| args.runs(case))
        .map(|(write, _)| write)
        .collect();
    if !index_ops.is_empty() {
        let probe = probe::Probe::new(bench.raw.clone(), !shared).await?;
        for write in index_ops {
            let rows = bench.beside_lean(&url, &probe, write).await?;
            rows.into_iter().for_each(&mut record);
        }
    }
    if args.runs("transfer") {
        let probe = probe::Probe::new(bench.raw.clone(), !shared).await?;
        bench
            .transfers(&url, &probe)
            .await?
            .into_iter()
            .for_each(&mut record);
    }
    if args.runs("concern") {
        concern_cases::concern(&args)
            .await?
            .into_iter()
            .for_each(&mut record);
    }
    if args.runs("find_by") {
        for tasks in [1, 64] {
            record(bench.find_by(tasks).await?);
        }
    }
    if args.runs("cluster indexes") {
        partition_cases::on_a_cluster(&args)
            .await?
            .into_iter()
            .for_each(&mut record);
    }
    if args.runs("update") {
        for hot in [false, true] {
            for tasks in [1, 64] {
                record(bench.update(tasks, hot).await?);
            }
        }
    }
    if args.runs("codec") {
        Bench::codecs(&args, "codec_bincode")?
            .into_iter()
            .chain(Bench::codec_breakdown(&args)?)
            .for_each(&mut record);
        single_threaded.into_iter().for_each(&mut record);
    }
    if args.runs("encryption") || args.runs("compression") {
        at_rest_cases::at_rest(&args)
            .await?
            .into_iter()
            .for_each(&mut record);
    }
    if args.runs("allocs") {
        bench.allocations().await?.into_iter().for_each(&mut record);
    }
    if args.runs("memory_get") {
        record(bench.memory_get().await?);
    }
    if args.runs("cached") {
        let cached = typedkv::CachedStore::builder(bench.store.clone())
            .build()
            .await?;
        bench
            .cached_get(&cached)
            .await?
            .into_iter()
            .for_each(&mut record);
        for tasks in [1, 16] {
            record(bench.cached_mixed(&cached, tasks).await?);
        }
    }
    if args.runs("get@") {
        let mut loaded = 0;
        for keys in [1_000, 100_000, 1_000_000] {
            record(bench.get_with_keys_loaded(keys, &mut loaded).await?);
        }
    }

    let missed = print_targets(&targets(&rows), args.json);
    if let Some(path) = &args.chart {
        chart::draw(path, &rows)?;
        eprintln!("chart written to {}", path.display());
        if rows.iter().any(|r| r.case.starts_with("peer ")) {
            let peers = path.with_file_name(format!(
                "{}-peers.svg",
                path.file_stem().and_then(|s| s.to_str()).unwrap_or("chart")
            ));
            chart::draw_peers(&peers, &rows)?;
            eprintln!("peer chart written to {}", peers.display());
        }
    }
    if shared {
        let removed = remove_keys(&url).await?;
        eprintln!("removed the {removed} keys the benchmark wrote");
    }
    eprintln!("{missed} target(s) missed");
    Ok(())
}

/// Writes every key the single-value and batch cases read, typed and raw.
async fn prefill(bench: &Bench) -> BenchResult<()> {
    let mut raw = bench.raw.clone();
    let bytes = payload::raw_encode(&bench.value)?;
    for ids in bench.ids.iter() {
        let entries: Vec<(&str, &payload::BenchUser)> =
            ids.iter().map(|id| (id.as_str(), &bench.value)).collect();
        bench.store.set_many(&entries).await?;
        let raw_entries: Vec<(String, &[u8])> = ids
            .iter()
            .map(|id| (cases::raw_key(id), bytes.as_slice()))
            .collect();
        let () = redis::AsyncCommands::mset(&mut raw, &raw_entries).await?;
    }
    Ok(())
}

/// The targets of the cases with contenders. Batching, from the peer rows, for the default
/// store (`typed`, which batches): `get`/`set` against hand-written redis-rs at 1, 16, 64
/// and 256 tasks, against the lean coalescer and the best fred configuration at 64, p99
/// latency and client CPU per call at 64, and against redis-rs' cluster connection at 64.
/// Transactions, from the transfer rows: typed against hand-written `WATCH` and against the
/// Lua transfer at 64.
fn contender_targets<'a>(find: &dyn Fn(&str, usize) -> Option<&'a Row>, targets: &mut Vec<Target>) {
    let ratio = |case: String, tasks| find(&case, tasks).and_then(Row::ratio);
    let mut push = |name: String, value: Option<f64>, limit: f64, at_least: bool| {
        if let Some(value) = value.filter(|v| v.is_finite()) {
            targets.push(Target {
                name,
                value,
                limit,
                at_least,
            });
        }
    };
    for op in ["get", "set"] {
        for contender in ["typed"] {
            let typed = format!("peer {op} {contender}");
            for (tasks, limit) in [(1, 0.95), (16, 0.95), (64, 1.4), (256, 1.5)] {
                let name = format!("{op} {contender}/redis-rs at {tasks} tasks");
                push(name, ratio(typed.clone(), tasks), limit, true);
            }
            let at_64 = ratio(typed.clone(), 64);
            let lean = ratio(format!("peer {op} lean coalescer"), 64);
            let name = format!("{op} {contender}/lean coalescer at 64 tasks");
            push(name, at_64.zip(lean).map(|(t, l)| t / l), 1.0, true);
            let fred = ["fred", "fred pool4"]
                .iter()
                .filter_map(|f| ratio(format!("peer {op} {f}"), 64))
                .fold(f64::NAN, f64::max);
            let name = format!("{op} {contender}/best fred at 64 tasks");
            push(name, at_64.map(|t| t / fred), 1.3, true);
            let name = format!("{op} {contender} p99 latency/redis-rs at 64 tasks");
            push(name, ratio(format!("p99 {typed}"), 64), 1.0, false);
            let client =
                |of: &str| find(&format!("cpu peer {op} {of} client"), 64).map(|r| r.typed);
            let name = format!("{op} {contender} client CPU/lean coalescer's at 64 tasks");
            let cpu = client(contender).zip(client("lean coalescer"));
            push(name, cpu.map(|(t, l)| t / l), 1.0, false);
            let name = format!("{op} {contender}/redis-rs on the cluster at 64 tasks");
            push(
                name,
                ratio(format!("cluster {op} {contender}"), 64),
                1.3,
                true,
            );
        }
    }
    // Transfers: typed against hand-written WATCH (the rows' reference) and against the
    // Lua transfer (a ratio of two rows of the same rounds).
    let typed = ratio("transfer 2 accounts typed".into(), 64);
    let name = "transfer typed/redis-rs WATCH at 64 tasks".to_owned();
    push(name, typed, 1.0, true);
    let lua = ratio("transfer 2 accounts redis-rs Lua".into(), 64);
    let name = "transfer typed/Lua at 64 tasks".to_owned();
    push(name, typed.zip(lua).map(|(t, l)| t / l), 0.8, true);
}

/// The speed targets, from the measured rows.
fn targets(rows: &[Row]) -> Vec<Target> {
    let find = |case: &str, tasks: usize| rows.iter().find(|r| r.case == case && r.tasks == tasks);
    let mut targets = Vec::new();
    let mut ratio = |case: &'static str, tasks: usize, limit: f64| {
        if let Some(ratio) = find(case, tasks).and_then(Row::ratio) {
            targets.push(Target {
                name: format!("{case} typed/raw at {tasks} tasks"),
                value: ratio,
                limit,
                at_least: true,
            });
        }
    };
    for tasks in [1, 64] {
        ratio("get", tasks, 0.95);
        ratio("set", tasks, 0.95);
    }
    for in_flight in [1, 16] {
        ratio("get_many(100)", in_flight, 0.90);
        ratio("set_many(100)", in_flight, 0.90);
    }
    for tasks in [1, 64] {
        ratio("set+1index", tasks, 0.6);
        ratio("find_by(10)", tasks, 0.9);
    }
    ratio("set+unique", 64, 0.35);
    ratio("cluster indexes set typed partitioned", 64, 1.3);
    ratio("cluster indexes find_by(10) typed partitioned", 64, 0.5);
    contender_targets(&find, &mut targets);
    for (case, name, limit) in [
        (
            "encryption_83B_ns",
            "encryption per set+get of 83 bytes, ns",
            1000.0,
        ),
        (
            "compression_16KiB_ratio",
            "compressed/plain size of 16 KiB JSON",
            0.5,
        ),
    ] {
        if let Some(row) = find(case, 1) {
            targets.push(Target {
                name: name.into(),
                value: row.typed,
                limit,
                at_least: false,
            });
        }
    }
    for (case, name) in [
        ("codec_bincode", "codec_bincode encode+decode ns"),
        ("codec_bincode_1thread", "  same, single-threaded process"),
    ] {
        if let Some(codec) = find(case, 1) {
            targets.push(Target {
                name: name.into(),
                value: codec.typed,
                limit: 200.0,
                at_least: false,
            });
        }
    }
    if let Some(Row {
        typed,
        raw: Some(raw),
        ..
    }) = find("allocs_get", 1)
    {
        targets.push(Target {
            name: "allocs per typed get beyond hand-written".into(),
            value: typed - raw,
            limit: 3.0,
            at_least: false,
        });
    }
    for (case, name) in [
        ("cached_get_ns", "cached hot get ns"),
        ("cluster_cached_get_ns", "cached hot get ns on the cluster"),
    ] {
        if let Some(ns) = find(case, 1) {
            targets.push(Target {
                name: name.into(),
                value: ns.typed,
                limit: 100.0,
                at_least: false,
            });
        }
    }
    if let Some(speedup) = find("cached_get", 1).and_then(Row::ratio) {
        targets.push(Target {
            name: "cached get vs uncached typed get".into(),
            value: speedup,
            limit: 20.0,
            at_least: true,
        });
    }
    if let (Some(small), Some(large)) = (
        find("get@1k_keys", 16).and_then(Row::ratio),
        find("get@1M_keys", 16).and_then(Row::ratio),
    ) {
        targets.push(Target {
            name: "typed/raw at 1M keys vs at 1k keys".into(),
            value: large / small,
            limit: 0.95,
            at_least: true,
        });
    }
    targets
}

/// Deletes every key with the benchmark's prefix (only on a server the caller named).
async fn remove_keys(url: &str) -> BenchResult<u64> {
    let mut conn = redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await?;
    let mut cursor: u64 = 0;
    let mut removed = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{PREFIX}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await?;
        if !keys.is_empty() {
            let n: u64 = redis::cmd("UNLINK")
                .arg(&keys)
                .query_async(&mut conn)
                .await?;
            removed += n;
        }
        if next == 0 {
            return Ok(removed);
        }
        cursor = next;
    }
}
