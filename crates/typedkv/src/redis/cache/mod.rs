//! [`CachedStore`] (feature `cache`): decoded values kept in process, invalidated by Redis.
//!
//! `entries.rs` holds the cache and the rules that keep it from serving stale values;
//! `tracking.rs` the connection on which Redis reports changed keys.

mod entries;
mod fail_safe;
mod trackable;
mod tracking;

pub use self::fail_safe::{Served, Stale, StaleBecause};
pub use self::trackable::Trackable;
pub use self::tracking::TRACKING_CLIENT_NAME;

use std::fmt;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::stream::BoxStream;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::task::JoinHandle;

use self::entries::Entries;
use self::fail_safe::Fallback;
use crate::codec::{Bincode, Codec};
use crate::error::{Error, Result};
use crate::index::{RangePage, RangeQuery};
use crate::load::Loader;
use crate::options::{Expiry, SetOptions};
use crate::redis::RedisPool;
use crate::store::{Store, TransactionPart};
use crate::typed::TypedStore;
use crate::typed::write_listeners::{self, WriteListener};
use crate::update::Update;
use crate::version::{Version, Versioned};

/// Default capacity of a [`CachedStore`], in entries.
pub const DEFAULT_CACHE_CAPACITY: usize = 10_000;

/// A [`RedisStore`](crate::RedisStore) (or a `RedisSentinelStore` or `RedisClusterStore`)
/// whose `get` serves decoded values from process memory, kept fresh by Redis itself.
///
/// - **Hits** cost a hash lookup: no round trip, no decode. [`CachedStore::get_shared`]
///   hands out the cached `Arc<T>`; [`Store::get`] returns a clone of it.
/// - **Misses** read the value and its TTL in one round trip and cache the decoded value
///   (absent keys are not cached). The cache is bounded ([`capacity`], in entries; S3-FIFO
///   eviction via `quick_cache`).
/// - **Invalidation**: a connection of its own subscribes to changes of every key under the
///   store's prefix (RESP3 `CLIENT TRACKING ON BCAST PREFIX`). A write by anyone (this
///   process, another one, `redis-cli`) evicts the entry as soon as Redis' notice arrives.
///   Writes by this process, through any store of the same server and namespace (this
///   one, another `CachedStore`, a plain store), evict it before they return.
/// - **Never silently stale**: if the tracking connection drops, the whole cache is
///   flushed and nothing is cached (every `get` reads Redis) until tracking is re-established
///   in the background. A fill that raced an invalidation is not cached.
/// - **TTL**: an entry is never served after its key's expiry in Redis.
/// - **Fail-safe reads** (opt-in, [`fail_safe`](CachedStoreBuilder::fail_safe)):
///   [`CachedStore::get_fail_safe`] answers the last value read, marked stale, when Redis
///   fails with a transient error or is slower than the
///   [soft timeout](CachedStoreBuilder::soft_timeout).
///
/// Only `get`, `get_shared` and `get_or_load` read the cache; every other operation
/// goes to Redis (and writes evict what they touch). Writes through the cache evict before
/// they return, and Redis echoes them as invalidations too; a read that races that echo goes
/// to Redis without caching. A burst of concurrent readers of a key that is being written by
/// another client may see an older value after a newer one until that write's invalidation
/// arrives (well under a millisecond on loopback). Lost tracking is retried every 100 ms.
/// Any [`Trackable`] store: on Sentinel a failover ends the tracking connection with the old
/// master, the cache is flushed, and tracking resumes on the new master (even while the old
/// master is still up and has not been demoted); on a [`RedisClusterStore`](crate::RedisClusterStore) the cache tracks on
/// every master, and tracks anew (flushing) when one drops or the set of masters changes
/// (checked every 500 ms). A cached hot `get` costs the same on a cluster. The Redis user
/// needs the `CLIENT` command.
///
/// ```no_run
/// # use typedkv::{CachedStore, RedisStore, Store, redis::RedisPool};
/// # async fn demo() -> typedkv::Result<()> {
/// let pool = RedisPool::from_url("redis://127.0.0.1:6379")?;
/// let users = RedisStore::<String>::builder(pool, "user").build()?;
/// let users = CachedStore::builder(users).capacity(50_000).build().await?;
/// users.set("1", &"Alice".to_owned()).await?;
/// let alice = users.get_shared("1").await?; // Redis once, then from memory
/// println!("{alice:?}, {:?}", users.stats());
/// # Ok(()) }
/// ```
///
/// [`capacity`]: CachedStoreBuilder::capacity
pub struct CachedStore<T, C = Bincode, B = RedisPool> {
    inner: Arc<Inner<T, C, B>>,
}

