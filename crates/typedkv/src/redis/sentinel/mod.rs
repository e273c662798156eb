//! Redis Sentinel (feature `sentinel`): [`RedisSentinelPool`], a pool of connections to the
//! master that the sentinels name, following it through failovers.
//!
//! Everything but connecting is the standalone pool's: the same lanes, commands, batching
//! and errors (`Shared`). Connecting asks the sentinels (`manager.rs`); a lane whose
//! connection dies or is answered `READONLY` (its server was demoted) is replaced by one to
//! the master the sentinels name then.

mod backend;
mod lookup;
mod manager;
mod watch;

use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;

use ::redis::sentinel::{SentinelClientBuilder, SentinelServerType};
use ::redis::{ProtocolVersion, PushInfo, PushKind};
use deadpool::managed::Object;

use self::lookup::{DataNode, MasterLookup};
use self::manager::SentinelManager;
use super::builder::RedisPoolBuilder;
use super::config::{Settings, connection_info, invalid_url};
use super::lanes::Generations;
use super::shared::{OnBrokenConnection, Shared};
use crate::error::{Error, Result};

/// Target of a [`RedisPoolBuilder`] that builds a [`RedisSentinelPool`].
#[derive(Debug)]
pub enum Sentinel {}

impl RedisPoolBuilder<Sentinel> {
    /// The user the pool logs in to the master (and, after a failover, the new master) as
    /// (Redis ACL). Default: none (the `default` user).
    pub fn master_username(mut self, username: impl Into<String>) -> Self {
        self.settings.sentinel.username = Some(username.into());
        self
    }

    /// The password of the master's user. Never printed: `Debug` shows `***`.
    pub fn master_password(mut self, password: impl Into<String>) -> Self {
        self.settings.sentinel.password = Some(password.into());
        self
    }

    /// The database to select on the master. Default 0.
    pub fn master_db(mut self, db: i64) -> Self {
        self.settings.sentinel.db = db;
        self
    }

    /// Whether to connect to the master and replicas over TLS (feature `tls`), verifying
    /// their certificates against the system's roots or those given to
    /// [`tls_root_certificates`](RedisPoolBuilder::tls_root_certificates), as the sentinels'
    /// are. Default: as the sentinels, TLS when their URLs are `rediss://`. The sentinels
    /// name the servers by the address they announce, so the certificates must be valid for
    /// that address (an IP address unless `replica-announce-ip`/`sentinel
    /// resolve-hostnames` say otherwise).
    #[cfg(feature = "tls")]
    pub fn master_tls(mut self, enabled: bool) -> Self {
        self.settings.sentinel.tls = Some(enabled);
        self
    }

    /// Send plain reads (`get`, `get_many`, `exists`, `ttl`) to a replica the sentinels name
    /// (a random one per connection; the master when none answers), spreading load over
    /// them. Default `false`. Replication is asynchronous: such a read can miss a write that
    /// was just acknowledged. Writes, `update`, scans, index queries and the local cache's
    /// reads always go to the master.
    pub fn read_from_replicas(mut self, enabled: bool) -> Self {
        self.settings.read_from_replicas = enabled;
        self
    }

    /// Validates the settings and creates the pool (without connecting).
    ///
    /// Fails with [`Error::InvalidConfig`](crate::Error::InvalidConfig) for an unparsable
    /// sentinel URL, sentinel URLs mixing `redis://` and `rediss://`, an empty master name,
    /// TLS root certificates when nothing uses TLS, and the settings a standalone pool
    /// refuses.
    pub fn build(self) -> Result<RedisSentinelPool> {
        RedisSentinelPool::new(self.settings)
    }
}

