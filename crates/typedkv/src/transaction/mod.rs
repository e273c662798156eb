//! Transactions over several entities: read, decide, commit all or nothing.
//!
//! [`transaction`] runs its closure with a [`Transaction`] handle: reads go to the backend
//! and are remembered with what they saw; writes are only kept. When the closure returns
//! `Ok`, the attempt commits in one atomic step ([`Backend::commit`]: one script on Redis,
//! the map's lock in process), which applies the writes only if every key read still holds
//! what was read. Otherwise nothing is written and the closure runs again on fresh reads,
//! after the pause [`Store::update`](crate::Store::update) takes between its attempts.
//!
//! - `mod.rs`: [`transaction`], [`Transactions`], the options and the attempts;
//! - `handle.rs`: [`Transaction`], what one attempt reads and writes.
//!
//! What they need of the backend and of each store is `store/participation.rs`, behind
//! object-safe traits (so `dyn Store<T>` takes part).

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
use crate::store::Store;
use crate::store::participation::Committer;
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
    F: FnMut(Transaction) -> Fut,
    Fut: Future<Output = Result<R, E>>,
    E: From<Error>,
{
    Transactions::new(backend).run(f).await
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
///   ([`Error::UniqueViolation`] aborts the transaction), and commits beside the other
///   stores in the same atomic step, with every key of its own in one of its partitions;
///   keys it only read are written back as read (same bytes, same TTL), which is how its
///   atomic step checks them. One store with indexes per transaction.
/// - **Errors**: [`Error::Conflict`] after [`TransactionOptions::attempts`] attempts whose
///   reads kept changing; [`Error::Timeout`] with [`Waited::Transaction`] past the
///   deadline; [`Error::Transaction`] when `f` panicked or asked what a transaction cannot
///   do (stores on another backend, two stores with indexes or two partitions of one,
///   keys in several cluster slots, a write with a
///   [`Condition`](crate::Condition)). In each case nothing was
///   written, except that a commit whose reply did not arrive (a reply timeout, a broken
///   connection) may have applied entirely: never in part.
/// - **Cancellation**: dropping the future writes nothing, or everything if its commit was
///   already sent.
pub async fn transaction_with<B, F, Fut, R, E>(
    backend: &B,
    options: TransactionOptions,
    f: F,
) -> Result<R, E>
where
    B: Backend,
    F: FnMut(Transaction) -> Fut,
    Fut: Future<Output = Result<R, E>>,
    E: From<Error>,
{
    Transactions::new(backend).run_with(options, f).await
}

/// Where transactions run: a backend, its type erased. What [`transaction`] uses, and the way
/// to run one where only `dyn Store<T>`s are at hand ([`Transactions::of`]).
///
/// ```
/// use std::sync::Arc;
/// use typedkv::{Error, MemoryStore, Store, Transactions};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Error> {
/// // Stores chosen at run time (memory here, Redis in production) behind `dyn Store`.
/// let backend = typedkv::MemoryBackend::new();
/// let stock: Arc<dyn Store<u32>> = Arc::new(MemoryStore::builder(backend.clone(), "stock").build()?);
/// let orders: Arc<dyn Store<String>> = Arc::new(MemoryStore::builder(backend, "order").build()?);
/// stock.set("widget", &3).await?;
///
/// let (stock, orders) = (&stock, &orders);
/// let placed = Transactions::of(stock.as_ref())?
///     .run(|tx| async move {
///         let left = tx.get(stock, "widget").await?.unwrap_or(0);
///         if left == 0 {
///             return Ok(false);
///         }
///         tx.set(stock, "widget", &(left - 1))?;
///         tx.set(orders, "o-1", &"widget".to_owned())?;
///         Ok::<_, Error>(true)
///     })
///     .await?;
/// assert!(placed);
/// assert_eq!(stock.get("widget").await?, Some(2));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Transactions {
    backend: Arc<dyn Committer>,
    location: Arc<str>,
}

impl std::fmt::Debug for Transactions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transactions")
            .field("backend", &self.backend.kind())
            .finish_non_exhaustive()
    }
}

impl Transactions {
    /// Transactions on `backend`.
    pub fn new<B: Backend>(backend: &B) -> Self {
        Self::on(Arc::new(backend.clone()))
    }