struct Inner<T, C, B> {
    store: TypedStore<T, B, C>,
    entries: Arc<Entries<T>>,
    /// The last known values, with fail-safe reads on; it hears every write of the process
    /// to the namespace (`typed/write_listeners.rs`).
    fallback: Option<Arc<Fallback<T>>>,
    /// Re-establishes tracking after a disconnect; stopped with the store.
    maintainer: JoinHandle<()>,
}

impl<T, C, B> Drop for Inner<T, C, B> {
    fn drop(&mut self) {
        self.maintainer.abort();
    }
}

impl<T, C, B> Clone for CachedStore<T, C, B> {
    fn clone(&self) -> Self {
        CachedStore {
            inner: Arc::clone(&self.inner),
        }
    }
}

/// What a [`CachedStore`] has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// `get`s answered from memory.
    pub hits: u64,
    /// `get`s that went to Redis.
    pub misses: u64,
    /// Invalidation messages received from Redis, counted once their entries are dropped.
    pub invalidations: u64,
    /// Times the whole cache was dropped (tracking lost, Redis flushed, `clear`).
    pub flushes: u64,
    /// Entries cached now.
    pub entries: usize,
}

/// Configures a [`CachedStore`]; from [`CachedStore::builder`].
#[must_use = "a builder does nothing until .build()"]
pub struct CachedStoreBuilder<T, C, B = RedisPool> {
    store: TypedStore<T, B, C>,
    capacity: usize,
    max_staleness: Option<Duration>,
    soft_timeout: Option<Duration>,
}

impl<T, C: Codec, B: Trackable> fmt::Debug for CachedStoreBuilder<T, C, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedStoreBuilder")
            .field("store", &self.store)
            .field("capacity", &self.capacity)
            .field("max_staleness", &self.max_staleness)
            .field("soft_timeout", &self.soft_timeout)
            .finish()
    }
}

impl<T, C, B> CachedStoreBuilder<T, C, B>
where
    T: Send + Sync + 'static,
    C: Codec,
    B: Trackable,
{
    /// How many values to keep at most. Default [`DEFAULT_CACHE_CAPACITY`].
    pub fn capacity(mut self, entries: usize) -> Self {
        self.capacity = entries;
        self
    }

    /// Fail-safe reads: [`CachedStore::get_fail_safe`] answers the last value read for a
    /// key, marked stale, when Redis fails with a transient error, if that value was known
    /// current at most `max_staleness` ago (and its key has not expired). Never a value this
    /// process wrote over or deleted, through any store of the same server and namespace.
    /// Costs a second table of up to [`capacity`](Self::capacity) values. Default: off.
    pub fn fail_safe(mut self, max_staleness: Duration) -> Self {
        self.max_staleness = Some(max_staleness);
        self
    }

    /// With [`fail_safe`](Self::fail_safe): a read that Redis has not answered within
    /// `wait` answers the last known value (marked stale) at once, and finishes in the
    /// background, caching what it reads. Only when there is a last known value: without
    /// one, the read waits for Redis as usual. Default: none.
    pub fn soft_timeout(mut self, wait: Duration) -> Self {
        self.soft_timeout = Some(wait);
        self
    }

    /// Opens the tracking connection (failing with its error if Redis cannot be reached or
    /// refuses `CLIENT TRACKING`) and starts the background task that keeps it open. Must be
    /// called within a tokio runtime. Fails with [`Error::InvalidConfig`] for a zero
    /// staleness bound or soft timeout, or a soft timeout without fail-safe reads.
    pub async fn build(self) -> Result<CachedStore<T, C, B>> {
        let fallback = match (self.max_staleness, self.soft_timeout) {
            (Some(bound), _) if bound.is_zero() => {
                return Err(Error::config(
                    "fail_safe needs a staleness bound above zero",
                ));
            }
            (_, Some(wait)) if wait.is_zero() => {
                return Err(Error::config("soft_timeout must be greater than zero"));
            }
            (None, Some(_)) => {
                return Err(Error::config(
                    "soft_timeout answers the last known value, so it needs fail_safe",
                ));
            }
            (Some(bound), soft) => Some(Arc::new(Fallback::new(self.capacity.max(1), bound, soft))),
            (None, None) => None,
        };
        let pool = self.store.backend().clone();
        let prefix = self.store.keyspace().prefix().to_owned();
        let entries = Arc::new(Entries::new(self.capacity.max(1)));
        let listen_key = write_listeners::key(&pool, &prefix);
        let entries_listener: Weak<dyn WriteListener> = Arc::downgrade(&entries) as _;
        write_listeners::listen(&listen_key, entries_listener);
        if let Some(fallback) = &fallback {
            let listener: Weak<dyn WriteListener> = Arc::downgrade(fallback) as _;
            write_listeners::listen(&listen_key, listener);
        }
        let lost = Arc::new(tracking::Lost::default());
        let switches = pool.switches();
        let conns = tracking::track(&pool, &prefix, &entries, &lost).await?;
        let maintainer = tokio::spawn(tracking::maintain(
            pool,
            prefix,
            Arc::downgrade(&entries),
            lost,
            conns,
            switches,
        ));
        Ok(CachedStore {
            inner: Arc::new(Inner {
                store: self.store,
                entries,
                fallback,
                maintainer,
            }),
        })
    }
}