/// A pool of connections to the master that Redis Sentinel names, and the
/// [`Backend`](crate::Backend) of [`RedisSentinelStore`](crate::RedisSentinelStore). Clones
/// share the pool.
///
/// Give it the sentinels' URLs (any number: each is asked in turn; a password in them is
/// the sentinels' own; `rediss://` for TLS, feature `tls`) and the master's name as the
/// sentinels know it. Connections go to the master the sentinels name when each connection
/// is made; after a failover, the connections to the old master fail (it died) or are
/// answered `READONLY` (it came back as a replica), and the pool replaces them with
/// connections to the new master; it also moves as soon as any sentinel announces a new
/// master. Calls fail only until a replica is promoted, each within its timeouts. Every
/// setting of [`RedisPoolBuilder`] applies, plus the master's login.
///
/// - **A failover, measured** (`tests/sentinel/main.rs`: 16 tasks writing and reading,
///   `down-after-milliseconds` 500, quorum 2 of 3 sentinels, loopback): replica promoted
///   1.7–1.9 s after the master was killed, last failed call within 0.1 s of the promotion,
///   slowest call 17–43 ms, 0 of 100,000–160,000 acknowledged writes lost. Until the
///   promotion, calls fail with [`Error::Connection`](crate::Error::Connection) (each new
///   connection asks the sentinels, which still name the dead master). Replication is
///   asynchronous: on a real network, writes acknowledged just before a crash can be lost.
/// - **When the sentinels announce a new master** (`+switch-master`), the pool leaves the old
///   one even if it is still up and reachable (a partition: it would take writes the new
///   master never sees); an old master that comes back as a replica is left at its first
///   `READONLY` answer at the latest.
/// - **A planned `SENTINEL FAILOVER` loses writes acknowledged without a write concern**:
///   Sentinel promotes the replica, announces it when it next polls the replica (about a
///   second later, sometimes several), and demotes the old master seconds after that. The
///   old master, up all along, acknowledges the writes of that gap and drops them when it
///   is demoted. The pool moves at the first announcement from any sentinel; in the test
///   above no call failed and no write acknowledged after the announcement was lost, but
///   11,000–59,000 of 64,000–160,000 writes were, all acknowledged between the command and
///   the announcement (1.1–4.5 s). A store with a [`WriteConcern`](crate::WriteConcern) of
///   every replica (`replicas(2)` with two) loses none: the old master's writes of the gap
///   reach no replica and fail with [`Error::Unacknowledged`](crate::Error::Unacknowledged)
///   (`tests/sentinel/concern.rs`: 0 of 2,814–5,991 lost, 208–248 unacknowledged, beside
///   2,026–6,479 of 49,000–122,125 lost without a concern in the same failover).
///   `all_replicas()` does not protect this case: the old master counts fewer replicas as
///   they leave it (967–1,774 lost).
/// - **Reads from replicas**, by choice
///   ([`read_from_replicas`](RedisPoolBuilder::read_from_replicas)): `get`, `get_many`,
///   `exists` and `ttl` go to a replica the sentinels name (the master when none answers).
///   Writes, `update`, scans, index queries and the local cache's reads stay on the master.
/// - **TLS** (feature `tls`): `rediss://` sentinel URLs connect to the sentinels over TLS
///   and, by default, to the master and replicas too
///   ([`master_tls`](RedisPoolBuilder::master_tls) says otherwise); every certificate is
///   verified, against the system's roots or one PEM bundle for both
///   ([`tls_root_certificates`](RedisPoolBuilder::tls_root_certificates)). The sentinels
///   name servers by the address they announce, so the data nodes' certificates must be
///   valid for it (usually an IP address). An untrusted certificate fails the call with
///   [`Error::Connection`](crate::Error::Connection) naming it (`tests/sentinel/tls.rs`).
///
/// ```no_run
/// use typedkv::redis::RedisSentinelPool;
///
/// let pool = RedisSentinelPool::builder(
///     ["redis://10.0.0.1:26379", "redis://10.0.0.2:26379", "redis://10.0.0.3:26379"],
///     "mymaster",
/// )
/// .master_username("app")
/// .master_password("s3cret")
/// .build()?;
/// # Ok::<(), typedkv::Error>(())
/// ```
#[derive(Clone)]
pub struct RedisSentinelPool {
    inner: Arc<Inner>,
    /// The write concern of this handle's writes (`Backend::with_concern`); `None` for
    /// none.
    concern: Option<crate::WriteConcern>,
}

