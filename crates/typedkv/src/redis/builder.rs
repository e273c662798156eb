//! [`RedisPoolBuilder`]: the settings shared by standalone and cluster pools, with the
//! target (what `build` makes) as a type parameter, so each setter is written and documented
//! once and cluster-only settings exist only on cluster builders.

use std::marker::PhantomData;
use std::time::Duration;

use super::config::Settings;

/// Target of a [`RedisPoolBuilder`] that builds a [`RedisPool`](super::RedisPool) (one standalone server).
#[derive(Debug)]
pub enum Standalone {}

/// Configures a pool; from [`RedisPool::builder`](super::RedisPool::builder) (target [`Standalone`]) or, with the
/// `cluster` feature, `RedisClusterPool::builder` (target `Cluster`). Every setting has a
/// documented default (the `DEFAULT_*` constants of this module).
#[must_use = "a builder does nothing until .build()"]
#[derive(Debug)]
pub struct RedisPoolBuilder<Target = Standalone> {
    pub(crate) settings: Settings,
    _target: PhantomData<fn() -> Target>,
}

// Written out: a derive would require `Target: Clone`, and targets are never values. A
// clone builds more pools with the same settings (each its own connections).
impl<Target> Clone for RedisPoolBuilder<Target> {
    fn clone(&self) -> Self {
        RedisPoolBuilder {
            settings: self.settings.clone(),
            _target: PhantomData,
        }
    }
}

impl<Target> RedisPoolBuilder<Target> {
    pub(crate) fn new(urls: Vec<String>) -> Self {
        RedisPoolBuilder {
            settings: Settings::new(urls),
            _target: PhantomData,
        }
    }

    /// Maximum connections, shared lanes included. Default [`DEFAULT_POOL_SIZE`] (8). Must be
    /// at least [`shared_connections`](Self::shared_connections).
    ///
    /// Plain commands share the lanes; a connection of its own is taken by
    /// [`checkout`](super::RedisPool::checkout) and by each write with a
    /// [`WriteConcern`](crate::WriteConcern) while it waits for the replicas (`WAIT` blocks
    /// its connection). So with concerned writes, size the pool for as many as run at once:
    /// beyond it they wait for a connection (at most `wait_timeout`, then
    /// [`Error::Pool`](crate::Error::Pool)). Those connections are kept between concerned
    /// writes, all but one beyond the lanes, so that the next one costs no checkout round
    /// trip.
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

    /// How long to wait for a free pool slot ([`checkout`](super::RedisPool::checkout)), then
    /// [`Error::Pool`](crate::Error::Pool). Default 2 s.
    pub fn wait_timeout(mut self, timeout: Duration) -> Self {
        self.settings.wait_timeout = timeout;
        self
    }

    /// How long one attempt to open a connection may take: TCP/TLS and the handshake
    /// (`HELLO`, `AUTH`, `SELECT`), then [`Error::Timeout`](crate::Error::Timeout) with
    /// [`Waited::Connection`](crate::Waited::Connection). Default 2 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.settings.connect_timeout = timeout;
        self
    }

    /// How long a call waits in all for a new connection, from its own start, whether it
    /// opens it or waits behind another call's attempt; then
    /// [`Error::Timeout`](crate::Error::Timeout) with
    /// [`Waited::Connection`](crate::Waited::Connection). Default 3 s.
    pub fn create_timeout(mut self, timeout: Duration) -> Self {
        self.settings.create_timeout = timeout;
        self
    }

    /// How long the health check of a returned connection may take. Default 1 s.
    pub fn recycle_timeout(mut self, timeout: Duration) -> Self {
        self.settings.recycle_timeout = timeout;
        self
    }

    /// How long to wait for each reply, then [`Error::Timeout`](crate::Error::Timeout) with
    /// [`Waited::Reply`](crate::Waited::Reply); `None` waits for ever. Also the most an
    /// `update` waits for its turn behind another update of the same key
    /// ([`Waited::UpdateTurn`](crate::Waited::UpdateTurn)). Default `Some(1 s)`.
    pub fn response_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.settings.response_timeout = timeout;
        self
    }

    /// Batch concurrent commands. Default `true`; `false` sends every command alone.
    ///
    /// Up to 16 concurrent plain single-key commands (`get`, `set`, `delete`, `exists`,
    /// `ttl`) go out alone, as without batching. Beyond that, the calls that arrive queue and
    /// go out together as one pipeline (one `MGET` for the `get`s, one `MSET` for the plain
    /// `set`s) when a batch completes, until the queue is empty and no batch is in flight.
    /// Each call still gets its own reply or error, and its own response timeout counted from
    /// its start. On a cluster, a batch is one pipeline per master (commands whose slot moved
    /// meanwhile are sent again alone); with `read_from_replicas`, a cluster pool does not
    /// batch.
    ///
    /// Batching pays where many calls wait at once: on the 2-core VM of BENCHMARKS.md, against
    /// hand-written redis-rs, 1.06-1.29x for `get` and 1.47-1.61x for `set` at 64 tasks,
    /// 1.94-2.43x and 2.08-2.14x at 256, and level with batching off at 1 and 16 tasks
    /// (calls go alone there). Compare
    /// `typed` with `typed unbatched` in `typedkv-bench --only peer` (and `--only cluster`)
    /// on your own machine.
    ///
    /// ```
    /// use typedkv::redis::RedisPool;
    ///
    /// let pool = RedisPool::builder("redis://127.0.0.1:6379").batching(false).build()?;
    /// # Ok::<(), typedkv::Error>(())
    /// ```
    pub fn batching(mut self, enabled: bool) -> Self {
        self.settings.batching = enabled;
        self
    }

    /// Trust these PEM root certificates for `rediss://` instead of the system's certificate
    /// store (feature `tls`). Certificates are always verified; a server whose certificate
    /// does not chain to a trusted root fails with
    /// [`Error::Connection`](crate::Error::Connection).
    #[cfg(feature = "tls")]
    pub fn tls_root_certificates(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.settings.tls_roots = Some(pem.into());
        self
    }
}
