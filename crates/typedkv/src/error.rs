//! The one error type of the crate.
//!
//! Every variant that concerns stored data names the key it happened on (never a
//! password), and keeps the underlying error as its [`source`](std::error::Error::source)
//! rather than repeating it in `Display`, so error reporters that walk the chain print each
//! cause once. The transport variants (`Connection`, `Pool`, `Timeout`, `Refused`,
//! `Protocol`) name their backend and are built the same way by any
//! [`Backend`](crate::Backend), typedkv's or yours.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// A boxed error from a lower layer (redis-rs, deadpool, a codec).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The cause an [`Error`] keeps as its [`source`](std::error::Error::source): an error from a
/// lower layer, shared, so that an `Error` is cheap to clone (a load's failure reaches every
/// caller that awaited it). Made with `.into()` from any error, a [`BoxError`] or a message;
/// it derefs to the error itself (for `downcast_ref`), which is also what
/// [`Error::source`](std::error::Error::source) returns.
///
/// ```
/// use typedkv::{Error, Keys};
///
/// let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
/// let error = Error::Connection { backend: "mine", keys: Keys::one("k"), source: refused.into() };
/// let cause = std::error::Error::source(&error).and_then(|c| c.downcast_ref::<std::io::Error>());
/// assert_eq!(cause.map(|e| e.kind()), Some(std::io::ErrorKind::ConnectionRefused));
/// assert_eq!(error.clone().to_string(), error.to_string());
/// ```
#[derive(Clone)]
pub struct ErrorSource(Arc<dyn std::error::Error + Send + Sync + 'static>);

impl<E: Into<BoxError>> From<E> for ErrorSource {
    fn from(error: E) -> Self {
        ErrorSource(Arc::from(error.into()))
    }
}

impl std::ops::Deref for ErrorSource {
    type Target = dyn std::error::Error + Send + Sync + 'static;

    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

impl fmt::Debug for ErrorSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for ErrorSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in a store operation.
///
/// Matching must allow for variants added later (`#[non_exhaustive]`). The helpers
/// [`Error::key`], [`Error::is_transient`], [`Error::is_timeout`], [`Error::is_decode`] and
/// [`Error::code`] answer the common questions without a full match.
///
/// ```
/// use std::time::Duration;
/// use typedkv::{Error, Keys, Waited};
///
/// // A backend of your own reports failures with the same variants as Redis does.
/// let err = Error::Timeout {
///     backend: "my-backend",
///     keys: Keys::one("user:42"),
///     timeout: Duration::from_secs(1),
///     waited: Waited::Reply,
/// };
/// assert!(err.is_transient());
/// assert_eq!(err.key(), Some("user:42"));
/// assert_eq!(err.to_string(), "gave up after 1s waiting for a reply from my-backend (key user:42)");
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The namespace given to a store builder is not usable as a key prefix.
    #[error("invalid namespace {namespace:?}: {reason}")]
    InvalidNamespace {
        /// The namespace as given.
        namespace: String,
        /// Why it was refused.
        reason: &'static str,
    },

    /// An id cannot be turned into a key (empty, or longer than [`crate::MAX_ID_LEN`]).
    #[error("invalid id in namespace {namespace:?}: {reason}")]
    InvalidId {
        /// The namespace of the store the id was used with.
        namespace: String,
        /// Why it was refused. The id itself is not repeated: it may be huge or personal data.
        reason: &'static str,
    },

    /// A configuration value is out of range (zero TTL, zero pool size, bad URL, ...).
    #[error("invalid configuration: {reason}")]
    InvalidConfig {
        /// What is wrong, without secrets.
        reason: String,
        /// The underlying error, if a lower layer reported one.
        #[source]
        source: Option<ErrorSource>,
    },

    /// No connection to the backend could be made, or the connection broke during the
    /// operation.
    #[error("connection to {backend} failed ({keys})")]
    Connection {
        /// Which backend ([`Backend::kind`](crate::Backend::kind): `"redis"`, ...).
        backend: &'static str,
        /// The key (or batch of keys) of the operation.
        keys: Keys,
        /// The backend's error (for Redis: redis-rs' I/O or protocol error).
        #[source]
        source: ErrorSource,
    },

    /// The backend's connection pool had no connection to give within its wait timeout (all
    /// busy).
    #[error("no pooled {backend} connection became available ({keys})")]
    Pool {
        /// Which backend.
        backend: &'static str,
        /// The key (or batch of keys) of the operation.
        keys: Keys,
        /// The pool's error.
        #[source]
        source: ErrorSource,
    },

    /// The operation gave up waiting: for a reply, for a new connection, or for its turn
    /// behind another update of the same key. [`waited`](Error::Timeout::waited) says which,
    /// and `timeout` is the limit that applied.
    #[error("gave up after {timeout:?} waiting for {waited} from {backend} ({keys})")]
    Timeout {
        /// Which backend.
        backend: &'static str,
        /// The key (or batch of keys) of the operation.
        keys: Keys,
        /// The limit that elapsed: the response timeout for a reply, the connect or create
        /// timeout for a new connection, the response timeout for an update's turn.
        timeout: Duration,
        /// What the operation was waiting for.
        waited: Waited,
    },

    /// The backend refused the command with an error code: for Redis `WRONGTYPE` when the
    /// key holds a list, `NOPERM` from an ACL, `OOM` when `maxmemory` is reached, `LOADING`
    /// while it loads its data, ...
    #[error("{backend} refused the command ({keys}): {code}")]
    Refused {
        /// Which backend.
        backend: &'static str,
        /// The key (or batch of keys) of the operation.
        keys: Keys,
        /// The error code the backend sent (`WRONGTYPE`, `NOPERM`, `OOM`, ...).
        code: String,
        /// The backend's full error.
        #[source]
        source: ErrorSource,
    },

    /// The backend answered something that is not a reply this command can have (a bug or
    /// an incompatible server), so the outcome of the operation is unknown.
    #[error("unexpected reply from {backend} ({keys}): {reason}")]
    Protocol {
        /// Which backend.
        backend: &'static str,
        /// The key (or batch of keys) of the operation.
        keys: Keys,
        /// What was unexpected.
        reason: String,
    },

    /// A write was sent but its [write concern](crate::WriteConcern) was not met in time:
    /// fewer replicas (or disks) than asked confirmed it. The write **may have been
    /// applied**: it is on the master and on the `acknowledged` replicas, and a failover now
    /// may keep or drop it. As after a reply timeout, read the key to learn its state, or
    /// write again (an idempotent write is safe to repeat).
    #[error(
        "{backend} confirmed the write ({keys}) on {acknowledged} of the {required} replicas asked for within {timeout:?}; it may have been applied"
    )]
    Unacknowledged {
        /// Which backend.
        backend: &'static str,
        /// The key (or batch of keys) of the write.
        keys: Keys,
        /// How many replicas (with [`on_disk`](crate::WriteConcern::on_disk): how many
        /// replicas' append-only files, or 0 when the master's own was not written) had it.
        acknowledged: u32,
        /// How many the concern asked for.
        required: u32,
        /// The concern's wait that elapsed.
        timeout: Duration,
    },

    /// [`Store::update`](crate::Store::update) found the value changed by someone else on
    /// every one of its attempts (extreme contention on one key); or a
    /// [transaction](crate::transaction) found, on every attempt, a key it had read changed
    /// before it could commit (`key`: the last one found changed). Nothing was written.
    #[error("key {key} kept changing under a read-modify-write ({attempts} attempts)")]
    Conflict {
        /// The key.
        key: String,
        /// How many read-modify-write attempts were made.
        attempts: u32,
    },

    /// The loader of [`Store::get_or_load`](crate::Store::get_or_load) failed
    /// (or panicked); every caller waiting for that load gets this, and nothing was cached.
    #[error("loading the value for key {key} failed")]
    Load {
        /// The key.
        key: String,
        /// The loader's error (shared by every caller of the load).
        #[source]
        source: ErrorSource,
    },

    /// The value could not be serialized by the store's codec.
    #[error("cannot encode the value for key {key} with codec {codec}")]
    Encode {
        /// The key the value was meant for.
        key: String,
        /// The codec's name.
        codec: &'static str,
        /// The codec's error.
        #[source]
        source: ErrorSource,
    },

    /// The bytes stored at the key are not a value this store can read: another codec, another
    /// schema version, another program's bytes, or truncated/corrupt data.
    #[error(
        "cannot decode the value at key {key} (codec {codec}, schema version {expected_schema}): {problem}"
    )]
    Decode {
        /// The key the bytes were read from.
        key: String,
        /// The codec of the store that tried to read them.
        codec: &'static str,
        /// The schema version the store expects.
        expected_schema: u32,
        /// What exactly is wrong with the bytes.
        problem: DecodeProblem,
        /// The codec's own error, when the header was fine but the payload was not.
        #[source]
        source: Option<ErrorSource>,
    },
    /// A write would give an entity a value of a unique index that another live entity
    /// holds. Nothing was written.
    #[error("key {key} cannot take value {value} of unique index {index}: another entity holds it")]
    UniqueViolation {
        /// The key of the entity being written.
        key: String,
        /// The unique index.
        index: String,
        /// The value, as text when it is UTF-8, its other bytes escaped (`\xff`).
        value: String,
    },

    /// A query named an index the store does not have.
    #[error("store {namespace:?} has no index {index:?}")]
    UnknownIndex {
        /// The store's namespace.
        namespace: String,
        /// The index asked for.
        index: String,
    },

    /// An index declaration or query is unusable: a bad or duplicate name, a backend that
    /// keeps no indexes, a query of the wrong kind of index.
    #[error("invalid index {index:?}: {reason}")]
    InvalidIndex {
        /// The index's name as given.
        index: String,
        /// Why it was refused.
        reason: String,
    },

    /// An index's extractor panicked on the value being written; nothing was written.
    #[error("the extractor of index {index} panicked on the value for key {key}")]
    IndexValue {
        /// The key the value was meant for.
        key: String,
        /// The index.
        index: String,
    },

    /// A [transaction](crate::transaction) cannot run as asked, and wrote nothing: its keys
    /// lie in several Redis Cluster slots, it used stores on another backend than its own,
    /// two stores with indexes (or two partitions of one), a handle after
    /// its attempt ended, or its closure panicked. Calling again unchanged fails the same
    /// way.
    #[error("transaction refused: {reason}")]
    Transaction {
        /// What was asked that a transaction cannot do.
        reason: String,
    },
}

