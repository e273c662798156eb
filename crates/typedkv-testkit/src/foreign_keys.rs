//! Keys other programs wrote under a store's namespace, which no typedkv store could write:
//! an id that is not UTF-8, and a key of another Redis type. Run on every Redis backend
//! (standalone and cluster) with a raw connection to write them. And writes as another
//! program makes them, for the caches' tests.

use futures::StreamExt;
use redis::aio::ConnectionLike;
use typedkv::{Backend, DecodeProblem, Error, Store, TypedStore};

/// Beside 5 good values, `a:\xff\xfe` (a string key whose id is not
/// UTF-8) and `a:list` (a list). `get` and `get_many` of the list are `WRONGTYPE` naming
/// it. `scan` and `scan_ids` yield the 5 and one decode error
/// naming the odd key, and go on; `count` counts 6 string keys; `clear` removes those 6 and
/// leaves the list, which is no value of a store.
pub async fn scans_survive_keys_of_other_programs<B: Backend, C: ConnectionLike + Send>(
    backend: B,
    raw: &mut C,
) {
    let store: TypedStore<u64, B> = TypedStore::builder(backend, "a").build().unwrap();
    for i in 0..5u64 {
        store.set(&i.to_string(), &i).await.unwrap();
    }
    let odd: &[u8] = b"a:\xff\xfe";
    let () = redis::cmd("SET")
        .arg(odd)
        .arg("x")
        .query_async(raw)
        .await
        .unwrap();
    let _: u64 = redis::cmd("RPUSH")
        .arg("a:list")
        .arg("x")
        .query_async(raw)
        .await
        .unwrap();

    // One rule for a key of another type, though `MGET` reads it as nil: `WRONGTYPE`
    // naming it, from `get` and `get_many` alike.
    for err in [
        store.get("list").await.unwrap_err(),
        store.get_many(&["0", "list", "9"]).await.unwrap_err(),
    ] {
        assert_eq!(err.code(), Some("WRONGTYPE"), "{err:?}");
        assert_eq!(err.key(), Some("a:list"), "{err:?}");
    }
    assert_eq!(
        store.get_many(&["0", "9"]).await.unwrap(),
        [Some(0), None],
        "misses beside a hit"
    );

    let items: Vec<typedkv::Result<(String, u64)>> = store.scan().collect().await;
    let mut ids: Vec<String> = items
        .iter()
        .filter_map(|item| item.as_ref().ok().map(|(id, _)| id.clone()))
        .collect();
    ids.sort();
    assert_eq!(ids, ["0", "1", "2", "3", "4"], "{items:?}");
    let errors: Vec<&Error> = items.iter().filter_map(|i| i.as_ref().err()).collect();
    assert_eq!(errors.len(), 1, "{items:?}");
    assert_odd_key_error(errors[0]);

    let ids: Vec<typedkv::Result<String>> = store.scan_ids().collect().await;
    assert_eq!(ids.iter().filter(|id| id.is_ok()).count(), 5, "{ids:?}");
    let errors: Vec<&Error> = ids.iter().filter_map(|i| i.as_ref().err()).collect();
    assert_eq!(errors.len(), 1, "{ids:?}");
    assert_odd_key_error(errors[0]);

    assert_eq!(store.count().await.unwrap(), 6);
    assert_eq!(store.clear().await.unwrap(), 6);
    assert_eq!(store.count().await.unwrap(), 0);
    // One key per command: on a cluster the two may live in different slots.
    let odd_left: u64 = redis::cmd("EXISTS")
        .arg(odd)
        .query_async(raw)
        .await
        .unwrap();
    let list_left: u64 = redis::cmd("EXISTS")
        .arg("a:list")
        .query_async(raw)
        .await
        .unwrap();
    assert_eq!(
        (odd_left, list_left),
        (0, 1),
        "the odd key is removed, the list is left"
    );
}

/// Keys other programs wrote, met by a transaction (in one hash-tagged namespace, so the
/// same case runs on a cluster): a list read is `WRONGTYPE` naming it, bytes that are not
/// typedkv's a decode error naming them, and either aborts with nothing written; a value
/// another program enveloped is read and replaced, and its overwrite by that program
/// between the read and the commit makes the transaction run again.
pub async fn transactions_meet_keys_of_other_programs<B, C>(backend: B, raw: &mut C)
where
    B: Backend,
    C: ConnectionLike + Send,
{
    let store: &TypedStore<u64, B> = &TypedStore::builder(backend.clone(), "t")
        .hash_tag(true)
        .build()
        .unwrap();
    let key = |id: &str| store.keyspace().key(id).unwrap();
    let _: u64 = redis::cmd("RPUSH")
        .arg(key("list"))
        .arg("x")
        .query_async(raw)
        .await
        .unwrap();
    let () = redis::cmd("SET")
        .arg(key("raw"))
        .arg("not typedkv's")
        .query_async(raw)
        .await
        .unwrap();
    set_as_another_program(raw, &key("theirs"), &5u64).await;

    for (odd, problem) in [("list", "WRONGTYPE"), ("raw", "decode")] {
        let failed = typedkv::transaction(&backend, |tx| async move {
            tx.set(store, "mine", &1)?;
            tx.get(store, odd).await
        })
        .await
        .unwrap_err();
        let code = failed.code().unwrap_or(failed.kind());
        assert_eq!(code, problem, "{failed:?}");
        assert_eq!(failed.key(), Some(key(odd).as_str()), "{failed:?}");
        assert_eq!(
            store.get("mine").await.unwrap(),
            None,
            "written after {failed:?}"
        );
    }

    let attempts = &std::sync::atomic::AtomicU32::new(0);
    let key_of_theirs = &key("theirs");
    // Another program's connection, lent to the closure's first attempt.
    let raw = &tokio::sync::Mutex::new(raw);
    let read = typedkv::transaction(&backend, |tx| async move {
        let theirs = tx.get(store, "theirs").await?.unwrap_or(0);
        if attempts.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
            let mut raw = raw.lock().await;
            set_as_another_program(&mut **raw, key_of_theirs, &7u64).await;
        }
        tx.set(store, "theirs", &(theirs + 1))?;
        Ok::<_, Error>(theirs)
    })
    .await
    .unwrap();
    assert_eq!(
        read, 7,
        "the second attempt reads the other program's write"
    );
    assert_eq!(attempts.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert_eq!(store.get("theirs").await.unwrap(), Some(8));
}

fn assert_odd_key_error(error: &Error) {
    assert!(
        matches!(
            error,
            Error::Decode {
                problem: DecodeProblem::IdNotUtf8,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(error.key(), Some(r"a:\xff\xfe"));
}

/// Writes `value` at `key` as another program would (a raw `SET` of typedkv's bincode
/// envelope, schema version 1, no layout fingerprint): nothing in this process hears of the
/// write, so only Redis can tell a cache of it. (Writes through any store of this process
/// reach its caches in process: they cannot show that Redis' invalidations arrive.)
pub async fn set_as_another_program<T, C>(conn: &mut C, key: &str, value: &T)
where
    T: serde::Serialize,
    C: ConnectionLike + Send,
{
    let bytes = crate::conformance::enveloped(value, typedkv::DEFAULT_SCHEMA_VERSION);
    let () = redis::cmd("SET")
        .arg(key)
        .arg(bytes)
        .query_async(conn)
        .await
        .expect("the test server takes a SET");
}
