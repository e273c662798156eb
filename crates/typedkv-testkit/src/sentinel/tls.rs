//! The TLS variant of the Sentinel setup (feature `tls`): every server speaks only TLS, and
//! the sentinels' certificates and the data nodes' are signed by two different CAs, so a
//! test can show that a client verifies each of them.
//!
//! redis-test's own TLS Sentinel setup is chosen by a process-wide environment variable
//! (and would need `unsafe` to set in edition 2024), with one CA for all; this builds the
//! same processes through its `RedisServer`, with certificates made here by rcgen.

use std::fs;
use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use redis_test::sentinel::RedisSentinelCluster;
use redis_test::server::RedisServer;
use redis_test::utils::{TlsFilePaths, get_random_available_port};

use super::MASTER_NAME;

/// What a client trusts: PEM of one or both CAs.
pub(super) struct Roots {
    /// Both CAs: a client trusting these reaches sentinels and data nodes.
    pub(super) both: Vec<u8>,
    /// The sentinels' CA alone: such a client asks the sentinels, then must refuse the
    /// master's certificate.
    pub(super) sentinels_only: Vec<u8>,
}

/// Starts a TLS-only master, `replicas` replicas of it and `sentinels` sentinels monitoring
/// it (quorum 1; the caller raises it), on free loopback ports, and returns without waiting
/// for them: blocking (it writes files and spawns processes).
pub(super) fn spawn(replicas: usize, sentinels: usize) -> (RedisSentinelCluster, Roots) {
    let dir = tempfile::Builder::new()
        .prefix("typedkv-sentinel-tls")
        .tempdir()
        .expect("a temporary directory");
    let data_ca = Ca::new("typedkv test data nodes CA");
    let sentinel_ca = Ca::new("typedkv test sentinels CA");
    let both = [data_ca.pem.as_bytes(), sentinel_ca.pem.as_bytes()].concat();
    let data_paths = data_ca.leaf(dir.path(), "data", data_ca.pem.as_bytes());
    // Sentinels connect to the data nodes and to each other.
    let sentinel_paths = sentinel_ca.leaf(dir.path(), "sentinel", &both);

    let mut ports = std::collections::BTreeSet::new();
    while ports.len() < 1 + replicas + sentinels {
        ports.insert(get_random_available_port());
    }
    let mut ports = ports.into_iter();
    let mut next_port = || ports.next().expect("enough ports were picked");

    let master_port = next_port();
    let mut servers = vec![spawn_server(dir.path(), master_port, &data_paths, "", &[])];
    for _ in 0..replicas {
        let master = master_port.to_string();
        let args = ["--replicaof", "127.0.0.1", &master];
        servers.push(spawn_server(
            dir.path(),
            next_port(),
            &data_paths,
            "",
            &args,
        ));
    }
    let monitor = format!("sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 1\n");
    let sentinel_servers = (0..sentinels)
        .map(|_| {
            spawn_server(
                dir.path(),
                next_port(),
                &sentinel_paths,
                &monitor,
                &["--sentinel"],
            )
        })
        .collect();
    let roots = Roots {
        both,
        sentinels_only: sentinel_ca.pem.into_bytes(),
    };
    let setup = RedisSentinelCluster {
        servers,
        sentinel_servers,
        folders: vec![dir],
    };
    (setup, roots)
}

/// Starts a TLS-only server on `port` with the certificate in `paths`, in a directory of
/// its own under `dir` with `config` as its config file (sentinels rewrite theirs), and
/// `args`. Outgoing connections (replication, sentinel links) use TLS too.
fn spawn_server(
    dir: &Path,
    port: u16,
    paths: &TlsFilePaths,
    config: &str,
    args: &[&str],
) -> RedisServer {
    let home = dir.join(port.to_string());
    fs::create_dir(&home).expect("a server directory");
    let config_file = home.join("redis.conf");
    fs::write(&config_file, config).expect("a config file");
    let addr = redis::ConnectionAddr::TcpTls {
        host: "127.0.0.1".into(),
        port,
        insecure: false,
        tls_params: None,
    };
    RedisServer::new_with_addr_tls_modules_and_spawner(
        addr,
        Some(&config_file),
        Some(paths.clone()),
        false,
        None,
        &[],
        |cmd| {
            cmd.args(args)
                .args(["--tls-replication", "yes"])
                .args(["--repl-diskless-sync-delay", "0"])
                .current_dir(&home);
            cmd.spawn().expect("redis-server starts")
        },
    )
}

/// A throwaway certificate authority.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::new()).expect("no names to check");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("a CA key");
        let pem = params.self_signed(&key).expect("a CA certificate").pem();
        Ca {
            issuer: Issuer::new(params, key),
            pem,
        }
    }

    /// A certificate for 127.0.0.1 signed by this CA, as a server and as a client (servers
    /// connect to each other), written under `dir` with `trusted` as the CA file the server
    /// verifies its peers with.
    fn leaf(&self, dir: &Path, name: &str, trusted: &[u8]) -> TlsFilePaths {
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("an IP address name");
        params.distinguished_name.push(DnType::CommonName, name);
        params.use_authority_key_identifier_extension = true;
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate().expect("a key");
        let cert = params.signed_by(&key, &self.issuer).expect("a certificate");
        let paths = TlsFilePaths {
            redis_crt: dir.join(format!("{name}.crt")),
            redis_key: dir.join(format!("{name}.key")),
            ca_crt: dir.join(format!("{name}-trusts.crt")),
        };
        fs::write(&paths.redis_crt, cert.pem()).expect("a certificate file");
        fs::write(&paths.redis_key, key.serialize_pem()).expect("a key file");
        fs::write(&paths.ca_crt, trusted).expect("a CA file");
        paths
    }
}
