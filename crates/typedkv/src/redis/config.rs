//! Settings of a [`RedisPool`](super::RedisPool), with their defaults, and URL redaction.

use std::fmt;
use std::time::Duration;

use ::redis::{ConnectionInfo, IntoConnectionInfo, ProtocolVersion, RedisError};

use crate::error::{Error, Result};

/// Default maximum number of connections in the pool (shared plus exclusive).
pub const DEFAULT_POOL_SIZE: usize = 8;
/// Default number of multiplexed connections shared by all plain commands: one. One
/// multiplexed connection pipelines every concurrent command into few socket writes; each
/// extra connection dilutes that batching and costs the (single-threaded) server more system
/// calls. Measured on 2 cores, 64 tasks: `get` at 1.02x raw redis-rs with one connection,
/// 0.82x with two, 0.68x with four.
pub const DEFAULT_SHARED_CONNECTIONS: usize = 1;
/// Default time to wait for a free pool slot before [`Error::Pool`].
pub const DEFAULT_WAIT_TIMEOUT: Duration = Duration::from_secs(2);
/// Default time to open a TCP (or TLS) connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Default time for a whole new connection (connect, AUTH/HELLO, SELECT) before
/// [`Error::Pool`].
pub const DEFAULT_CREATE_TIMEOUT: Duration = Duration::from_secs(3);
/// Default time for the pool's health check (`UNWATCH`+`PING`) of a returned connection.
pub const DEFAULT_RECYCLE_TIMEOUT: Duration = Duration::from_secs(1);
/// Default time to wait for a reply before [`Error::Timeout`].
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);

/// Validated settings of a pool. Built by [`RedisPoolBuilder`](super::RedisPoolBuilder).
#[derive(Clone)]
pub(crate) struct Settings {
    /// The server's URL; for a cluster, the seed nodes' URLs.
    pub(crate) urls: Vec<String>,
    /// Cluster only: send reads to replicas.
    pub(crate) read_from_replicas: bool,
    pub(crate) pool_size: usize,
    pub(crate) shared_connections: usize,
    pub(crate) wait_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) create_timeout: Duration,
    pub(crate) recycle_timeout: Duration,
    pub(crate) response_timeout: Option<Duration>,
    /// Batch concurrent plain commands (see `batching/`).
    pub(crate) batching: bool,
    /// PEM root certificates to trust for `rediss://` instead of the system's.
    #[cfg(feature = "tls")]
    pub(crate) tls_roots: Option<Vec<u8>>,
    /// Sentinel only: the master to ask the sentinels (`urls`) for, and how to log in to it.
    #[cfg(feature = "sentinel")]
    pub(crate) sentinel: SentinelTarget,
}

/// The master a sentinel pool asks for, and how to log in to it (the sentinels' own login is
/// in their URLs).
#[cfg(feature = "sentinel")]
#[derive(Clone, Default)]
pub(crate) struct SentinelTarget {
    pub(crate) master: String,
    pub(crate) username: Option<String>,
    pub(crate) password: Option<String>,
    pub(crate) db: i64,
    /// TLS to the master and replicas; `None`: as the sentinels' URLs say.
    pub(crate) tls: Option<bool>,
}

#[cfg(feature = "sentinel")]
impl fmt::Debug for SentinelTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SentinelTarget")
            .field("master", &self.master)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("db", &self.db)
            .field("tls", &self.tls)
            .finish()
    }
}

