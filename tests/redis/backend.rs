//! Behaviour only a real Redis server has: bytes written by other clients, other Redis types
//! at a key, connection and timeout failures, restarts, connection sharing, secrets.

// Tests report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{FutureExt, TryStreamExt};
use redis::AsyncCommands;
use typedkv::codec::{Bincode, Codec};
use typedkv::envelope::HEADER_LEN;
use typedkv::redis::RedisPool;
use typedkv::{DecodeProblem, Error, RedisStore, Store, StoreExt, Update, Waited};
use typedkv_testkit::TestRedis;
use typedkv_testkit::conformance::values::{Profile, profile};
use typedkv_testkit::conformance::{assert_decode_error, enveloped};

fn users(pool: &RedisPool) -> RedisStore<Profile> {
    RedisStore::builder(pool.clone(), "user").build().unwrap()
}

/// A pool with several shared connections, so a restart kills siblings that must all be
/// replaced.
fn multi_lane_pool(server: &TestRedis) -> RedisPool {
    multi_lane_pool_batching(server, false)
}

/// [`multi_lane_pool`], batching concurrent commands or not.
fn multi_lane_pool_batching(server: &TestRedis, batching: bool) -> RedisPool {
    RedisPool::builder(server.url())
        .shared_connections(3)
        .batching(batching)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_written_by_redis_rs_are_decode_errors() {
    let server = TestRedis::start().await;
    let store = users(&server.pool());
    let mut raw = server.raw_connection().await;
    let good = enveloped(&profile(1), 1);
    let cases: Vec<(&str, Vec<u8>, DecodeProblem)> = vec![
        (
            "foreign",
            b"hello from another program".to_vec(),
            DecodeProblem::NotEnveloped,
        ),
        (
            "truncated",
            good[..good.len() / 2].to_vec(),
            DecodeProblem::InvalidPayload,
        ),
        (
            "cut-header",
            good[..4].to_vec(),
            DecodeProblem::TruncatedHeader { len: 4 },
        ),
        (
            "v7",
            enveloped(&profile(1), 7),
            DecodeProblem::SchemaMismatch {
                found: 7,
                expected: 1,
            },
        ),
    ];
    for (id, bytes, problem) in &cases {
        let key = format!("user:{id}");
        let () = raw.set(&key, bytes).await.unwrap();
        assert_decode_error(store.get(id).await, &key, problem);
    }
    // And what the store writes is the documented envelope, readable by hand.
    store.set("mine", &profile(2)).await.unwrap();
    let stored: Vec<u8> = raw.get("user:mine").await.unwrap();
    let mut header = vec![0xC1, b'T', b'K', 2, 1, 1, 0, 0, 0];
    let layout = typedkv::Layout::of::<Profile>().unwrap();
    header.extend_from_slice(&layout.to_bits().to_le_bytes());
    assert_eq!(
        stored[..HEADER_LEN],
        header[..],
        "magic, format 2, bincode, schema 1, Profile's layout fingerprint"
    );
    let payload: Profile = Bincode::new().decode(&stored[HEADER_LEN..]).unwrap();
    assert_eq!(payload, profile(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_at_the_key_is_a_wrongtype_error() {
    let server = TestRedis::start().await;
    let store = users(&server.pool());
    let mut raw = server.raw_connection().await;
    let _: i64 = raw.rpush("user:listy", "x").await.unwrap();

    let err = store.get("listy").await.unwrap_err();
    assert_eq!(err.code(), Some("WRONGTYPE"), "{err:?}");
    assert_eq!(err.key(), Some("user:listy"));
    assert!(err.to_string().contains("user:listy"), "{err}");
    // exists/ttl work on any type; get_many keeps get's rule although MGET reads a list as
    // nil, and still reads what is there and what is not around it.
    assert!(store.exists("listy").await.unwrap());
    store.set("here", &profile(3)).await.unwrap();
    let err = store
        .get_many(&["here", "listy", "absent"])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("WRONGTYPE"), "{err:?}");
    assert_eq!(err.key(), Some("user:listy"));
    assert_eq!(
        store.get_many(&["here", "absent"]).await.unwrap(),
        vec![Some(profile(3)), None]
    );
    // A scan skips it: it is no value of the store.
    let scanned: Vec<_> = store.scan().try_collect().await.unwrap();
    assert_eq!(scanned, vec![("here".to_owned(), profile(3))]);
    // SET replaces a key of any type, as Redis does.
    store.set("listy", &profile(1)).await.unwrap();
    assert_eq!(store.get("listy").await.unwrap(), Some(profile(1)));
}

/// Against a real server: a changed type is refused (layout
/// fingerprint) rather than misread, and a migration on a JSON store is refused at build.
/// These typed-layer cases run once on memory in the suite; here they run on Redis too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_types_and_builder_mistakes_on_a_real_server() {
    use typedkv_testkit::conformance;
    let server = TestRedis::start().await;
    conformance::a_changed_type_is_detected_without_a_schema_bump(server.pool()).await;
    conformance::migration_mistakes_are_refused(server.pool()).await;
    conformance::unreadable_bytes_are_decode_errors(server.pool()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scans_survive_keys_of_other_programs() {
    let server = TestRedis::start().await;
    let mut raw = server.raw_connection().await;
    typedkv_testkit::foreign_keys::scans_survive_keys_of_other_programs(server.pool(), &mut raw)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_meet_keys_of_other_programs() {
    let server = TestRedis::start().await;
    let mut raw = server.raw_connection().await;
    typedkv_testkit::foreign_keys::transactions_meet_keys_of_other_programs(
        server.pool(),
        &mut raw,
    )
    .await;
}

/// A stopped server fails a call at once with a connection error naming the key, on a pool
/// that never connected and on one whose connections were open; its cause chain names each
/// cause once (redis-rs repeats a wrapped I/O error's text as its own).
async fn server_down_is_a_connection_error_naming_the_key(warm: bool) {
    let mut server = TestRedis::start().await;
    let pool = server.pool();
    if warm {
        pool.ping().await.unwrap();
    }
    server.stop();
    let started = Instant::now();
    let err = users(&pool).get("42").await.unwrap_err();
    assert!(matches!(err, Error::Connection { .. }), "{err:?}");
    assert_eq!(err.key(), Some("user:42"));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let mut causes = Vec::new();
    let mut next = std::error::Error::source(&err);
    while let Some(cause) = next {
        causes.push(cause.to_string());
        next = cause.source();
    }
    assert!(!causes.is_empty(), "{err:?}");
    // A batch names its first key and its size, not a made-up key.
    let err = users(&pool).get_many(&["1", "2", "3"]).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Connection {
                backend: "redis",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!((err.key(), err.key_count()), (Some("user:1"), 3));
    assert!(err.is_transient());
    assert!(
        causes.windows(2).all(|pair| pair[0] != pair[1]),
        "a cause is repeated: {causes:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_down_is_a_connection_error_on_a_fresh_pool() {
    server_down_is_a_connection_error_naming_the_key(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_down_is_a_connection_error_on_a_warm_pool() {
    server_down_is_a_connection_error_naming_the_key(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_recover_after_a_server_restart() {
    let mut server = TestRedis::start().await;
    let pool = multi_lane_pool(&server);
    pool.ping().await.unwrap(); // every shared connection is open (and about to die)
    let store = users(&pool);
    store.set("1", &profile(1)).await.unwrap();

    server.restart().await; // a new, empty server on the same port
    // Once redis-rs reported each closed socket (its connection tasks read the EOF: at
    // once on a quiet machine, given a second here for a loaded one), no call is sent on a
    // dead connection: not the first read, and not a write either (writes are never resent,
    // so this is what counts). A write racing that report may fail; that is not tested.
    tokio::time::sleep(Duration::from_secs(1)).await;
    for i in 0..10 {
        store.set(&i.to_string(), &profile(i)).await.unwrap();
    }
    assert_eq!(store.get("1").await.unwrap(), Some(profile(1)));
}

/// 32 tasks loop `set`/`get` while the server is killed, stays down for
/// a while, and comes back empty on the same port. While it is down calls fail with typed
/// errors, each within its timeouts (no hang, no panic); from 1 s after it answers again,
/// every call succeeds (no dead connection stays in use). With and without batching.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_under_load_recovers_within_a_second() {
    restart_under_load(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_under_load_recovers_within_a_second_with_batching() {
    restart_under_load(true).await;
}

async fn restart_under_load(batching: bool) {
    const TASKS: usize = 32;
    let mut server = TestRedis::start().await;
    let pool = multi_lane_pool_batching(&server, batching);
    let store = users(&pool);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // (started, took, error) of every call.
    type Call = (Instant, Duration, Option<Error>);
    let workers: Vec<_> = (0..TASKS)
        .map(|task| {
            let (store, stop) = (store.clone(), stop.clone());
            tokio::spawn(async move {
                let mut calls: Vec<Call> = Vec::new();
                let mut i = 0u32;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    i += 1;
                    let id = format!("{task}-{}", i % 10);
                    let started = Instant::now();
                    let result = store.set(&id, &profile(i)).await;
                    calls.push((started, started.elapsed(), result.err()));
                    let started = Instant::now();
                    let result = store.get(&id).await.map(drop);
                    calls.push((started, started.elapsed(), result.err()));
                    if calls.last().is_some_and(|(_, _, e)| e.is_some()) {
                        // While the server is down, do not spin on instant refusals.
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
                calls
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.stop();
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.restart().await;
    let back_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);

    let mut calls = Vec::new();
    for worker in workers {
        calls.extend(worker.await.expect("no task panicked"));
    }
    let failed: Vec<&Call> = calls.iter().filter(|(_, _, e)| e.is_some()).collect();
    assert!(
        !failed.is_empty(),
        "the outage should have failed some calls"
    );
    // Each call is bounded by the response timeout (1 s) or the connect timeout (2 s); the
    // margin is for a loaded machine (calls queued behind connection attempts took 16 s).
    let slowest = calls.iter().map(|(_, took, _)| *took).max().unwrap();
    assert!(slowest < Duration::from_secs(4), "a call took {slowest:?}");
    for (_, _, error) in &failed {
        let error = error.as_ref().unwrap();
        assert!(
            matches!(error, Error::Connection { .. } | Error::Pool { .. }) || error.is_timeout(),
            "{error:?}"
        );
    }
    let settled = back_at + Duration::from_secs(1);
    let late: Vec<&Call> = failed
        .iter()
        .copied()
        .filter(|(at, _, _)| *at >= settled)
        .collect();
    let after: usize = calls.iter().filter(|(at, _, _)| *at >= settled).count();
    assert!(after > 1000, "only {after} calls after recovery");
    assert!(
        late.is_empty(),
        "{} of {after} calls failed after recovery: {:?}",
        late.len(),
        late[0].2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_racing_a_dead_connection_is_resent_once() {
    let server = TestRedis::start().await;
    let pool = multi_lane_pool(&server);
    pool.ping().await.unwrap();
    let store = users(&pool);
    store.set("1", &profile(1)).await.unwrap();
    // Kill every client connection and read at once, before the disconnect is processed:
    // the read fails on its dead connection and is resent on a fresh one.
    let mut raw = server.raw_connection().await;
    let kill = redis::cmd("CLIENT")
        .arg(&["KILL", "TYPE", "normal", "SKIPME", "yes"])
        .clone();
    let (_, read): (redis::RedisResult<i64>, _) =
        tokio::join!(kill.query_async(&mut raw), store.get("1"));
    assert_eq!(read.unwrap(), Some(profile(1)));
    for i in 0..10 {
        assert_eq!(store.get("1").await.unwrap(), Some(profile(1)), "{i}");
    }
}

/// Response, connect and create timeouts of the hung-server tests: distinct, so an error's
/// `timeout` says which limit ended the call.
const RESPONSE: Duration = Duration::from_millis(500);
const CONNECT: Duration = Duration::from_millis(700);
const CREATE: Duration = Duration::from_millis(900);

/// A pool that has not connected yet (`warm: false`) or whose connections are all open.
async fn hung_test_pool(server: &TestRedis, warm: bool) -> RedisPool {
    let pool = RedisPool::builder(server.url())
        .response_timeout(Some(RESPONSE))
        .connect_timeout(CONNECT)
        .create_timeout(CREATE)
        .build()
        .unwrap();
    if warm {
        pool.ping().await.unwrap();
    }
    pool
}

/// Runs `calls` at once and returns how long each took and what it answered.
async fn concurrently<R: Send + 'static>(
    calls: Vec<futures::future::BoxFuture<'static, typedkv::Result<R>>>,
) -> Vec<(Duration, typedkv::Result<R>)> {
    let tasks: Vec<_> = calls
        .into_iter()
        .map(|call| {
            tokio::spawn(async move {
                let started = Instant::now();
                let result = call.await;
                (started.elapsed(), result)
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    outcomes
}

/// On a hung server (SIGSTOP), 8 concurrent reads and writes each end
/// within their own deadline, whatever the others do: on a warm pool the response timeout
/// (a read is not resent after a timeout, which would double the wait); on a fresh pool the
/// create timeout, whether a call opens the connection itself or waits behind another's
/// attempt (they used to queue: 2, 4, 6 ... 16 s). Then the server answers again.
async fn a_hung_server_bounds_every_call(warm: bool) {
    let server = TestRedis::start().await;
    let pool = hung_test_pool(&server, warm).await;
    let store = users(&pool);
    if warm {
        store.set("1", &profile(1)).await.unwrap();
    }

    server.signal("-STOP");
    let calls = (0..8)
        .map(|i| {
            let store = store.clone();
            async move {
                match i % 2 {
                    0 => store.get("1").await.map(drop),
                    _ => store.set("2", &profile(2)).await,
                }
            }
            .boxed()
        })
        .collect();
    let outcomes = concurrently(calls).await;
    server.signal("-CONT");

    for (waited, result) in outcomes {
        let err = result.unwrap_err();
        let Error::Timeout {
            backend,
            keys,
            timeout,
            waited: what,
            ..
        } = &err
        else {
            panic!("not a timeout: {err:?}");
        };
        assert_eq!(*backend, "redis");
        assert!(
            keys.first().is_some_and(|key| key.starts_with("user:")),
            "{err}"
        );
        let (want, limit) = match warm {
            true => (Waited::Reply, RESPONSE),
            false => (Waited::Connection, CREATE),
        };
        assert_eq!(*what, want, "{err}");
        // Fresh: the call that opened the connection gave up at the connect timeout.
        assert!(*timeout == limit || (!warm && *timeout == CONNECT), "{err}");
        assert!(
            waited >= *timeout && waited <= timeout.mul_f64(1.2),
            "{waited:?} for {err}"
        );
    }
    store.set("1", &profile(1)).await.unwrap();
    assert_eq!(store.get("1").await.unwrap(), Some(profile(1)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_server_bounds_every_call_on_a_warm_pool() {
    a_hung_server_bounds_every_call(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_server_bounds_every_call_on_a_fresh_pool() {
    a_hung_server_bounds_every_call(false).await;
}

/// 8 concurrent updates of one key on a hung server each end within the
/// response timeout (they used to queue behind each other's turn: 0.5, 1.0 ... 4.0 s). The
/// one holding the turn times out on its reply; those waiting give up on their turn.
async fn hung_updates_of_one_key_do_not_queue(warm: bool) {
    let server = TestRedis::start().await;
    let pool = hung_test_pool(&server, warm).await;
    let counters: RedisStore<u64> = RedisStore::builder(pool, "counter").build().unwrap();
    if warm {
        counters.set("hits", &0).await.unwrap();
    }

    server.signal("-STOP");
    let calls = (0..8)
        .map(|_| {
            let counters = counters.clone();
            async move {
                counters
                    .update_with("hits", |n| Update::Set(n.unwrap_or(0) + 1))
                    .await
            }
            .boxed()
        })
        .collect();
    let outcomes = concurrently(calls).await;
    server.signal("-CONT");

    let mut turns = 0;
    for (waited, result) in outcomes {
        let err = result.unwrap_err();
        let Error::Timeout {
            timeout,
            waited: what,
            ..
        } = &err
        else {
            panic!("not a timeout: {err:?}");
        };
        assert_eq!(err.key(), Some("counter:hits"));
        turns += usize::from(*what == Waited::UpdateTurn);
        // The first call opens the connection (fresh) or waits for its reply (warm); every
        // other call waited for its turn, at most the response timeout.
        let limit = match what {
            Waited::UpdateTurn | Waited::Reply => RESPONSE,
            _ => CREATE,
        };
        assert!(*timeout <= limit, "{err}");
        assert!(waited <= limit.mul_f64(1.2), "{waited:?} for {err}");
    }
    assert!(turns >= 6, "{turns} calls gave up on their turn");
    let after = counters.update_with("hits", |n| Update::Set(n.unwrap_or(0) + 1));
    assert_eq!(after.await.unwrap(), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_updates_of_one_key_do_not_queue_on_a_warm_pool() {
    hung_updates_of_one_key_do_not_queue(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_updates_of_one_key_do_not_queue_on_a_fresh_pool() {
    hung_updates_of_one_key_do_not_queue(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_commands_share_connections_instead_of_checking_out() {
    let server = TestRedis::start().await;
    let pool = server.pool();
    let store = Arc::new(users(&pool));
    let tasks: Vec<_> = (0..64u32)
        .map(|task| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                for i in 0..50 {
                    let id = format!("{task}-{i}");
                    store.set(&id, &profile(i)).await.unwrap();
                    assert_eq!(store.get(&id).await.unwrap(), Some(profile(i)));
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    // 6,400 commands from 64 concurrent tasks used only the shared lanes.
    let status = pool.status();
    assert_eq!(
        status.size,
        typedkv::redis::DEFAULT_SHARED_CONNECTIONS,
        "{status:?}"
    );
    // Exclusive checkouts still come from the same bounded pool.
    let exclusive = pool.checkout().await.unwrap();
    assert_eq!(
        pool.status().size,
        typedkv::redis::DEFAULT_SHARED_CONNECTIONS + 1
    );
    drop(exclusive);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_never_appear_in_errors_or_debug() {
    let server = TestRedis::start().await;
    let url = format!("redis://alice:s3cret-pw@127.0.0.1:{}", server.port());
    let pool = RedisPool::from_url(&url).unwrap();
    assert!(!format!("{pool:?}").contains("s3cret-pw"));
    assert_eq!(
        pool.redacted_url(),
        format!("redis://alice:***@127.0.0.1:{}", server.port())
    );

    // The server has no user alice: authentication fails.
    let err = users(&pool).get("1").await.unwrap_err();
    let shown = typedkv_testkit::error_chain(&err);
    assert!(!shown.contains("s3cret-pw"), "{shown}");
    assert_eq!(err.key(), Some("user:1"));

    let bad = RedisPool::from_url("redis://alice:s3cret-pw@[not a host").unwrap_err();
    assert!(!format!("{bad} {bad:?}").contains("s3cret-pw"), "{bad:?}");
}

#[test]
fn pool_settings_are_validated() {
    let url = "redis://127.0.0.1:1";
    let invalid = [
        RedisPool::builder(url).shared_connections(0).build(),
        RedisPool::builder(url)
            .pool_size(1)
            .shared_connections(2)
            .build(),
        RedisPool::builder(url)
            .response_timeout(Some(Duration::ZERO))
            .build(),
        RedisPool::builder(url).wait_timeout(Duration::ZERO).build(),
        RedisPool::from_url("http://127.0.0.1"),
        RedisPool::from_url("not a url"),
    ];
    for result in invalid {
        assert!(
            matches!(result, Err(Error::InvalidConfig { .. })),
            "{result:?}"
        );
    }
    assert!(
        RedisPool::builder(url)
            .pool_size(1)
            .shared_connections(1)
            .build()
            .is_ok()
    );
}
