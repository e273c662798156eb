//! redis-rs and deadpool errors, classified into [`Error`] with the key attached.

use std::fmt;
use std::time::Duration;

use ::redis::RedisError;
use deadpool::managed::TimeoutType;
use deadpool_redis::PoolError;

use super::keys::ToKeys;
use crate::error::{Error, ErrorSource, Waited};

/// What a pool's errors report beyond the keys: which backend, and the limits that applied.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// [`Backend::kind`](crate::Backend::kind) of the pool.
    pub(crate) backend: &'static str,
    pub(crate) connect: Duration,
    pub(crate) create: Duration,
    /// `None`: no response timeout (replies are awaited for ever).
    pub(crate) response: Option<Duration>,
}

/// `keys` names what the command was about (rendered only here, on the error path).
/// `waited` is what the failed step was waiting for: a reply to a command, or a new
/// connection.
pub(crate) fn from_redis_error(
    keys: &dyn ToKeys,
    error: RedisError,
    waited: Waited,
    limits: &Limits,
) -> Error {
    let backend = limits.backend;
    let keys = keys.to_keys();
    if error.is_timeout() {
        let timeout = match waited {
            Waited::Connection => limits.connect,
            _ => limits.response.unwrap_or_default(),
        };
        return Error::Timeout {
            backend,
            keys,
            timeout,
            waited,
        };
    }
    if let Some(code) = error.code() {
        return Error::Refused {
            backend,
            keys,
            code: code.to_owned(),
            source: cause(error),
        };
    }
    Error::Connection {
        backend,
        keys,
        source: cause(error),
    }
}

/// A reply that a command cannot have.
pub(crate) fn unexpected(keys: &dyn ToKeys, limits: &Limits, reason: String) -> Error {
    Error::Protocol {
        backend: limits.backend,
        keys: keys.to_keys(),
        reason,
    }
}

/// `error` as the cause of an [`Error`] (see [`RedisCause`]).
pub(crate) fn cause(error: RedisError) -> ErrorSource {
    RedisCause(error).into()
}

/// A redis-rs error as a cause: shown as redis-rs shows it, and chained to the error it
/// wraps only when that adds something. redis-rs shows a wrapped I/O or server error's text
/// as its own and also returns it as its source, so chains printed each such cause twice
/// (`Connection refused (os error 111) <- Connection refused (os error 111)`).
struct RedisCause(RedisError);

impl fmt::Display for RedisCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for RedisCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl std::error::Error for RedisCause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        let wrapped = self.0.source()?;
        // Only on the error path, where a comparison of texts costs nothing that matters.
        match wrapped.to_string() == self.0.to_string() {
            true => wrapped.source(),
            false => Some(wrapped),
        }
    }
}

/// A failed checkout: no connection within the create timeout is a [`Error::Timeout`] (the
/// same as a connection attempt running out of time), no free slot within the wait timeout is
/// [`Error::Pool`].
pub(crate) fn from_pool_error(keys: &dyn ToKeys, error: PoolError, limits: &Limits) -> Error {
    match error {
        PoolError::Backend(e) => from_redis_error(keys, e, Waited::Connection, limits),
        PoolError::Timeout(TimeoutType::Create) => Error::Timeout {
            backend: limits.backend,
            keys: keys.to_keys(),
            timeout: limits.create,
            waited: Waited::Connection,
        },
        other => Error::Pool {
            backend: limits.backend,
            keys: keys.to_keys(),
            source: other.into(),
        },
    }
}