/// A pool of connections that a [`SentinelManager`] makes.
type SentinelShared = Shared<SentinelManager, Object<SentinelManager>>;

struct Inner {
    shared: Arc<SentinelShared>,
    /// With `read_from_replicas`: the lanes of plain reads, on replicas.
    replicas: Option<Arc<SentinelShared>>,
    settings: Settings,
    /// [`RedisSentinelPool::location`], made once (URL parsing costs microseconds).
    location: String,
}

impl RedisSentinelPool {
    /// Starts configuring a pool for the master `master` of the sentinels at `sentinels`.
    pub fn builder<I, S>(sentinels: I, master: impl Into<String>) -> RedisPoolBuilder<Sentinel>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut builder = RedisPoolBuilder::new(sentinels.into_iter().map(Into::into).collect());
        builder.settings.sentinel.master = master.into();
        builder
    }

    fn new(settings: Settings) -> Result<Self> {
        settings.validate()?;
        let target = &settings.sentinel;
        if target.master.is_empty() {
            return Err(Error::config("a sentinel pool needs the master's name"));
        }
        let sentinels_tls = settings.urls[0].starts_with("rediss://");
        if settings
            .urls
            .iter()
            .any(|url| url.starts_with("rediss://") != sentinels_tls)
        {
            return Err(Error::config(
                "the sentinel URLs mix redis:// and rediss://: use TLS for all or none",
            ));
        }
        let node = data_node(&settings, sentinels_tls)?;
        let mut sentinel_infos = Vec::with_capacity(settings.urls.len());
        for url in &settings.urls {
            // RESP3: the watcher receives the sentinels' announcements as pushes.
            let info = connection_info(url, ProtocolVersion::RESP3)?;
            #[cfg(feature = "tls")]
            let info = match sentinels_tls {
                true => super::tls::prepare(info, settings.tls_roots.as_deref())?,
                false => info,
            };
            sentinel_infos.push(info);
        }
        let replica_client = match settings.read_from_replicas {
            true => Some(replica_client(&settings, &sentinel_infos, &node)?),
            false => None,
        };
        let lookup = Arc::new(MasterLookup::new(
            sentinel_infos.clone(),
            target.master.clone(),
            node,
            settings.connection_config(),
        ));
        let generations = Arc::new(Generations::default());
        let on_push = {
            let generations = Arc::clone(&generations);
            move |push: PushInfo| {
                if push.kind == PushKind::Disconnection {
                    generations.all_dead();
                }
                Ok::<(), Infallible>(())
            }
        };
        let start_watcher = {
            let generations = Arc::downgrade(&generations);
            let config = settings.connection_config();
            let master = target.master.clone();
            let lookup = Arc::downgrade(&lookup);
            move || watch::watch_all(sentinel_infos, master, config, generations, lookup)
        };
        let config = settings.connection_config().set_push_sender(on_push);
        let replicas = match replica_client {
            Some(client) => {
                let manager = SentinelManager::of_replicas(
                    client,
                    Arc::clone(&lookup),
                    settings.connection_config(),
                );
                // A replica that dies or is promoted is replaced like any dead connection.
                let generations = Arc::new(Generations::default());
                let replace = OnBrokenConnection::Replace;
                let shared =
                    Shared::new(manager, &settings, "redis-sentinel", generations, replace)?;
                Some(Arc::new(shared))
            }
            None => None,
        };
        let shared = Shared::new(
            SentinelManager::new(lookup, config, start_watcher),
            &settings,
            "redis-sentinel",
            generations,
            OnBrokenConnection::ReplaceOnDemotion,
        )?;
        Ok(RedisSentinelPool {
            inner: Arc::new(Inner {
                shared: Arc::new(shared),
                replicas,
                location: location_of(&settings),
                settings,
            }),
            concern: None,
        })
    }

    /// Its settings: for connections of its own (the cache's tracking connections).
    #[cfg(feature = "cache")]
    pub(crate) fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// This pool's handle with every write acknowledged per `concern` (see
    /// `redis/concern.rs`).
    pub(crate) fn with_write_concern(&self, concern: crate::WriteConcern) -> Result<Self> {
        Ok(RedisSentinelPool {
            inner: Arc::clone(&self.inner),
            concern: concern.kept()?,
        })
    }

    /// The write concern of this handle's writes.
    pub(crate) fn concern(&self) -> Option<crate::WriteConcern> {
        self.concern
    }

    pub(crate) fn shared(&self) -> &Arc<SentinelShared> {
        &self.inner.shared
    }

    /// Where plain reads go: the replicas' lanes with `read_from_replicas`, else the master's.
    pub(crate) fn reads(&self) -> &Arc<SentinelShared> {
        self.inner.replicas.as_ref().unwrap_or(&self.inner.shared)
    }

    /// Opens every shared connection that is not open yet and `PING`s the master on each:
    /// call it at start-up to fail fast on wrong sentinel addresses, master name or password.
    pub async fn ping(&self) -> Result<()> {
        self.inner.shared.ping().await
    }

    /// Pool occupancy, as [`RedisPool::status`](super::RedisPool::status) reports it.
    pub fn status(&self) -> deadpool::Status {
        self.inner.shared.pool().status()
    }

    /// Publishes the pool's occupancy through the `metrics` facade, as
    /// [`RedisPool::record_metrics`](super::RedisPool::record_metrics) does.
    pub fn record_metrics(&self) {
        self.inner.shared.record_metrics(self.redacted_urls());
    }

    /// Where its data lives ([`Backend::data_location`](crate::Backend::data_location)): the
    /// master's name and database, and the sentinels' addresses.
    pub(crate) fn location(&self) -> String {
        self.inner.location.clone()
    }

    /// The sentinels' URLs with any password replaced by `***`, and the master's name.
    pub fn redacted_urls(&self) -> String {
        let settings = &self.inner.settings;
        format!(
            "{} master {}",
            settings.redacted_urls(),
            settings.sentinel.master
        )
    }
}

