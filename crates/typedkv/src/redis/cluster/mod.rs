//! Redis Cluster (feature `cluster`): [`RedisClusterPool`].
//!
//! One redis-rs cluster connection talks to every node: it routes each single-key command
//! to the master of the key's slot, follows `MOVED`/`ASK` redirects, refreshes its slot map
//! when the topology changes (failover, resharding), and splits `MGET`/`MSET`/`UNLINK` into
//! one command per slot. Like standalone pools, plain commands share it instead of checking
//! out a connection each. What a cluster needs on top is here: scans over every master
//! (`scan.rs`) and TTL batches written slot by slot (`backend.rs`).

mod backend;
mod manager;
mod routes;
mod scan;
mod slots;

use std::fmt;
use std::sync::Arc;

use deadpool::managed::Object;

use self::manager::ClusterManager;
#[cfg(feature = "cache")]
pub(crate) use self::slots::slot_ranges;
use super::builder::RedisPoolBuilder;
use super::config::Settings;
use super::lanes::Generations;
use super::shared::{OnBrokenConnection, Shared};
use crate::error::Result;

/// Target of a [`RedisPoolBuilder`] that builds a [`RedisClusterPool`].
#[derive(Debug)]
pub enum Cluster {}

/// A pool of Redis Cluster connections, and the [`Backend`](crate::Backend) of
/// [`RedisClusterStore`](crate::RedisClusterStore). Clones share the pool.
///
/// Configured from one or more seed nodes; the rest of the cluster is discovered from them.
/// Every setting of [`RedisPoolBuilder`] applies, plus [`read_from_replicas`]. Creating the
/// pool does not connect; the first command does (or [`RedisClusterPool::ping`]).
///
/// What holds on a cluster (see the README's "Scaling out" for the whole story):
/// - single-key operations, `update` and versioned writes: exactly as on one server;
/// - `get_many`, `set_many`, `delete_many`: split by slot and reassembled in input order;
///   atomic per slot, not across slots, unless the store uses a
///   [hash tag](crate::StoreBuilder::hash_tag);
/// - indexes: on stores with [partitions](crate::StoreBuilder::partitions) (spread over the
///   masters) or a [hash tag](crate::StoreBuilder::hash_tag) (one slot), each write one
///   atomic script in its entity's slot;
/// - scans: every master in turn, each key exactly once while the cluster is stable;
/// - failover: when a master dies, calls on its slots fail
///   ([`Error::Timeout`](crate::Error::Timeout) or
///   [`Error::Connection`](crate::Error::Connection), never a hang beyond the response
///   timeout) until a replica is promoted, which Redis does after `cluster-node-timeout`;
///   redis-rs then refreshes its slot map and calls succeed again. Measured by
///   `tests/cluster/failover.rs` (16 tasks writing and reading, node timeout 500 ms): replica
///   promoted 1.7–1.9 s after the kill, last failed call 2.0 s after it, nothing failed
///   afterwards, 0 of 70,000–81,000 acknowledged writes lost on loopback. Redis replicates
///   asynchronously, so on a real network writes acknowledged just before a crash can be
///   lost. A master that hangs instead (stopped, a frozen VM) times calls out until its
///   replica is promoted; then a timed-out call has the pool find that the connection
///   still routes to a node that does not answer while the new master does, and replace
///   it (redis-rs reads the slot map again only on `MOVED` or a broken connection).
///
/// ```no_run
/// use typedkv::redis::RedisClusterPool;
///
/// let pool = RedisClusterPool::builder(["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"])
///     .read_from_replicas(false)
///     .build()?;
/// # Ok::<(), typedkv::Error>(())
/// ```
///
/// [`read_from_replicas`]: RedisPoolBuilder::read_from_replicas
#[derive(Clone)]
pub struct RedisClusterPool {
    inner: Arc<Inner>,
    /// The write concern of this handle's writes (`Backend::with_concern`); `None` for
    /// none.
    concern: Option<crate::WriteConcern>,
}

struct Inner {
    shared: Arc<Shared<ClusterManager, Object<ClusterManager>>>,
    settings: Settings,
    /// [`RedisClusterPool::location`], made once (URL parsing costs microseconds).
    location: String,
}

impl RedisClusterPool {
    /// A pool for the cluster reachable through `seeds` (`redis://host:port` URLs of any of
    /// its nodes; all with the same credentials), with default settings.
    pub fn from_urls<S: Into<String>>(seeds: impl IntoIterator<Item = S>) -> Result<Self> {
        Self::builder(seeds).build()
    }

    /// Starts configuring a pool for the cluster reachable through `seeds`.
    pub fn builder<S: Into<String>>(
        seeds: impl IntoIterator<Item = S>,
    ) -> RedisPoolBuilder<Cluster> {
        RedisPoolBuilder::new(seeds.into_iter().map(Into::into).collect())
    }

