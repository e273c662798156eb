//! Ids over all of Unicode (control characters, NUL, `:`, glob characters, any length up to
//! 4 KiB), as property tests on a real redis-server: each id is its own key
//! (`namespace:` + the id's bytes, which other programs can read), and `set`, `get`,
//! `exists` and `delete` of a few at once answer for each, with batching off and on; and
//! on a partitioned, indexed store each id keys its own partition, and is stored, found,
//! scanned, counted and cleared with its index entries; and transactions commit, retry on
//! and delete them.

// Tests report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU32, Ordering};

use futures::TryStreamExt;
use futures::future::join_all;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use redis::AsyncCommands;
use typedkv::redis::RedisPool;
use typedkv::{Error, Index, RedisStore, Store, transaction};
use typedkv_testkit::TestRedis;
use typedkv_testkit::foreign_keys::set_as_another_program;

/// A few distinct ids of 1 to 64 characters of any kind, now and then one of 4,096 bytes.
fn ids() -> impl Strategy<Value = BTreeSet<String>> {
    let id = prop_oneof![
        20 => proptest::collection::vec(any::<char>(), 1..64)
            .prop_map(|chars| chars.into_iter().collect::<String>()),
        1 => any::<char>().prop_map(|c| {
            let mut long = String::new();
            while long.len() + c.len_utf8() <= 4096 {
                long.push(c);
            }
            long
        }),
    ];
    proptest::collection::btree_set(id, 1..8)
}

async fn round_trip(
    store: &RedisStore<String>,
    raw: &redis::aio::MultiplexedConnection,
    ids: &BTreeSet<String>,
) -> Result<(), TestCaseError> {
    let mut raw = raw.clone();
    let value = |id: &str| format!("value of {id:?}");
    let values: Vec<String> = ids.iter().map(|id| value(id)).collect();
    let sets = join_all(ids.iter().zip(&values).map(|(id, v)| store.set(id, v))).await;
    for (id, set) in ids.iter().zip(sets) {
        prop_assert!(set.is_ok(), "set {id:?}: {set:?}");
    }
    let gets = join_all(ids.iter().map(|id| store.get(id))).await;
    for (id, got) in ids.iter().zip(gets) {
        prop_assert_eq!(got.ok().flatten(), Some(value(id)), "get {:?}", id);
        let key = store.keyspace().key(id).unwrap();
        prop_assert_eq!(&key, &format!("{}:{id}", store.keyspace().namespace()));
        let stored: Option<Vec<u8>> = raw.get(key.as_bytes()).await.unwrap();
        prop_assert!(stored.is_some(), "no key {key:?} in Redis");
    }
    let exists = join_all(ids.iter().map(|id| store.exists(id))).await;
    prop_assert!(exists.into_iter().all(|e| e.ok() == Some(true)));
    let deletes = join_all(ids.iter().map(|id| store.delete(id))).await;
    prop_assert!(deletes.into_iter().all(|d| d.ok() == Some(true)));
    let gone = join_all(ids.iter().map(|id| store.get(id))).await;
    prop_assert!(gone.into_iter().all(|g| matches!(g, Ok(None))));
    Ok(())
}

/// A private server, a raw connection to it, and two stores of strings on it: without
/// batching (namespace `plain`) and with it (`batched`).
async fn server_and_stores() -> (
    TestRedis,
    redis::aio::MultiplexedConnection,
    Vec<RedisStore<String>>,
) {
    let server = TestRedis::start().await;
    let raw = server.raw_connection().await;
    let stores = [false, true]
        .into_iter()
        .map(|batching| {
            let pool = RedisPool::builder(server.url())
                .batching(batching)
                .build()
                .unwrap();
            let namespace = if batching { "batched" } else { "plain" };
            RedisStore::builder(pool, namespace).build().unwrap()
        })
        .collect();
    (server, raw, stores)
}

#[test]
fn any_id_is_its_own_key() {
    let runtime = typedkv_testkit::runtime();
    let (_server, raw, stores) = runtime.block_on(server_and_stores());
    let mut runner = TestRunner::new(Config::with_cases(256));
    runner
        .run(&ids(), |ids| {
            runtime.block_on(async {
                for store in &stores {
                    round_trip(store, &raw, &ids).await?;
                }
                Ok(())
            })
        })
        .unwrap();
}

