//! Transactions through a hung or failed master: tasks transferring between accounts in a
//! loop, each transaction bounded by a deadline, and what a test checks afterwards (each
//! ended within its deadline; the total over the accounts holds, none went negative).
//! Shared by the Sentinel and cluster tests.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use typedkv::{Backend, Error, Store, TransactionOptions, TypedStore, transaction_with};

/// How many accounts the transfers move money between.
pub const ACCOUNTS: u64 = 10;
/// What each account holds when the transfers start.
pub const START: i64 = 100;

/// The id of account `n`.
fn account(n: u64) -> String {
    format!("acct-{n}")
}

/// Tasks each running transfers between random accounts, until stopped.
#[derive(Debug)]
pub struct Transfers {
    stop: Arc<AtomicBool>,
    committed: Arc<AtomicU64>,
    /// The last error a transaction ended with, to tell when commits do not resume.
    last_error: Arc<Mutex<Option<Error>>>,
    /// Each task's slowest transaction.
    workers: Vec<JoinHandle<Duration>>,
}

impl Transfers {
    /// Opens the accounts in `accounts` (each [`START`]) and starts `tasks` tasks, each
    /// transaction bounded by `deadline`. A transfer that the payer cannot cover commits
    /// its reads and writes nothing.
    pub async fn start<B: Backend>(
        accounts: TypedStore<i64, B>,
        tasks: u64,
        deadline: Duration,
    ) -> Transfers {
        for n in 0..ACCOUNTS {
            accounts.set(&account(n), &START).await.unwrap();
        }
        Transfers::join(accounts, tasks, deadline)
    }

    /// Starts `tasks` tasks on accounts already opened (by [`Transfers::start`], through
    /// another pool), each transaction bounded by `deadline`: for a pool made while its
    /// server cannot answer.
    pub fn join<B: Backend>(
        accounts: TypedStore<i64, B>,
        tasks: u64,
        deadline: Duration,
    ) -> Transfers {
        let accounts = Arc::new(accounts);
        let stop = Arc::new(AtomicBool::new(false));
        let committed = Arc::new(AtomicU64::new(0));
        let last_error = Arc::new(Mutex::new(None));
        let workers = (0..tasks)
            .map(|task| {
                let (accounts, stop) = (Arc::clone(&accounts), Arc::clone(&stop));
                let committed = Arc::clone(&committed);
                let last_error = Arc::clone(&last_error);
                tokio::spawn(async move {
                    let mut next = crate::xorshift(task);
                    let mut slowest = Duration::ZERO;
                    while !stop.load(Ordering::Relaxed) {
                        let (from, to) = (account(next() % ACCOUNTS), account(next() % ACCOUNTS));
                        let amount = i64::try_from(next() % 40).unwrap();
                        let started = Instant::now();
                        let moved = transfer(&accounts, &from, &to, amount, deadline).await;
                        slowest = slowest.max(started.elapsed());
                        match moved {
                            Ok(_) => _ = committed.fetch_add(1, Ordering::Relaxed),
                            // Failed calls are expected while the master is gone; a short
                            // pause keeps a task from spinning on instant refusals.
                            Err(error) => {
                                *last_error.lock().unwrap() = Some(error);
                                tokio::time::sleep(Duration::from_millis(10)).await;
                            }
                        }
                    }
                    slowest
                })
            })
            .collect();
        Transfers {
            stop,
            committed,
            last_error,
            workers,
        }
    }

    /// How many transactions have committed so far.
    pub fn committed(&self) -> u64 {
        self.committed.load(Ordering::Relaxed)
    }

    /// Waits until `more` transactions have committed after this call; panics after `limit`.
    pub async fn wait_for_commits(&self, more: u64, limit: Duration) {
        let target = self.committed() + more;
        let started = Instant::now();
        while self.committed() < target {
            if started.elapsed() >= limit {
                let last = self.last_error.lock().unwrap().take();
                panic!(
                    "{more} transactions did not commit within {limit:?}; the last error: {last:?}"
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the tasks; the slowest transaction any of them ran.
    pub async fn stop(self) -> Duration {
        self.stop.store(true, Ordering::Relaxed);
        let mut slowest = Duration::ZERO;
        for worker in self.workers {
            slowest = slowest.max(worker.await.expect("no transfer task panicked"));
        }
        slowest
    }
}

/// The conformance cases' transfer, within `deadline`.
async fn transfer<B: Backend>(
    accounts: &TypedStore<i64, B>,
    from: &str,
    to: &str,
    amount: i64,
    deadline: Duration,
) -> Result<bool, Error> {
    let options = TransactionOptions::new().deadline(deadline);
    transaction_with(accounts.backend(), options, |tx| {
        crate::conformance::transactions::transfer(tx, accounts, from, to, amount)
    })
    .await
}

/// Asserts that the accounts in `accounts` (best read on the master that serves them now)
/// hold the total they opened with, and that none is negative.
pub async fn assert_total_holds<S: Store<i64>>(accounts: &S) {
    let mut total = 0;
    for n in 0..ACCOUNTS {
        let balance = accounts.get(&account(n)).await.unwrap().unwrap();
        assert!(balance >= 0, "{} went negative: {balance}", account(n));
        total += balance;
    }
    assert_eq!(total, START * i64::try_from(ACCOUNTS).unwrap());
}

/// Waits until `replicas` replicas of the master behind `master` have every write it took
/// so far: writes `marker` on it, then `WAIT`s for that write (replication is in order, so
/// a replica with it has all before it). Panics after 10 s.
pub async fn wait_replicated(
    master: &mut redis::aio::MultiplexedConnection,
    marker: &str,
    replicas: usize,
) {
    let _: () = redis::cmd("SET")
        .arg(marker)
        .arg("replicated")
        .query_async(master)
        .await
        .unwrap();
    let acknowledged: usize = redis::cmd("WAIT")
        .arg(replicas)
        .arg(10_000)
        .query_async(master)
        .await
        .unwrap();
    assert!(
        acknowledged >= replicas,
        "{acknowledged} of {replicas} replicas"
    );
}
