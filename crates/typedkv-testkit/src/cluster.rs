//! A throwaway Redis Cluster on loopback: 3 masters + 3 replicas (feature `cluster`).
//!
//! Built on redis-rs' own harness (`redis_test::cluster::RedisCluster`), which starts six
//! `redis-server --cluster-enabled yes` on free loopback ports, joins them with
//! `redis-cli --cluster create --cluster-replicas 1`, and kills them when dropped. On top:
//! a short `cluster-node-timeout`, so a killed master's replica takes over in about a second
//! instead of the harness' 5+ s, and the helpers a test needs (seeds, pools, flushing,
//! finding and killing the master of a key).
//!
//! Starting a cluster takes a few seconds: start one per test binary, run many cases on it
//! (see [`conformance::run_all`](crate::conformance::run_all)), and let it drop at the end.

use std::time::{Duration, Instant};

use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis_test::cluster::{RedisCluster, RedisClusterConfiguration};
use typedkv::redis::RedisClusterPool;

use crate::fixture::Fixture;

/// `cluster-node-timeout` of test clusters: how long a master may be unreachable before its
/// replicas hold an election.
pub const NODE_TIMEOUT: Duration = Duration::from_millis(500);

/// A private 3-master, 3-replica Redis Cluster on 127.0.0.1, killed when dropped.
pub struct TestCluster {
    cluster: RedisCluster,
}

impl std::fmt::Debug for TestCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCluster")
            .field("seeds", &self.seeds())
            .finish_non_exhaustive()
    }
}

impl TestCluster {
    /// Starts the cluster and returns once every slot is served and every node is set up.
    ///
    /// Panics (this is test code) if `redis-server`/`redis-cli` are missing or the cluster
    /// does not form.
    pub async fn start() -> TestCluster {
        // The harness sleeps and polls synchronously: keep it off the runtime's threads.
        let cluster = tokio::task::spawn_blocking(|| {
            RedisCluster::new(RedisClusterConfiguration::single_replica_config())
        })
        .await
        .unwrap_or_else(|e| panic!("the test cluster did not start: {e}"));
        let cluster = TestCluster { cluster };
        for port in cluster.ports() {
            let mut node = node_connection(port).await;
            let _: () = redis::cmd("CONFIG")
                .arg("SET")
                .arg("cluster-node-timeout")
                .arg(NODE_TIMEOUT.as_millis().to_string())
                .query_async(&mut node)
                .await
                .expect("CONFIG SET cluster-node-timeout");
        }
        cluster
    }

    /// The nodes' ports on 127.0.0.1, in start order (killed nodes included).
    pub fn ports(&self) -> Vec<u16> {
        self.cluster
            .iter_servers()
            .filter_map(|server| server.host_and_port().map(|(_, port)| port))
            .collect()
    }

    /// `redis://127.0.0.1:PORT` of every node, to use as seeds.
    pub fn seeds(&self) -> Vec<String> {
        self.ports()
            .into_iter()
            .map(|port| format!("redis://127.0.0.1:{port}"))
            .collect()
    }

    /// A typedkv cluster pool with default settings.
    pub fn pool(&self) -> RedisClusterPool {
        RedisClusterPool::from_urls(self.seeds()).expect("loopback seeds are valid")
    }

    /// A raw redis-rs cluster connection, for writing behind a store's back.
    pub async fn raw_connection(&self) -> ClusterConnection {
        ClusterClient::new(self.seeds())
            .expect("loopback seeds are valid")
            .get_async_connection()
            .await
            .expect("the test cluster accepts connections")
    }

    /// Deletes every key on every master (replicas follow).
    pub async fn flush(&self) {
        let mut conn = self.raw_connection().await;
        let _: () = redis::cmd("FLUSHALL")
            .query_async(&mut conn)
            .await
            .expect("FLUSHALL on every master");
    }

    /// A fixture on this cluster, flushed first: the cluster outlives the fixture, so cases
    /// share it one after the other. The peer is a pool connected on its own. Its pools do
    /// not batch (see [`fixture_batching`](Self::fixture_batching)).
    pub async fn fixture(&self) -> Fixture<RedisClusterPool> {
        self.fixture_batching(false).await
    }

    /// [`fixture`](Self::fixture), its pools [batching](typedkv::redis::RedisPoolBuilder::batching)
    /// or not.
    pub async fn fixture_batching(&self, batching: bool) -> Fixture<RedisClusterPool> {
        self.flush().await;
        let seeds = self.seeds();
        let pool = move || {
            RedisClusterPool::builder(seeds.clone())
                .batching(batching)
                .build()
                .expect("loopback seeds are valid")
        };
        Fixture::new(pool()).with_peer(pool)
    }

