//! Typed scan, count, delete-many and clear: every key once, never another namespace's.

use std::collections::{HashMap, HashSet};

use futures::{StreamExt, TryStreamExt};
use typedkv::{Backend, DecodeProblem, Error, Store, TypedStore};

use super::encoding::write_raw;
use super::store;

/// Writes ids `0..n` with value `id * 10` in batches.
async fn fill<B: Backend>(s: &TypedStore<u64, B>, n: u64) {
    let values: Vec<(String, u64)> = (0..n).map(|i| (i.to_string(), i * 10)).collect();
    for chunk in values.chunks(1000) {
        let entries: Vec<(&str, &u64)> = chunk.iter().map(|(id, v)| (id.as_str(), v)).collect();
        s.set_many(&entries).await.unwrap();
    }
}

/// A scan over 10,000 keys yields each exactly once with its value; `scan_ids` and `count`
/// agree.
pub async fn scan_yields_every_key_once<B: Backend>(backend: B) {
    let s = store::<u64, B>(&backend, "n");
    fill(&s, 10_000).await;
    let mut seen = HashMap::new();
    let items: Vec<(String, u64)> = s.scan().try_collect().await.unwrap();
    for (id, value) in items {
        assert!(seen.insert(id.clone(), value).is_none(), "{id} twice");
    }
    assert_eq!(seen.len(), 10_000);
    assert!(
        seen.iter()
            .all(|(id, v)| id.parse::<u64>().unwrap() * 10 == *v)
    );
    let ids: HashSet<String> = s.scan_ids().try_collect().await.unwrap();
    assert_eq!(ids.len(), 10_000);
    assert_eq!(s.count().await.unwrap(), 10_000);
    let empty = store::<u64, B>(&backend, "empty");
    assert_eq!(empty.scan().count().await, 0);
    assert_eq!(empty.count().await.unwrap(), 0);
}

/// Namespace `a` never yields keys of `ab` or of ids holding glob characters elsewhere, and
/// its own ids with glob characters come back as they are.
pub async fn scan_stays_in_its_namespace<B: Backend>(backend: B) {
    let a = store::<String, B>(&backend, "a");
    let ab = store::<String, B>(&backend, "ab");
    let a_dot = store::<String, B>(&backend, "a.b");
    let globby = ["*", "?", "[a-z]", "\\", "x*y", "plain"];
    for id in globby {
        a.set(id, &format!("a {id}")).await.unwrap();
        ab.set(id, &format!("ab {id}")).await.unwrap();
        a_dot.set(id, &format!("a.b {id}")).await.unwrap();
    }
    // "a*" cannot be a store's namespace, but another program may write such keys.
    for key in ["a*:1", "a?:1", "a[:]:1", "a\\:1", "a"] {
        write_raw(&backend, key, b"foreign".to_vec()).await;
    }
    let mut found: Vec<(String, String)> = a.scan().try_collect().await.unwrap();
    found.sort();
    let mut want: Vec<(String, String)> = globby
        .iter()
        .map(|id| (id.to_string(), format!("a {id}")))
        .collect();
    want.sort();
    assert_eq!(found, want);
}

/// A value that cannot be decoded is an error item naming its key; the other values still
/// come.
pub async fn scan_reports_undecodable_values_and_goes_on<B: Backend>(backend: B) {
    let s = store::<u64, B>(&backend, "n");
    fill(&s, 100).await;
    write_raw(&backend, "n:bad", b"garbage".to_vec()).await;
    let items: Vec<typedkv::Result<(String, u64)>> = s.scan().collect().await;
    assert_eq!(items.len(), 101);
    let errors: Vec<&Error> = items
        .iter()
        .filter_map(|item| item.as_ref().err())
        .collect();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].key(), Some("n:bad"));
    assert!(matches!(
        errors[0],
        Error::Decode {
            problem: DecodeProblem::NotEnveloped,
            ..
        }
    ));
}