/// What an operation was waiting for when its time ran out; part of [`Error::Timeout`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Waited {
    /// The reply to a command it sent (the pool's `response_timeout`).
    #[error("a reply")]
    Reply,
    /// A new connection: its own attempt (`connect_timeout`), or in all, including another
    /// call's attempt it waited behind (`create_timeout`).
    #[error("a new connection")]
    Connection,
    /// Its turn behind another [`update`](crate::Store::update) of the same key (or of a key
    /// sharing its lock stripe) from the same store; bounded by the response timeout.
    #[error("its turn behind another update of the same key")]
    UpdateTurn,
    /// The end of a [transaction](crate::transaction)'s deadline, which bounds all of its
    /// attempts together ([`TransactionOptions::deadline`](crate::TransactionOptions::deadline)).
    #[error("the end of the transaction's deadline")]
    Transaction,
}

/// Why stored bytes could not be decoded; part of [`Error::Decode`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeProblem {
    /// The bytes do not start with typedkv's envelope header: another program (or a plain-JSON
    /// store) wrote them.
    #[error("not a typedkv value (no envelope header)")]
    NotEnveloped,
    /// The envelope header itself is cut short.
    #[error("truncated envelope header ({len} bytes)")]
    TruncatedHeader {
        /// How many bytes there were.
        len: usize,
    },
    /// The envelope uses a layout this version of typedkv does not know (written by a newer one).
    #[error("unknown envelope format {found}")]
    UnknownEnvelope {
        /// The format byte found.
        found: u8,
    },
    /// The value was written by another codec.
    #[error("written by codec id {found}, this store uses codec id {expected}")]
    CodecMismatch {
        /// Codec id in the stored header.
        found: u8,
        /// Codec id of this store.
        expected: u8,
    },
    /// The value was written with another schema version of the type.
    #[error("written with schema version {found}, this store reads version {expected}")]
    SchemaMismatch {
        /// Schema version in the stored header.
        found: u32,
        /// Schema version of this store.
        expected: u32,
    },
    /// The value was written by a type whose serde layout differs from this store's type
    /// (a field added, removed, reordered or retyped) under the same schema version: decoding
    /// it could give garbage. Bump the store's schema version and read older values with a
    /// migration (see [`crate::layout`]).
    #[error(
        "written by a type of another layout ({found}, this store's type is {expected}): the \
         type changed without a schema_version bump"
    )]
    LayoutMismatch {
        /// Layout fingerprint in the stored header.
        found: crate::Layout,
        /// Layout fingerprint of this store's type.
        expected: crate::Layout,
    },
    /// The payload is larger than the codec's decode limit; it was not decoded.
    #[error("payload of {len} bytes exceeds the decode limit of {limit} bytes")]
    TooLarge {
        /// Payload length.
        len: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The key's id (after `namespace:`) is not UTF-8 text, so it is no id of a typedkv
    /// store: another program wrote the key. Reported by scans for that key alone.
    #[error("the key's id is not UTF-8 text")]
    IdNotUtf8,
    /// The key's id (after `namespace:`) is one this store refuses, so no call of it can
    /// reach the key (`get` and `delete` answer [`Error::InvalidId`]): another program wrote
    /// it. Reported by scans for that key alone; `count` counts it and `clear` removes it.
    #[error("the key's id is one this store refuses: {reason}")]
    InvalidId {
        /// Why: it is empty, or longer than [`MAX_ID_LEN`](crate::MAX_ID_LEN), or (in a
        /// [partitioned](crate::StoreBuilder::partitions) store) the key is not in the
        /// partition of its id.
        reason: &'static str,
    },
    /// The envelope's flags byte (format 3) has bits this version of typedkv does not know
    /// (written by a newer one), or none at all.
    #[error("unknown envelope flags {flags:#04x}")]
    UnknownFlags {
        /// The flags byte found.
        flags: u8,
    },
    /// The value is compressed or encrypted, and this build of typedkv lacks the feature
    /// that reads it.
    #[error("the value needs typedkv's `{feature}` feature")]
    FeatureMissing {
        /// The Cargo feature to enable.
        feature: &'static str,
    },
    /// The value is encrypted, and this store has no keyring.
    #[error("the value is encrypted (key id {key_id}) and this store has no keyring")]
    NoKeyring {
        /// The id of the key it was encrypted under.
        key_id: u32,
    },
    /// The value is encrypted under a key id that is not in the store's keyring (a newer
    /// key, or an old one removed too early).
    #[error("the value is encrypted under key id {id}, which is not in the keyring")]
    UnknownKeyId {
        /// The key id in the stored header.
        id: u32,
    },
    /// The value did not decrypt: changed after it was written (a flipped or cut byte, its
    /// header edited), copied from another key, or encrypted under another key with the
    /// same id.
    #[error(
        "the value does not decrypt under key id {key_id}: it was changed, moved from another \
         key, or written with another key"
    )]
    Unauthentic {
        /// The key id in the stored header.
        key_id: u32,
    },
    /// The value is not encrypted, and the store's keyring does not
    /// [accept unencrypted values](crate::Keyring::accept_unencrypted).
    #[error("the value is not encrypted, and this store reads encrypted values only")]
    NotEncrypted,
    /// The value is compressed, and its block is corrupt or not of the length its header
    /// claims.
    #[error("the compressed payload is corrupt")]
    InvalidCompression,
    /// The payload after the header is invalid for the type (corrupt, truncated, trailing bytes,
    /// or another type's layout); the codec's error is the [`Error::Decode`]'s source.
    #[error("invalid payload")]
    InvalidPayload,
}