impl<T, C, B> CachedStore<T, C, B>
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
    C: Codec,
    B: Trackable,
{
    /// Starts configuring a cache in front of `store`.
    pub fn builder(store: TypedStore<T, B, C>) -> CachedStoreBuilder<T, C, B> {
        CachedStoreBuilder {
            store,
            capacity: DEFAULT_CACHE_CAPACITY,
            max_staleness: None,
            soft_timeout: None,
        }
    }

    /// The value under `id`, shared with the cache: from memory on a hit, else read from
    /// Redis and cached.
    pub async fn get_shared(&self, id: &str) -> Result<Option<Arc<T>>> {
        let key = self.inner.store.keyspace().key(id)?;
        match self.hit(&key) {
            Some(value) => Ok(Some(value)),
            None => self.read_through(&key).await,
        }
    }

    /// The value under `id`, and whether it is current: like [`get_shared`], but with
    /// [fail-safe reads](CachedStoreBuilder::fail_safe) on, when Redis fails with a
    /// transient error (or does not answer within the
    /// [soft timeout](CachedStoreBuilder::soft_timeout)), the last value read for the key,
    /// marked [stale](Served::stale) with its age, if it is within the staleness bound.
    /// Otherwise the error, as `get` would. Writes never fall back: they report their error.
    ///
    /// - The age is the time since the value was last known current (its read's start, or a
    ///   hit while tracking): an upper bound. A stale answer says why:
    ///   [`StaleBecause::Failed`] with the transient error (timeout, connection, failover),
    ///   or [`StaleBecause::SoftTimeout`], in which case the read finishes in the background
    ///   and caches what it finds.
    /// - A value this process wrote over or deleted is never answered, whichever of its stores
    ///   wrote it (this cache, another `CachedStore` built apart, a plain store of the same
    ///   server and namespace): every write tells the process' caches before it returns. A
    ///   value another client wrote over is answered until the bound (its age keeps growing
    ///   from the last time this process saw it current), and never past its key's TTL.
    /// - Tested with a hung (`SIGSTOP`) and a killed and restarted server, and through a
    ///   Sentinel failover (stale answers while the master is gone, current ones and
    ///   invalidations from the new master after).
    ///
    /// [`get_shared`]: Self::get_shared
    pub async fn get_fail_safe(&self, id: &str) -> Result<Option<Served<T>>> {
        let fresh = |value: Option<Arc<T>>| value.map(|value| Served { value, stale: None });
        let key = self.inner.store.keyspace().key(id)?;
        if let Some(value) = self.hit(&key) {
            return Ok(fresh(Some(value)));
        }
        let Some(fallback) = &self.inner.fallback else {
            return self.read_through(&key).await.map(fresh);
        };
        let read = match (fallback.soft_timeout, fallback.stale(&key)) {
            (Some(wait), Some((value, age))) => {
                // In a task of its own, so it finishes (and caches) after we stop waiting.
                let this = self.clone();
                let background_key = key.clone();
                let mut read =
                    tokio::spawn(async move { this.read_through(&background_key).await });
                match tokio::time::timeout(wait, &mut read).await {
                    Ok(joined) => joined.unwrap_or_else(|e| Err(self.lost_read(&key, e))),
                    Err(_) => {
                        let because = StaleBecause::SoftTimeout(wait);
                        let stale = Some(Stale { age, because });
                        return Ok(Some(Served { value, stale }));
                    }
                }
            }
            _ => self.read_through(&key).await,
        };
        match read {
            Err(error) if error.is_transient() => match fallback.stale(&key) {
                Some((value, age)) => {
                    let because = StaleBecause::Failed(error);
                    let stale = Some(Stale { age, because });
                    Ok(Some(Served { value, stale }))
                }
                None => Err(error),
            },
            read => read.map(fresh),
        }
    }

    /// [`get_or_insert_with`](crate::StoreExt::get_or_insert_with) with fail-safe reads: the
    /// value under `id` as [`get_fail_safe`](Self::get_fail_safe) answers it (current, or the
    /// last known one marked stale), or, if there is none, the value `loader` produces,
    /// stored and cached as `get_or_insert_with` does (then read back once, so it is cached
    /// with its TTL). When Redis fails and there is no last known value, the error: the
    /// loader is not called, as its value could not be stored.
    pub async fn get_or_insert_with_fail_safe<F, Fut, E>(
        &self,
        id: &str,
        loader: F,
    ) -> Result<Served<T>>
    where
        T: Clone,
        F: FnOnce() -> Fut + Send + 'static,
        Fut:
            std::future::Future<Output = std::result::Result<crate::Loaded<T>, E>> + Send + 'static,
        E: Into<crate::BoxError>,
    {
        if let Some(served) = self.get_fail_safe(id).await? {
            return Ok(served);
        }
        let loaded = crate::StoreExt::get_or_insert_with(self, id, loader).await?;
        // Read back what was stored, with its TTL, so the cache and the fail-safe table hold
        // it (the write forgot the key in both). A value the loader chose not to store is
        // answered as loaded.
        let key = self.inner.store.keyspace().key(id)?;
        let value = match self.read_through(&key).await {
            Ok(Some(stored)) => stored,
            Ok(None) | Err(_) => Arc::new(loaded),
        };
        Ok(Served { value, stale: None })
    }

    /// The cached value of `key`, if tracked and cached.
    fn hit(&self, key: &str) -> Option<Arc<T>> {
        let value = self.inner.entries.get(key)?;
        if let Some(fallback) = &self.inner.fallback {
            // Hits happen only while tracking: the value is current now.
            fallback.confirm_hit(key, &value, Instant::now());
        }
        Some(value)
    }

    /// Reads `key` from Redis and caches it (unless an invalidation raced the read).
    async fn read_through(&self, key: &str) -> Result<Option<Arc<T>>> {
        let inner = &*self.inner;
        let ticket = inner.entries.fill_ticket();
        let fallback = inner.fallback.as_ref().map(|f| (f, f.ticket(key)));
        let asked = Instant::now();
        let Some((value, expiry)) = inner.store.get_expiring(key).await? else {
            if let Some((fallback, _)) = fallback {
                fallback.forget(key); // deleted or expired: nothing to fall back on
            }
            return Ok(None);
        };
        let value = Arc::new(value);
        // The key's remaining life was measured after `asked`: counting from `asked` ends
        // the entry no later than Redis ends the key.
        let expires = match expiry {
            Expiry::Never => None,
            // A TTL beyond the clock's range (another program may write any PX) is no
            // deadline this process will see: keep the entry like a persistent one.
            Expiry::In(left) => asked.checked_add(left),
        };
        if let Some((fallback, ticket)) = fallback {
            fallback.confirm(ticket, key, &value, asked, expires);
        }
        if let Some(ticket) = ticket {
            let cached = Arc::clone(&value);
            inner
                .entries
                .insert(ticket, key.to_owned(), cached, expires);
        }
        Ok(Some(value))
    }

    /// The error of a background read that did not finish (the runtime shut down).
    fn lost_read(&self, key: &str, error: tokio::task::JoinError) -> Error {
        Error::Protocol {
            backend: self.inner.store.backend().kind(),
            keys: crate::Keys::one(key),
            reason: format!("the read's task ended without an answer: {error}"),
        }
    }

    /// Counts so far, and the number of entries cached.
    pub fn stats(&self) -> CacheStats {
        self.inner.entries.stats()
    }

    /// Whether invalidations are being received, so values are being cached. `false` after
    /// the tracking connection dropped, until it is re-established.
    pub fn is_tracking(&self) -> bool {
        self.inner.entries.is_tracking()
    }

    /// The store behind the cache.
    pub fn store(&self) -> &TypedStore<T, B, C> {
        &self.inner.store
    }
}

