//! A throwaway Redis Sentinel setup on loopback: one master, two replicas, three sentinels
//! (feature `sentinel`), in plain TCP or, with feature `tls`, TLS only (`tls.rs`).
//!
//! Built on redis-rs' own harness (`redis_test::sentinel::RedisSentinelCluster`), which
//! starts the servers and `redis-server --sentinel` processes on free loopback ports
//! (monitoring the master as `master0`), waits for the replicas to sync, and kills
//! everything when dropped. On top: short failure detection (`down-after-milliseconds`
//! 500), so a killed master is replaced in a second or two instead of the default 30 s, a
//! quorum of 2, and the helpers a test needs.

#[cfg(feature = "tls")]
mod tls;

use std::time::{Duration, Instant};

use redis_test::sentinel::RedisSentinelCluster;
use typedkv::redis::{RedisPoolBuilder, RedisSentinelPool, Sentinel};

use crate::failover::{Load, Report};
use crate::fixture::Fixture;
use typedkv::Store;

/// The master's name, as the harness configures the sentinels.
pub const MASTER_NAME: &str = "master0";

/// How many times to start a setup that did not come up.
const START_ATTEMPTS: usize = 3;

/// One setup starts at a time in a test process: six servers syncing and sentinels finding
/// each other is the heaviest moment of a setup, so starts do not pile up on a loaded
/// machine. Only the start is serialized; the setups then run side by side.
static STARTING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

/// How soon after the sentinels name a new master a pool stops writing to the old one, at
/// most: the watcher hears the announcement at once; this is slack for a loaded machine.
pub const MOVE_AFTER_SWITCH: Duration = Duration::from_millis(500);

/// How long a master may be unreachable before a sentinel considers it down.
pub const DOWN_AFTER: Duration = Duration::from_millis(500);

/// A private Sentinel setup on 127.0.0.1, killed when dropped.
pub struct TestSentinel {
    setup: RedisSentinelCluster,
    /// For a TLS setup, the CAs' certificates.
    #[cfg(feature = "tls")]
    roots: Option<tls::Roots>,
}

impl std::fmt::Debug for TestSentinel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestSentinel")
            .field("sentinels", &self.sentinel_urls())
            .finish_non_exhaustive()
    }
}

impl TestSentinel {
    /// Starts the setup and returns once the replicas are in sync and every sentinel knows
    /// the master, both replicas and the other sentinels.
    ///
    /// The harness picks ports that are free when it looks and starts the servers after, so
    /// another process can take one in between; a setup that does not come up is dropped
    /// and started again, up to three times. Panics (this is test code) if
    /// `redis-server` or `openssl` is missing or no attempt came up.
    pub async fn start() -> TestSentinel {
        Self::start_with(|| {
            let setup = RedisSentinelCluster::new(1, 2, 3);
            TestSentinel {
                setup,
                #[cfg(feature = "tls")]
                roots: None,
            }
        })
        .await
    }

