//! Finding the master, as the Sentinel client protocol says: each sentinel in turn is asked
//! `SENTINEL GET-MASTER-ADDR-BY-NAME`, and the server it names must answer `ROLE` as a
//! master on the very connection the pool then uses. The sentinel that last announced a
//! switch (see `watch.rs`) or last answered is asked first.
//!
//! Not redis-rs' `SentinelClient` for this: it asks `SENTINEL MASTERS`, which the sentinel
//! leading a failover keeps answering with the old master until the failover ends (seconds
//! after the promotion; the failover timeout at worst), and an old master that is still up
//! answers `ROLE` as a master until Sentinel demotes it, seconds later again. Pools
//! reconnected to it and wrote there, and those writes were lost when it was demoted.
//! `GET-MASTER-ADDR-BY-NAME` names the promoted replica as soon as the leader sees it
//! promoted.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use ::redis::aio::MultiplexedConnection;
use ::redis::{
    AsyncConnectionConfig, Client, ConnectionAddr, ConnectionInfo, ErrorKind, IntoConnectionInfo,
    RedisConnectionInfo, RedisError, Value,
};

/// How to reach the master through the sentinels.
pub(crate) struct MasterLookup {
    /// The sentinels, ready to connect to (TLS, login).
    sentinels: Vec<ConnectionInfo>,
    /// An open connection to each sentinel, once one was made.
    connections: Vec<Mutex<Option<MultiplexedConnection>>>,
    /// The sentinel to ask first.
    first: AtomicUsize,
    /// The master's name.
    master: String,
    /// How to reach a data node the sentinels name.
    node: DataNode,
    /// Timeouts of the connections to the sentinels.
    config: AsyncConnectionConfig,
    /// Counts the switches the sentinels announced (`watch.rs`), for the local cache's
    /// tracking connection to follow them (`cache/tracking.rs`).
    switches: tokio::sync::watch::Sender<u64>,
}

/// How to connect to a data node (the master or a replica) at an address a sentinel gave.
pub(crate) struct DataNode {
    /// Login, database and protocol.
    pub(crate) redis: RedisConnectionInfo,
    /// `Some` for TLS: the roots to trust instead of the system's, if any.
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<Option<::redis::TlsCertificates>>,
}

impl DataNode {
    /// The connection info of the node at `host:port`.
    fn at(&self, host: String, port: u16) -> Result<ConnectionInfo, RedisError> {
        #[cfg(feature = "tls")]
        if let Some(roots) = &self.tls {
            let addr = ConnectionAddr::TcpTls {
                host,
                port,
                insecure: false,
                tls_params: None,
            };
            let info = addr
                .into_connection_info()?
                .set_redis_settings(self.redis.clone());
            return match roots {
                Some(roots) => Ok(Client::build_with_tls(info, roots.clone())?
                    .get_connection_info()
                    .clone()),
                None => Ok(info),
            };
        }
        Ok(ConnectionAddr::Tcp(host, port)
            .into_connection_info()?
            .set_redis_settings(self.redis.clone()))
    }
}

impl MasterLookup {
    pub(crate) fn new(
        sentinels: Vec<ConnectionInfo>,
        master: String,
        node: DataNode,
        config: AsyncConnectionConfig,
    ) -> Self {
        MasterLookup {
            connections: sentinels.iter().map(|_| Mutex::new(None)).collect(),
            sentinels,
            first: AtomicUsize::new(0),
            master,
            node,
            config,
            switches: tokio::sync::watch::Sender::new(0),
        }
    }

    /// A sentinel announced that our master switched (after the lanes were marked dead).
    pub(crate) fn switched(&self) {
        self.switches.send_modify(|count| *count += 1);
    }

    /// Hears every switch announced from now on.
    #[cfg(feature = "cache")]
    pub(crate) fn switches(&self) -> tokio::sync::watch::Receiver<u64> {
        self.switches.subscribe()
    }

    /// Ask sentinel `index` first from now on: it announced a switch, so it knows the new
    /// master (others may not have heard yet).
    pub(crate) fn prefer(&self, index: usize) {
        self.first.store(index, Ordering::Relaxed);
    }

    /// A connection, configured by `config`, to the server the first sentinel that answers
    /// names as the master, checked to be a master; the last error if none is.
    pub(crate) async fn connect(
        &self,
        config: &AsyncConnectionConfig,
    ) -> Result<MultiplexedConnection, RedisError> {
        let count = self.sentinels.len();
        let first = self.first.load(Ordering::Relaxed);
        let mut last_error = None;
        for index in (0..count).map(|k| (first + k) % count) {
            let connected = async {
                let (host, port) = self.ask(index).await?;
                let client = Client::open(self.node.at(host, port)?)?;
                let mut conn = client
                    .get_multiplexed_async_connection_with_config(config)
                    .await?;
                check_master(&mut conn).await?;
                Ok::<_, RedisError>(conn)
            };
            match connected.await {
                Ok(conn) => {
                    self.prefer(index);
                    return Ok(conn);
                }
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| {
            RedisError::from((ErrorKind::InvalidClientConfig, "no sentinel was given"))
        }))
    }

    /// The master's address as sentinel `index` names it.
    async fn ask(&self, index: usize) -> Result<(String, u16), RedisError> {
        let cached = self.lock(index).clone();
        let mut conn = match cached {
            Some(conn) => conn,
            None => {
                let client = Client::open(self.sentinels[index].clone())?;
                let conn = client
                    .get_multiplexed_async_connection_with_config(&self.config)
                    .await?;
                *self.lock(index) = Some(conn.clone());
                conn
            }
        };
        let answer: Result<Option<(String, u16)>, RedisError> = ::redis::cmd("SENTINEL")
            .arg("GET-MASTER-ADDR-BY-NAME")
            .arg(&self.master)
            .query_async(&mut conn)
            .await;
        match answer {
            Ok(Some(address)) => Ok(address),
            Ok(None) => Err(RedisError::from((
                ErrorKind::MasterNameNotFoundBySentinel,
                "the sentinel does not know a master of that name",
            ))),
            Err(e) => {
                // Connect again next time: the connection may be what failed.
                *self.lock(index) = None;
                Err(e)
            }
        }
    }

    fn lock(&self, index: usize) -> std::sync::MutexGuard<'_, Option<MultiplexedConnection>> {
        self.connections[index]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// `Ok` if the server on `conn` says (`ROLE`) it is a master.
pub(crate) async fn check_master(conn: &mut MultiplexedConnection) -> Result<(), RedisError> {
    let role: Value = ::redis::cmd("ROLE").query_async(conn).await?;
    match &role {
        Value::Array(parts) if matches!(parts.first(), Some(Value::BulkString(r)) if r == b"master") => {
            Ok(())
        }
        _ => Err(RedisError::from((
            ErrorKind::MasterNameNotFoundBySentinel,
            "the server the sentinel named is not a master (yet, or any more)",
        ))),
    }
}
