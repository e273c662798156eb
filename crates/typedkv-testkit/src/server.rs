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
    /// PEM of the throwaway CA that signed a TLS server's certificate.
    tls_ca: Option<Vec<u8>>,
}

impl std::fmt::Debug for TestRedis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestRedis")
            .field("port", &self.port)
            .field("tls", &self.tls_ca.is_some())
            .finish_non_exhaustive()
    }
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
            let url = format!("redis://127.0.0.1:{port}");
            if wait_ready(&mut server, &url, None).await {
                return TestRedis {
                    server,
                    port,
                    tls_ca: None,
                };
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

    /// `redis://127.0.0.1:PORT`, or `rediss://...` for a TLS server.
    pub fn url(&self) -> String {
        let scheme = if self.tls_ca.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// The PEM certificate of the CA a TLS server's certificate chains to.
    pub fn tls_ca(&self) -> Option<&[u8]> {
        self.tls_ca.as_deref()
    }

    /// A typedkv pool with default settings on this server (trusting its CA if it is TLS).
    pub fn pool(&self) -> RedisPool {
        pool_builder(&self.url(), self.tls_ca.as_deref())
            .build()
            .expect("a loopback URL is valid")
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

    /// Sends the server process `signal` with `kill` (`-STOP` hangs it, `-CONT` resumes it).
    ///
    /// Panics (this is test code) if `kill` fails.
    pub fn signal(&self, signal: &str) {
        send_signal(self.pid(), signal);
    }

    /// Kills the server process now (the port is then free; connections break).
    pub fn stop(&mut self) {
        self.server.stop();
    }

    /// Kills the server and starts a new, empty one on the same port, as a crash and restart
    /// would; returns when it answers `PING`.
    pub async fn restart(&mut self) {
        assert!(
            self.tls_ca.is_none(),
            "restart() supports plain (non-TLS) servers only"
        );
        self.server.stop();
        for _ in 0..START_ATTEMPTS {
            let addr = redis::ConnectionAddr::Tcp("127.0.0.1".into(), self.port);
            self.server = RedisServer::new_with_addr_and_modules(addr, &[], false);
            let url = self.url();
            if wait_ready(&mut self.server, &url, None).await {
                return;
            }
            // The old process may not have released the port yet.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis-server did not restart on port {}", self.port);
    }
}

/// A pool builder for `url`, trusting `tls_ca` when given.
fn pool_builder(url: &str, tls_ca: Option<&[u8]>) -> typedkv::redis::RedisPoolBuilder {
    let builder = RedisPool::builder(url);
    match tls_ca {
        #[cfg(feature = "tls")]
        Some(ca) => builder.tls_root_certificates(ca),
        #[cfg(not(feature = "tls"))]
        Some(_) => panic!("a TLS test server needs typedkv-testkit's `tls` feature"),
        None => builder,
    }
}

/// Polls `PING` until the server answers; `false` if its process exited (port taken) or the
/// deadline passed.
async fn wait_ready(server: &mut RedisServer, url: &str, tls_ca: Option<&[u8]>) -> bool {
    let pool = pool_builder(url, tls_ca)
        .connect_timeout(Duration::from_millis(500))
        .create_timeout(Duration::from_secs(1))
        .build()
        .expect("a loopback URL is valid");
    let deadline = Instant::now() + READY_TIMEOUT;
    while Instant::now() < deadline {
        if matches!(server.process.try_wait(), Ok(Some(_))) {
            return false;
        }
        if pool.ping().await.is_ok() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

#[cfg(feature = "tls")]
impl TestRedis {
    /// Starts a server that speaks only TLS on a free loopback port, with a certificate for
    /// 127.0.0.1 signed by a CA made for it (redis-test generates both with `openssl`).
    /// Connect with [`TestRedis::pool`], or trust [`TestRedis::tls_ca`] yourself.
    pub async fn start_tls() -> TestRedis {
        let mut last_log = String::new();
        for _ in 0..START_ATTEMPTS {
            let port = redis_test::utils::get_random_available_port();
            let addr = redis::ConnectionAddr::TcpTls {
                host: "127.0.0.1".into(),
                port,
                insecure: false,
                tls_params: None,
            };
            let mut server = RedisServer::new_with_addr_tls_modules_and_spawner(
                addr,
                None,
                None,
                false,
                None,
                &[],
                |cmd| cmd.spawn().expect("redis-server starts"),
            );
            let ca_path = server.tls_paths.as_ref().map(|paths| paths.ca_crt.clone());
            let ca = ca_path
                .and_then(|path| std::fs::read(path).ok())
                .expect("redis-test wrote the CA certificate");
            let url = format!("rediss://127.0.0.1:{port}");
            if wait_ready(&mut server, &url, Some(&ca)).await {
                return TestRedis {
                    server,
                    port,
                    tls_ca: Some(ca),
                };
            }
            last_log = server.log_file_contents().unwrap_or_default();
        }
        panic!(
            "no TLS redis-server became ready after {START_ATTEMPTS} attempts; last log:\n{last_log}"
        );
    }
}

/// Sends process `pid` `signal` with `kill`; panics (this is test code) if `kill` fails.
pub(crate) fn send_signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill {signal} failed: {status}");
}

/// Where among `servers` the one listening on loopback `port` is (`what` names it in the
/// panic, as this is test code, when there is none).
#[cfg(any(feature = "cluster", feature = "sentinel"))]
pub(crate) fn position_of(servers: &[RedisServer], port: u16, what: &str) -> usize {
    servers
        .iter()
        .position(|server| server.host_and_port().map(|(_, p)| p) == Some(port))
        .unwrap_or_else(|| panic!("no {what} on port {port}"))
}
