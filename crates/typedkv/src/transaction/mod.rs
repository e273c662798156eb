//! Transactions over several entities: read, decide, commit all or nothing.
//!
//! [`transaction`] runs its closure with a [`Transaction`] handle: reads go to the backend
//! and are remembered with what they saw; writes are only kept. When the closure returns
//! `Ok`, the attempt commits in one atomic step ([`Backend::commit`]: one script on Redis,
//! the map's lock in process), which applies the writes only if every key read still holds
//! what was read. Otherwise nothing is written and the closure runs again on fresh reads,
//! after the pause [`Store::update`](crate::Store::update) takes between its attempts.
//!
//! - `mod.rs`: [`transaction`], its options and its attempts;
//! - `handle.rs`: [`Transaction`], what one attempt reads and writes.

mod handle;

pub use self::handle::Transaction;

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use tokio::time::Instant;
use tracing::Instrument;

use crate::backend::{Applied, Backend, Committed};
use crate::error::{Error, Keys, Waited};
use crate::update::{DEFAULT_UPDATE_ATTEMPTS, backoff};

/// How long a transaction may take, all of its attempts together, unless its options say
/// otherwise.
pub const DEFAULT_TRANSACTION_DEADLINE: Duration = Duration::from_secs(10);

/// How a [`transaction`] retries: how many attempts, and within what time.
///
/// ```
/// use std::time::Duration;
/// use typedkv::TransactionOptions;
///
/// let options = TransactionOptions::new()
///     .attempts(20)
///     .deadline(Duration::from_secs(2));
/// assert_eq!(options.max_attempts(), 20);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransactionOptions {
    attempts: u32,
    deadline: Duration,
}

impl Default for TransactionOptions {
    fn default() -> Self {
        TransactionOptions {
            attempts: DEFAULT_UPDATE_ATTEMPTS,
            deadline: DEFAULT_TRANSACTION_DEADLINE,
        }
    }
}

impl TransactionOptions {
    /// [`DEFAULT_UPDATE_ATTEMPTS`] attempts within [`DEFAULT_TRANSACTION_DEADLINE`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Gives up with [`Error::Conflict`] after this many attempts whose reads changed before
    /// they could commit (at least 1).
    pub fn attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts.max(1);
        self
    }

    /// Gives up with [`Error::Timeout`] ([`Waited::Transaction`]) when the attempts together
    /// take longer than this. Each round trip is also bounded by the backend's response
    /// timeout.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// The most attempts.
    pub fn max_attempts(&self) -> u32 {
        self.attempts
    }

    /// The deadline of all attempts together.
    pub fn max_duration(&self) -> Duration {
        self.deadline
    }
}

/// Runs `f` as a transaction on `backend`: reads several entities (of stores on `backend`,
/// of any value types), decides, and commits every write or none, only if nothing it read
/// changed meanwhile; otherwise runs `f` again on fresh reads. With
/// [`TransactionOptions::default`]; see [`transaction_with`].
///
/// ```
/// use typedkv::{Error, MemoryBackend, MemoryStore, Store};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Error> {
/// let backend = MemoryBackend::new();
/// let accounts = MemoryStore::<i64>::builder(backend.clone(), "account").build()?;
/// accounts.set("alice", &100).await?;
/// accounts.set("bob", &0).await?;
///
/// // Move 30 from alice to bob, unless alice cannot pay. The closure may run more than once:
/// // it borrows what it uses (`accounts`), and its future owns the handle `tx`.
/// let accounts = &accounts;
/// let paid = typedkv::transaction(&backend, |tx| async move {
///     let alice = tx.get(accounts, "alice").await?.unwrap_or(0);
///     let bob = tx.get(accounts, "bob").await?.unwrap_or(0);
///     if alice < 30 {
///         return Ok(false); // nothing written
///     }
///     tx.set(accounts, "alice", &(alice - 30))?;
///     tx.set(accounts, "bob", &(bob + 30))?;
///     Ok::<_, Error>(true)
/// })
/// .await?;
/// assert!(paid);
/// assert_eq!(accounts.get("bob").await?, Some(30));
/// # Ok(())
/// # }
/// ```
pub async fn transaction<B, F, Fut, R, E>(backend: &B, f: F) -> Result<R, E>
where
    B: Backend,
    F: FnMut(Transaction<B>) -> Fut,
    Fut: Future<Output = Result<R, E>>,
    E: From<Error>,
{
    transaction_with(backend, TransactionOptions::default(), f).await
}