    fn new(mut settings: Settings) -> Result<Self> {
        settings.validate()?;
        // Batches go to masters: reads meant for replicas go out alone.
        settings.batching &= !settings.read_from_replicas;
        let manager = ClusterManager::new(&settings)?;
        let shared = Shared::new(
            manager,
            &settings,
            "redis-cluster",
            Arc::new(Generations::default()),
            OnBrokenConnection::Keep,
        )?;
        Ok(RedisClusterPool {
            inner: Arc::new(Inner {
                shared: Arc::new(shared),
                location: format!("cluster@{}", settings.addresses()),
                settings,
            }),
            concern: None,
        })
    }

    /// Connects (if not connected yet) and `PING`s a node: call it at start-up to fail fast
    /// on wrong seeds or credentials.
    pub async fn ping(&self) -> Result<()> {
        self.inner.shared.ping().await
    }

    /// Pool occupancy. A cluster pool holds only its shared connections: plain commands
    /// never check one out, and there is no `checkout` (a cluster connection cannot `WATCH`).
    pub fn status(&self) -> deadpool::Status {
        self.inner.shared.pool().status()
    }

    /// Publishes the pool's occupancy through the `metrics` facade, labelled `pool` with the
    /// redacted seed URLs: `typedkv_pool_connections` (gauge, label `state`: `max`, `open`,
    /// `idle`; shared connections count as open, not idle) and `typedkv_pool_waiting`
    /// (tasks waiting for a connection). A sample of now: call it periodically, e.g. from a
    /// task every few seconds.
    pub fn record_metrics(&self) {
        self.inner.shared.record_metrics(self.redacted_urls());
    }

    /// The seed URLs, comma-separated, with any password replaced by `***`.
    pub fn redacted_urls(&self) -> String {
        self.inner.settings.redacted_urls()
    }

    /// Where its data lives ([`Backend::data_location`](crate::Backend::data_location)): the
    /// seeds' addresses. Pools built from other seeds of the same cluster name another place.
    pub(crate) fn location(&self) -> String {
        self.inner.location.clone()
    }

    /// Its settings: for connections of its own (the cache's tracking connections).
    #[cfg(feature = "cache")]
    pub(crate) fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// This pool's handle with every write acknowledged per `concern` (see
    /// `redis/concern.rs`).
    ///
    /// A cluster connection waits for every reply as long as the pool's response timeout,
    /// the wait for the replicas included: a concern that waits as long or longer is
    /// refused, since its writes would end with [`Error::Timeout`] instead of saying how
    /// many replicas had them.
    pub(crate) fn with_write_concern(&self, concern: crate::WriteConcern) -> Result<Self> {
        if let (Some(_), Some(response)) = (concern.kept()?, self.inner.settings.response_timeout)
            && concern.timeout >= response
        {
            return Err(crate::Error::config(format!(
                "on a cluster, a write concern must wait less than the pool's response timeout \
                 ({response:?}), not {:?}: set WriteConcern::timeout shorter, or the pool's \
                 response_timeout longer",
                concern.timeout
            )));
        }
        Ok(RedisClusterPool {
            inner: Arc::clone(&self.inner),
            concern: concern.kept()?,
        })
    }

    /// The write concern of this handle's writes.
    pub(crate) fn concern(&self) -> Option<crate::WriteConcern> {
        self.concern
    }

    pub(crate) fn shared(&self) -> &Arc<Shared<ClusterManager, Object<ClusterManager>>> {
        &self.inner.shared
    }
}

impl RedisPoolBuilder<Cluster> {
    /// Send reads (`get`, `get_many`, `exists`, `ttl`) to replicas, spreading load over them.
    /// Default `false`. Replication is asynchronous: a read from a replica can miss a write
    /// that was just acknowledged, so a store may then return an older value or `None`.
    /// Writes, `update` and scans always go to masters.
    pub fn read_from_replicas(mut self, enabled: bool) -> Self {
        self.settings.read_from_replicas = enabled;
        self
    }

    /// Validates the settings and creates the pool (without connecting).
    ///
    /// Fails with [`Error::InvalidConfig`](crate::Error::InvalidConfig) for no seeds, an
    /// unparsable URL, seeds with different credentials, zero timeouts, zero shared
    /// connections or a pool smaller than its shared connections.
    pub fn build(self) -> Result<RedisClusterPool> {
        RedisClusterPool::new(self.settings)
    }
}

impl fmt::Debug for RedisClusterPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisClusterPool")
            .field("settings", &self.inner.settings)
            .field("status", &self.status())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::{Backend, WriteConcern};

    /// A concern that waits as long as a reply may take would end in a timeout, never in
    /// the count of replicas: refused, with what to change.
    #[test]
    fn a_concern_must_wait_less_than_a_reply() -> Result<()> {
        let pool = RedisClusterPool::builder(["redis://127.0.0.1:1"]).build()?;
        let refused = pool.with_concern(WriteConcern::replicas(1));
        assert!(
            matches!(&refused, Err(crate::Error::InvalidConfig { reason, .. }) if reason.contains("response timeout")),
            "{refused:?}"
        );
        let shorter = WriteConcern::replicas(1).timeout(Duration::from_millis(500));
        assert!(pool.with_concern(shorter)?.concern().is_some());
        assert!(pool.with_concern(WriteConcern::none())?.concern().is_none());
        Ok(())
    }
}