impl<T, C: Codec, B: Trackable> fmt::Debug for CachedStore<T, C, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedStore")
            .field("store", &self.inner.store)
            .field("stats", &self.inner.entries.stats())
            .field("tracking", &self.inner.entries.is_tracking())
            .finish()
    }
}

#[async_trait]
impl<T, C, B> Store<T> for CachedStore<T, C, B>
where
    T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
    C: Codec,
    B: Trackable,
{
    fn namespace(&self) -> &str {
        self.inner.store.namespace()
    }

    /// The part of the store it caches: a transaction reads Redis, never the cache, and its
    /// commit evicts what it wrote, as a write through this store does.
    fn transaction_part(&self) -> Option<TransactionPart<'_, T>> {
        self.inner.store.transaction_part()
    }

    async fn get(&self, id: &str) -> Result<Option<T>> {
        Ok(self.get_shared(id).await?.map(|value| T::clone(&value)))
    }

    async fn set_opts(&self, id: &str, value: &T, options: SetOptions) -> Result<bool> {
        self.inner.store.set_opts(id, value, options).await
    }

    async fn delete(&self, id: &str) -> Result<bool> {
        self.inner.store.delete(id).await
    }

    async fn exists(&self, id: &str) -> Result<bool> {
        self.inner.store.exists(id).await
    }

    async fn ttl(&self, id: &str) -> Result<Option<Expiry>> {
        self.inner.store.ttl(id).await
    }

    async fn get_many(&self, ids: &[&str]) -> Result<Vec<Option<T>>> {
        self.inner.store.get_many(ids).await
    }

    async fn update(
        &self,
        id: &str,
        f: &mut (dyn FnMut(Option<T>) -> Update<T> + Send),
    ) -> Result<Option<T>> {
        self.inner.store.update(id, f).await
    }

    async fn get_or_load(&self, id: &str, loader: Loader<T>) -> Result<T>
    where
        T: 'static,
    {
        if let Some(value) = self.get_shared(id).await? {
            return Ok(T::clone(&value));
        }
        self.inner.store.get_or_load(id, loader).await
    }

    async fn get_versioned(&self, id: &str) -> Result<Option<Versioned<T>>> {
        self.inner.store.get_versioned(id).await
    }

    async fn set_if_version(
        &self,
        id: &str,
        value: &T,
        version: &Version,
    ) -> Result<Option<Version>> {
        self.inner.store.set_if_version(id, value, version).await
    }

    fn scan(&self) -> BoxStream<'static, Result<(String, T)>> {
        self.inner.store.scan()
    }

    fn scan_ids(&self) -> BoxStream<'static, Result<String>> {
        self.inner.store.scan_ids()
    }

    async fn count(&self) -> Result<u64> {
        self.inner.store.count().await
    }

    async fn delete_many(&self, ids: &[&str]) -> Result<u64> {
        self.inner.store.delete_many(ids).await
    }

    async fn clear(&self) -> Result<u64> {
        let result = self.inner.store.clear().await;
        self.inner.entries.flush();
        if let Some(fallback) = &self.inner.fallback {
            fallback.forget_all();
        }
        result
    }

    async fn set_many(&self, entries: &[(&str, &T)]) -> Result<()> {
        self.inner.store.set_many(entries).await
    }

    // Queries read the indexes and values from Redis: an index answers from the server.
    fn find_by(&self, index: &str, value: &[u8]) -> BoxStream<'static, Result<(String, T)>> {
        self.inner.store.find_by(index, value)
    }

    async fn count_by(&self, index: &str, value: &[u8]) -> Result<u64> {
        self.inner.store.count_by(index, value).await
    }

    async fn find_range(&self, index: &str, query: RangeQuery) -> Result<RangePage<T>> {
        self.inner.store.find_range(index, query).await
    }
}