/// [`transaction`] with its attempts and deadline set by `options`.
///
/// - **What commits**: when `f` returns `Ok`, its writes are applied in one atomic step if
///   every key it read (through its [`Transaction`]) still holds the bytes it read, or is
///   still absent. Otherwise nothing is written and `f` runs again with a fresh handle.
///   When `f` returns `Err`, nothing is written and the error is returned (so the closure
///   may abort with an error of its own type, any `E: From<typedkv::Error>`).
/// - **Isolation**: serializable for the keys it reads: an attempt commits only if all of
///   them hold, at the moment of the commit, what it read, so the transaction takes effect
///   as if it ran alone at that moment. Reads within an attempt are not a snapshot (two
///   reads may see states of different moments); such an attempt never commits, but `f`
///   must not act on what it read outside the transaction: it may run several times. Keys
///   written without being read are written whatever they hold (last writer wins), and no
///   query (`find_by`, scans) is part of it: no phantom protection.
/// - **Indexes**: a store with indexes keeps them as `set` does, unique values included
///   ([`Error::UniqueViolation`] aborts the transaction). It takes part alone, with every
///   key in one of its partitions; keys it only read are written back as read (same bytes,
///   same TTL), which is how its atomic step checks them.
/// - **Errors**: [`Error::Conflict`] after [`TransactionOptions::attempts`] attempts whose
///   reads kept changing; [`Error::Timeout`] with [`Waited::Transaction`] past the
///   deadline; [`Error::Transaction`] when `f` panicked or asked what a transaction cannot
///   do (stores on another backend, a store with indexes beside another store or across
///   its partitions, keys in several cluster slots, a write with a
///   [`Condition`](crate::Condition)). In each case nothing was
///   written, except that a commit whose reply did not arrive (a reply timeout, a broken
///   connection) may have applied entirely: never in part.
/// - **Cancellation**: dropping the future writes nothing, or everything if its commit was
///   already sent.
pub async fn transaction_with<B, F, Fut, R, E>(
    backend: &B,
    options: TransactionOptions,
    mut f: F,
) -> Result<R, E>
where
    B: Backend,
    F: FnMut(Transaction<B>) -> Fut,
    Fut: Future<Output = Result<R, E>>,
    E: From<Error>,
{
    let span = tracing::debug_span!(
        "typedkv.transaction",
        backend = backend.kind(),
        attempts = tracing::field::Empty,
        outcome = tracing::field::Empty,
    );
    let location: Arc<str> = backend.data_location().into();
    let deadline = Instant::now() + options.deadline;
    // The error of a transaction past its deadline, naming a key it used.
    let timed_out = |key: Option<String>| Error::Timeout {
        backend: backend.kind(),
        keys: key.map_or_else(Keys::none, Keys::one),
        timeout: options.deadline,
        waited: Waited::Transaction,
    };
    let mut changed = String::new();
    for attempt in 1..=options.attempts {
        span.record("attempts", attempt);
        let tx = Transaction::new(backend.clone(), Arc::clone(&location));
        let decided = std::panic::catch_unwind(AssertUnwindSafe(|| f(tx.clone())));
        let decided = match decided {
            Ok(running) => AssertUnwindSafe(running).catch_unwind(),
            Err(_) => return Err(panicked(&tx, &span).into()),
        };
        let decided = tokio::time::timeout_at(deadline, decided.instrument(span.clone())).await;
        let result = match decided {
            Err(_elapsed) => {
                let error = timed_out(tx.first_key());
                tx.end();
                return Err(outcome(&span, error).into());
            }
            Ok(Err(_panic)) => return Err(panicked(&tx, &span).into()),
            Ok(Ok(Err(aborted))) => {
                tx.end();
                span.record("outcome", "aborted");
                return Err(aborted);
            }
            Ok(Ok(Ok(result))) => result,
        };
        let Some(gathered) = tx.end() else {
            return Err(outcome(&span, ended_elsewhere()).into());
        };
        if gathered.checks.is_empty() && gathered.writes.is_empty() {
            span.record("outcome", "ok");
            return Ok(result);
        }
        let commit = commit(backend, &gathered);
        let committed = tokio::time::timeout_at(deadline, commit.instrument(span.clone())).await;
        // Heard also when the commit failed or timed out: it may have applied.
        for (write, notice) in gathered.writes.iter().zip(&gathered.notices) {
            notice.wrote(&write.key);
        }
        match committed {
            Err(_elapsed) => return Err(outcome(&span, timed_out(gathered.first_key())).into()),
            Ok(Err(error)) => return Err(outcome(&span, error).into()),
            Ok(Ok(Committed::Done)) => {
                span.record("outcome", "ok");
                return Ok(result);
            }
            Ok(Ok(Committed::Changed { check })) => {
                changed = gathered
                    .checks
                    .get(check)
                    .map(|check| check.key.clone())
                    .unwrap_or_default();
            }
        }
        if let Some(pause) = backoff(attempt) {
            if Instant::now() + pause >= deadline {
                return Err(outcome(&span, timed_out(Some(changed))).into());
            }
            tokio::time::sleep(pause).await;
        }
    }
    Err(outcome(
        &span,
        Error::Conflict {
            key: changed,
            attempts: options.attempts,
        },
    )
    .into())
}