    /// The port of the master that serves `key`'s slot, as the cluster sees it now.
    pub async fn master_of(&self, key: &str) -> u16 {
        let mut conn = self.raw_connection().await;
        let slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query_async(&mut conn)
            .await
            .expect("CLUSTER KEYSLOT");
        let ranges: Vec<(u16, u16, (String, u16))> = slot_table(&mut conn).await;
        ranges
            .into_iter()
            .find(|(start, end, _)| (*start..=*end).contains(&slot))
            .map(|(_, _, (_, port))| port)
            .unwrap_or_else(|| panic!("no master serves slot {slot}"))
    }

    /// The ports of the masters that serve slots now, each once, in order.
    pub async fn master_ports(&self) -> Vec<u16> {
        let mut conn = self.raw_connection().await;
        let mut ports: Vec<u16> = slot_table(&mut conn)
            .await
            .into_iter()
            .map(|(_, _, (_, port))| port)
            .collect();
        ports.sort_unstable();
        ports.dedup();
        ports
    }

    /// A connection to the one node on `port` (not the cluster): for what a node answers
    /// of itself, such as `INFO commandstats`.
    pub async fn node_connection(&self, port: u16) -> redis::aio::MultiplexedConnection {
        redis::Client::open(format!("redis://127.0.0.1:{port}/"))
            .expect("a loopback URL is valid")
            .get_multiplexed_async_connection()
            .await
            .expect("the node accepts a connection")
    }

    /// Sends the node on `port` `signal` (`-STOP` hangs it, as a stalled machine would;
    /// `-CONT` resumes it). Panics (this is test code) if there is none.
    pub fn signal(&self, port: u16, signal: &str) {
        let servers = &self.cluster.servers;
        let server = &servers[crate::server::position_of(servers, port, "node")];
        crate::server::send_signal(server.process.id(), signal);
    }

    /// Kills the node on `port` (SIGKILL), as a crash would.
    pub fn kill(&mut self, port: u16) {
        let at = crate::server::position_of(&self.cluster.servers, port, "node");
        self.cluster.servers[at].stop();
    }

    /// Waits until no slot is served by `port` any more (its replica was promoted) and
    /// returns how long that took; panics after `limit`.
    pub async fn wait_failover_from(&self, port: u16, limit: Duration) -> Duration {
        let started = Instant::now();
        let alive: Vec<u16> = self.ports().into_iter().filter(|p| *p != port).collect();
        while started.elapsed() < limit {
            let mut all_moved = true;
            for &node in &alive {
                let Ok(mut conn) = try_node_connection(node).await else {
                    all_moved = false;
                    continue;
                };
                let ranges = slot_table(&mut conn).await;
                let state: String = redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query_async(&mut conn)
                    .await
                    .unwrap_or_default();
                if ranges.iter().any(|(_, _, (_, p))| *p == port)
                    || !state.contains("cluster_state:ok")
                {
                    all_moved = false;
                }
            }
            if all_moved {
                return started.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("no replica took over from port {port} within {limit:?}");
    }
}

/// `CLUSTER SLOTS` as `(start, end, (master host, master port))`.
async fn slot_table<C: redis::aio::ConnectionLike + Send>(
    conn: &mut C,
) -> Vec<(u16, u16, (String, u16))> {
    let table: Vec<redis::Value> = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query_async(conn)
        .await
        .unwrap_or_default();
    table
        .into_iter()
        .filter_map(|range| {
            let redis::Value::Array(items) = range else {
                return None;
            };
            let mut items = items.into_iter();
            let start = redis::from_redis_value(items.next()?).ok()?;
            let end = redis::from_redis_value(items.next()?).ok()?;
            let redis::Value::Array(master) = items.next()? else {
                return None;
            };
            let mut master = master.into_iter();
            let host = redis::from_redis_value(master.next()?).ok()?;
            let port = redis::from_redis_value(master.next()?).ok()?;
            Some((start, end, (host, port)))
        })
        .collect()
}

async fn try_node_connection(port: u16) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}"))?;
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_millis(200)))
        .set_response_timeout(Some(Duration::from_millis(500)));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
}

async fn node_connection(port: u16) -> redis::aio::MultiplexedConnection {
    try_node_connection(port)
        .await
        .unwrap_or_else(|e| panic!("node on port {port}: {e}"))
}
