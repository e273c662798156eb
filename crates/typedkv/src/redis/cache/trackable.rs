//! The backends a [`CachedStore`](super::CachedStore) can sit in front of, and what the
//! cache needs of each: connections of its own, outside the pool, for client tracking, to
//! the one server, to the master Sentinel names (again after each failover), or to every
//! master of a cluster (again when the masters change: a key's invalidations come from the
//! master serving its slot).

use ::redis::RedisError;
use ::redis::aio::{AsyncPushSender, MultiplexedConnection};

use crate::backend::Backend;
use crate::error::{Error, Result, Waited};
use crate::redis::RedisPool;
use crate::redis::config::Settings;
use crate::redis::keys::NoKey;

/// A backend [`CachedStore`](super::CachedStore) can track: [`RedisPool`](crate::redis::RedisPool)
/// and, with their features, `RedisSentinelPool` and `RedisClusterPool`. Sealed: the cache
/// needs what only these pools provide.
pub trait Trackable: Backend + private::Sealed {}

pub(crate) mod private {
    use super::*;

    /// What the cache needs of a pool.
    pub trait Sealed {
        /// New connections of the cache's own, outside the pool, one per server whose keys
        /// it must hear about, whose server pushes (RESP3) go to `on_push`.
        fn tracking_connections(
            &self,
            on_push: impl AsyncPushSender + Clone,
        ) -> impl std::future::Future<Output = Result<Vec<MultiplexedConnection>>> + Send;

        /// The servers to track as of now, for pools whose servers change without a tracking
        /// connection dropping (a cluster's masters); `None` for the others, or if they
        /// cannot be learned right now.
        fn tracked_servers(
            &self,
        ) -> impl std::future::Future<Output = Option<Vec<(String, u16)>>> + Send {
            std::future::ready(None)
        }

        /// Counts the switches of the server to track, for pools whose server changes while
        /// the old one stays up (a Sentinel master after a failover: its tracking connection
        /// would stay on the old master and miss the new one's writes); `None` for the
        /// others.
        fn switches(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
            None
        }

        /// An error of a command about `key` sent on such a connection.
        fn command_failed(&self, key: &str, error: RedisError) -> Error;
    }
}

impl Trackable for RedisPool {}

impl private::Sealed for RedisPool {
    async fn tracking_connections(
        &self,
        on_push: impl AsyncPushSender + Clone,
    ) -> Result<Vec<MultiplexedConnection>> {
        let failed = |e| self.shared().error(&NoKey, e, Waited::Connection);
        let info = self.connection_info().clone();
        Ok(vec![connect(info, self.settings(), on_push, failed).await?])
    }

    fn command_failed(&self, key: &str, error: RedisError) -> Error {
        self.shared().error(&key, error, Waited::Reply)
    }
}

/// A connection of the cache's own, outside the pool, to the server `info` names, with the
/// pool's `settings` (timeouts, protocol), whose server pushes go to `on_push`; `failed`
/// turns a redis-rs error into the pool's.
async fn connect(
    info: ::redis::ConnectionInfo,
    settings: &Settings,
    on_push: impl AsyncPushSender,
    failed: impl Fn(RedisError) -> Error,
) -> Result<MultiplexedConnection> {
    let config = settings.connection_config().set_push_sender(on_push);
    ::redis::Client::open(info)
        .map_err(&failed)?
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(failed)
}

#[cfg(feature = "sentinel")]
impl Trackable for crate::redis::RedisSentinelPool {}

#[cfg(feature = "sentinel")]
impl private::Sealed for crate::redis::RedisSentinelPool {
    /// One connection to the master the sentinels name now.
    async fn tracking_connections(
        &self,
        on_push: impl AsyncPushSender + Clone,
    ) -> Result<Vec<MultiplexedConnection>> {
        let config = self.settings().connection_config().set_push_sender(on_push);
        let shared = self.shared();
        let limits = shared.limits();
        let connect = shared.pool().manager().connect(&config);
        // Bounded like a pool's connection: the sentinels' lookup has no timeout of its own.
        match tokio::time::timeout(limits.create, connect).await {
            Ok(connected) => {
                let connection =
                    connected.map_err(|e| shared.error(&NoKey, e, Waited::Connection))?;
                Ok(vec![connection])
            }
            Err(_elapsed) => Err(Error::Timeout {
                backend: limits.backend,
                keys: crate::Keys::none(),
                timeout: limits.create,
                waited: Waited::Connection,
            }),
        }
    }

