//! typedkv beside its peers, in the same interleaved rounds: `get` and `set` at 1, 16, 64
//! and 256 tasks by hand-written redis-rs (the reference), the typed store as built by
//! default (`typed`: batching on) and with batching off (`typed unbatched`), redis-rs' `ConnectionManager`, fred's client and fred's pool of 4; each one's latency per call (p50, p99) at
//! 64 tasks; and on a private 3+3 cluster, redis-rs' cluster connection, the typed cluster
//! store and fred's clustered client.
//!
//! Every contender does the same work per call: redis-rs and fred format the key and
//! encode/decode with bincode by hand (as `cases.rs`' raw side), the typed stores take the id.
//! Every call is timed (two clock reads per call, the same for everyone).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fred::prelude::{Builder, Client, ClientLike, Config, KeysInterface, Pool};
use futures::future::BoxFuture;
use redis::AsyncCommands;
use typedkv::redis::{RedisClusterPool, RedisPool};
use typedkv::{Backend, Condition, RedisClusterStore, RedisStore, Store, Write, WriteExpiry};
use typedkv_testkit::TestCluster;

use crate::args::Args;
use crate::cases::{Bench, MAX_TASKS, PREFIX, all_ids, raw_key};
use crate::coalescer::Coalescer;
use crate::measure::{BenchResult, Compared, median};
use crate::payload::{BenchUser, raw_decode, raw_encode, sample};
use crate::probe::{MAX_STEAL, Probe, Usage};
use crate::report::Row;

/// Concurrent tasks of the peer cases on one server.
const PEER_TASKS: [usize; 4] = [1, 16, 64, 256];
/// Concurrent tasks of the peer cases on the cluster.
const CLUSTER_TASKS: [usize; 3] = [1, 16, 64];
/// The tasks at which latency per call is reported.
const LATENCY_TASKS: usize = 64;
/// fred pool size (fred's own benchmark uses pools of a few clients).
const FRED_POOL: usize = 4;

/// The operation measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Op {
    Get,
    Set,
}

impl Op {
    /// Its name in the rows, and in `--only "peer get"` / `"peer set"`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::Set => "set",
        }
    }
}

/// One task's run: how many calls it made, and how long each took (ns, saturating).
pub(crate) struct TaskRun {
    pub(crate) calls: u64,
    pub(crate) latencies: Vec<u32>,
}

/// One task of a contender: `(task, deadline) -> its run`.
type Runner = Arc<dyn Fn(usize, Instant) -> BoxFuture<'static, BenchResult<TaskRun>> + Send + Sync>;

/// Who does the calls: a name for the report, and how one of its tasks runs.
pub(crate) struct Contender {
    name: &'static str,
    run: Runner,
}

