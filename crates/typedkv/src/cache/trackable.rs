//! The backends a [`CachedStore`](super::CachedStore) can sit in front of: pools of one
//! server at a time (standalone, or the master Sentinel names), whose connections the cache
//! can open for its own tracking connection. A cluster spreads keys over nodes, each needing
//! a tracking connection of its own, so it is not one of them.

use ::redis::RedisError;
use ::redis::aio::{AsyncPushSender, MultiplexedConnection};

use crate::backend::Backend;
use crate::error::{Error, Result};

/// A backend [`CachedStore`](super::CachedStore) can track: [`RedisPool`](crate::redis::RedisPool)
/// and, with the `sentinel` feature, `RedisSentinelPool`. Sealed: the cache needs what only
/// these pools provide.
pub trait Trackable: Backend + private::Sealed {}

pub(crate) mod private {
    use super::*;

    /// What the cache needs of a pool.
    pub trait Sealed {
        /// A new connection of its own, outside the pool, whose server pushes (RESP3) go to
        /// `on_push`: the tracking connection needs one that stays put. On Sentinel, to the
        /// master the sentinels name now.
        fn dedicated_connection(
            &self,
            on_push: impl AsyncPushSender,
        ) -> impl std::future::Future<Output = Result<MultiplexedConnection>> + Send;

        /// An error of a command about `key` sent on such a connection.
        fn command_failed(&self, key: &str, error: RedisError) -> Error;
    }
}

impl Trackable for crate::redis::RedisPool {}

impl private::Sealed for crate::redis::RedisPool {
    async fn dedicated_connection(
        &self,
        on_push: impl AsyncPushSender,
    ) -> Result<MultiplexedConnection> {
        crate::redis::RedisPool::dedicated_connection(self, on_push).await
    }

    fn command_failed(&self, key: &str, error: RedisError) -> Error {
        crate::redis::RedisPool::command_failed(self, &key, error)
    }
}

#[cfg(feature = "sentinel")]
impl Trackable for crate::redis::RedisSentinelPool {}

#[cfg(feature = "sentinel")]
impl private::Sealed for crate::redis::RedisSentinelPool {
    async fn dedicated_connection(
        &self,
        on_push: impl AsyncPushSender,
    ) -> Result<MultiplexedConnection> {
        crate::redis::RedisSentinelPool::dedicated_connection(self, on_push).await
    }

    fn command_failed(&self, key: &str, error: RedisError) -> Error {
        crate::redis::RedisSentinelPool::command_failed(self, &key, error)
    }
}