/// The keys a failed operation concerned, as errors name them: none (a connection check),
/// one key, or a batch (its first key and how many there were).
///
/// ```
/// use typedkv::Keys;
///
/// assert_eq!(Keys::one("user:1").to_string(), "key user:1");
/// assert_eq!(Keys::batch("user:1", 100).to_string(), "keys user:1 and 99 more");
/// assert_eq!(Keys::batch("user:1", 100).count(), 100);
/// assert_eq!(Keys::none().first(), None);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keys {
    first: Option<String>,
    count: usize,
}

impl Keys {
    /// No key: the operation concerned the connection itself (a ping, a checkout).
    pub const fn none() -> Self {
        Keys {
            first: None,
            count: 0,
        }
    }

    /// One key.
    pub fn one(key: impl Into<String>) -> Self {
        Keys {
            first: Some(key.into()),
            count: 1,
        }
    }

    /// A batch of `count` keys whose first is `first` (`count` is at least 1).
    pub fn batch(first: impl Into<String>, count: usize) -> Self {
        Keys {
            first: Some(first.into()),
            count: count.max(1),
        }
    }

    /// The (first) key, if any.
    pub fn first(&self) -> Option<&str> {
        self.first.as_deref()
    }

    /// How many keys the operation concerned.
    pub fn count(&self) -> usize {
        self.count
    }
}

