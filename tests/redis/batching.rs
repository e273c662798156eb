//! Batching (`RedisPoolBuilder::batching(true)`): the conformance suite with it on, and what
//! batching must not change for any one call: its own answer and error among a thousand
//! concurrent ones, conditional and TTL'd writes, callers dropped mid-flight, and the
//! response timeout on a hung server.

// Tests report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use typedkv::redis::RedisPool;
use typedkv::{Error, Expiry, Index, RedisStore, SetOptions, Store, Waited};
use typedkv_testkit::conformance::values::{Profile, profile};
use typedkv_testkit::{TestRedis, command_calls};

typedkv_testkit::conformance_tests!(
    redis_batching,
    test = [tokio::test(flavor = "multi_thread", worker_threads = 2)],
    fixture = typedkv_testkit::fixture::redis_batching()
);

const RESPONSE: Duration = Duration::from_millis(500);

async fn batching_store(server: &TestRedis) -> Arc<RedisStore<Profile>> {
    let pool = RedisPool::builder(server.url())
        .batching(true)
        .response_timeout(Some(RESPONSE))
        .build()
        .unwrap();
    pool.ping().await.unwrap();
    Arc::new(RedisStore::builder(pool, "user").build().unwrap())
}

/// What key `i` of the mixed-type test holds.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Holds {
    Value,
    Nothing,
    List,
    Hash,
}

fn holds(i: usize) -> Holds {
    [Holds::Value, Holds::Nothing, Holds::List, Holds::Hash][i % 4]
}

/// Writes the keys of the mixed-type test: values, nothing, lists and hashes.
async fn mixed_keys(server: &TestRedis, store: &RedisStore<Profile>, keys: usize) {
    let mut raw = server.raw_connection().await;
    for i in 0..keys {
        let key = format!("user:{i}");
        match holds(i) {
            Holds::Value => store.set(&i.to_string(), &profile(i as u32)).await.unwrap(),
            Holds::Nothing => {}
            Holds::List => {
                let _: i64 = raw.rpush(&key, "x").await.unwrap();
            }
            Holds::Hash => {
                let _: i64 = raw.hset(&key, "f", "x").await.unwrap();
            }
        }
    }
}

/// Checks what `get` of key `i` answered.
fn check_answer(i: usize, answer: &typedkv::Result<Option<Profile>>) {
    match (holds(i), answer) {
        (Holds::Value, Ok(Some(found))) => assert_eq!(*found, profile(i as u32), "{i}"),
        (Holds::Nothing, Ok(None)) => {}
        (Holds::List | Holds::Hash, Err(err)) => {
            // As MGET would have it, a batch of these would read nil: each is its own GET.
            assert_eq!(err.code(), Some("WRONGTYPE"), "{i}: {err:?}");
            assert_eq!(err.key(), Some(format!("user:{i}").as_str()));
        }
        (what, answer) => panic!("key {i} holds {what:?}, get answered {answer:?}"),
    }
}

/// 1,000 concurrent `get`s, a quarter of them on keys holding lists or hashes: every call
/// gets its own answer (the value, `None`, or `WRONGTYPE` naming its key), on a fresh pool
/// and then on the same pool warm.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_gets_each_get_their_own_answer() {
    const KEYS: usize = 1000;
    let server = TestRedis::start().await;
    let fresh = RedisPool::builder(server.url())
        .batching(true)
        .build()
        .unwrap();
    let store = Arc::new(
        RedisStore::<Profile>::builder(fresh, "user")
            .build()
            .unwrap(),
    );
    let writer = batching_store(&server).await;
    mixed_keys(&server, &writer, KEYS).await;
    for round in ["fresh", "warm"] {
        let calls: Vec<_> = (0..KEYS)
            .map(|i| {
                let store = Arc::clone(&store);
                tokio::spawn(async move { store.get(&i.to_string()).await })
            })
            .collect();
        for (i, call) in calls.into_iter().enumerate() {
            let answer = call.await.unwrap();
            check_answer(i, &answer);
        }
        eprintln!("{round}: every answer right");
    }
}