/// Any ids in transactions: one reads them all (absent) and writes each, committing them as
/// their own keys; the next reads them all, has another program overwrite one between its
/// reads and its commit (so it runs again, and reads that write), and deletes them all.
async fn transactional_round_trip(
    store: &RedisStore<String>,
    raw: &redis::aio::MultiplexedConnection,
    ids: &BTreeSet<String>,
) -> Result<(), TestCaseError> {
    let value = |id: &str| format!("value of {id:?}");
    let ids: &Vec<&str> = &ids.iter().map(String::as_str).collect();
    let written = transaction(store.backend(), |tx| async move {
        let found = tx.get_many(store, ids).await?;
        for id in ids {
            tx.set(store, id, &value(id))?;
        }
        Ok::<_, Error>(found)
    })
    .await;
    prop_assert!(
        matches!(&written, Ok(found) if found.iter().all(Option::is_none)),
        "{written:?}"
    );
    let mut check = raw.clone();
    for id in ids {
        let key = store.keyspace().key(id).unwrap();
        let stored: Option<Vec<u8>> = check.get(key.as_bytes()).await.unwrap();
        prop_assert!(stored.is_some(), "no key {key:?} in Redis");
        prop_assert_eq!(store.get(id).await.unwrap(), Some(value(id)));
    }

    let attempts = &AtomicU32::new(0);
    let theirs = &store.keyspace().key(ids[0]).unwrap();
    let deleted = transaction(store.backend(), |tx| async move {
        let found = tx.get_many(store, ids).await?;
        if attempts.fetch_add(1, Ordering::SeqCst) == 0 {
            set_as_another_program(&mut raw.clone(), theirs, &"theirs".to_owned()).await;
        }
        for id in ids {
            tx.delete(store, id)?;
        }
        Ok::<_, Error>(found[0].clone())
    })
    .await;
    prop_assert_eq!(deleted.ok().flatten(), Some("theirs".to_owned()));
    prop_assert_eq!(attempts.load(Ordering::SeqCst), 2);
    for id in ids {
        let key = store.keyspace().key(id).unwrap();
        let left: bool = check.exists(key.as_bytes()).await.unwrap();
        prop_assert!(!left, "{key:?} left in Redis");
    }
    Ok(())
}

#[test]
fn any_id_commits_in_a_transaction() {
    let runtime = typedkv_testkit::runtime();
    let (_server, raw, stores) = runtime.block_on(server_and_stores());
    let mut runner = TestRunner::new(Config::with_cases(64));
    runner
        .run(&ids(), |ids| {
            runtime.block_on(async {
                for store in &stores {
                    transactional_round_trip(store, &raw, &ids).await?;
                }
                Ok(())
            })
        })
        .unwrap();
}

/// A few distinct ids made of the key layout's own characters (braces, `:`, `#`, `\`,
/// control characters), or of any characters.
fn layout_ids() -> impl Strategy<Value = BTreeSet<String>> {
    let id = prop_oneof![
        "[{}:#\\\\a\\x00-\\x1f]{1,12}",
        proptest::collection::vec(any::<char>(), 1..64)
            .prop_map(|chars| chars.into_iter().collect::<String>()),
    ];
    proptest::collection::btree_set(id, 1..8)
}

/// A partitioned store with an index on the whole value, on a real server: each id's key is
/// its partition's tag followed by the id's own bytes (in Redis, as another program reads
/// it), and the store answers for every id as one unpartitioned store would; `clear` leaves
/// no index entry behind.
async fn partitioned_round_trip(
    store: &RedisStore<String>,
    raw: &redis::aio::MultiplexedConnection,
    ids: &BTreeSet<String>,
) -> Result<(), TestCaseError> {
    let mut raw = raw.clone();
    let sets = join_all(ids.iter().map(|id| store.set(id, id))).await;
    for (id, set) in ids.iter().zip(sets) {
        prop_assert!(set.is_ok(), "set {id:?}: {set:?}");
    }
    for id in ids {
        let key = store.keyspace().key(id).unwrap();
        let tagged = key.starts_with("{spread#") && key.ends_with(id.as_str());
        prop_assert!(tagged, "key {:?}", key);
        prop_assert_eq!(&key[key.find("}:").unwrap() + 2..], id.as_str());
        let stored: Option<Vec<u8>> = raw.get(key.as_bytes()).await.unwrap();
        prop_assert!(stored.is_some(), "no key {key:?} in Redis");
        let got = store.get(id).await.unwrap();
        prop_assert_eq!(got.as_ref(), Some(id));
        let found: Vec<(String, String)> = store
            .find_by("value", id.as_bytes())
            .try_collect()
            .await
            .unwrap();
        prop_assert_eq!(found, vec![(id.clone(), id.clone())]);
    }
    let scanned: BTreeSet<String> = store.scan_ids().try_collect().await.unwrap();
    prop_assert_eq!(&scanned, ids);
    prop_assert_eq!(store.count().await.unwrap(), ids.len() as u64);
    prop_assert_eq!(store.clear().await.unwrap(), ids.len() as u64);
    for id in ids {
        prop_assert_eq!(store.count_by("value", id.as_bytes()).await.unwrap(), 0);
    }
    Ok(())
}

#[test]
fn any_id_keys_its_own_partition() {
    let runtime = typedkv_testkit::runtime();
    let (_server, raw, store) = runtime.block_on(async {
        let server = TestRedis::start().await;
        let raw = server.raw_connection().await;
        let store = RedisStore::builder(server.pool(), "spread")
            .partitions(16)
            .index(Index::equality("value", |v: &String| [v.clone()]))
            .build()
            .unwrap();
        (server, raw, store)
    });
    let mut runner = TestRunner::new(Config::with_cases(128));
    runner
        .run(&layout_ids(), |ids| {
            runtime.block_on(partitioned_round_trip(&store, &raw, &ids))
        })
        .unwrap();
}