/// Commits what an attempt gathered: through [`Backend::commit`], or, when it touched a
/// store with indexes, as that store's ops in one atomic step (the keys it only read
/// written back as read, each guarded by what was read).
async fn commit<B: Backend>(backend: &B, gathered: &handle::Attempt) -> Result<Committed, Error> {
    let Some(indexed) = &gathered.indexed else {
        return backend.commit(&gathered.checks, &gathered.writes).await;
    };
    let (ops, checks) = gathered.indexed_ops(indexed)?;
    match indexed.apply(ops).await? {
        Applied::Done { .. } => Ok(Committed::Done),
        Applied::Unmet { op, .. } => Ok(Committed::Changed {
            check: checks.get(op).copied().flatten().unwrap_or_default(),
        }),
        other => Err(Error::Protocol {
            backend: backend.kind(),
            keys: Keys::none(),
            reason: format!("an indexed commit answered {other:?}"),
        }),
    }
}

/// Records `error`'s kind as the span's outcome, and hands it on.
fn outcome(span: &tracing::Span, error: Error) -> Error {
    span.record("outcome", error.kind());
    error
}

/// The error of an attempt whose closure panicked (its writes are dropped).
fn panicked<B: Backend>(tx: &Transaction<B>, span: &tracing::Span) -> Error {
    tx.end();
    outcome(
        span,
        Error::Transaction {
            reason: "its closure panicked; nothing was written".to_owned(),
        },
    )
}

/// The attempt was ended by something else than its commit: cannot happen, as only this
/// module ends attempts, but answered rather than assumed.
fn ended_elsewhere() -> Error {
    Error::Transaction {
        reason: "the attempt ended before its commit".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MemoryBackend, MemoryStore, Store};

    /// A store of another map than the transaction's is refused for reads and writes, and
    /// nothing is written.
    #[tokio::test]
    async fn stores_of_another_backend_are_refused() -> crate::Result<()> {
        let here = MemoryBackend::new();
        let elsewhere = MemoryBackend::new();
        let ours = &MemoryStore::<u8>::builder(here.clone(), "n").build()?;
        let theirs = &MemoryStore::<u8>::builder(elsewhere, "n").build()?;
        let read = transaction(&here, |tx| async move { tx.get(theirs, "a").await }).await;
        assert!(matches!(read, Err(Error::Transaction { .. })), "{read:?}");
        let written = transaction(&here, |tx| async move {
            tx.set(ours, "a", &1)?;
            tx.set(theirs, "a", &1)
        })
        .await;
        assert!(
            matches!(written, Err(Error::Transaction { .. })),
            "{written:?}"
        );
        assert_eq!(ours.get("a").await?, None);
        assert_eq!(theirs.get("a").await?, None);
        Ok(())
    }

    #[test]
    fn options_keep_at_least_one_attempt() {
        let options = TransactionOptions::new().attempts(0);
        assert_eq!(options.max_attempts(), 1);
        assert_eq!(
            TransactionOptions::default().max_duration(),
            DEFAULT_TRANSACTION_DEADLINE
        );
    }
}