/// Half of 1,000 callers are dropped while their commands are queued or in flight (the
/// server is stopped meanwhile, so none has its answer yet), the first ones among them,
/// which held the slots the others' batches go out on. The other half still each get their
/// own answer, and the pool goes on working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_callers_do_not_break_the_others_answers() {
    const KEYS: usize = 1000;
    let server = TestRedis::start().await;
    let store = batching_store(&server).await;
    mixed_keys(&server, &store, KEYS).await;

    server.signal("-STOP");
    let calls: Vec<_> = (0..KEYS)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.get(&i.to_string()).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    for call in calls.iter().step_by(2) {
        call.abort();
    }
    server.signal("-CONT");
    for (i, call) in calls.into_iter().enumerate() {
        match call.await {
            Ok(answer) => check_answer(i, &answer),
            Err(join) => assert!(join.is_cancelled() && i % 2 == 0, "{i}: {join}"),
        }
    }
    for i in 0..8 {
        check_answer(i, &store.get(&i.to_string()).await);
    }
}

/// Batched writes keep their own conditions and TTLs: of 400 concurrent `if_absent` writes
/// to 20 keys, exactly one per key wins, with the TTL it asked for; `if_present` on missing
/// keys writes nothing; deletes and `exists` answer per key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_writes_keep_their_conditions_and_ttls() {
    const KEYS: usize = 20;
    let server = TestRedis::start().await;
    let store = batching_store(&server).await;
    let ttl = Duration::from_secs(60);
    let calls: Vec<_> = (0..KEYS * 20)
        .map(|n| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let id = (n % KEYS).to_string();
                let claim = SetOptions::new().if_absent().ttl(ttl);
                let won = store
                    .set_opts(&id, &profile(n as u32), claim)
                    .await
                    .unwrap();
                let absent = format!("absent-{n}");
                let touch = SetOptions::new().if_present();
                let touched = store.set_opts(&absent, &profile(0), touch).await.unwrap();
                (n % KEYS, won, touched)
            })
        })
        .collect();
    let mut wins = [0; KEYS];
    for call in calls {
        let (key, won, touched) = call.await.unwrap();
        wins[key] += usize::from(won);
        assert!(!touched, "if_present wrote a missing key");
    }
    assert_eq!(wins, [1; KEYS]);
    for key in 0..KEYS {
        let id = key.to_string();
        match store.ttl(&id).await.unwrap() {
            Some(Expiry::In(left)) => assert!(left <= ttl && left > ttl / 2, "{left:?}"),
            other => panic!("{id}: {other:?}"),
        }
    }
    let deletes: Vec<_> = (0..KEYS * 2)
        .map(|key| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { (key, store.delete(&key.to_string()).await.unwrap()) })
        })
        .collect();
    for delete in deletes {
        let (key, deleted) = delete.await.unwrap();
        assert_eq!(deleted, key < KEYS, "{key}");
    }
    for key in 0..KEYS {
        assert!(!store.exists(&key.to_string()).await.unwrap());
    }
}

/// Server errors are per command: with memory full, 100 `set`s batched among 100 `get`s
/// each get `OOM` naming their own key, while the `get`s get their values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_write_fails_alone_in_its_batch() {
    let server = TestRedis::start().await;
    let store = batching_store(&server).await;
    store.set("kept", &profile(1)).await.unwrap();
    let mut raw = server.raw_connection().await;
    for setting in [["maxmemory-policy", "noeviction"], ["maxmemory", "1"]] {
        let () = redis::cmd("CONFIG")
            .arg("SET")
            .arg(&setting)
            .query_async(&mut raw)
            .await
            .unwrap();
    }
    let calls: Vec<_> = (0..200)
        .map(|n| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                match n % 2 {
                    0 => {
                        let err = store
                            .set(&format!("new{n}"), &profile(2))
                            .await
                            .unwrap_err();
                        assert_eq!(err.code(), Some("OOM"), "{err:?}");
                        assert_eq!(err.key(), Some(format!("user:new{n}").as_str()));
                    }
                    _ => assert_eq!(store.get("kept").await.unwrap(), Some(profile(1))),
                }
            })
        })
        .collect();
    for call in calls {
        call.await.unwrap();
    }
}

