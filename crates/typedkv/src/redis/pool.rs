//! [`RedisPool`]: a deadpool-redis pool whose plain commands share a few connections
//! ([lanes](super::lanes)) instead of paying a checkout each.

use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ::redis::{
    AsyncConnectionConfig, IntoConnectionInfo, ProtocolVersion, PushInfo, PushKind, RedisError,
};
use deadpool_redis::{Connection, Manager, Pool, Runtime};

use super::config::{Settings, redact_url};
use super::errors::{from_pool_error, from_redis_error};
use super::lanes::{Generations, Lane, Lent};
use crate::error::{Error, Result};

/// A pool of Redis connections (standalone server), and the [`Backend`](crate::Backend) of
/// [`RedisStore`](crate::RedisStore). Clones share the pool.
///
/// Creating the pool does not connect; the first command does (or [`RedisPool::ping`]).
///
/// ```no_run
/// use std::time::Duration;
/// use typedkv::redis::RedisPool;
///
/// // All defaults (see the constants in `typedkv::redis`):
/// let pool = RedisPool::from_url("redis://127.0.0.1:6379")?;
///
/// // Or tuned:
/// let pool = RedisPool::builder("rediss://app:secret@redis.internal:6380/0")
///     .pool_size(16)
///     .shared_connections(4)
///     .response_timeout(Some(Duration::from_millis(250)))
///     .build()?;
/// # Ok::<(), typedkv::Error>(())
/// ```
#[derive(Clone)]
pub struct RedisPool {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    lanes: Box<[Lane]>,
    next_lane: AtomicUsize,
    generations: Arc<Generations>,
    settings: Settings,
}

impl RedisPool {
    /// A pool for `url` (`redis://[user[:password]@]host[:port][/db]`, or `rediss://` for TLS
    /// with the `tls` feature) with default settings.
    pub fn from_url(url: impl Into<String>) -> Result<Self> {
        Self::builder(url).build()
    }

    /// Starts configuring a pool for `url`.
    pub fn builder(url: impl Into<String>) -> RedisPoolBuilder {
        RedisPoolBuilder {
            settings: Settings::new(url.into()),
        }
    }

    fn new(settings: Settings) -> Result<Self> {
        settings.validate()?;
        let redacted = redact_url(&settings.url);
        // redis-rs' URL and config errors carry static messages, never the URL.
        let bad_url = |e: RedisError| Error::InvalidConfig {
            reason: format!("cannot use Redis URL {redacted}"),
            source: Some(Box::new(e)),
        };
        let info = settings
            .url
            .as_str()
            .into_connection_info()
            .map_err(bad_url)?;
        #[cfg(feature = "tls")]
        let info = super::tls::prepare(info, settings.tls_roots.as_deref())?;
        // RESP3, so that redis-rs tells us the moment a connection closes (see lanes.rs).
        let resp3 = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let info = info.set_redis_settings(resp3);
        let generations = Arc::new(Generations::default());
        let on_push = {
            let generations = Arc::clone(&generations);
            move |push: PushInfo| {
                if push.kind == PushKind::Disconnection {
                    generations.all_dead();
                }
                Ok::<(), Infallible>(())
            }
        };
        let connection = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(settings.connect_timeout))
            .set_response_timeout(settings.response_timeout)
            .set_push_sender(on_push);
        let manager = Manager::new_with_config(info, connection).map_err(bad_url)?;
        let pool = Pool::builder(manager)
            .max_size(settings.pool_size)
            .wait_timeout(Some(settings.wait_timeout))
            .create_timeout(Some(settings.create_timeout))
            .recycle_timeout(Some(settings.recycle_timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| Error::InvalidConfig {
                reason: format!("cannot build the pool for {redacted}"),
                source: Some(Box::new(e)),
            })?;
        let lanes = (0..settings.shared_connections)
            .map(|_| Lane::default())
            .collect();
        Ok(RedisPool {
            inner: Arc::new(Inner {
                pool,
                lanes,
                next_lane: AtomicUsize::new(0),
                generations,
                settings,
            }),
        })
    }

    /// Opens every shared connection that is not open yet and `PING`s Redis on each: call it
    /// at start-up to fail fast on a wrong URL or password, and so the first requests do not
    /// pay for connecting.
    pub async fn ping(&self) -> Result<()> {
        for index in 0..self.inner.lanes.len() {
            let mut lent = self.lend_lane(index, &"(ping)").await?;
            let reply: std::result::Result<String, RedisError> =
                ::redis::cmd("PING").query_async(&mut lent.conn).await;
            reply.map_err(|e| self.failed(&"(ping)", &lent, e))?;
        }
        Ok(())
    }

    /// A connection for this caller alone, e.g. for blocking commands or `WATCH`. Returned to
    /// the pool (and health-checked before reuse) when dropped. Plain commands of the stores
    /// never use this.
    pub async fn checkout(&self) -> Result<Connection> {
        self.inner
            .pool
            .get()
            .await
            .map_err(|e| from_pool_error(&"(checkout)", e, self.inner.settings.connect_timeout))
    }

    /// Pool occupancy: `max_size`, current `size` (shared lanes count as in use),
    /// `available` idle connections, tasks `waiting` for one.
    pub fn status(&self) -> deadpool_redis::Status {
        self.inner.pool.status()
    }