    /// [`start`](Self::start) for a setup in which every server speaks only TLS, the
    /// sentinels with certificates from one CA and the master and replicas from another
    /// (feature `tls`). [`pool_builder`](Self::pool_builder) trusts both;
    /// [`sentinels_only_ca`](Self::sentinels_only_ca) is the sentinels' alone.
    #[cfg(feature = "tls")]
    pub async fn start_tls() -> TestSentinel {
        // Err: the application (here, the test) installed a provider already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        Self::start_with(|| {
            let (setup, roots) = tls::spawn(2, 3);
            TestSentinel {
                setup,
                roots: Some(roots),
            }
        })
        .await
    }

    /// Starts setups with `spawn` until one comes up, configured and synced.
    async fn start_with(spawn: fn() -> TestSentinel) -> TestSentinel {
        // Never closed, so acquiring fails only if it were: then start unserialized.
        let _turn = STARTING.acquire().await.ok();
        for attempt in 1..=START_ATTEMPTS {
            let Ok(setup) = tokio::task::spawn_blocking(spawn).await else {
                eprintln!("sentinel setup, attempt {attempt}: a replica never synced");
                continue;
            };
            let failed = if !setup.replicas_synced(Duration::from_secs(20)).await {
                "replicas not synced in 20 s".to_string()
            } else if let Err(e) = setup.configure(Duration::from_secs(20)).await {
                format!("settings not taken in 20 s: {e}")
            } else if !setup.everyone_knows_everyone(Duration::from_secs(20)).await {
                "sentinels did not find each other in 20 s".to_string()
            } else {
                return setup;
            };
            eprintln!("sentinel setup, attempt {attempt}: {failed}");
        }
        panic!("no test Sentinel setup came up in {START_ATTEMPTS} attempts")
    }

    /// PEM of the CAs to trust for a TLS setup: both.
    #[cfg(feature = "tls")]
    pub fn tls_ca(&self) -> Option<&[u8]> {
        self.roots.as_ref().map(|roots| &roots.both[..])
    }

    /// PEM of the CA of a TLS setup's sentinels alone, not of its master and replicas.
    #[cfg(feature = "tls")]
    pub fn sentinels_only_ca(&self) -> Option<&[u8]> {
        self.roots.as_ref().map(|roots| &roots.sentinels_only[..])
    }

    fn is_tls(&self) -> bool {
        #[cfg(feature = "tls")]
        return self.roots.is_some();
        #[cfg(not(feature = "tls"))]
        false
    }

    /// Short failure detection, a quorum of 2 of 3 as production setups have it (the harness
    /// sets 1), and a failover timeout of 4 s (after a split vote, the next election waits
    /// twice that), on every sentinel. A sentinel that cannot be reached or refuses is asked
    /// again until `limit` has passed (the harness does not wait for the sentinels to
    /// listen, and on a loaded machine one may still be starting); then the last error.
    async fn configure(&self, limit: Duration) -> Result<(), String> {
        let started = Instant::now();
        for port in self.sentinel_ports() {
            loop {
                match self.configure_one(port).await {
                    Ok(()) => break,
                    Err(e) if started.elapsed() >= limit => {
                        return Err(format!("sentinel 127.0.0.1:{port}: {e}"));
                    }
                    Err(e) => {
                        eprintln!("sentinel 127.0.0.1:{port} not configured yet: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        }
        Ok(())
    }

    /// [`configure`](Self::configure) for the sentinel on `port`, once.
    async fn configure_one(&self, port: u16) -> redis::RedisResult<()> {
        let mut sentinel = self.try_connection(port).await?;
        for (option, value) in [
            (
                "down-after-milliseconds",
                DOWN_AFTER.as_millis().to_string(),
            ),
            ("failover-timeout", "4000".to_string()),
            ("quorum", "2".to_string()),
        ] {
            redis::cmd("SENTINEL")
                .arg("SET")
                .arg(MASTER_NAME)
                .arg(option)
                .arg(value)
                .query_async::<()>(&mut sentinel)
                .await?;
        }
        Ok(())
    }

    /// The data servers' ports on 127.0.0.1: the master's and the replicas' (killed ones
    /// included).
    pub fn data_ports(&self) -> Vec<u16> {
        self.setup
            .servers
            .iter()
            .filter_map(|server| server.host_and_port().map(|(_, port)| port))
            .collect()
    }

    /// The sentinels' ports on 127.0.0.1.
    pub fn sentinel_ports(&self) -> Vec<u16> {
        self.setup
            .iter_sentinel_servers()
            .filter_map(|server| server.host_and_port().map(|(_, port)| port))
            .collect()
    }

    /// `redis://127.0.0.1:PORT` of every sentinel (`rediss://` for a TLS setup).
    pub fn sentinel_urls(&self) -> Vec<String> {
        self.sentinel_ports()
            .into_iter()
            .map(|port| self.url(port))
            .collect()
    }

    /// `redis://127.0.0.1:PORT`, or `rediss://` for a TLS setup.
    fn url(&self, port: u16) -> String {
        let scheme = if self.is_tls() { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{port}")
    }

    /// A builder of typedkv sentinel pools on this setup: the sentinels' URLs, the master's
    /// name and, for a TLS setup, both CAs to trust.
    pub fn pool_builder(&self) -> RedisPoolBuilder<Sentinel> {
        let builder = RedisSentinelPool::builder(self.sentinel_urls(), MASTER_NAME);
        #[cfg(feature = "tls")]
        if let Some(ca) = self.tls_ca() {
            return builder.tls_root_certificates(ca);
        }
        builder
    }

    /// A typedkv sentinel pool with default settings.
    pub fn pool(&self) -> RedisSentinelPool {
        self.pool_builder()
            .build()
            .expect("loopback sentinel URLs are valid")
    }

    /// The port of the master, as the first sentinel that answers names it now.
    pub async fn master_port(&self) -> u16 {
        for port in self.sentinel_ports() {
            let Ok(mut sentinel) = self.try_connection(port).await else {
                continue;
            };
            let address: redis::RedisResult<(String, String)> = redis::cmd("SENTINEL")
                .arg("GET-MASTER-ADDR-BY-NAME")
                .arg(MASTER_NAME)
                .query_async(&mut sentinel)
                .await;
            if let Ok((_, port)) = address
                && let Ok(port) = port.parse()
            {
                return port;
            }
        }
        panic!("no sentinel names the master")
    }

    /// Deletes every key on the master (the replicas follow).
    pub async fn flush(&self) {
        let mut master = self.connection(self.master_port().await).await;
        let _: () = redis::cmd("FLUSHALL")
            .query_async(&mut master)
            .await
            .expect("FLUSHALL on the master");
    }

    /// A fixture on this setup, flushed first: the setup outlives the fixture, so cases
    /// share it one after the other. The peer is a pool connected on its own.
    pub async fn fixture(&self) -> Fixture<RedisSentinelPool> {
        self.flush().await;
        let builder = self.pool_builder();
        let pool = move || {
            builder
                .clone()
                .build()
                .expect("loopback sentinel URLs are valid")
        };
        Fixture::new(pool()).with_peer(pool)
    }

    /// Sends the server on `port` `signal` (`-STOP` hangs it, as a stalled machine would;
    /// `-CONT` resumes it). Panics (this is test code) if there is none.
    pub fn signal(&self, port: u16, signal: &str) {
        let servers = &self.setup.servers;
        let server = &servers[crate::server::position_of(servers, port, "server")];
        crate::server::send_signal(server.process.id(), signal);
    }

    /// Kills the server on `port` (SIGKILL), as a crash would.
    pub fn kill(&mut self, port: u16) {
        let at = crate::server::position_of(&self.setup.servers, port, "server");
        self.setup.servers[at].stop();
    }

    /// Asks a sentinel for a failover (`SENTINEL FAILOVER`): a replica is promoted and the
    /// old master, still up, becomes its replica.
    pub async fn manual_failover(&self) {
        let port = self.sentinel_ports()[0];
        let _: () = redis::cmd("SENTINEL")
            .arg("FAILOVER")
            .arg(MASTER_NAME)
            .query_async(&mut self.connection(port).await)
            .await
            .expect("SENTINEL FAILOVER");
    }

    /// A manual failover while 16 tasks write and read through `store` (namespace
    /// `namespace`): returns the load's report (printed, labelled `label`) once the new
    /// master answers and calls have had 2 s to recover, after checking that calls failed
    /// only until the switch and recovered ([`Report::assert_recovered`]), and that no write
    /// acknowledged after the switch (plus [`MOVE_AFTER_SWITCH`]) was lost. Writes are read
    /// back from the new master directly, not through `store`.
    pub async fn manual_failover_under_load<S>(
        &self,
        store: &S,
        namespace: &str,
        label: &str,
    ) -> Report
    where
        S: Store<u64> + Clone + 'static,
    {
        let load = Load::start(store.clone(), 16);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let old = self.master_port().await;
        let started = load.mark();
        self.manual_failover().await;
        let switched_after = self.wait_failover_from(old, Duration::from_secs(30)).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let report = load
            .stop(started, &self.master_store(namespace).await)
            .await;
        eprintln!("{label}: switched {switched_after:?} after the command; {report}");
        report.assert_recovered(switched_after, &format!("{namespace}:"));
        if let Some(last_lost) = report.last_lost {
            assert!(
                last_lost <= switched_after + MOVE_AFTER_SWITCH,
                "a write acknowledged {last_lost:?} after the command was lost; the sentinels \
                 switched after {switched_after:?}"
            );
        }
        report
    }

    /// A store of `u64`s in `namespace` on the master the sentinels name now, connected to it
    /// directly (not through a sentinel pool): to read back what a test wrote.
    pub async fn master_store(&self, namespace: &str) -> typedkv::RedisStore<u64> {
        let url = self.url(self.master_port().await);
        let builder = typedkv::redis::RedisPool::builder(url);
        #[cfg(feature = "tls")]
        let builder = match self.tls_ca() {
            Some(ca) => builder.tls_root_certificates(ca),
            None => builder,
        };
        let pool = builder.build().expect("a loopback URL is valid");
        typedkv::RedisStore::builder(pool, namespace)
            .build()
            .expect("a plain store builds")
    }

    /// Waits until the sentinels name a master other than `port` and that server answers
    /// as a master; returns how long that took. Panics after `limit`.
    pub async fn wait_failover_from(&self, port: u16, limit: Duration) -> Duration {
        let started = Instant::now();
        while started.elapsed() < limit {
            let now = self.master_port().await;
            if now != port
                && let Ok(mut master) = self.try_connection(now).await
            {
                let role: redis::RedisResult<redis::Value> =
                    redis::cmd("ROLE").query_async(&mut master).await;
                if matches!(role, Ok(redis::Value::Array(ref parts))
                    if matches!(parts.first(), Some(redis::Value::BulkString(r)) if r == b"master"))
                {
                    return started.elapsed();
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let views = self.sentinel_views().await;
        panic!(
            "no replica of port {port} was promoted within {limit:?}; the sentinels say:\n{views}"
        )
    }

    /// What each sentinel says of the master (flags, failover state) and of the replicas
    /// (flags, link down time, age of their INFO): why a failover did not happen, for a
    /// test's failure message.
    async fn sentinel_views(&self) -> String {
        const FIELDS: [&str; 7] = [
            "name",
            "flags",
            "failover-state",
            "master-link-down-time",
            "info-refresh",
            "role-reported",
            "slave-priority",
        ];
        let mut views = String::new();
        for port in self.sentinel_ports() {
            views.push_str(&format!("sentinel {port}:\n"));
            let Ok(mut sentinel) = self.try_connection(port).await else {
                views.push_str("  unreachable\n");
                continue;
            };
            for what in ["MASTER", "REPLICAS"] {
                let reply: redis::RedisResult<redis::Value> = redis::cmd("SENTINEL")
                    .arg(what)
                    .arg(MASTER_NAME)
                    .query_async(&mut sentinel)
                    .await;
                let nodes = match reply {
                    Ok(redis::Value::Array(nodes)) if what == "REPLICAS" => nodes,
                    Ok(node) => vec![node],
                    Err(e) => {
                        views.push_str(&format!("  {what}: {e}\n"));
                        continue;
                    }
                };
                for node in nodes {
                    let fields = match node {
                        redis::Value::Array(fields) => fields,
                        redis::Value::Map(pairs) => {
                            pairs.into_iter().flat_map(|(k, v)| [k, v]).collect()
                        }
                        _ => Vec::new(),
                    };
                    let text = |v: &redis::Value| match v {
                        redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
                        redis::Value::SimpleString(s) => s.clone(),
                        other => format!("{other:?}"),
                    };
                    let shown: Vec<String> = fields
                        .chunks(2)
                        .filter(|pair| pair.len() == 2 && FIELDS.contains(&text(&pair[0]).as_str()))
                        .map(|pair| format!("{}={}", text(&pair[0]), text(&pair[1])))
                        .collect();
                    views.push_str(&format!("  {}\n", shown.join(" ")));
                }
            }
        }
        views
    }

    /// Waits until every sentinel knows both replicas and the two other sentinels; `false`
    /// if that does not happen within `limit`. A sentinel that does not know the others yet
    /// counts itself a majority and fails over on its own: two of them promoted one replica
    /// each (two masters, writes lost).
    async fn everyone_knows_everyone(&self, limit: Duration) -> bool {
        let started = Instant::now();
        'poll: while started.elapsed() < limit {
            for port in self.sentinel_ports() {
                let Ok(mut sentinel) = self.try_connection(port).await else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue 'poll;
                };
                for what in ["REPLICAS", "SENTINELS"] {
                    let known: redis::RedisResult<Vec<redis::Value>> = redis::cmd("SENTINEL")
                        .arg(what)
                        .arg(MASTER_NAME)
                        .query_async(&mut sentinel)
                        .await;
                    if known.map(|k| k.len()).unwrap_or(0) < 2 {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue 'poll;
                    }
                }
            }
            return true;
        }
        false
    }
}

impl TestSentinel {
    /// A plain connection to the server (or sentinel) on `port`, over TLS in a TLS setup.
    pub async fn connection(&self, port: u16) -> redis::aio::MultiplexedConnection {
        self.try_connection(port)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to 127.0.0.1:{port}: {e}"))
    }

    async fn try_connection(
        &self,
        port: u16,
    ) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        // Generous: a loaded test machine is slow, and only a dead server should fail this.
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)));
        let url = self.url(port);
        #[cfg(feature = "tls")]
        let client = match self.tls_ca() {
            Some(ca) => {
                let roots = redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(ca.to_vec()),
                };
                redis::Client::build_with_tls(url, roots)?
            }
            None => redis::Client::open(url)?,
        };
        #[cfg(not(feature = "tls"))]
        let client = redis::Client::open(url)?;
        client
            .get_multiplexed_async_connection_with_config(&config)
            .await
    }

    /// Waits until every replica reports its link to the master up (`ROLE`); `false` if
    /// that does not happen within `limit`.
    async fn replicas_synced(&self, limit: Duration) -> bool {
        let started = Instant::now();
        let replicas = &self.data_ports()[1..];
        'poll: while started.elapsed() < limit {
            for port in replicas {
                let role: redis::RedisResult<Vec<redis::Value>> =
                    match self.try_connection(*port).await {
                        Ok(mut replica) => redis::cmd("ROLE").query_async(&mut replica).await,
                        Err(e) => Err(e),
                    };
                let connected = matches!(role.as_deref(), Ok([_, _, _, redis::Value::BulkString(state), ..]) if state == b"connected");
                if !connected {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue 'poll;
                }
            }
            return true;
        }
        false
    }
}