/// On a hung server (SIGSTOP), 64 concurrent reads and writes, most of them queued behind
/// the two in flight, each end with a timeout within 1.2x the response timeout counted from
/// their own start. Then the server answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_server_bounds_every_batched_call() {
    let server = TestRedis::start().await;
    let store = batching_store(&server).await;
    store.set("1", &profile(1)).await.unwrap();

    server.signal("-STOP");
    let calls: Vec<_> = (0..64)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let started = Instant::now();
                let result = match i % 2 {
                    0 => store.get("1").await.map(drop),
                    _ => store.set("2", &profile(2)).await,
                };
                (started.elapsed(), result)
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for call in calls {
        outcomes.push(call.await.unwrap());
    }
    server.signal("-CONT");

    for (waited, result) in outcomes {
        let err = result.unwrap_err();
        let Error::Timeout {
            keys,
            timeout,
            waited: what,
            ..
        } = &err
        else {
            panic!("not a timeout: {err:?}");
        };
        assert!(
            keys.first().is_some_and(|key| key.starts_with("user:")),
            "{err}"
        );
        assert_eq!((*what, *timeout), (Waited::Reply, RESPONSE), "{err}");
        assert!(
            waited >= RESPONSE && waited <= RESPONSE.mul_f64(1.2),
            "{waited:?} for {err}"
        );
    }
    store.set("1", &profile(1)).await.unwrap();
    assert_eq!(store.get("1").await.unwrap(), Some(profile(1)));
}

/// A hung server (SIGSTOP) while full batches are in flight: the first 64 calls hold the
/// slots until their timeouts free them; the 1,100 calls made meanwhile then go out as
/// batches of 512 `GET`s (one `MGET` each) to the stopped server. Each ends with its own
/// timeout, counted from its own start, though no call has a timer of its own: the batch
/// task answers each at its deadline. After the server resumes, the pool works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_server_bounds_every_call_of_a_full_batch() {
    const LATE: usize = 1100;
    let server = TestRedis::start().await;
    let store = batching_store(&server).await;
    store.set("1", &profile(1)).await.unwrap();
    let mut raw = server.raw_connection().await;
    let mgets_before = command_calls(&mut raw, "mget").await;

    let timed_get = |store: Arc<RedisStore<Profile>>| async move {
        let started = Instant::now();
        let result = store.get("1").await;
        (started.elapsed(), result)
    };
    server.signal("-STOP");
    let first: Vec<_> = (0..64)
        .map(|_| tokio::spawn(timed_get(Arc::clone(&store))))
        .collect();
    // Not a schedule the assertions rely on: each call's bound holds whenever it starts.
    // Starting the late calls midway through the first calls' timeout makes them queue
    // behind the held slots and go out together once those free.
    tokio::time::sleep(RESPONSE / 2).await;
    let late: Vec<_> = (0..LATE)
        .map(|_| tokio::spawn(timed_get(Arc::clone(&store))))
        .collect();
    let mut outcomes = Vec::new();
    for call in first.into_iter().chain(late) {
        outcomes.push(call.await.unwrap());
    }
    server.signal("-CONT");

    for (waited, result) in outcomes {
        let err = result.unwrap_err();
        assert!(
            matches!(&err, Error::Timeout { waited: Waited::Reply, timeout, .. } if *timeout == RESPONSE),
            "{err:?}"
        );
        assert_eq!(err.key(), Some("user:1"), "{err}");
        // Margin for 1,164 tasks woken at once on two loaded cores.
        assert!(
            waited >= RESPONSE && waited <= RESPONSE.mul_f64(1.5),
            "{waited:?} for {err}"
        );
    }
    assert_eq!(store.get("1").await.unwrap(), Some(profile(1)));
    // The late calls went out coalesced (the server read them when it resumed).
    let mgets = command_calls(&mut raw, "mget").await - mgets_before;
    assert!(
        (1..=8).contains(&mgets),
        "{mgets} MGETs carried the late calls"
    );
}

/// `call`, counting in `made` once its first poll is over: by then its command is queued for
/// a batch or holds a lone call's slot (nothing before that waits).
async fn counted<F: Future>(call: F, made: Arc<AtomicUsize>) -> F::Output {
    let mut call = std::pin::pin!(call);
    let mut first = true;
    std::future::poll_fn(|cx| {
        let poll = call.as_mut().poll(cx);
        if std::mem::take(&mut first) {
            made.fetch_add(1, Ordering::SeqCst);
        }
        poll
    })
    .await
}

