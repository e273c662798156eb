//! Ids of every character on a partitioned store: whatever an id holds (braces, colons,
//! `#`, control characters, any Unicode), its key names its own partition's tag and gives
//! the id back, and a partitioned, indexed store stores, finds, scans, counts and deletes it
//! as one unpartitioned store would.

use std::collections::BTreeSet;

use futures::TryStreamExt;
use proptest::prelude::*;
use typedkv::{Index, Keyspace, MemoryBackend, MemoryStore, Store};

const PARTITIONS: u16 = 16;

/// Ids made of the characters of the key layout, or of any characters.
fn id() -> impl Strategy<Value = String> {
    prop_oneof!["[{}:#\\\\a\\x00-\\x1f]{1,12}", ".{1,40}"]
}

/// A store of strings in [`PARTITIONS`] partitions, indexed by the whole value.
fn store() -> MemoryStore<String> {
    MemoryStore::builder(MemoryBackend::new(), "user")
        .partitions(PARTITIONS)
        .index(Index::equality("value", |v: &String| [v.clone()]))
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn every_id_keys_its_own_partition(ids in proptest::collection::vec(id(), 1..40)) {
        let keyspace = Keyspace::partitioned("user", PARTITIONS).unwrap();
        let mut tags = BTreeSet::new();
        for id in &ids {
            let Ok(key) = keyspace.key(id) else { continue };
            prop_assert_eq!(keyspace.id_of(&key), Some(id.as_str()));
            prop_assert!(key.starts_with("{user#"), "{key:?}");
            let tag = &key[..key.find("}:").unwrap() + 2];
            prop_assert_eq!(&key[tag.len()..], id.as_str());
            tags.insert(tag.to_owned());
        }
        prop_assert!(tags.len() <= usize::from(PARTITIONS));
    }

    #[test]
    fn a_partitioned_store_keeps_every_id(ids in proptest::collection::vec(id(), 1..40)) {
        let keyspace = Keyspace::partitioned("user", PARTITIONS).unwrap();
        let ids: BTreeSet<String> = ids.into_iter().filter(|id| keyspace.key(id).is_ok()).collect();
        typedkv_testkit::runtime().block_on(async {
            let store = store();
            for id in &ids {
                store.set(id, id).await.unwrap();
            }
            for id in &ids {
                assert_eq!(store.get(id).await.unwrap().as_ref(), Some(id));
                let found: Vec<(String, String)> =
                    store.find_by("value", id.as_bytes()).try_collect().await.unwrap();
                assert_eq!(found, [(id.clone(), id.clone())]);
            }
            let scanned: BTreeSet<String> = store.scan_ids().try_collect().await.unwrap();
            assert_eq!(scanned, ids);
            assert_eq!(store.count().await.unwrap(), ids.len() as u64);
            assert_eq!(store.clear().await.unwrap(), ids.len() as u64);
            for id in &ids {
                assert_eq!(store.count_by("value", id.as_bytes()).await.unwrap(), 0);
            }
        });
    }
}