/// How to reach the data nodes (the master and replicas), which the sentinels name by
/// address only: the master's login and database, RESP3 (so that redis-rs tells us the
/// moment a connection closes, see lanes.rs) and, with TLS, the roots to trust. TLS
/// follows the sentinels' scheme unless `master_tls` says otherwise.
fn data_node(settings: &Settings, sentinels_tls: bool) -> Result<DataNode> {
    let target = &settings.sentinel;
    let mut redis = ::redis::RedisConnectionInfo::default()
        .set_db(target.db)
        .set_protocol(ProtocolVersion::RESP3);
    if let Some(username) = &target.username {
        redis = redis.set_username(username);
    }
    if let Some(password) = &target.password {
        redis = redis.set_password(password);
    }
    #[cfg(feature = "tls")]
    {
        let enabled = target.tls.unwrap_or(sentinels_tls);
        // Refuses roots when neither the sentinels nor the data nodes use TLS.
        let roots =
            super::tls::certificates(enabled || sentinels_tls, settings.tls_roots.as_deref())?;
        Ok(DataNode {
            redis,
            tls: enabled.then_some(roots),
        })
    }
    #[cfg(not(feature = "tls"))]
    {
        let _ = sentinels_tls;
        Ok(DataNode { redis })
    }
}

/// redis-rs' client asking the sentinels for a replica (`SENTINEL REPLICAS`, then `ROLE`
/// on the one it picks), logging in to the sentinels as the first URL with a password says
/// and to the replica as `node` says.
fn replica_client(
    settings: &Settings,
    sentinels: &[::redis::ConnectionInfo],
    node: &DataNode,
) -> Result<::redis::sentinel::SentinelClient> {
    let failed = |e| invalid_url(&settings.urls[0], e);
    let addresses = sentinels.iter().map(|info| info.addr().clone());
    let master = &settings.sentinel.master;
    let mut client = SentinelClientBuilder::new(addresses, master, SentinelServerType::Replica)
        .map_err(failed)?
        .set_client_to_redis_protocol(node.redis.protocol())
        .set_client_to_redis_db(node.redis.db());
    if let Some(username) = node.redis.username() {
        client = client.set_client_to_redis_username(username);
    }
    if let Some(password) = node.redis.password() {
        client = client.set_client_to_redis_password(password);
    }
    #[cfg(feature = "tls")]
    if let Some(roots) = &node.tls {
        client = client.set_client_to_redis_tls_mode(::redis::TlsMode::Secure);
        if let Some(roots) = roots {
            client = client.set_client_to_redis_certificates(roots.clone());
        }
    }
    #[cfg(not(feature = "tls"))]
    let _ = node;
    let login = sentinels
        .iter()
        .map(|info| info.redis_settings())
        .find(|login| login.password().is_some());
    if let Some(login) = login {
        if let Some(username) = login.username() {
            client = client.set_client_to_sentinel_username(username);
        }
        if let Some(password) = login.password() {
            client = client.set_client_to_sentinel_password(password);
        }
    }
    client.build().map_err(failed)
}

