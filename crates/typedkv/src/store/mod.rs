//! The typed, object-safe store trait and its generic conveniences; `pointers.rs` makes
//! `Arc<S>`, `Box<S>` and `&S` stores wherever `S` is one; `participation.rs` is how a store
//! takes part in a transaction.

pub(crate) mod participation;
mod pointers;

use std::fmt::Display;

use async_trait::async_trait;
use futures::stream::BoxStream;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use self::participation::TransactionPart;
use crate::error::{BoxError, Error, Result};
use crate::index::{RangePage, RangeQuery};
use crate::load::{Loaded, Loader};
use crate::options::{Expiry, SetOptions};
use crate::update::Update;
use crate::version::{Version, Versioned};

/// A typed key-value repository for values of type `T` under one namespace.
///
/// Ids are arbitrary non-empty strings (up to [`MAX_ID_LEN`](crate::MAX_ID_LEN) bytes); the
/// store keeps them under `namespace:id`. Values are encoded with the store's codec on the way
/// in and decoded on the way out; a missing key is `Ok(None)`, every failure an [`Error`]
/// naming the key.
///
/// The trait is object-safe: application code takes `Arc<dyn Store<User>>`, production hands
/// it a [`RedisStore`](crate::RedisStore), tests a [`MemoryStore`](crate::MemoryStore).
/// `Arc<S>`, `Box<S>` and `&S` are stores wherever `S` is (`dyn Store<T>` included), every
/// store is `Debug` (without secrets), and `scan` streams are `'static`. Both
/// implement every method with the same semantics (the conformance suite in
/// `typedkv-testkit` checks this against a real Redis server). Generic conveniences (ids of
/// any `Display` type, iterators) live on [`StoreExt`].
///
/// ```
/// use std::sync::Arc;
/// use serde::{Deserialize, Serialize};
/// use typedkv::{MemoryStore, Store};
///
/// #[derive(Debug, PartialEq, Serialize, Deserialize)]
/// struct User { name: String }
///
/// async fn rename(users: &dyn Store<User>, id: &str, name: &str) -> typedkv::Result<bool> {
///     Ok(match users.get(id).await? {
///         Some(mut user) => { user.name = name.into(); users.set(id, &user).await?; true }
///         None => false,
///     })
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> typedkv::Result<()> {
/// let users: Arc<dyn Store<User>> = Arc::new(MemoryStore::new("user")?);
/// users.set("42", &User { name: "Alice".into() }).await?;
/// assert!(rename(users.as_ref(), "42", "Alicia").await?);
/// assert_eq!(users.get("42").await?, Some(User { name: "Alicia".into() }));
/// assert_eq!(users.get("43").await?, None);
/// # Ok(()) }
/// ```
///
/// [`Error`]: crate::Error
#[async_trait]
pub trait Store<T>: std::fmt::Debug + Send + Sync
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    /// The namespace the store's keys live under.
    fn namespace(&self) -> &str;

    /// The value stored under `id`, or `Ok(None)` if there is none (never written, deleted or
    /// expired).
    ///
    /// Bytes that this store cannot read (another codec or schema version, another program's
    /// data, corruption) are an [`Error::Decode`](crate::Error::Decode), never a wrong value;
    /// a key of another Redis type is an [`Error::Refused`](crate::Error::Refused) with code
    /// `WRONGTYPE`.
    async fn get(&self, id: &str) -> Result<Option<T>>;

    /// Stores `value` under `id`, replacing any previous value, with the store's default TTL
    /// (no expiry if the store has none: an existing TTL is cleared, as Redis `SET` does).
    async fn set(&self, id: &str, value: &T) -> Result<()> {
        self.set_opts(id, value, SetOptions::new())
            .await
            .map(|_| ())
    }

    /// Stores `value` under `id` with explicit TTL policy and condition; returns whether it
    /// wrote (`false` only when the [`Condition`](crate::Condition) was not met).
    async fn set_opts(&self, id: &str, value: &T, options: SetOptions) -> Result<bool>;

    /// Removes `id`; returns whether it existed.
    async fn delete(&self, id: &str) -> Result<bool>;

    /// Whether a value is stored under `id`. Does not decode it.
    async fn exists(&self, id: &str) -> Result<bool>;

    /// The remaining life of `id`: `Ok(None)` when there is no such key,
    /// `Ok(Some(Expiry::Never))` when it exists without expiry, `Ok(Some(Expiry::In(d)))`
    /// when it expires in `d`.
    async fn ttl(&self, id: &str) -> Result<Option<Expiry>>;

    /// The values of `ids`, in the same order, `None` where there is none. One round trip
    /// when every id has a value; the ids without one are read again (one more round trip),
    /// because Redis' `MGET` reads a key of another Redis type as nil where `GET` refuses it.
    ///
    /// If any stored value cannot be decoded, or a key holds another Redis type (an
    /// [`Error::Refused`](crate::Error::Refused) with code `WRONGTYPE`, as from
    /// [`get`](Store::get)), the whole call fails with an error naming that key.
    async fn get_many(&self, ids: &[&str]) -> Result<Vec<Option<T>>>;

    /// Atomic read-modify-write of `id`: calls `f` with the current value (`None` if absent)
    /// and applies its decision only if the value has not changed meanwhile; otherwise calls
    /// `f` again with the new value. No update is lost, however many tasks or processes
    /// update the key at once. Returns the value stored afterwards (`None` if absent).
    ///
    /// `f` may run several times, so it must not have side effects beyond its result. The
    /// key's TTL is kept; a key the update creates gets the store's default TTL. After the
    /// store's attempt limit (builder: `update_attempts`, default
    /// [`DEFAULT_UPDATE_ATTEMPTS`](crate::DEFAULT_UPDATE_ATTEMPTS)), with short random pauses
    /// between attempts under contention, it fails with
    /// [`Error::Conflict`](crate::Error::Conflict). On Redis this is a Lua compare-and-set on
    /// the previous bytes: one round trip per attempt, and safe on shared connections and on
    /// Redis Cluster (one key). Use [`StoreExt::update_with`] for a closure.
    async fn update(
        &self,
        id: &str,
        f: &mut (dyn FnMut(Option<T>) -> Update<T> + Send),
    ) -> Result<Option<T>>;

    /// Cache-aside: the value under `id`, or else the one `loader` produces, stored as the
    /// loader says ([`Loaded`]: store default TTL, a TTL of its own, no expiry, or not stored
    /// at all).
    ///
    /// However many callers of one store (clones included) miss the same key at once, the
    /// loader runs once and they all get its value (each decodes its own copy of the stored
    /// bytes): a load is shared by every call of the key that began (was first polled)
    /// before the load ended, whenever that call's own read of the key returns, and by no
    /// call that began after. Loads are shared **per store**: two stores built separately on one namespace,
    /// like two processes, each run their own loader (the last write wins); clone one store to
    /// share its loads. A loader error or panic reaches every one of them as
    /// [`Error::Load`](crate::Error::Load) and is never cached: the next call loads again. A
    /// failure of the store's own steps (reading, encoding, a TTL out of range, writing)
    /// reaches them as that error, e.g. [`Error::InvalidConfig`](crate::Error::InvalidConfig)
    /// for `Loaded::with_ttl(Duration::ZERO)`. The loader runs as a task of its own, so a
    /// caller that gives up does not cancel it for the others. Before loading, the task looks
    /// at the key once more, in case a value was stored since the caller's read missed. Use
    /// [`StoreExt::get_or_insert_with`] for a closure.
    async fn get_or_load(&self, id: &str, loader: Loader<T>) -> Result<T>;

    /// The value under `id` with its [`Version`], for a later
    /// [`set_if_version`](Store::set_if_version); `Ok(None)` if there is none.
    async fn get_versioned(&self, id: &str) -> Result<Option<Versioned<T>>>;

    /// Stores `value` under `id` only if the stored value still has `version` (optimistic
    /// concurrency for a value held across a request). Returns the new version when it
    /// wrote, `None` when the value was changed or deleted meanwhile (nothing is written then).
    /// The key's TTL is kept. One atomic step on the server (a Lua compare-and-set).
    async fn set_if_version(
        &self,
        id: &str,
        value: &T,
        version: &Version,
    ) -> Result<Option<Version>>;

    /// Every `(id, value)` of the namespace, as a stream, page by page (Redis `SCAN` + `MGET`,
    /// never `KEYS`; ids with glob characters cannot match other namespaces' keys).
    ///
    /// Each id present for the whole scan is yielded exactly once (the stream remembers the
    /// ids it yielded, since Redis' `SCAN` may return a key twice: memory grows with the
    /// namespace). Keys written or deleted during the scan may or may not appear. A value
    /// that cannot be decoded, or a key whose id this store refuses (written by another
    /// program: not UTF-8, [`DecodeProblem::IdNotUtf8`](crate::DecodeProblem::IdNotUtf8);
    /// empty or longer than [`MAX_ID_LEN`](crate::MAX_ID_LEN),
    /// [`DecodeProblem::InvalidId`](crate::DecodeProblem::InvalidId)), is an
    /// [`Error::Decode`](crate::Error::Decode) item naming its key, and the stream goes on; a
    /// failed `SCAN` is an `Err` item that ends it. Keys of other Redis types (a list under
    /// the namespace) are no values of a store and are skipped.
    ///
    /// The stream owns what it needs (`'static`): it can be moved into a spawned task or a
    /// streaming response body, and outlive the borrow of the store it came from.
    fn scan(&self) -> BoxStream<'static, Result<(String, T)>>;

    /// The ids of the namespace, as [`scan`](Store::scan) would yield them, without reading
    /// the values (a key whose id this store refuses is an error item, and the stream goes
    /// on).
    fn scan_ids(&self) -> BoxStream<'static, Result<String>>;

    /// How many string keys the namespace holds (those whose id this store refuses included), by
    /// scanning them: exact for a namespace nobody writes to meanwhile, approximate
    /// otherwise, and as slow as a scan.
    async fn count(&self) -> Result<u64>;

    /// Removes `ids` (one `UNLINK`); returns how many existed.
    async fn delete_many(&self, ids: &[&str]) -> Result<u64>;

    /// Removes every string key of the namespace (scan + `UNLINK`, page by page), those whose
    /// id this store refuses included, and nothing else; returns how many it removed. Keys of other
    /// Redis types under the namespace (a list at `ns:x`, written by another program) are no
    /// values of a store and are left alone, as [`scan`](Store::scan) skips them. Keys
    /// written meanwhile may survive.
    async fn clear(&self) -> Result<u64>;

    /// Stores all `entries` with the store's default TTL. On standalone Redis and in memory
    /// the batch is applied atomically (all values become visible at once). If one id occurs
    /// twice, the later entry wins.
    async fn set_many(&self, entries: &[(&str, &T)]) -> Result<()>;

    /// Every entity whose equality or unique index `index` holds `value` (bytes exactly as the
    /// index's extractor gives them), as `(id, value)` in id order, read a page at a time.
    /// Only entities whose current value gives `value` are answered: never a deleted, expired
    /// or changed one. A store without that index answers [`Error::UnknownIndex`]; stores
    /// without indexes answer it for every name.
    ///
    /// ```
    /// use futures::TryStreamExt;
    /// use serde::{Deserialize, Serialize};
    /// use typedkv::{Index, MemoryBackend, MemoryStore, Store};
    ///
    /// #[derive(Serialize, Deserialize)]
    /// struct Order { customer: String, cents: u64 }
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> typedkv::Result<()> {
    /// let orders = MemoryStore::<Order>::builder(MemoryBackend::new(), "order")
    ///     .index(Index::equality("customer", |o: &Order| [o.customer.clone()]))
    ///     .build()?;
    /// orders.set("1", &Order { customer: "ann".into(), cents: 500 }).await?;
    /// orders.set("2", &Order { customer: "bob".into(), cents: 700 }).await?;
    /// let anns: Vec<(String, Order)> = orders.find_by("customer", b"ann").try_collect().await?;
    /// assert_eq!(anns.len(), 1);
    /// assert_eq!(orders.count_by("customer", b"bob").await?, 1);
    /// # Ok(()) }
    /// ```
    fn find_by(&self, index: &str, value: &[u8]) -> BoxStream<'static, Result<(String, T)>> {
        let _ = value;
        let error = no_index(self.namespace(), index);
        Box::pin(futures::stream::once(async { Err(error) }))
    }

    /// The entity holding `value` in index `index` (a unique index answers at most one; an
    /// equality index its first by id), or `None`.
    async fn find_one_by(&self, index: &str, value: &[u8]) -> Result<Option<(String, T)>> {
        use futures::TryStreamExt;
        self.find_by(index, value).try_next().await
    }

    /// How many entities hold `value` in equality or unique index `index` (not counting
    /// expired ones).
    async fn count_by(&self, index: &str, value: &[u8]) -> Result<u64> {
        let _ = value;
        Err(no_index(self.namespace(), index))
    }

    /// One page of range index `index`: entities whose value lies in the query's range, in
    /// its order, and the cursor of the next page ([`RangeQuery::after`](crate::RangeQuery::after)).
    ///
    /// ```
    /// use serde::{Deserialize, Serialize};
    /// use typedkv::{Index, MemoryBackend, MemoryStore, RangeQuery, Store};
    ///
    /// #[derive(Serialize, Deserialize)]
    /// struct User { age: u32 }
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> typedkv::Result<()> {
    /// let users = MemoryStore::<User>::builder(MemoryBackend::new(), "user")
    ///     .index(Index::range("age", |u: &User| Some(u.age)))
    ///     .build()?;
    /// for (id, age) in [("a", 17), ("b", 30), ("c", 45), ("d", 70)] {
    ///     users.set(id, &User { age }).await?;
    /// }
    /// let first = users.find_range("age", RangeQuery::new(18u32..65).limit(1)).await?;
    /// assert_eq!(first.items[0].0, "b");
    /// let cursor = first.next.expect("one more page");
    /// let second = users.find_range("age", RangeQuery::new(18u32..65).limit(1).after(cursor)).await?;
    /// assert_eq!(second.items[0].0, "c");
    /// # Ok(()) }
    /// ```
    async fn find_range(&self, index: &str, query: RangeQuery) -> Result<RangePage<T>> {
        let _ = query;
        Err(no_index(self.namespace(), index))
    }

    /// How this store takes part in a [transaction](crate::transaction): `Some` for
    /// typedkv's own stores ([`TypedStore`](crate::TypedStore),
    /// [`CachedStore`](crate::CachedStore), and pointers to them), `None` (the default) for
    /// stores implemented elsewhere, which transactions refuse with
    /// [`Error::Transaction`](crate::Error::Transaction).
    fn transaction_part(&self) -> Option<TransactionPart<'_, T>> {
        None
    }
}