pub(crate) fn contender<F, Fut>(name: &'static str, run: F) -> Contender
where
    F: Fn(usize, Instant) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = BenchResult<TaskRun>> + Send + 'static,
{
    Contender {
        name,
        run: Arc::new(move |task, deadline| Box::pin(run(task, deadline))),
    }
}

/// Runs `$call` (an async block giving `BenchResult<()>`, with `$i` the iteration) until
/// `$deadline`, timing every call.
macro_rules! timed_until {
    ($deadline:expr, |$i:ident| $call:expr) => {{
        let mut $i: u64 = 0;
        let mut latencies = Vec::with_capacity(4096);
        loop {
            let started = Instant::now();
            if started >= $deadline {
                break;
            }
            let done: BenchResult<()> = $call.await;
            done?;
            let took = started.elapsed().as_nanos();
            latencies.push(u32::try_from(took).unwrap_or(u32::MAX));
            $i += 1;
        }
        Ok($crate::peer_cases::TaskRun {
            calls: $i,
            latencies,
        })
    }};
}
pub(crate) use timed_until;

/// The ids of the peer cases; tasks beyond [`MAX_TASKS`] share the id lists.
struct Ids(Vec<Vec<String>>);

impl Ids {
    fn of(&self, task: usize, i: u64) -> &str {
        let ids = &self.0[task % MAX_TASKS];
        &ids[(i % ids.len() as u64) as usize]
    }
}

/// `op` by hand-written redis-rs code on `conn` (a multiplexed or a cluster connection).
fn redis_rs<C>(name: &'static str, op: Op, conn: C, ids: Arc<Ids>, value: BenchUser) -> Contender
where
    C: redis::aio::ConnectionLike + Clone + Send + Sync + 'static,
{
    contender(name, move |task, deadline| {
        let (mut conn, ids, value) = (conn.clone(), Arc::clone(&ids), value.clone());
        async move {
            timed_until!(deadline, |i| async {
                let key = raw_key(ids.of(task, i));
                match op {
                    Op::Get => {
                        let found: Option<Vec<u8>> = conn.get(key).await?;
                        raw_decode(&found.ok_or("redis-rs get: a key is missing")?)?;
                    }
                    Op::Set => {
                        let () = conn.set(key, raw_encode(&value)?).await?;
                    }
                }
                Ok(())
            })
        }
    })
}

/// `op` by a typed store.
fn typed<S>(name: &'static str, op: Op, store: S, ids: Arc<Ids>, value: BenchUser) -> Contender
where
    S: Store<BenchUser> + Clone + 'static,
{
    contender(name, move |task, deadline| {
        let (store, ids, value) = (store.clone(), Arc::clone(&ids), value.clone());
        async move {
            timed_until!(deadline, |i| async {
                let id = ids.of(task, i);
                match op {
                    Op::Get => {
                        store.get(id).await?.ok_or("typed get: a key is missing")?;
                    }
                    Op::Set => store.set(id, &value).await?,
                }
                Ok(())
            })
        }
    })
}

/// `op` by a typed pool's byte-level calls (`Backend::get`/`set`, batching on as by default)
/// with hand-written keys and bincode as redis-rs': the batching path without the typed
/// layer (envelope, telemetry, the boxed `Store` future), to tell their costs apart.
fn backend(
    name: &'static str,
    op: Op,
    pool: RedisPool,
    ids: Arc<Ids>,
    value: BenchUser,
) -> Contender {
    contender(name, move |task, deadline| {
        let (pool, ids, value) = (pool.clone(), Arc::clone(&ids), value.clone());
        async move {
            timed_until!(deadline, |i| async {
                let key = raw_key(ids.of(task, i));
                match op {
                    Op::Get => {
                        let found = pool.get(&key).await?;
                        raw_decode(&found.ok_or("typed backend get: a key is missing")?)?;
                    }
                    Op::Set => {
                        let plain = Write::new(WriteExpiry::Never, Condition::Always);
                        pool.set(&key, raw_encode(&value)?, plain).await?;
                    }
                }
                Ok(())
            })
        }
    })
}

/// `op` by fred (a client or a pool), with hand-written keys and bincode as redis-rs'.
fn fred<F>(name: &'static str, op: Op, fred: F, ids: Arc<Ids>, value: BenchUser) -> Contender
where
    F: KeysInterface + Clone + Send + Sync + 'static,
{
    contender(name, move |task, deadline| {
        let (fred, ids, value) = (fred.clone(), Arc::clone(&ids), value.clone());
        async move {
            timed_until!(deadline, |i| async {
                let key = raw_key(ids.of(task, i));
                match op {
                    Op::Get => {
                        let found: Option<Vec<u8>> = fred.get(key).await?;
                        raw_decode(&found.ok_or("fred get: a key is missing")?)?;
                    }
                    Op::Set => {
                        let () = fred
                            .set(key, raw_encode(&value)?, None, None, false)
                            .await?;
                    }
                }
                Ok(())
            })
        }
    })
}

/// `op` by the lean coalescer (`coalescer.rs`), with hand-written keys and bincode.
fn lean(
    name: &'static str,
    op: Op,
    coalescer: Coalescer,
    ids: Arc<Ids>,
    value: BenchUser,
) -> Contender {
    contender(name, move |task, deadline| {
        let (coalescer, ids, value) = (coalescer.clone(), Arc::clone(&ids), value.clone());
        async move {
            timed_until!(deadline, |i| async {
                let key = raw_key(ids.of(task, i));
                match op {
                    Op::Get => {
                        let found = coalescer.get(key).await?;
                        raw_decode(&found.ok_or("lean get: a key is missing")?)?;
                    }
                    Op::Set => coalescer.set(key, raw_encode(&value)?).await?,
                }
                Ok(())
            })
        }
    })
}

/// The peers' connections to the bench's server: fred's client and pool, redis-rs'
/// `ConnectionManager` (its reconnecting multiplexed connection, which typedkv's shared
/// lanes would otherwise be replaced by), and the typed store on a pool that does not batch.
pub(crate) struct Peers {
    client: Client,
    pool: Pool,
    manager: redis::aio::ConnectionManager,
    unbatched: RedisStore<BenchUser>,
    /// A pool that batches (the default), for its byte-level calls.
    batching: RedisPool,
    lean: Coalescer,
    probe: Probe,
}

impl Peers {
    /// Connects fred's client, a pool of [`FRED_POOL`] fred clients (fred's default
    /// settings: commands pipelined), a `ConnectionManager`, a `RedisPool` without batching (with
    /// `shared_connections`, as the bench's own) and the lean coalescer to `url`, and a probe
    /// of the server (`local`: it runs on this machine).
    pub(crate) async fn connect(
        url: &str,
        shared_connections: usize,
        local: bool,
    ) -> BenchResult<Peers> {
        let builder = Builder::from_config(Config::from_url(url)?);
        let client = builder.build()?;
        client.init().await?;
        let pool = builder.build_pool(FRED_POOL)?;
        pool.init().await?;
        let manager = redis::aio::ConnectionManager::new(redis::Client::open(url)?).await?;
        let unbatching = RedisPool::builder(url)
            .shared_connections(shared_connections)
            .batching(false)
            .build()?;
        unbatching.ping().await?;
        let batching = RedisPool::builder(url)
            .shared_connections(shared_connections)
            .build()?;
        batching.ping().await?;
        let redis = redis::Client::open(url)?;
        let lean = Coalescer::start(redis.get_multiplexed_async_connection().await?);
        let probe = Probe::new(redis.get_multiplexed_async_connection().await?, local).await?;
        Ok(Peers {
            client,
            pool,
            manager,
            unbatched: RedisStore::builder(unbatching, PREFIX).build()?,
            batching,
            lean,
            probe,
        })
    }
}

/// Rates (ops/s) of every contender, one per kept round, every call's latency if kept, and
/// what the probe saw: per contender, its calls and usage summed over the kept rounds.
struct Runs {
    rates: Vec<Vec<f64>>,
    latencies: Vec<Vec<u32>>,
    usage: Vec<(u64, Usage)>,
    /// Rounds dropped for steal above [`MAX_STEAL`].
    dropped: usize,
}

/// One measured slice of one contender.
struct Slice {
    rate: f64,
    calls: u64,
    latencies: Vec<u32>,
    usage: Option<Usage>,
}

/// `tasks` tasks of `run` for `duration`: ops/s and calls; the calls' latencies go to `keep`.
async fn run_tasks(
    run: &Runner,
    tasks: usize,
    duration: Duration,
    mut keep: Option<&mut Vec<u32>>,
) -> BenchResult<(f64, u64)> {
    let started = Instant::now();
    let deadline = started + duration;
    let workers: Vec<_> = (0..tasks)
        .map(|task| tokio::spawn(run(task, deadline)))
        .collect();
    let mut calls = 0;
    for worker in workers {
        let done = worker.await??;
        calls += done.calls;
        if let Some(kept) = keep.as_deref_mut() {
            kept.extend_from_slice(&done.latencies);
        }
    }
    Ok((calls as f64 / started.elapsed().as_secs_f64(), calls))
}

/// Every contender with `tasks` tasks, in `args.rounds` rounds that rotate who goes first;
/// each measured slice follows a discarded warm-up of a quarter slice. With a probe, a round
/// in which any slice saw steal above [`MAX_STEAL`] is dropped (and reported on stderr),
/// unless every round was.
async fn interleaved(
    contenders: &[&Contender],
    tasks: usize,
    args: &Args,
    probe: Option<&Probe>,
) -> BenchResult<Runs> {
    let slice = args.slice();
    let mut rounds: Vec<Vec<Slice>> = Vec::new();
    for round in 0..args.rounds {
        let mut slices: Vec<Option<Slice>> = (0..contenders.len()).map(|_| None).collect();
        for k in 0..contenders.len() {
            let c = (round + k) % contenders.len();
            let run = &contenders[c].run;
            run_tasks(run, tasks, slice / 4, None).await?;
            let mut latencies = Vec::new();
            let keep = (tasks == LATENCY_TASKS).then_some(&mut latencies);
            let before = match probe {
                Some(probe) => Some(probe.snapshot().await),
                None => None,
            };
            let (rate, calls) = run_tasks(run, tasks, slice, keep).await?;
            let usage = match (probe, before) {
                (Some(probe), Some(before)) => Some(before.until(&probe.snapshot().await)),
                _ => None,
            };
            slices[c] = Some(Slice {
                rate,
                calls,
                latencies,
                usage,
            });
        }
        rounds.push(slices.into_iter().flatten().collect());
    }
    let steal = |round: &[Slice]| {
        round
            .iter()
            .filter_map(|s| s.usage.map(|u| u.steal))
            .fold(0.0, f64::max)
    };
    let calm = rounds.iter().filter(|r| steal(r) <= MAX_STEAL).count();
    let mut runs = Runs {
        rates: vec![Vec::new(); contenders.len()],
        latencies: vec![Vec::new(); contenders.len()],
        usage: vec![(0, Usage::default()); contenders.len()],
        dropped: 0,
    };
    for (index, round) in rounds.into_iter().enumerate() {
        let stolen = steal(&round);
        if calm > 0 && stolen > MAX_STEAL {
            eprintln!(
                "  {tasks} tasks, round {index}: dropped, steal {:.0}%",
                stolen * 100.0
            );
            runs.dropped += 1;
            continue;
        }
        for (c, slice) in round.into_iter().enumerate() {
            runs.rates[c].push(slice.rate);
            runs.latencies[c].extend(slice.latencies);
            if let Some(usage) = slice.usage {
                let (calls, sum) = &mut runs.usage[c];
                *calls += slice.calls;
                *sum = sum.plus(&usage);
            }
        }
    }
    if calm == 0 && probe.is_some() {
        eprintln!("  {tasks} tasks: every round saw steal above {MAX_STEAL}; kept them all");
    }
    Ok(runs)
}

/// The `q` quantile of `samples` (ns), in µs.
fn quantile_us(samples: &mut [u32], q: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    samples.sort_unstable();
    let at = ((samples.len() - 1) as f64 * q).round() as usize;
    f64::from(samples[at]) / 1000.0
}

/// A case name that lives as long as the report (a few dozen per run).
fn leak(name: String) -> &'static str {
    Box::leak(name.into_boxed_str())
}

/// Measures `contenders` (the first is the reference) at each of `task_counts`: a row per
/// other contender, `"{prefix} {op} {name}"`, its rate against the reference's (the median
/// of per-round ratios); at 64 tasks, `"p50 ..."` and `"p99 ..."` rows of every contender's
/// latency per call against the reference's, and with a probe, `"cpu ..."` rows: client and
/// server CPU per call (µs), commands per server read, and the highest steal of a kept round.
pub(crate) async fn measure(
    prefix: &str,
    op: &str,
    contenders: &[Contender],
    task_counts: &[usize],
    args: &Args,
    probe: Option<&Probe>,
) -> BenchResult<Vec<Row>> {
    let contenders: Vec<&Contender> = contenders
        .iter()
        .enumerate()
        .filter(|(c, contender)| args.runs_contender(*c, contender.name))
        .map(|(_, contender)| contender)
        .collect();
    let mut rows = Vec::new();
    for &tasks in task_counts.iter().filter(|&&tasks| args.runs_at(tasks)) {
        let mut runs = interleaved(&contenders, tasks, args, probe).await?;
        if runs.dropped > 0 {
            let name = leak(format!("{prefix} {op} rounds dropped for steal"));
            rows.push(Row::typed_only_at(
                name,
                tasks,
                runs.dropped as f64,
                "rounds",
            ));
        }
        let reference = runs.rates[0].clone();
        for (c, contender) in contenders.iter().enumerate().skip(1) {
            let ratios = runs.rates[c]
                .iter()
                .zip(&reference)
                .map(|(x, r)| x / r)
                .collect();
            let compared = Compared {
                typed: median(runs.rates[c].clone()),
                raw: median(reference.clone()),
                ratio: median(ratios),
            };
            let case = leak(format!("{prefix} {op} {}", contender.name));
            rows.push(Row::compared(case, tasks, compared, 1.0, "ops/s"));
        }
        if tasks == LATENCY_TASKS {
            for (q, label) in [(0.5, "p50"), (0.99, "p99")] {
                let reference = quantile_us(&mut runs.latencies[0], q);
                for (c, contender) in contenders.iter().enumerate() {
                    let value = quantile_us(&mut runs.latencies[c], q);
                    let name = format!("{label} {prefix} {op} {}", contender.name);
                    rows.push(Row::pair_at(leak(name), tasks, value, reference, "µs/call"));
                }
            }
            if probe.is_some() {
                rows.extend(cpu_rows(prefix, op, &contenders, &runs, tasks));
            }
        }
    }
    Ok(rows)
}

/// One figure of the probe: its row label, how to read it from a [`Usage`], whether it is
/// divided by the number of calls, and its unit.
struct Figure {
    label: &'static str,
    of: fn(&Usage) -> f64,
    per_call: bool,
    unit: &'static str,
}

const FIGURES: [Figure; 4] = [
    Figure {
        label: "client",
        of: |u| u.client_us,
        per_call: true,
        unit: "µs/call",
    },
    Figure {
        label: "server",
        of: |u| u.server_us,
        per_call: true,
        unit: "µs/call",
    },
    Figure {
        label: "commands per read",
        of: Usage::commands_per_read,
        per_call: false,
        unit: "commands",
    },
    Figure {
        label: "steal",
        of: |u| u.steal * 100.0,
        per_call: false,
        unit: "%",
    },
];

/// The probe's rows of every contender, the first being the reference of the ratios.
fn cpu_rows(
    prefix: &str,
    op: &str,
    contenders: &[&Contender],
    runs: &Runs,
    tasks: usize,
) -> Vec<Row> {
    let mut rows = Vec::new();
    for figure in &FIGURES {
        let value = |c: usize| {
            let (calls, usage) = &runs.usage[c];
            let total = (figure.of)(usage);
            if figure.per_call {
                total / *calls as f64
            } else {
                total
            }
        };
        let reference = value(0);
        for (c, contender) in contenders.iter().enumerate() {
            let name = leak(format!(
                "cpu {prefix} {op} {} {}",
                contender.name, figure.label
            ));
            rows.push(Row::pair_at(name, tasks, value(c), reference, figure.unit));
        }
    }
    rows
}

impl Bench {
    /// The peer cases of `op` on the bench's server (rows `peer {op} {contender}`).
    pub(crate) async fn peers(&self, peers: &Peers, op: Op) -> BenchResult<Vec<Row>> {
        let ids = Arc::new(Ids(self.ids.clone()));
        let value = self.value.clone();
        let contenders = [
            redis_rs(
                "redis-rs",
                op,
                self.raw.clone(),
                Arc::clone(&ids),
                value.clone(),
            ),
            redis_rs(
                "redis-rs manager",
                op,
                peers.manager.clone(),
                Arc::clone(&ids),
                value.clone(),
            ),
            typed(
                "typed",
                op,
                self.store.clone(),
                Arc::clone(&ids),
                value.clone(),
            ),
            typed(
                "typed unbatched",
                op,
                peers.unbatched.clone(),
                Arc::clone(&ids),
                value.clone(),
            ),
            fred(
                "fred",
                op,
                peers.client.clone(),
                Arc::clone(&ids),
                value.clone(),
            ),
            fred(
                "fred pool4",
                op,
                peers.pool.clone(),
                Arc::clone(&ids),
                value.clone(),
            ),
            backend(
                "typed backend",
                op,
                peers.batching.clone(),
                Arc::clone(&ids),
                value.clone(),
            ),
            lean("lean coalescer", op, peers.lean.clone(), ids, value),
        ];
        let probe = Some(&peers.probe);
        measure(
            "peer",
            op.name(),
            &contenders,
            &PEER_TASKS,
            &self.args,
            probe,
        )
        .await
    }
}

/// The peer cases on a private 3+3 cluster (rows `cluster {op} {contender}`): redis-rs'
/// cluster connection (the reference), the typed cluster store with batching (the default)
/// and without,
/// fred's clustered client.
pub(crate) async fn on_a_cluster(args: &Args) -> BenchResult<Vec<Row>> {
    let cluster = TestCluster::start().await;
    let seeds = cluster.seeds();
    let raw = cluster.raw_connection().await;
    let pool = RedisClusterPool::from_urls(seeds.clone())?;
    pool.ping().await?;
    let store: RedisClusterStore<BenchUser> = RedisClusterStore::builder(pool, PREFIX).build()?;
    let unbatching = RedisClusterPool::builder(seeds.clone())
        .batching(false)
        .build()?;
    unbatching.ping().await?;
    let unbatched: RedisClusterStore<BenchUser> =
        RedisClusterStore::builder(unbatching, PREFIX).build()?;
    let ports = cluster.ports();
    let url = format!("redis://127.0.0.1:{}?node=127.0.0.1:{}", ports[0], ports[1]);
    let config = Config::from_url_clustered(&url)?;
    let client = Builder::from_config(config).build()?;
    client.init().await?;
    let ids = Arc::new(Ids(all_ids()));
    let value = sample();
    let bytes = raw_encode(&value)?;
    let mut writer = raw.clone();
    for task_ids in &ids.0 {
        let entries: Vec<(&str, &BenchUser)> =
            task_ids.iter().map(|id| (id.as_str(), &value)).collect();
        store.set_many(&entries).await?;
        let raw_entries: Vec<(String, &[u8])> = task_ids
            .iter()
            .map(|id| (raw_key(id), bytes.as_slice()))
            .collect();
        let () = writer.mset(&raw_entries).await?;
    }
    let probe = Probe::of_cluster(&cluster).await?;
    let mut rows = Vec::new();
    for op in [Op::Get, Op::Set] {
        let contenders = [
            redis_rs("redis-rs", op, raw.clone(), Arc::clone(&ids), value.clone()),
            typed("typed", op, store.clone(), Arc::clone(&ids), value.clone()),
            typed(
                "typed unbatched",
                op,
                unbatched.clone(),
                Arc::clone(&ids),
                value.clone(),
            ),
            fred("fred", op, client.clone(), Arc::clone(&ids), value.clone()),
        ];
        let probe = Some(&probe);
        rows.extend(
            measure(
                "cluster",
                op.name(),
                &contenders,
                &CLUSTER_TASKS,
                args,
                probe,
            )
            .await?,
        );
    }
    let cached = typedkv::CachedStore::builder(store).build().await?;
    let ns = crate::cache_cases::hot_get_ns(&cached, &ids.0[0][0], args).await?;
    rows.push(Row::typed_only("cluster_cached_get_ns", ns, "ns"));
    Ok(rows)
}
