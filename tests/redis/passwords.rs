//! Passwords never reach output: for random passwords over every
//! printable ASCII character (`/ ? # @ : &` included, which end a URL's parts), no output of
//! a pool builder, pool, store, build error, call error or error chain contains the
//! password, for standalone, cluster and sentinel pools and for every place a URL can carry
//! one.

// Tests report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use typedkv::redis::{RedisClusterPool, RedisPool, RedisSentinelPool, redact_url};
use typedkv::{RedisClusterStore, RedisSentinelStore, RedisStore, Store};
use typedkv_testkit::error_chain;

/// Nothing listens on port 1 of loopback: calls fail at once with a connection error.
const HOST: &str = "127.0.0.1:1";
/// [`HOST`]'s port, which [`points_at`] checks a URL against.
const PORT: u16 = 1;

/// Every way a URL carries a password.
fn urls(password: &str) -> [String; 4] {
    [
        format!("redis://app:{password}@{HOST}/0"),
        format!("redis://:{password}@{HOST}"),
        format!("redis://{HOST}/0?pass={password}"),
        format!("redis://{HOST}/0?db=0&password={password}"),
    ]
}

/// Whether redis-rs, which parses the pools' URLs, would connect `url` to `127.0.0.1:port`.
/// A password with URL delimiters can move the host: `@0?` makes it `0` (this machine, port
/// 6379), `x@app/` makes it `app` (a DNS lookup). The tests send nothing anywhere else, so
/// they make their calls only for URLs that point where they meant.
fn points_at(url: &str, port: u16) -> bool {
    use redis::{ConnectionAddr, IntoConnectionInfo};
    let info = url.into_connection_info();
    matches!(
        info.as_ref().map(|info| info.addr()),
        Ok(ConnectionAddr::Tcp(host, p)) if host == "127.0.0.1" && *p == port
    )
}

fn assert_hidden(password: &str, what: &str, shown: &str) {
    assert!(
        !shown.contains(password),
        "{what} shows the password {password:?}: {shown}"
    );
}

/// Builds a standalone pool and a store on it and, if `url` points at `port`, makes one
/// call; every output is checked.
async fn standalone(url: &str, password: &str, port: u16) {
    assert_hidden(password, "redact_url", &redact_url(url));
    let builder = RedisPool::builder(url);
    assert_hidden(password, "builder", &format!("{builder:?}"));
    let pool = match builder.build() {
        Ok(pool) => pool,
        Err(e) => return assert_hidden(password, "build error", &error_chain(&e)),
    };
    assert_hidden(
        password,
        "pool",
        &format!("{pool:?} {}", pool.redacted_url()),
    );
    let store: RedisStore<String> = RedisStore::builder(pool.clone(), "user").build().unwrap();
    assert_hidden(password, "store", &format!("{store:?}"));
    if !points_at(url, port) {
        return;
    }
    let err = store.get("1").await.unwrap_err();
    assert_hidden(password, "call error", &error_chain(&err));
    let err = pool.ping().await.unwrap_err();
    assert_hidden(password, "ping error", &error_chain(&err));
}

async fn cluster(url: &str, password: &str) {
    let builder = RedisClusterPool::builder([url, url]);
    assert_hidden(password, "cluster builder", &format!("{builder:?}"));
    let pool = match builder.build() {
        Ok(pool) => pool,
        Err(e) => return assert_hidden(password, "cluster build error", &error_chain(&e)),
    };
    assert_hidden(
        password,
        "cluster pool",
        &format!("{pool:?} {}", pool.redacted_urls()),
    );
    let store: RedisClusterStore<String> =
        RedisClusterStore::builder(pool, "user").build().unwrap();
    assert_hidden(password, "cluster store", &format!("{store:?}"));
    if !points_at(url, PORT) {
        return;
    }
    let err = store.get("1").await.unwrap_err();
    assert_hidden(password, "cluster call error", &error_chain(&err));
}

/// A sentinel pool whose sentinel URL carries `password`, and whose master login is
/// `password` too.
async fn sentinel(url: &str, password: &str) {
    let builder = RedisSentinelPool::builder([url], "master0")
        .master_username("app")
        .master_password(password);
    assert_hidden(password, "sentinel builder", &format!("{builder:?}"));
    let pool = match builder.build() {
        Ok(pool) => pool,
        Err(e) => return assert_hidden(password, "sentinel build error", &error_chain(&e)),
    };
    assert_hidden(
        password,
        "sentinel pool",
        &format!("{pool:?} {}", pool.redacted_urls()),
    );
    let store: RedisSentinelStore<String> =
        RedisSentinelStore::builder(pool, "user").build().unwrap();
    assert_hidden(password, "sentinel store", &format!("{store:?}"));
    if !points_at(url, PORT) {
        return;
    }
    let err = store.get("1").await.unwrap_err();
    assert_hidden(password, "sentinel call error", &error_chain(&err));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// 8 to 32 printable characters: long enough that no other text of the output contains
    /// it by chance.
    #[test]
    fn no_output_shows_a_password(password in "[ -~]{8,32}") {
        let runtime = typedkv_testkit::runtime();
        for url in urls(&password) {
            runtime.block_on(standalone(&url, &password, PORT));
            runtime.block_on(cluster(&url, &password));
            runtime.block_on(sentinel(&url, &password));
        }
    }
}

/// Passwords with URL delimiters, and a real server refusing the password: its error, too,
/// must not show it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reported_passwords_with_slash_and_question_mark_are_hidden() {
    let server = typedkv_testkit::TestRedis::start().await;
    for password in ["s3cr3t/x", "s3cr3t?x", "s3/cr?et#x@y", "abc%2Fdef"] {
        let url = format!("redis://user:{password}@127.0.0.1:{}", server.port());
        standalone(&url, password, server.port()).await;
        assert_eq!(
            redact_url(&url),
            format!("redis://user:***@127.0.0.1:{}", server.port())
        );
    }
}