/// The answer of a store without indexes to a query of one.
fn no_index(namespace: &str, index: &str) -> Error {
    Error::UnknownIndex {
        namespace: namespace.to_owned(),
        index: index.to_owned(),
    }
}

/// Generic conveniences over any [`Store`], including `dyn Store`: ids of any [`Display`]
/// type (integers, UUIDs, ...) and batches from iterators.
///
/// ```
/// use typedkv::{MemoryStore, StoreExt};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> typedkv::Result<()> {
/// let scores = MemoryStore::<u32>::new("score")?;
/// scores.put(7, &100).await?;                      // key "score:7"
/// scores.put_all([(8, 90), (9, 80)]).await?;
/// assert_eq!(scores.fetch(7).await?, Some(100));
/// assert_eq!(scores.fetch_all(7..=10).await?, vec![Some(100), Some(90), Some(80), None]);
/// # Ok(()) }
/// ```
#[async_trait]
pub trait StoreExt<T>: Store<T>
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    /// [`Store::get`] with an id of any `Display` type.
    async fn fetch<I: Display + Send>(&self, id: I) -> Result<Option<T>> {
        self.get(&id.to_string()).await
    }

    /// [`Store::set`] with an id of any `Display` type.
    async fn put<I: Display + Send>(&self, id: I, value: &T) -> Result<()> {
        self.set(&id.to_string(), value).await
    }

    /// [`Store::delete`] with an id of any `Display` type.
    async fn remove<I: Display + Send>(&self, id: I) -> Result<bool> {
        self.delete(&id.to_string()).await
    }

    /// [`Store::update`] with any closure.
    ///
    /// ```
    /// use typedkv::{MemoryStore, StoreExt, Update};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> typedkv::Result<()> {
    /// let counters = MemoryStore::<u64>::new("counter")?;
    /// let after = counters.update_with("visits", |n| Update::Set(n.unwrap_or(0) + 1)).await?;
    /// assert_eq!(after, Some(1));
    /// # Ok(()) }
    /// ```
    async fn update_with<F>(&self, id: &str, mut f: F) -> Result<Option<T>>
    where
        F: FnMut(Option<T>) -> Update<T> + Send,
    {
        self.update(id, &mut f).await
    }

    /// [`Store::get_or_load`] with any async closure.
    ///
    /// ```
    /// use typedkv::{Loaded, MemoryStore, Store, StoreExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> typedkv::Result<()> {
    /// let profiles = MemoryStore::<String>::new("profile")?;
    /// let name = profiles
    ///     .get_or_insert_with("42", || async { Ok::<_, std::io::Error>(Loaded::new("Alice".to_owned())) })
    ///     .await?;
    /// assert_eq!(name, "Alice");
    /// assert!(profiles.exists("42").await?);   // cached for the next caller
    /// # Ok(()) }
    /// ```
    async fn get_or_insert_with<F, Fut, E>(&self, id: &str, loader: F) -> Result<T>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = std::result::Result<Loaded<T>, E>> + Send + 'static,
        E: Into<BoxError>,
    {
        let loader: Loader<T> =
            Box::new(move || Box::pin(async move { loader().await.map_err(Into::into) }));
        self.get_or_load(id, loader).await
    }

    /// [`Store::get_many`] over ids from any iterator of `Display` items.
    async fn fetch_all<I>(&self, ids: I) -> Result<Vec<Option<T>>>
    where
        I: IntoIterator + Send,
        I::Item: Display,
        I::IntoIter: Send,
    {
        let ids: Vec<String> = ids.into_iter().map(|id| id.to_string()).collect();
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        self.get_many(&refs).await
    }

    /// [`Store::set_many`] from any iterator of `(id, value)` pairs.
    async fn put_all<I, K>(&self, entries: I) -> Result<()>
    where
        I: IntoIterator<Item = (K, T)> + Send,
        I::IntoIter: Send,
        K: Display,
    {
        let owned: Vec<(String, T)> = entries
            .into_iter()
            .map(|(id, value)| (id.to_string(), value))
            .collect();
        let refs: Vec<(&str, &T)> = owned.iter().map(|(id, v)| (id.as_str(), v)).collect();
        self.set_many(&refs).await
    }
}

impl<T, S> StoreExt<T> for S
where
    S: Store<T> + ?Sized,
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
{
}