impl Settings {
    pub(crate) fn new(urls: Vec<String>) -> Self {
        Settings {
            urls,
            read_from_replicas: false,
            pool_size: DEFAULT_POOL_SIZE,
            shared_connections: DEFAULT_SHARED_CONNECTIONS,
            wait_timeout: DEFAULT_WAIT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            create_timeout: DEFAULT_CREATE_TIMEOUT,
            recycle_timeout: DEFAULT_RECYCLE_TIMEOUT,
            response_timeout: Some(DEFAULT_RESPONSE_TIMEOUT),
            batching: true,
            #[cfg(feature = "tls")]
            tls_roots: None,
            #[cfg(feature = "sentinel")]
            sentinel: Default::default(),
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.urls.is_empty() {
            return Err(Error::config("no Redis URL was given"));
        }
        if self.shared_connections == 0 {
            return Err(Error::config("shared_connections must be at least 1"));
        }
        if self.pool_size < self.shared_connections {
            return Err(Error::config(format!(
                "pool_size ({}) must be at least shared_connections ({})",
                self.pool_size, self.shared_connections
            )));
        }
        let timeouts = [
            ("wait_timeout", Some(self.wait_timeout)),
            ("connect_timeout", Some(self.connect_timeout)),
            ("create_timeout", Some(self.create_timeout)),
            ("recycle_timeout", Some(self.recycle_timeout)),
            ("response_timeout", self.response_timeout),
        ];
        for (name, value) in timeouts {
            if value.is_some_and(|d| d.is_zero()) {
                return Err(Error::config(format!("{name} must be greater than zero")));
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut settings = f.debug_struct("Settings");
        settings
            .field("urls", &self.redacted_urls())
            .field("pool_size", &self.pool_size)
            .field("shared_connections", &self.shared_connections)
            .field("wait_timeout", &self.wait_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("create_timeout", &self.create_timeout)
            .field("recycle_timeout", &self.recycle_timeout)
            .field("response_timeout", &self.response_timeout)
            .field("batching", &self.batching);
        #[cfg(feature = "tls")]
        settings.field(
            "tls_roots",
            &self
                .tls_roots
                .as_ref()
                .map(|pem| format!("{} bytes of PEM", pem.len())),
        );
        settings.field("read_from_replicas", &self.read_from_replicas);
        #[cfg(feature = "sentinel")]
        settings.field("sentinel", &self.sentinel);
        settings.finish()
    }
}

impl Settings {
    /// redis-rs' settings of one connection: the connect and response timeouts.
    pub(crate) fn connection_config(&self) -> ::redis::AsyncConnectionConfig {
        ::redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(self.response_timeout)
    }

    /// What the errors of a pool of `backend` report.
    pub(crate) fn limits(&self, backend: &'static str) -> super::errors::Limits {
        super::errors::Limits {
            backend,
            connect: self.connect_timeout,
            create: self.create_timeout,
            response: self.response_timeout,
        }
    }

    /// The addresses and databases the URLs name, sorted, without credentials: where a pool
    /// of these settings keeps its data ([`Backend::data_location`](crate::Backend::data_location)).
    pub(crate) fn addresses(&self) -> String {
        let mut places: Vec<String> = self
            .urls
            .iter()
            .map(|url| match connection_info(url, ProtocolVersion::RESP2) {
                Ok(info) => format!("{}/{}", info.addr(), info.redis_settings().db()),
                Err(_) => redact_url(url),
            })
            .collect();
        places.sort_unstable();
        places.dedup();
        places.join(",")
    }

    /// The URLs with passwords replaced by `***`, comma-separated.
    pub(crate) fn redacted_urls(&self) -> String {
        let urls: Vec<String> = self.urls.iter().map(|url| redact_url(url)).collect();
        urls.join(",")
    }
}

/// `url` parsed into redis-rs' connection info, speaking `protocol`.
pub(crate) fn connection_info(url: &str, protocol: ProtocolVersion) -> Result<ConnectionInfo> {
    let info = url
        .into_connection_info()
        .map_err(|e| invalid_url(url, e))?;
    let settings = info.redis_settings().clone().set_protocol(protocol);
    Ok(info.set_redis_settings(settings))
}

/// redis-rs refused `url`. Its URL and config errors carry static messages, never the URL,
/// so the error is safe to keep; the URL is named redacted.
pub(crate) fn invalid_url(url: &str, error: RedisError) -> Error {
    Error::InvalidConfig {
        reason: format!("cannot use Redis URL {}", redact_url(url)),
        source: Some(super::errors::cause(error)),
    }
}

/// `url` with any password replaced by `***`, for logs, `Debug` and errors.
///
/// Handles `scheme://user:password@host...`, `scheme://:password@host...` and the
/// `?pass=`/`?password=` query parameters redis-rs also accepts. A password may hold any
/// character (`/ ? # @ : &` included), so a URL can often be read more than one way; what
/// is a password under *any* reading is hidden:
/// - the user information ends at the last `@`, and everything in it after the first `:`
///   is hidden (all of it when the user part holds a URL delimiter);
/// - everything after a `pass=` or `password=` parameter is hidden.
///
/// A URL without `://` is not shown at all.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<unparsable URL>".to_owned();
    };
    let mut secret = vec![false; rest.len()];
    if let Some(at) = rest.rfind('@') {
        let userinfo = &rest[..at];
        let hidden_from = match userinfo.find(':') {
            Some(colon) if !has_delimiter(&userinfo[..colon]) => colon + 1,
            None if !has_delimiter(userinfo) => at,
            _ => 0,
        };
        secret[hidden_from..at].fill(true);
    }
    if let Some(value) = password_param(rest) {
        secret[value..].fill(true);
    }
    // Each run of hidden bytes becomes one `***`. Runs end at char boundaries: they start
    // after an ASCII byte and end at one (or at the end).
    let mut out = format!("{scheme}://");
    let mut in_secret = false;
    for (i, c) in rest.char_indices() {
        match (secret[i], in_secret) {
            (true, false) => out.push_str("***"),
            (false, _) => out.push(c),
            (true, true) => {}
        }
        in_secret = secret[i];
    }
    out
}

/// Whether a user name holds a character that could end a password instead.
fn has_delimiter(user: &str) -> bool {
    user.contains(['/', '?', '#', '=', '&', '@'])
}

/// The index of the value of the first `pass=`/`password=` parameter of a query in `rest`.
fn password_param(rest: &str) -> Option<usize> {
    ["?pass=", "&pass=", "?password=", "&password="]
        .iter()
        .filter_map(|param| rest.find(param).map(|at| at + param.len()))
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        let cases = [
            ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
            ("redis://:s3cret@host:1/2", "redis://:***@host:1/2"),
            ("rediss://alice:s3cret@host", "rediss://alice:***@host"),
            ("redis://alice@host", "redis://alice@host"),
            ("redis://u:p@ss:w@rd@host/0", "redis://u:***@host/0"),
            (
                "redis+unix:///tmp/r.sock?db=1&pass=s3cret",
                "redis+unix:///tmp/r.sock?db=1&pass=***",
            ),
            ("not a url s3cret", "<unparsable URL>"),
            // Passwords holding URL delimiters: none of them may show.
            (
                "redis://user:s3cr3t/x@127.0.0.1:1",
                "redis://user:***@127.0.0.1:1",
            ),
            (
                "redis://user:s3cr3t?x@127.0.0.1:1/0",
                "redis://user:***@127.0.0.1:1/0",
            ),
            ("redis://:a/b?c#d@host", "redis://:***@host"),
            ("redis://user:s3cr3t?pass=x@host", "redis://user:***"),
            ("redis://host:1/0?pass=p@ss", "redis://host:***"),
            ("redis://a/b@host", "redis://***@host"),
            (
                "redis://h/0?db=1&password=x&y=2",
                "redis://h/0?db=1&password=***",
            ),
        ];
        for (url, want) in cases {
            assert_eq!(redact_url(url), want);
        }
    }

    #[test]
    fn debug_never_shows_the_password() {
        let settings = Settings::new(vec![
            "redis://alice:s3cret@host".into(),
            "redis://alice:s3cret@other".into(),
        ]);
        assert!(!format!("{settings:?}").contains("s3cret"));
    }
}