/// Runs `calls` on a stopped server, which resumes once every call has been made: the calls
/// beyond the lone ones and the two batches in flight then wait in the queue, and go out
/// together when the server answers. Their outcomes, in order.
async fn made_while_stopped<T, F>(server: &TestRedis, calls: Vec<F>) -> Vec<T>
where
    T: Send + 'static,
    F: Future<Output = T> + Send + 'static,
{
    let count = calls.len();
    server.signal("-STOP");
    let made = Arc::new(AtomicUsize::new(0));
    let calls: Vec<_> = calls
        .into_iter()
        .map(|call| tokio::spawn(counted(call, Arc::clone(&made))))
        .collect();
    let waiting = Instant::now();
    while made.load(Ordering::SeqCst) < count {
        assert!(
            waiting.elapsed() < Duration::from_secs(30),
            "calls not made"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.signal("-CONT");
    let mut outcomes = Vec::with_capacity(count);
    for call in calls {
        outcomes.push(call.await.unwrap());
    }
    outcomes
}

/// `set`s of `profile(i)` at ids `0..writes`, made while the server is stopped (see
/// [`made_while_stopped`]).
async fn profiles_set_while_stopped(
    server: &TestRedis,
    store: &Arc<RedisStore<Profile>>,
    writes: usize,
) -> Vec<typedkv::Result<()>> {
    let calls = (0..writes)
        .map(|i| {
            let store = Arc::clone(store);
            async move { store.set(&i.to_string(), &profile(i as u32)).await }
        })
        .collect();
    made_while_stopped(server, calls).await
}

/// A pool that waits for a stopped server, and a store on it with `index`, its script
/// loaded (batches send only its digest); the count of `EVALSHA`s so far.
async fn indexed_store(
    server: &TestRedis,
    index: Index<Profile>,
) -> (Arc<RedisStore<Profile>>, u64) {
    let pool = RedisPool::builder(server.url())
        .batching(true)
        .response_timeout(Some(Duration::from_secs(60)))
        .build()
        .unwrap();
    let store = Arc::new(
        RedisStore::<Profile>::builder(pool, "user")
            .index(index)
            .build()
            .unwrap(),
    );
    store.set("warm", &profile(0)).await.unwrap();
    store.delete("warm").await.unwrap();
    let scripts = command_calls(&mut server.raw_connection().await, "evalsha").await;
    (store, scripts)
}

/// Concurrent indexed `set`s of one store share script calls, and each keeps its own
/// outcome: 200 made while the server is stopped go out in a few dozen script calls once it
/// resumes (16 alone, then one per batch: the first batches, up to 16 in flight, take the
/// calls as they arrive, the later ones all that queued), and those whose record key
/// another program wrote as a string fail alone, with `WRONGTYPE` naming their key, one sent
/// alone and one in a batch; every other one is written and indexed, also those after the
/// broken one in its batch, and one whose record holds two entries of indexes the store no
/// longer declares (the script's general steps, not its shortcut for one index).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_indexed_writes_share_script_calls_and_fail_alone() {
    const WRITES: usize = 200;
    // 7 is among the first 16 calls, which go out alone; 120 among those that queue.
    const BROKEN: [usize; 2] = [7, 120];
    const LEFTOVER: usize = 150;
    let server = TestRedis::start().await;
    let all = Index::equality("all", |_: &Profile| ["all".to_owned()]);
    let (store, scripts_before) = indexed_store(&server, all).await;
    let mut raw = server.raw_connection().await;
    for broken in BROKEN {
        let () = raw
            .set(format!("user#rec:{broken}"), "not a set")
            .await
            .unwrap();
    }
    // The multi-entry form (DESIGN.md): a zero byte, then per entry its length (4 bytes,
    // big-endian) and `name 0x00 member`.
    let mut leftover = vec![0];
    for entry in [&b"old\0x"[..], b"older\0y"] {
        leftover.extend_from_slice(&(entry.len() as u32).to_be_bytes());
        leftover.extend_from_slice(entry);
    }
    let () = raw
        .set(format!("user#rec:{LEFTOVER}"), leftover)
        .await
        .unwrap();

    for (i, outcome) in profiles_set_while_stopped(&server, &store, WRITES)
        .await
        .into_iter()
        .enumerate()
    {
        if BROKEN.contains(&i) {
            let err = outcome.unwrap_err();
            assert_eq!(err.code(), Some("WRONGTYPE"), "{err:?}");
            assert_eq!(err.key(), Some(format!("user:{i}").as_str()));
        } else {
            outcome.unwrap_or_else(|err| panic!("write {i}: {err:?}"));
        }
    }
    let scripts = command_calls(&mut raw, "evalsha").await - scripts_before;
    assert!(
        scripts <= 40,
        "{scripts} script calls carried {WRITES} writes"
    );
    assert_eq!(
        store.count_by("all", b"all").await.unwrap(),
        (WRITES - BROKEN.len()) as u64,
        "every write but the broken ones"
    );
    for broken in BROKEN {
        assert_eq!(store.get(&broken.to_string()).await.unwrap(), None);
    }
    let record: Vec<u8> = raw.get(format!("user#rec:{LEFTOVER}")).await.unwrap();
    assert!(record.starts_with(b"all\0"), "{}", record.escape_ascii());
    for i in (0..WRITES).filter(|i| !BROKEN.contains(i)) {
        assert_eq!(
            store.get(&i.to_string()).await.unwrap(),
            Some(profile(i as u32))
        );
    }
}

/// Coalesced writes of a store with a unique index claim their values one after the other:
/// of 200 concurrent writes made while the server is stopped, pairs claiming the same value
/// for two ids, exactly one of each pair wins, the other gets `UniqueViolation`, and the
/// value finds the winner; they still went out in a handful of script calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coalesced_unique_claims_have_one_winner_each() {
    const WRITES: usize = 200;
    let server = TestRedis::start().await;
    let name = Index::unique("name", |p: &Profile| [p.name.clone()]);
    let (store, scripts_before) = indexed_store(&server, name).await;
    let claiming = |i: usize| Profile {
        name: format!("n{}", i / 2),
        ..profile(i as u32)
    };

    let calls = (0..WRITES)
        .map(|i| {
            let store = Arc::clone(&store);
            async move { store.set(&i.to_string(), &claiming(i)).await }
        })
        .collect();
    let outcomes = made_while_stopped(&server, calls).await;
    for pair in 0..WRITES / 2 {
        let (a, b) = (&outcomes[2 * pair], &outcomes[2 * pair + 1]);
        let winner = match (a, b) {
            (Ok(()), Err(Error::UniqueViolation { .. })) => 2 * pair,
            (Err(Error::UniqueViolation { .. }), Ok(())) => 2 * pair + 1,
            other => panic!("pair {pair}: {other:?}"),
        };
        let found = store
            .find_one_by("name", format!("n{pair}").as_bytes())
            .await
            .unwrap();
        assert_eq!(found, Some((winner.to_string(), claiming(winner))));
    }
    let scripts =
        command_calls(&mut server.raw_connection().await, "evalsha").await - scripts_before;
    // Each refused write is sent again alone: 100 of them, plus the batches (as above).
    assert!(
        scripts <= 140,
        "{scripts} script calls carried {WRITES} writes"
    );
}

/// A server that lost its scripts (`SCRIPT FLUSH`, as after a restart or a failover) answers
/// the batched script calls `NOSCRIPT`, which wrote nothing: each write is sent again with the
/// script and lands once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_indexed_writes_survive_a_flushed_script_cache() {
    const WRITES: usize = 100;
    let server = TestRedis::start().await;
    let all = Index::equality("all", |_: &Profile| ["all".to_owned()]);
    let (store, _) = indexed_store(&server, all).await;
    let mut raw = server.raw_connection().await;
    let () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut raw)
        .await
        .unwrap();

    for (i, outcome) in profiles_set_while_stopped(&server, &store, WRITES)
        .await
        .into_iter()
        .enumerate()
    {
        outcome.unwrap_or_else(|err| panic!("write {i}: {err:?}"));
    }
    assert_eq!(store.count_by("all", b"all").await.unwrap(), WRITES as u64);
    let errors: String = redis::cmd("INFO")
        .arg("errorstats")
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!(
        errors.contains("errorstat_NOSCRIPT:count="),
        "the writes met the flushed cache: {errors}"
    );
}
