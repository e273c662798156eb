//! Load through a failover, and its report: tasks writing and reading through one store
//! while a test kills a master, then which calls failed, when, how slow the slowest call
//! was, and how many acknowledged writes were lost. Shared by the cluster and Sentinel
//! failover tests.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use typedkv::{Error, Store};

/// The promised bound: once a replica is promoted, every call succeeds again within this
/// long.
pub const RECOVERY_AFTER_PROMOTION: Duration = Duration::from_secs(2);

/// One call's outcome: when it ended, how long it took, its error.
struct Outcome {
    at: Instant,
    took: Duration,
    error: Option<Error>,
}

/// Tasks each writing a new key and reading it back, in a loop, until stopped.
pub struct Load {
    stop: Arc<AtomicBool>,
    outcomes: Arc<Mutex<Vec<Outcome>>>,
    /// Each task's acknowledged writes: id, value, when acknowledged.
    workers: Vec<JoinHandle<Vec<(String, u64, Instant)>>>,
}

impl fmt::Debug for Load {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Load")
            .field("tasks", &self.workers.len())
            .finish_non_exhaustive()
    }
}

impl Load {
    /// Starts `tasks` tasks on `store`.
    pub fn start<S: Store<u64> + Clone + 'static>(store: S, tasks: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let outcomes = Arc::new(Mutex::new(Vec::new()));
        let workers = (0..tasks)
            .map(|task| {
                let (store, stop, outcomes) = (store.clone(), stop.clone(), outcomes.clone());
                tokio::spawn(async move {
                    let mut acknowledged = Vec::new();
                    let mut i = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        i += 1;
                        let id = format!("{task}-{i}");
                        let started = Instant::now();
                        let written = store.set(&id, &i).await;
                        let wrote = started.elapsed();
                        if written.is_ok() {
                            acknowledged.push((id.clone(), i, Instant::now()));
                        }
                        let started = Instant::now();
                        let read = store.get(&id).await.map(drop);
                        let read_took = started.elapsed();
                        let mut outcomes = outcomes.lock().unwrap();
                        for (result, took) in [(written, wrote), (read, read_took)] {
                            outcomes.push(Outcome {
                                at: Instant::now(),
                                took,
                                error: result.err(),
                            });
                        }
                    }
                    acknowledged
                })
            })
            .collect();
        Load {
            stop,
            outcomes,
            workers,
        }
    }

    /// Now, to pass to [`Load::stop`] as the moment of the kill.
    pub fn mark(&self) -> Instant {
        Instant::now()
    }

    /// Stops the tasks and reports what happened since `killed_at`, reading every
    /// acknowledged write back through `store` (better not the store under test, whose
    /// reads could go where its writes went: a store on the current master).
    pub async fn stop<S: Store<u64>>(self, killed_at: Instant, store: &S) -> Report {
        self.stop.store(true, Ordering::Relaxed);
        let mut acknowledged = Vec::new();
        for worker in self.workers {
            acknowledged.extend(worker.await.expect("no worker panicked"));
        }
        let outcomes = std::mem::take(&mut *self.outcomes.lock().unwrap());
        let last_failure = outcomes
            .iter()
            .filter(|o| o.error.is_some())
            .map(|o| o.at)
            .max();
        let mut lost = 0;
        let mut last_lost = None;
        for chunk in acknowledged.chunks(500) {
            let ids: Vec<&str> = chunk.iter().map(|(id, ..)| id.as_str()).collect();
            let stored = store.get_many(&ids).await.unwrap();
            for ((_, value, at), stored) in chunk.iter().zip(stored) {
                if stored != Some(*value) {
                    lost += 1;
                    last_lost = last_lost.max(Some(at.saturating_duration_since(killed_at)));
                }
            }
        }
        Report {
            calls: outcomes.len(),
            after_outage: outcomes
                .iter()
                .filter(|o| last_failure.is_none_or(|last| o.at > last))
                .count(),
            outage: last_failure.map(|at| at.duration_since(killed_at)),
            slowest: outcomes.iter().map(|o| o.took).max().unwrap_or_default(),
            acknowledged: acknowledged.len(),
            lost,
            last_lost,
            failures: outcomes.into_iter().filter_map(|o| o.error).collect(),
        }
    }
}

/// What [`Load::stop`] found.
#[derive(Debug)]
pub struct Report {
    /// Calls made in all.
    pub calls: usize,
    /// The errors of the calls that failed.
    pub failures: Vec<Error>,
    /// When the last call failed, counted from the kill.
    pub outage: Option<Duration>,
    /// Calls that ended after the last failure.
    pub after_outage: usize,
    /// The longest any call took.
    pub slowest: Duration,
    /// Writes acknowledged to the caller.
    pub acknowledged: usize,
    /// Acknowledged writes not read back afterwards.
    pub lost: usize,
    /// When the last of those was acknowledged, counted from the kill.
    pub last_lost: Option<Duration>,
}

impl Report {
    /// Panics unless every failure was typed and named a key under `prefix`: a write
    /// concern not met, a timeout, a connection error or a refusal (`READONLY` from a
    /// demoted master); how many were a concern not met (`Error::Unacknowledged`).
    pub fn unacknowledged(&self, prefix: &str) -> usize {
        for error in &self.failures {
            assert!(
                error.is_timeout()
                    || matches!(
                        error,
                        Error::Unacknowledged { .. }
                            | Error::Connection { .. }
                            | Error::Refused { .. }
                    ),
                "unexpected error kind during failover: {error}"
            );
            assert!(
                error.key().is_some_and(|key| key.starts_with(prefix)),
                "{error}"
            );
        }
        let unacknowledged = |e: &&Error| matches!(e, Error::Unacknowledged { .. });
        self.failures.iter().filter(unacknowledged).count()
    }

    /// Panics unless every failure was a typed connection, timeout or refusal error naming a
    /// key under `prefix`, calls failed only until `promoted_after` plus
    /// [`RECOVERY_AFTER_PROMOTION`], and over a thousand calls succeeded afterwards.
    pub fn assert_recovered(&self, promoted_after: Duration, prefix: &str) {
        for error in &self.failures {
            assert!(
                error.is_timeout()
                    || matches!(error, Error::Connection { .. } | Error::Refused { .. }),
                "unexpected error kind during failover: {error}"
            );
            assert!(
                error.key().is_some_and(|key| key.starts_with(prefix)),
                "{error}"
            );
        }
        if let Some(outage) = self.outage {
            assert!(
                outage <= promoted_after + RECOVERY_AFTER_PROMOTION,
                "calls still failed {outage:?} after the kill, replica promoted after \
                 {promoted_after:?}"
            );
        }
        assert!(
            self.after_outage > 1000,
            "too few calls after recovery: {}",
            self.after_outage
        );
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut kinds: Vec<String> = self
            .failures
            .iter()
            .map(|e| match e.code() {
                Some(code) => code.to_owned(),
                None if e.is_timeout() => "timeout".to_owned(),
                None => "connection".to_owned(),
            })
            .collect();
        kinds.sort();
        kinds.dedup();
        write!(
            f,
            "last failed call {:?} after the kill; {} calls, {} failed, {} succeeded after the \
             last failure; slowest call {:?}; {} writes acknowledged, {} lost (the last \
             acknowledged {:?} after the kill); errors seen: {kinds:?}",
            self.outage,
            self.calls,
            self.failures.len(),
            self.after_outage,
            self.slowest,
            self.acknowledged,
            self.lost,
            self.last_lost,
        )
    }
}