impl fmt::Debug for RedisSentinelPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSentinelPool")
            .field("settings", &self.inner.settings)
            .field("status", &self.status())
            .finish()
    }
}

/// Where the data of a pool of `settings` lives: the master's name and database, and the
/// sentinels' addresses.
fn location_of(settings: &Settings) -> String {
    let target = &settings.sentinel;
    let sentinels = settings.addresses();
    format!("sentinel:{}/{}@{sentinels}", target.master, target.db)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_it_cannot_honour_are_refused() {
        let refused = |builder: RedisPoolBuilder<Sentinel>| {
            matches!(builder.build(), Err(Error::InvalidConfig { .. }))
        };
        let builder = |urls: &[&str], master| RedisSentinelPool::builder(urls.to_vec(), master);
        assert!(refused(builder(&["redis://127.0.0.1:26379"], "")));
        assert!(refused(builder(&[], "m")));
        assert!(refused(builder(&["not a url"], "m")));
        let mixed = ["rediss://127.0.0.1:26379", "redis://127.0.0.1:26380"];
        assert!(refused(builder(&mixed, "m")));
        assert!(builder(&["redis://127.0.0.1:26379"], "m").build().is_ok());
        // TLS needs the feature; without it a rediss:// URL does not parse.
        let tls = builder(&["rediss://127.0.0.1:26379"], "m").build();
        assert_eq!(tls.is_ok(), cfg!(feature = "tls"));
    }

    /// Built without `tls` (`.ci/run` runs these tests so): plain sentinels build, replicas
    /// included, and a `rediss://` URL is refused with a cause that says TLS.
    #[cfg(not(feature = "tls"))]
    #[test]
    fn without_the_tls_feature_rediss_urls_are_refused_and_plain_ones_build() {
        let plain = RedisSentinelPool::builder(["redis://127.0.0.1:26379"], "m")
            .read_from_replicas(true)
            .build();
        assert!(plain.is_ok(), "{plain:?}");
        let Err(error) = RedisSentinelPool::builder(["rediss://127.0.0.1:26379"], "m").build()
        else {
            panic!("a rediss:// URL built without the tls feature");
        };
        assert!(matches!(error, Error::InvalidConfig { .. }), "{error:?}");
        let mut chain = error.to_string();
        let mut cause = std::error::Error::source(&error);
        while let Some(next) = cause {
            chain.push_str(&format!(": {next}"));
            cause = next.source();
        }
        assert!(chain.to_lowercase().contains("tls"), "{chain}");
    }

    #[cfg(feature = "tls")]
    #[test]
    fn tls_roots_need_something_that_uses_tls() {
        let builder = |url| RedisSentinelPool::builder([url], "m").tls_root_certificates("pem");
        let plain = builder("redis://127.0.0.1:26379");
        assert!(matches!(plain.build(), Err(Error::InvalidConfig { .. })));
        // Roots for TLS to the data nodes only, or to the sentinels too.
        assert!(
            builder("redis://127.0.0.1:26379")
                .master_tls(true)
                .build()
                .is_ok()
        );
        assert!(builder("rediss://127.0.0.1:26379").build().is_ok());
    }
}