    /// The URL this pool connects to, with any password replaced by `***`.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.inner.settings.url)
    }

    /// A shared connection for one command on `key`, round-robin over the lanes.
    pub(crate) async fn lend(&self, key: &(dyn fmt::Display + Sync)) -> Result<Lent> {
        let lanes = self.inner.lanes.len();
        // One lane (the default) needs no shared round-robin counter.
        let index = match lanes {
            1 => 0,
            _ => self.inner.next_lane.fetch_add(1, Ordering::Relaxed) % lanes,
        };
        self.lend_lane(index, key).await
    }

    /// The connection of lane `index`, taking a new one from the pool if the lane is empty
    /// or its connection dead.
    pub(crate) async fn lend_lane(
        &self,
        index: usize,
        key: &(dyn fmt::Display + Sync),
    ) -> Result<Lent> {
        match self.inner.lanes[index].lend(index, &self.inner.generations) {
            Some(lent) => Ok(lent),
            // Boxed: the pool's checkout future is several KiB, and inlined it would make the
            // future of every command that large (measured: 7.3 KiB per GET, a big allocation
            // and copies on each call) although commands almost never refill.
            None => Box::pin(self.refill(index, key)).await,
        }
    }

    /// Fills lane `index` with a connection from the pool (once, however many commands
    /// found it empty) and lends it.
    async fn refill(&self, index: usize, key: &(dyn fmt::Display + Sync)) -> Result<Lent> {
        let inner = &*self.inner;
        let lane = &inner.lanes[index];
        let _refilling = lane.refilling().await;
        if let Some(lent) = lane.lend(index, &inner.generations) {
            return Ok(lent); // another command refilled it while we waited
        }
        let object = inner
            .pool
            .get()
            .await
            .map_err(|e| from_pool_error(key, e, inner.settings.connect_timeout))?;
        Ok(lane.fill(index, object, &inner.generations))
    }

    /// Marks `lent`'s connection, and every sibling that existed when it was lent, dead.
    pub(crate) fn mark_dead(&self, lent: &Lent) {
        lent.mark_dead(&self.inner.generations);
    }

    /// Turns a redis-rs error of a lent connection into [`Error`], marking the connection
    /// dead first if the error means it is unusable.
    pub(crate) fn failed(
        &self,
        key: &(dyn fmt::Display + Sync),
        lent: &Lent,
        error: RedisError,
    ) -> Error {
        if error.is_unrecoverable_error() {
            self.mark_dead(lent);
        }
        let timeout = self.inner.settings.response_timeout.unwrap_or_default();
        from_redis_error(key, error, timeout)
    }
}

impl fmt::Debug for RedisPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisPool")
            .field("settings", &self.inner.settings)
            .field("status", &self.status())
            .finish()
    }
}

/// Configures a [`RedisPool`]; from [`RedisPool::builder`]. Every setting has a documented
/// default (the `DEFAULT_*` constants of this module).
#[must_use = "a builder does nothing until .build()"]
#[derive(Debug)]
pub struct RedisPoolBuilder {
    settings: Settings,
}

impl RedisPoolBuilder {
    /// Maximum connections, shared lanes included. Default [`DEFAULT_POOL_SIZE`] (8). Must be
    /// at least [`shared_connections`](Self::shared_connections).
    ///
    /// [`DEFAULT_POOL_SIZE`]: super::DEFAULT_POOL_SIZE
    pub fn pool_size(mut self, connections: usize) -> Self {
        self.settings.pool_size = connections;
        self
    }

    /// Multiplexed connections shared by all plain commands. Default
    /// [`DEFAULT_SHARED_CONNECTIONS`] (1). Raise it only when one connection's I/O task
    /// saturates a core (many cores, very high rates), and measure: on 2 cores every extra
    /// connection made 64 concurrent tasks slower (`typedkv-bench --shared-connections N`).
    ///
    /// [`DEFAULT_SHARED_CONNECTIONS`]: super::DEFAULT_SHARED_CONNECTIONS
    pub fn shared_connections(mut self, connections: usize) -> Self {
        self.settings.shared_connections = connections;
        self
    }

    /// How long to wait for a free pool slot. Default 2 s.
    pub fn wait_timeout(mut self, timeout: Duration) -> Self {
        self.settings.wait_timeout = timeout;
        self
    }

    /// How long opening the TCP/TLS connection may take. Default 2 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.settings.connect_timeout = timeout;
        self
    }

    /// How long creating a connection (connect + handshake) may take. Default 3 s.
    pub fn create_timeout(mut self, timeout: Duration) -> Self {
        self.settings.create_timeout = timeout;
        self
    }

    /// How long the health check of a returned connection may take. Default 1 s.
    pub fn recycle_timeout(mut self, timeout: Duration) -> Self {
        self.settings.recycle_timeout = timeout;
        self
    }

    /// How long to wait for each reply; `None` waits for ever. Default `Some(1 s)`.
    pub fn response_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.settings.response_timeout = timeout;
        self
    }

    /// Trust these PEM root certificates for `rediss://` instead of the system's certificate
    /// store (feature `tls`). Certificates are always verified; a server whose certificate
    /// does not chain to a trusted root fails with [`Error::Connection`].
    #[cfg(feature = "tls")]
    pub fn tls_root_certificates(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.settings.tls_roots = Some(pem.into());
        self
    }

    /// Validates the settings and creates the pool (without connecting).
    ///
    /// Fails with [`Error::InvalidConfig`] for an unparsable URL, zero timeouts, zero shared
    /// connections or a pool smaller than its shared connections.
    pub fn build(self) -> Result<RedisPool> {
        RedisPool::new(self.settings)
    }
}