impl fmt::Display for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.first, self.count) {
            (None, _) => f.write_str("no key"),
            (Some(key), 0 | 1) => write!(f, "key {key}"),
            (Some(first), count) => write!(f, "keys {first} and {} more", count - 1),
        }
    }
}

/// Error codes with which Redis refuses a command for a while and then accepts it again.
const TRANSIENT_CODES: [&str; 5] = ["LOADING", "TRYAGAIN", "CLUSTERDOWN", "MASTERDOWN", "BUSY"];

impl Error {
    /// The key the failed operation was about, if it concerned one; for a batch its first
    /// key ([`key_count`](Error::key_count) says how many there were).
    pub fn key(&self) -> Option<&str> {
        match self {
            Error::Connection { keys, .. }
            | Error::Pool { keys, .. }
            | Error::Timeout { keys, .. }
            | Error::Unacknowledged { keys, .. }
            | Error::Refused { keys, .. }
            | Error::Protocol { keys, .. } => keys.first(),
            Error::Conflict { key, .. }
            | Error::Load { key, .. }
            | Error::Encode { key, .. }
            | Error::Decode { key, .. }
            | Error::UniqueViolation { key, .. }
            | Error::IndexValue { key, .. } => Some(key),
            Error::UnknownIndex { .. }
            | Error::InvalidIndex { .. }
            | Error::InvalidNamespace { .. }
            | Error::InvalidId { .. }
            | Error::InvalidConfig { .. }
            | Error::Transaction { .. } => None,
        }
    }

