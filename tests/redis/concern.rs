//! Write concerns on one server without replicas: a concern of one replica is never met, so
//! every write path reports `Error::Unacknowledged` (and the write is on the master, as the
//! error says it may be); "all replicas" of a master with none is the master alone; a
//! concern on disk is refused before anything is written on a server without `WAITAOF`; a
//! store without a concern, or a write asking for none, sends no wait.

use std::time::{Duration, Instant};

use typedkv::redis::RedisPool;
use typedkv::{Error, Index, RedisStore, SetOptions, Store, StoreExt, Update, WriteConcern};
use typedkv_testkit::TestRedis;

/// One replica, waited for 100 ms: never met on a server without replicas.
const ONE_REPLICA: WriteConcern = WriteConcern::replicas(1).timeout(Duration::from_millis(100));

fn assert_unacknowledged<T: std::fmt::Debug>(result: typedkv::Result<T>, key: &str) {
    match result {
        Err(Error::Unacknowledged {
            acknowledged,
            required,
            timeout,
            ref keys,
            ..
        }) => {
            assert_eq!((acknowledged, required), (0, 1));
            assert_eq!(timeout, ONE_REPLICA.timeout);
            assert_eq!(keys.first(), Some(key), "the error names the key");
        }
        other => panic!("expected Unacknowledged for {key}, got {other:?}"),
    }
    let error = Error::Unacknowledged {
        backend: "redis",
        keys: typedkv::Keys::one(key),
        acknowledged: 0,
        required: 1,
        timeout: ONE_REPLICA.timeout,
    };
    assert!(error.is_transient(), "calling again may succeed");
    assert!(error.to_string().contains("may have been applied"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_write_path_reports_a_concern_not_met_and_the_write_may_be_there() {
    let server = TestRedis::start().await;
    for batching in [false, true] {
        let pool = RedisPool::builder(server.url())
            .batching(batching)
            .build()
            .unwrap();
        let ns = format!("c{batching}");
        let store: RedisStore<u64> = RedisStore::builder(pool.clone(), &ns)
            .write_concern(ONE_REPLICA)
            .build()
            .unwrap();
        let plain: RedisStore<u64> = RedisStore::builder(pool.clone(), &ns).build().unwrap();

        let started = Instant::now();
        assert_unacknowledged(store.set("a", &1).await, &format!("{ns}:a"));
        assert!(
            started.elapsed() >= ONE_REPLICA.timeout,
            "it waited for the replica"
        );
        assert_eq!(
            plain.get("a").await.unwrap(),
            Some(1),
            "the write is on the master"
        );
        assert_unacknowledged(
            store
                .set_opts("b", &2, SetOptions::new().ttl(Duration::from_secs(60)))
                .await,
            &format!("{ns}:b"),
        );
        assert!(plain.ttl("b").await.unwrap().is_some());
        let update = store.update_with("a", |n| Update::Set(n.unwrap_or(0) + 1));
        assert_unacknowledged(update.await, &format!("{ns}:a"));
        assert_eq!(plain.get("a").await.unwrap(), Some(2));
        let version = store.get_versioned("a").await.unwrap().unwrap().version;
        assert_unacknowledged(
            store.set_if_version("a", &5, &version).await,
            &format!("{ns}:a"),
        );
        assert_eq!(plain.get("a").await.unwrap(), Some(5));
        assert_unacknowledged(store.delete("b").await, &format!("{ns}:b"));
        assert_eq!(plain.get("b").await.unwrap(), None);
        // set_many without a TTL (MSET) and with the store's (SET PX in MULTI/EXEC).
        let with_ttl: RedisStore<u64> = RedisStore::builder(pool.clone(), &ns)
            .ttl(Duration::from_secs(60))
            .write_concern(ONE_REPLICA)
            .build()
            .unwrap();
        for writer in [&store, &with_ttl] {
            let written = writer.set_many(&[("m1", &1), ("m2", &2)]).await;
            assert_unacknowledged(written, &format!("{ns}:m1"));
            assert_eq!(
                plain.get_many(&["m1", "m2"]).await.unwrap(),
                [Some(1), Some(2)]
            );
        }
        assert!(
            plain
                .ttl("m2")
                .await
                .unwrap()
                .and_then(|e| e.remaining())
                .is_some()
        );
        assert_unacknowledged(store.delete_many(&["m1", "m2"]).await, &format!("{ns}:m1"));
        assert_eq!(plain.get_many(&["m1", "m2"]).await.unwrap(), [None, None]);

        // One write asks for none: no wait, acknowledged.
        let none = SetOptions::new().write_concern(WriteConcern::none());
        assert!(store.set_opts("c", &3, none).await.unwrap());
        // One write of a store without a concern asks for one.
        let one = SetOptions::new().write_concern(ONE_REPLICA);
        assert_unacknowledged(plain.set_opts("d", &4, one).await, &format!("{ns}:d"));
        assert_eq!(plain.get("d").await.unwrap(), Some(4));
        // Every replica of a master without any: the master alone.
        let all = SetOptions::new().write_concern(WriteConcern::all_replicas());
        assert!(plain.set_opts("e", &5, all).await.unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indexed_writes_and_transactions_wait_too() {
    let server = TestRedis::start().await;
    let pool = server.pool();
    let store: RedisStore<String> = RedisStore::builder(pool.clone(), "ix")
        .index(Index::unique("name", |v: &String| Some(v.clone())))
        .write_concern(ONE_REPLICA)
        .build()
        .unwrap();
    assert_unacknowledged(store.set("a", &"alice".to_owned()).await, "ix:a");
    // The entry was written with the value: the write is whole, only unconfirmed.
    let found = store.find_one_by("name", b"alice").await.unwrap();
    assert_eq!(found, Some(("a".to_owned(), "alice".to_owned())));

    // A transaction's commit waits as the stores it writes ask (whatever the pool), or,
    // for stores without a concern, as its backend asks.
    let accounts: RedisStore<i64> = RedisStore::builder(pool.clone(), "acc")
        .write_concern(ONE_REPLICA)
        .build()
        .unwrap();
    let plain: RedisStore<i64> = RedisStore::builder(pool.clone(), "plain").build().unwrap();
    let (accounts, plain) = (&accounts, &plain);
    let committed = typedkv::transaction(&pool, |tx| async move {
        tx.set(accounts, "x", &1)?;
        Ok::<_, Error>(())
    })
    .await;
    assert_unacknowledged(committed, "acc:x");
    assert_eq!(plain.get("x").await.unwrap(), None);
    assert_eq!(
        accounts.get("x").await.unwrap(),
        Some(1),
        "the commit is on the master"
    );
    let concerned = typedkv::Backend::with_concern(&pool, ONE_REPLICA).unwrap();
    let committed = typedkv::transaction(&concerned, |tx| async move {
        tx.set(plain, "y", &1)?;
        Ok::<_, Error>(())
    })
    .await;
    assert_unacknowledged(committed, "plain:y");
    // A store with indexes beside another store: one script, and its wait.
    let indexed = &store;
    let committed = typedkv::transaction(&pool, |tx| async move {
        tx.set(indexed, "b", &"bea".to_owned())?;
        tx.set(accounts, "w", &2)?;
        Ok::<_, Error>(())
    })
    .await;
    assert_unacknowledged(committed, "ix:b");
    assert_eq!(accounts.get("w").await.unwrap(), Some(2));
    let found = indexed.find_one_by("name", b"bea").await.unwrap();
    assert_eq!(found.map(|(id, _)| id).as_deref(), Some("b"));
    // Stores asking for different concerns cannot commit together.
    let mixed = typedkv::transaction(&pool, |tx| async move {
        tx.set(accounts, "z", &1)?;
        tx.set(plain, "z", &1)?;
        Ok::<_, Error>(())
    })
    .await;
    assert!(matches!(mixed, Err(Error::Transaction { .. })), "{mixed:?}");
    assert_eq!(plain.get("z").await.unwrap(), None);
    assert_eq!(accounts.get("z").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concern_on_disk_is_refused_before_writing_where_the_server_has_no_waitaof() {
    let server = TestRedis::start().await;
    let mut conn = server.raw_connection().await;
    let info: redis::Value = redis::cmd("COMMAND")
        .arg("INFO")
        .arg("WAITAOF")
        .query_async(&mut conn)
        .await
        .unwrap();
    let has_waitaof = matches!(&info, redis::Value::Array(i) if matches!(i.first(), Some(redis::Value::Array(_))));
    let store: RedisStore<u64> = RedisStore::builder(server.pool(), "disk")
        .write_concern(
            WriteConcern::none()
                .on_disk()
                .timeout(Duration::from_millis(100)),
        )
        .build()
        .unwrap();
    let written = store.set("a", &1).await;
    if has_waitaof {
        // Redis 7.2+ / Valkey without appendonly: the server refuses WAITAOF 1.
        eprintln!("this server has WAITAOF: {written:?}");
        assert!(written.is_err());
    } else {
        match written {
            Err(Error::InvalidConfig { reason, .. }) => {
                assert!(reason.contains("WAITAOF"), "{reason}")
            }
            other => panic!("expected InvalidConfig, got {other:?}"),
        }
        let plain: RedisStore<u64> = RedisStore::builder(server.pool(), "disk").build().unwrap();
        assert_eq!(plain.get("a").await.unwrap(), None, "nothing was written");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_of_zero_is_refused_at_build_and_per_write() {
    let server = TestRedis::start().await;
    let zero = WriteConcern::replicas(1).timeout(Duration::ZERO);
    let built = RedisStore::<u64>::builder(server.pool(), "z")
        .write_concern(zero)
        .build();
    assert!(matches!(built, Err(Error::InvalidConfig { .. })));
    let store: RedisStore<u64> = RedisStore::builder(server.pool(), "z").build().unwrap();
    let written = store
        .set_opts("a", &1, SetOptions::new().write_concern(zero))
        .await;
    assert!(matches!(written, Err(Error::InvalidConfig { .. })));
    assert_eq!(store.get("a").await.unwrap(), None);
}

/// `WAIT` calls the server counted (`INFO commandstats`).
async fn waits(server: &TestRedis) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut server.raw_connection().await)
        .await
        .unwrap();
    info.lines()
        .find_map(|line| line.strip_prefix("cmdstat_wait:calls="))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |calls| calls.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_without_a_concern_send_no_wait() {
    let server = TestRedis::start().await;
    let store: RedisStore<u64> = RedisStore::builder(server.pool(), "n").build().unwrap();
    let writes = (0..64).map(|i| {
        let store = store.clone();
        async move { store.set(&i.to_string(), &i).await }
    });
    for written in futures::future::join_all(writes).await {
        written.unwrap();
    }
    store.set_many(&[("a", &1), ("b", &2)]).await.unwrap();
    store
        .update_with("a", |n| Update::Set(n.unwrap_or(0) + 1))
        .await
        .unwrap();
    store.delete("b").await.unwrap();
    let none = SetOptions::new().write_concern(WriteConcern::none());
    store.set_opts("c", &3, none).await.unwrap();
    assert_eq!(
        waits(&server).await,
        0,
        "a write without a concern sent WAIT"
    );
    let all = SetOptions::new().write_concern(WriteConcern::all_replicas());
    store.set_opts("c", &3, all).await.unwrap();
    assert_eq!(waits(&server).await, 1);
}

/// The connection a concerned write keeps for the next is not reused once the server
/// restarted: the first concerned write after the restart is acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_connection_is_let_go_after_a_restart() {
    let mut server = TestRedis::start().await;
    let store: RedisStore<u64> = RedisStore::builder(server.pool(), "r")
        .write_concern(WriteConcern::all_replicas())
        .build()
        .unwrap();
    store.set("a", &1).await.unwrap();
    server.restart().await;
    // A read notices the restart (resent once on a fresh connection).
    assert_eq!(store.get("a").await.unwrap(), None);
    store.set("a", &2).await.unwrap();
    assert_eq!(store.get("a").await.unwrap(), Some(2));
}

/// A concerned write on a hung server (SIGSTOP) times out within the reply limit and the
/// wait; once the server runs again, the next is acknowledged (the timed-out connection,
/// whose server may still be blocked on its command, is not kept for it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concerned_write_on_a_hung_server_times_out_and_the_next_succeeds() {
    let server = TestRedis::start().await;
    let pool = RedisPool::builder(server.url())
        .response_timeout(Some(Duration::from_millis(300)))
        .build()
        .unwrap();
    let all = WriteConcern::all_replicas().timeout(Duration::from_millis(200));
    let store: RedisStore<u64> = RedisStore::builder(pool, "h")
        .write_concern(all)
        .build()
        .unwrap();
    store.set("a", &1).await.unwrap();
    server.signal("-STOP");
    let started = Instant::now();
    let written = store.set("a", &2).await;
    let took = started.elapsed();
    server.signal("-CONT");
    assert!(
        written.as_ref().is_err_and(Error::is_timeout),
        "{written:?}"
    );
    assert!(took < Duration::from_secs(2), "the write took {took:?}");
    store.set("a", &3).await.unwrap();
    assert_eq!(store.get("a").await.unwrap(), Some(3));
}
