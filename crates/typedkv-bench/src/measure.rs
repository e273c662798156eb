//! Running an operation from many tasks for a while, and interleaving typed with raw.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use typedkv::BoxError;

pub(crate) type BenchResult<T> = Result<T, BoxError>;

/// Operations per second of `tasks` tasks for `duration`. `run(task, deadline)` is one
/// task's whole run: it loops until `deadline` and answers how many operations it did; the
/// first error stops the measurement.
pub(crate) async fn ops_per_sec<F, Fut>(
    tasks: usize,
    duration: Duration,
    run: Arc<F>,
) -> BenchResult<f64>
where
    F: Fn(usize, Instant) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = BenchResult<u64>> + Send + 'static,
{
    let started = Instant::now();
    let deadline = started + duration;
    let workers: Vec<_> = (0..tasks)
        .map(|task| tokio::spawn(run(task, deadline)))
        .collect();
    let mut total = 0;
    for worker in workers {
        total += worker.await??;
    }
    Ok(total as f64 / started.elapsed().as_secs_f64())
}

/// Typed and raw ops/s over `rounds` interleaved rounds of `slice` each: their medians, and
/// the median of the per-round ratios typed/raw. The side that goes first alternates.
///
/// The ratio is taken per round because the two runs of a round are adjacent in time: this
/// machine's speed shifts over seconds (the raw rate alone varied 1.6x between runs), and a
/// ratio of overall medians would mix those states.
///
/// Each measured slice is preceded by a discarded warm-up of a quarter slice of the same
/// operation: on this 2-core machine, whichever side ran right after a switch measured up to
/// 1.5x slower (scheduler placement of client and server threads), which made medians of
/// alternating runs jump between two modes.
pub(crate) async fn compare<F, Fut, G, Gut>(
    tasks: usize,
    slice: Duration,
    rounds: usize,
    typed: Arc<F>,
    raw: Arc<G>,
) -> BenchResult<Compared>
where
    F: Fn(usize, Instant) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = BenchResult<u64>> + Send + 'static,
    G: Fn(usize, Instant) -> Gut + Send + Sync + 'static,
    Gut: Future<Output = BenchResult<u64>> + Send + 'static,
{
    let warm_up = slice / 4;
    let (mut typed_runs, mut raw_runs) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        for side in [round % 2, (round + 1) % 2] {
            if side == 0 {
                ops_per_sec(tasks, warm_up, Arc::clone(&typed)).await?;
                typed_runs.push(ops_per_sec(tasks, slice, Arc::clone(&typed)).await?);
            } else {
                ops_per_sec(tasks, warm_up, Arc::clone(&raw)).await?;
                raw_runs.push(ops_per_sec(tasks, slice, Arc::clone(&raw)).await?);
            }
        }
    }
    if std::env::var_os("BENCH_DEBUG").is_some() {
        let show = |runs: &[f64]| runs.iter().map(|x| *x as u64).collect::<Vec<_>>();
        eprintln!(
            "tasks {tasks}: typed {:?}\n          raw   {:?}",
            show(&typed_runs),
            show(&raw_runs)
        );
    }
    Ok(Compared::of(typed_runs, raw_runs))
}

/// The result of [`compare`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Compared {
    /// Median typed rate.
    pub(crate) typed: f64,
    /// Median raw rate.
    pub(crate) raw: f64,
    /// Median of the per-round typed/raw ratios.
    pub(crate) ratio: f64,
}

impl Compared {
    /// Summarizes paired rounds: `typed_runs[i]` and `raw_runs[i]` ran in the same round.
    fn of(typed_runs: Vec<f64>, raw_runs: Vec<f64>) -> Compared {
        let ratios = typed_runs
            .iter()
            .zip(&raw_runs)
            .map(|(t, r)| t / r)
            .collect();
        Compared {
            typed: median(typed_runs),
            raw: median(raw_runs),
            ratio: median(ratios),
        }
    }
}

/// Median of the samples (mean of the middle two for an even count).
pub(crate) fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    let n = samples.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => samples[n / 2],
        _ => (samples[n / 2 - 1] + samples[n / 2]) / 2.0,
    }
}

/// Nanoseconds per call of `f`, median over `rounds` runs of `iterations` calls.
pub(crate) fn ns_per_call(
    rounds: usize,
    iterations: u32,
    mut f: impl FnMut() -> BenchResult<()>,
) -> BenchResult<f64> {
    let mut runs = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let started = Instant::now();
        for _ in 0..iterations {
            f()?;
        }
        runs.push(started.elapsed().as_nanos() as f64 / f64::from(iterations));
    }
    Ok(median(runs))
}

/// [`ns_per_call`] of `typed` and `raw` in interleaved rounds, as [`compare`] does for rates:
/// medians of each, and the median of per-round ratios typed/raw. Run back to back instead,
/// the side measured second ran in another machine and heap state (the typed codec measured
/// 281 ns alone and 343 ns after the Redis cases, while the raw one did not move).
pub(crate) fn compare_ns(
    rounds: usize,
    iterations: u32,
    mut typed: impl FnMut() -> BenchResult<()>,
    mut raw: impl FnMut() -> BenchResult<()>,
) -> BenchResult<Compared> {
    let (mut typed_runs, mut raw_runs) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        for side in [round % 2, (round + 1) % 2] {
            if side == 0 {
                typed_runs.push(ns_per_call(1, iterations, &mut typed)?);
            } else {
                raw_runs.push(ns_per_call(1, iterations, &mut raw)?);
            }
        }
    }
    Ok(Compared::of(typed_runs, raw_runs))
}
