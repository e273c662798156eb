//! The backends a [`CachedStore`](super::CachedStore) can sit in front of: the pools whose
//! servers the cache can open tracking connections to (one server, the master Sentinel
//! names, or every master of a cluster).

use ::redis::RedisError;
use ::redis::aio::{AsyncPushSender, MultiplexedConnection};

use crate::backend::Backend;
use crate::error::{Error, Result};

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

/// A pool of one server at a time: one tracking connection, to the server it connects to.
macro_rules! one_server {
    ($pool:ty) => {
        one_server!($pool, switches = |_| None);
    };
    ($pool:ty, switches = $switches:expr) => {
        impl Trackable for $pool {}

        impl private::Sealed for $pool {
            async fn tracking_connections(
                &self,
                on_push: impl AsyncPushSender + Clone,
            ) -> Result<Vec<MultiplexedConnection>> {
                Ok(vec![self.dedicated_connection(on_push).await?])
            }

            fn switches(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
                ($switches)(self)
            }

            fn command_failed(&self, key: &str, error: RedisError) -> Error {
                self.shared()
                    .error(&key, error, crate::error::Waited::Reply)
            }
        }
    };
}

one_server!(crate::redis::RedisPool);
#[cfg(feature = "sentinel")]
one_server!(
    crate::redis::RedisSentinelPool,
    switches = |pool: &crate::redis::RedisSentinelPool| Some(pool.switches())
);

#[cfg(feature = "cluster")]
impl Trackable for crate::redis::RedisClusterPool {}

#[cfg(feature = "cluster")]
impl private::Sealed for crate::redis::RedisClusterPool {
    async fn tracking_connections(
        &self,
        on_push: impl AsyncPushSender + Clone,
    ) -> Result<Vec<MultiplexedConnection>> {
        let mut connections = Vec::new();
        for master in self.masters().await? {
            connections.push(
                self.dedicated_connection_to(&master, on_push.clone())
                    .await?,
            );
        }
        Ok(connections)
    }

    async fn tracked_servers(&self) -> Option<Vec<(String, u16)>> {
        self.masters().await.ok()
    }

    fn command_failed(&self, key: &str, error: RedisError) -> Error {
        self.shared()
            .error(&key, error, crate::error::Waited::Reply)
    }
}