    /// How many keys the failed operation concerned: the size of a batch, 1 for one key, 0
    /// when it concerned none (configuration, a connection check).
    pub fn key_count(&self) -> usize {
        match self {
            Error::Connection { keys, .. }
            | Error::Pool { keys, .. }
            | Error::Timeout { keys, .. }
            | Error::Unacknowledged { keys, .. }
            | Error::Refused { keys, .. }
            | Error::Protocol { keys, .. } => keys.count(),
            other => usize::from(other.key().is_some()),
        }
    }

    /// Whether calling again, unchanged, may succeed: timeouts, lost or unavailable
    /// connections, an exhausted pool, an update that kept conflicting, and refusals the
    /// backend lifts by itself (`LOADING`, `TRYAGAIN`, `CLUSTERDOWN`, `MASTERDOWN`, `BUSY`).
    /// Not for data that cannot be decoded, invalid input or configuration, permissions
    /// (`NOPERM`), a wrong key type (`WRONGTYPE`), a full server (`OOM`), unexpected replies,
    /// or a loader's own failure (look at its source).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Connection { .. }
            | Error::Pool { .. }
            | Error::Timeout { .. }
            | Error::Unacknowledged { .. }
            | Error::Conflict { .. } => true,
            Error::Refused { code, .. } => TRANSIENT_CODES.contains(&code.as_str()),
            Error::Protocol { .. }
            | Error::Load { .. }
            | Error::Encode { .. }
            | Error::Decode { .. }
            | Error::UniqueViolation { .. }
            | Error::UnknownIndex { .. }
            | Error::InvalidIndex { .. }
            | Error::IndexValue { .. }
            | Error::InvalidNamespace { .. }
            | Error::InvalidId { .. }
            | Error::InvalidConfig { .. }
            | Error::Transaction { .. } => false,
        }
    }

    /// `true` when the operation gave up waiting.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout { .. })
    }

    /// `true` when an update gave up after conflicting on every attempt.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Conflict { .. })
    }

    /// `true` when stored bytes could not be decoded.
    pub fn is_decode(&self) -> bool {
        matches!(self, Error::Decode { .. })
    }

    /// The error code (`WRONGTYPE`, `NOPERM`, `OOM`, ...) if the backend refused the command.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Refused { code, .. } => Some(code),
            _ => None,
        }
    }

    /// A short, stable name of the variant, for logs and metrics labels: `"timeout"`,
    /// `"connection"`, `"pool"`, `"unacknowledged"`, `"refused"`, `"protocol"`, `"conflict"`, `"load"`,
    /// `"encode"`, `"decode"`, `"invalid_namespace"`, `"invalid_id"`, `"invalid_config"`,
    /// `"unique_violation"`, `"unknown_index"`, `"invalid_index"`, `"index_value"`,
    /// `"transaction"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::InvalidNamespace { .. } => "invalid_namespace",
            Error::InvalidId { .. } => "invalid_id",
            Error::InvalidConfig { .. } => "invalid_config",
            Error::Connection { .. } => "connection",
            Error::Pool { .. } => "pool",
            Error::Timeout { .. } => "timeout",
            Error::Unacknowledged { .. } => "unacknowledged",
            Error::Refused { .. } => "refused",
            Error::Protocol { .. } => "protocol",
            Error::Conflict { .. } => "conflict",
            Error::Load { .. } => "load",
            Error::Encode { .. } => "encode",
            Error::Decode { .. } => "decode",
            Error::UniqueViolation { .. } => "unique_violation",
            Error::UnknownIndex { .. } => "unknown_index",
            Error::InvalidIndex { .. } => "invalid_index",
            Error::IndexValue { .. } => "index_value",
            Error::Transaction { .. } => "transaction",
        }
    }

    pub(crate) fn config(reason: impl Into<String>) -> Self {
        Error::InvalidConfig {
            reason: reason.into(),
            source: None,
        }
    }
}