    /// Transactions on the backend of `store` (any of typedkv's stores, `dyn Store<T>`
    /// included). [`Error::Transaction`] for a store implemented outside typedkv.
    pub fn of<T, S>(store: &S) -> Result<Self, Error>
    where
        T: serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
        S: Store<T> + ?Sized,
    {
        match store.transaction_part() {
            Some(part) => Ok(Self::on(part.store.committer())),
            None => Err(cannot_take_part(store.namespace())),
        }
    }

    fn on(backend: Arc<dyn Committer>) -> Self {
        let location = backend.data_location().into();
        Transactions { backend, location }
    }

    /// Runs `f` as [`transaction`] does.
    pub async fn run<F, Fut, R, E>(&self, f: F) -> Result<R, E>
    where
        F: FnMut(Transaction) -> Fut,
        Fut: Future<Output = Result<R, E>>,
        E: From<Error>,
    {
        self.run_with(TransactionOptions::default(), f).await
    }

    /// Runs `f` as [`transaction_with`] does.
    pub async fn run_with<F, Fut, R, E>(
        &self,
        options: TransactionOptions,
        mut f: F,
    ) -> Result<R, E>
    where
        F: FnMut(Transaction) -> Fut,
        Fut: Future<Output = Result<R, E>>,
        E: From<Error>,
    {
        let span = tracing::debug_span!(
            "typedkv.transaction",
            backend = self.backend.kind(),
            attempts = tracing::field::Empty,
            outcome = tracing::field::Empty,
        );
        let deadline = Instant::now() + options.deadline;
        // The error of a transaction past its deadline, naming a key it used.
        let timed_out = |key: Option<String>| Error::Timeout {
            backend: self.backend.kind(),
            keys: key.map_or_else(Keys::none, Keys::one),
            timeout: options.deadline,
            waited: Waited::Transaction,
        };
        let mut changed = String::new();
        for attempt in 1..=options.attempts {
            span.record("attempts", attempt);
            let tx = Transaction::new(Arc::clone(&self.backend), Arc::clone(&self.location));
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
            let commit = commit(&*self.backend, &gathered);
            let committed =
                tokio::time::timeout_at(deadline, commit.instrument(span.clone())).await;
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
}

/// Commits what an attempt gathered: through [`Backend::commit`], or, when it touched a
/// store with indexes, as that store's ops in one atomic step (the keys it only read
/// written back as read, each guarded by what was read).
async fn commit(backend: &dyn Committer, gathered: &handle::Attempt) -> Result<Committed, Error> {
    let Some(indexed) = &gathered.indexed else {
        // The stores' write concern, if they ask for one; else the backend's own.
        let concerned = match gathered.concern {
            Some((_, Some(concern))) => Some(backend.with_concern(concern)?),
            _ => None,
        };
        let backend = concerned.as_deref().unwrap_or(backend);
        return backend.commit(&gathered.checks, &gathered.writes).await;
    };
    let (ops, checks, beside) = gathered.indexed_ops(indexed);
    let beside_checks = beside.positions.clone();
    match indexed.apply(ops, beside).await? {
        Applied::Done { .. } => Ok(Committed::Done),
        Applied::Unmet { op, .. } => Ok(Committed::Changed {
            check: checks.get(op).copied().flatten().unwrap_or_default(),
        }),
        Applied::Changed { check } => Ok(Committed::Changed {
            check: beside_checks.get(check).copied().unwrap_or_default(),
        }),
        other => Err(Error::Protocol {
            backend: backend.kind(),
            keys: Keys::none(),
            reason: format!("an indexed commit answered {other:?}"),
        }),
    }
}

/// The refusal of a store that has no [`TransactionPart`](crate::TransactionPart)
/// (implemented outside typedkv).
fn cannot_take_part(namespace: &str) -> Error {
    Error::Transaction {
        reason: format!(
            "store {namespace:?} cannot take part in a transaction: only typedkv's own stores can"
        ),
    }
}

/// Records `error`'s kind as the span's outcome, and hands it on.
fn outcome(span: &tracing::Span, error: Error) -> Error {
    span.record("outcome", error.kind());
    error
}

/// The error of an attempt whose closure panicked (its writes are dropped).
fn panicked(tx: &Transaction, span: &tracing::Span) -> Error {
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
    use futures::stream::BoxStream;

    use super::*;
    use crate::{
        Expiry, Loader, MemoryBackend, MemoryStore, SetOptions, Store, Update, Version, Versioned,
    };

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

    /// A store implemented outside typedkv (here: one forwarding to a typedkv store, as a
    /// user's decorator would) has no part to take: refused, by `Transactions::of` and by
    /// every call of the handle, and nothing is written.
    #[tokio::test]
    async fn stores_implemented_elsewhere_are_refused() -> crate::Result<()> {
        let backend = MemoryBackend::new();
        let inner = MemoryStore::<u8>::builder(backend.clone(), "n").build()?;
        let foreign = &Decorated(inner.clone());
        let of = Transactions::of(foreign);
        assert!(matches!(of, Err(Error::Transaction { .. })), "{of:?}");
        let read = transaction(&backend, |tx| async move { tx.get(foreign, "a").await }).await;
        assert!(matches!(read, Err(Error::Transaction { .. })), "{read:?}");
        let wrote = transaction(&backend, |tx| async move { tx.set(foreign, "a", &1) }).await;
        assert!(matches!(wrote, Err(Error::Transaction { .. })), "{wrote:?}");
        let deleted = transaction(&backend, |tx| async move { tx.delete(foreign, "a") }).await;
        assert!(
            matches!(deleted, Err(Error::Transaction { .. })),
            "{deleted:?}"
        );
        assert_eq!(inner.get("a").await?, None);
        Ok(())
    }

    /// A user's own `Store`: forwards every method it must implement, and no more.
    #[derive(Debug)]
    struct Decorated(MemoryStore<u8>);

    #[async_trait::async_trait]
    impl Store<u8> for Decorated {
        fn namespace(&self) -> &str {
            self.0.namespace()
        }
        async fn get(&self, id: &str) -> crate::Result<Option<u8>> {
            self.0.get(id).await
        }
        async fn set_opts(&self, id: &str, value: &u8, options: SetOptions) -> crate::Result<bool> {
            self.0.set_opts(id, value, options).await
        }
        async fn delete(&self, id: &str) -> crate::Result<bool> {
            self.0.delete(id).await
        }
        async fn exists(&self, id: &str) -> crate::Result<bool> {
            self.0.exists(id).await
        }
        async fn ttl(&self, id: &str) -> crate::Result<Option<Expiry>> {
            self.0.ttl(id).await
        }
        async fn get_many(&self, ids: &[&str]) -> crate::Result<Vec<Option<u8>>> {
            self.0.get_many(ids).await
        }
        async fn update(
            &self,
            id: &str,
            f: &mut (dyn FnMut(Option<u8>) -> Update<u8> + Send),
        ) -> crate::Result<Option<u8>> {
            self.0.update(id, f).await
        }
        async fn get_or_load(&self, id: &str, loader: Loader<u8>) -> crate::Result<u8> {
            self.0.get_or_load(id, loader).await
        }
        async fn get_versioned(&self, id: &str) -> crate::Result<Option<Versioned<u8>>> {
            self.0.get_versioned(id).await
        }
        async fn set_if_version(
            &self,
            id: &str,
            value: &u8,
            version: &Version,
        ) -> crate::Result<Option<Version>> {
            self.0.set_if_version(id, value, version).await
        }
        fn scan(&self) -> BoxStream<'static, crate::Result<(String, u8)>> {
            self.0.scan()
        }
        fn scan_ids(&self) -> BoxStream<'static, crate::Result<String>> {
            self.0.scan_ids()
        }
        async fn count(&self) -> crate::Result<u64> {
            self.0.count().await
        }
        async fn delete_many(&self, ids: &[&str]) -> crate::Result<u64> {
            self.0.delete_many(ids).await
        }
        async fn clear(&self) -> crate::Result<u64> {
            self.0.clear().await
        }
        async fn set_many(&self, entries: &[(&str, &u8)]) -> crate::Result<()> {
            self.0.set_many(entries).await
        }
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