    /// Every master switch the sentinels announce from now on.
    fn switches(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        Some(self.shared().pool().manager().lookup().switches())
    }

    fn command_failed(&self, key: &str, error: RedisError) -> Error {
        self.shared().error(&key, error, Waited::Reply)
    }
}

#[cfg(feature = "cluster")]
impl Trackable for crate::redis::RedisClusterPool {}

#[cfg(feature = "cluster")]
impl private::Sealed for crate::redis::RedisClusterPool {
    /// One connection to each master serving slots now.
    async fn tracking_connections(
        &self,
        on_push: impl AsyncPushSender + Clone,
    ) -> Result<Vec<MultiplexedConnection>> {
        let mut connections = Vec::new();
        for master in cluster::masters(self).await? {
            connections.push(cluster::connection_to(self, &master, on_push.clone()).await?);
        }
        Ok(connections)
    }

    async fn tracked_servers(&self) -> Option<Vec<(String, u16)>> {
        cluster::masters(self).await.ok()
    }

    fn command_failed(&self, key: &str, error: RedisError) -> Error {
        self.shared().error(&key, error, Waited::Reply)
    }
}

/// A cluster's masters, and connections of the cache's own to them.
#[cfg(feature = "cluster")]
mod cluster {
    use ::redis::aio::{AsyncPushSender, MultiplexedConnection};
    use ::redis::{ConnectionAddr, ProtocolVersion, Value};

    use crate::error::{Result, Waited};
    use crate::redis::RedisClusterPool;
    use crate::redis::cluster::slot_ranges;
    use crate::redis::config::connection_info;
    use crate::redis::errors::unexpected;
    use crate::redis::keys::NoKey;
    use crate::redis::shared::Resend;

    /// The masters serving slots now, as `(host, port)`, sorted.
    pub(super) async fn masters(pool: &RedisClusterPool) -> Result<Vec<(String, u16)>> {
        let table: Value = pool
            .shared()
            .query(&NoKey, ::redis::cmd("CLUSTER").arg("SLOTS"), Resend::Safe)
            .await?;
        let Some(ranges) = slot_ranges(&table) else {
            let reason = "CLUSTER SLOTS answered an entry of an unknown shape";
            return Err(unexpected(&NoKey, pool.shared().limits(), reason.into()));
        };
        let mut masters: Vec<(String, u16)> = ranges.into_iter().map(|r| r.master).collect();
        masters.sort_unstable();
        masters.dedup();
        Ok(masters)
    }

    /// A new connection of its own to the node at `host:port` (with the seeds' credentials
    /// and TLS settings), whose server pushes (RESP3) go to `on_push`.
    pub(super) async fn connection_to(
        pool: &RedisClusterPool,
        (host, port): &(String, u16),
        on_push: impl AsyncPushSender,
    ) -> Result<MultiplexedConnection> {
        let settings = pool.settings();
        let seed = connection_info(&settings.urls[0], ProtocolVersion::RESP3)?;
        let addr = match seed.addr() {
            ConnectionAddr::TcpTls {
                insecure,
                tls_params,
                ..
            } => ConnectionAddr::TcpTls {
                host: host.clone(),
                port: *port,
                insecure: *insecure,
                tls_params: tls_params.clone(),
            },
            _ => ConnectionAddr::Tcp(host.clone(), *port),
        };
        let info = seed.set_addr(addr);
        #[cfg(feature = "tls")]
        let info = crate::redis::tls::prepare(info, settings.tls_roots.as_deref())?;
        let failed = |e| pool.shared().error(&NoKey, e, Waited::Connection);
        super::connect(info, settings, on_push, failed).await
    }
}