/// Keys another program wrote with ids the store refuses (empty: the bare prefix; longer
/// than `MAX_ID_LEN`), holding valid values, follow one rule: `scan` and `scan_ids` yield an
/// `InvalidId` decode error for each and go on, `count` counts them, `clear` removes them
/// (also from an indexed store, whose clear deletes entities with their index entries), and
/// `rebuild_indexes` skips them, as no id reaches them.
pub async fn ids_the_store_refuses_follow_one_rule<B: Backend>(backend: B) {
    let s = store::<u64, B>(&backend, "n");
    fill(&s, 3).await;
    let valid = backend.get("n:1").await.unwrap().unwrap();
    let long = format!("n:{}", "x".repeat(typedkv::MAX_ID_LEN + 1));
    for key in ["n:", long.as_str()] {
        write_raw(&backend, key, valid.clone()).await;
    }
    let refused = |errors: Vec<&Error>| {
        let mut keys: Vec<&str> = errors.iter().filter_map(|e| e.key()).collect();
        keys.sort();
        assert_eq!(keys, ["n:", long.as_str()]);
        for error in errors {
            assert!(
                matches!(
                    error,
                    Error::Decode {
                        problem: DecodeProblem::InvalidId { .. },
                        ..
                    }
                ),
                "{error:?}"
            );
        }
    };
    let items: Vec<typedkv::Result<(String, u64)>> = s.scan().collect().await;
    assert_eq!(items.iter().filter(|i| i.is_ok()).count(), 3);
    refused(items.iter().filter_map(|i| i.as_ref().err()).collect());
    let ids: Vec<typedkv::Result<String>> = s.scan_ids().collect().await;
    assert_eq!(ids.iter().filter(|i| i.is_ok()).count(), 3);
    refused(ids.iter().filter_map(|i| i.as_ref().err()).collect());
    assert_eq!(s.count().await.unwrap(), 5);
    assert_eq!(s.clear().await.unwrap(), 5);
    assert_eq!(s.count().await.unwrap(), 0);

    // The same through an indexed store: its clear deletes entities with their entries.
    let users = super::indexes::accounts(&backend, "acct");
    let account = super::indexes::account("a@x", "ann", &[], 1);
    users.set("1", &account).await.unwrap();
    let valid = backend.get("{acct}:1").await.unwrap().unwrap();
    let long = format!("{{acct}}:{}", "x".repeat(typedkv::MAX_ID_LEN + 1));
    for key in ["{acct}:", long.as_str()] {
        write_raw(&backend, key, valid.clone()).await;
    }
    let rebuilt = users.rebuild_indexes(&mut |_| {}).await.unwrap();
    assert_eq!((rebuilt.scanned, rebuilt.indexed), (1, 1), "{rebuilt:?}");
    assert_eq!(users.count().await.unwrap(), 3);
    assert_eq!(users.clear().await.unwrap(), 3);
    assert_eq!(users.count().await.unwrap(), 0);
    assert_eq!(users.find_one_by("handle", b"ann").await.unwrap(), None);
}

/// `delete_many` removes exactly the given ids and counts those that existed; `clear`
/// removes the whole namespace and nothing else.
pub async fn delete_many_and_clear<B: Backend>(backend: B) {
    let s = store::<u64, B>(&backend, "n");
    let neighbour = store::<u64, B>(&backend, "nn");
    fill(&s, 2_500).await;
    fill(&neighbour, 10).await;
    assert_eq!(s.delete_many(&["1", "2", "missing"]).await.unwrap(), 2);
    assert_eq!(s.delete_many(&[]).await.unwrap(), 0);
    assert!(!s.exists("1").await.unwrap() && s.exists("3").await.unwrap());
    assert_eq!(s.clear().await.unwrap(), 2_498);
    assert_eq!(s.count().await.unwrap(), 0);
    assert_eq!(neighbour.count().await.unwrap(), 10);
    assert_eq!(s.clear().await.unwrap(), 0);
}
