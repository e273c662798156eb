//! Throwaway `redis-server` processes on free loopback ports.
//!
//! Built on redis-rs' own harness (`redis_test::server::RedisServer`), which picks a free port
//! on 127.0.0.1, runs the server without persistence in a temporary directory, and kills it
//! when dropped. This adds what a test needs on top: wait until the server answers `PING`,
//! retry if another process grabbed the port first, and hand out URLs and pools.
//!
//! Servers are owned by the test (or fixture) that started them and stop when it drops them;
//! never keep one in a `static` (statics are never dropped, so the process would leak).

use std::process::Command;
use std::time::{Duration, Instant};

use redis_test::server::RedisServer;
use typedkv::redis::RedisPool;

/// How long a fresh server may take to answer `PING`.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How many times to start a server when its port was taken in the meantime.
const START_ATTEMPTS: usize = 5;

/// A private redis-server on 127.0.0.1, stopped (killed) when dropped.
pub struct TestRedis {
    server: RedisServer,
    port: u16,
}

impl TestRedis {
    /// Starts a server on a free loopback port and waits until it answers `PING`.
    ///
    /// Panics (this is test code) with an explanation if `redis-server` is not installed or
    /// no server became ready.
    pub async fn start() -> TestRedis {
        assert!(
            Command::new("redis-server")
                .arg("--version")
                .output()
                .is_ok(),
            "redis-server is not installed: run scripts/test (it installs redis-server via apt-get)"
        );
        let mut last_log = String::new();
        for _ in 0..START_ATTEMPTS {
            let mut server = RedisServer::new();
            let port = match server.host_and_port() {
                Some((_, port)) => port,
                None => panic!("redis-test started a server without a TCP port"),
            };
            if wait_ready(&mut server, port).await {
                return TestRedis { server, port };
            }
            last_log = server.log_file_contents().unwrap_or_default();
        }
        panic!(
            "no redis-server became ready after {START_ATTEMPTS} attempts; last log:\n{last_log}"
        );
    }

    /// The server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// A typedkv pool with default settings on this server.
    pub fn pool(&self) -> RedisPool {
        RedisPool::from_url(self.url()).expect("a loopback URL is valid")
    }

    /// A raw redis-rs client, for writing bytes behind a store's back.
    pub fn client(&self) -> redis::Client {
        redis::Client::open(self.url()).expect("a loopback URL is valid")
    }

    /// A raw multiplexed redis-rs connection.
    pub async fn raw_connection(&self) -> redis::aio::MultiplexedConnection {
        self.client()
            .get_multiplexed_async_connection()
            .await
            .expect("the test server accepts connections")
    }

    /// The server's process id, e.g. to send it `SIGSTOP`.
    pub fn pid(&self) -> u32 {
        self.server.process.id()
    }

    /// Kills the server process now (the port is then free; connections break).
    pub fn stop(&mut self) {
        self.server.stop();
    }

    /// Kills the server and starts a new, empty one on the same port, as a crash and restart
    /// would; returns when it answers `PING`.
    pub async fn restart(&mut self) {
        self.server.stop();
        for _ in 0..START_ATTEMPTS {
            let addr = redis::ConnectionAddr::Tcp("127.0.0.1".into(), self.port);
            self.server = RedisServer::new_with_addr_and_modules(addr, &[], false);
            if wait_ready(&mut self.server, self.port).await {
                return;
            }
            // The old process may not have released the port yet.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis-server did not restart on port {}", self.port);
    }
}

/// Polls `PING` until the server answers; `false` if its process exited (port taken) or the
/// deadline passed.
async fn wait_ready(server: &mut RedisServer, port: u16) -> bool {
    let Ok(client) = redis::Client::open(format!("redis://127.0.0.1:{port}")) else {
        return false;
    };
    let deadline = Instant::now() + READY_TIMEOUT;
    while Instant::now() < deadline {
        if matches!(server.process.try_wait(), Ok(Some(_))) {
            return false;
        }
        if let Ok(mut conn) = client.get_multiplexed_async_connection().await {
            let pong: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut conn).await;
            if pong.is_ok() {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}
