//! redis-rs and deadpool errors, classified into [`Error`] with the key attached.

use std::fmt::Display;
use std::time::Duration;

use ::redis::RedisError;
use deadpool_redis::PoolError;

use crate::error::Error;

/// `key` names the key or batch (rendered only here, on the error path). `timeout` is the one
/// that applied: the response timeout for commands, the connect timeout when a connection was
/// being created.
pub(crate) fn from_redis_error(
    key: &(dyn Display + Sync),
    error: RedisError,
    timeout: Duration,
) -> Error {
    let key = key.to_string();
    if error.is_timeout() {
        return Error::Timeout { key, timeout };
    }
    if let Some(code) = error.code() {
        return Error::Redis {
            key,
            code: code.to_owned(),
            source: Box::new(error),
        };
    }
    Error::Connection {
        key,
        source: Box::new(error),
    }
}

pub(crate) fn from_pool_error(
    key: &(dyn Display + Sync),
    error: PoolError,
    timeout: Duration,
) -> Error {
    match error {
        PoolError::Backend(e) => from_redis_error(key, e, timeout),
        other => Error::Pool {
            key: key.to_string(),
            source: Box::new(other),
        },
    }
}
