//! Index records over all bytes, as a property test on a real redis-server: entities whose
//! index values hold any characters (NUL, `:`, the bytes the record's own format uses) and
//! any number of entries, written, rewritten and deleted in steps of concurrent writes to
//! distinct ids (so that they share script calls); after every step each value finds
//! exactly the entities that hold it, counts agree, and nothing is left stale.

// Tests report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};

use futures::TryStreamExt;
use futures::future::join_all;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use typedkv::{Index, RedisStore, Store};
use typedkv_testkit::TestRedis;

/// One step: per id, its new tags (`None` deletes it).
type Step = BTreeMap<&'static str, Option<Vec<String>>>;

/// Tags of the record format's own bytes (often shared between entities), or of any
/// characters; none to five per entity, so records have zero, one or several entries.
fn steps() -> impl Strategy<Value = Vec<Step>> {
    let tag = prop_oneof![
        3 => "[\\x00:a\\x01]{0,3}",
        1 => proptest::collection::vec(any::<char>(), 0..40)
            .prop_map(|chars| chars.into_iter().collect::<String>()),
    ];
    let tags = proptest::option::weighted(0.85, proptest::collection::vec(tag, 0..5));
    let step =
        proptest::collection::btree_map(prop_oneof![Just("a"), Just("b"), Just("c")], tags, 1..4);
    proptest::collection::vec(step, 1..8)
}

async fn apply_and_check(
    store: &RedisStore<Vec<String>>,
    steps: &[Step],
) -> Result<(), TestCaseError> {
    let mut model: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    for step in steps {
        let writes = step.iter().map(|(id, tags)| async move {
            match tags {
                Some(tags) => store.set(id, tags).await.map(drop),
                None => store.delete(id).await.map(drop),
            }
        });
        for (outcome, id) in join_all(writes).await.into_iter().zip(step.keys()) {
            prop_assert!(outcome.is_ok(), "{id}: {outcome:?}");
        }
        for (id, tags) in step {
            match tags {
                Some(tags) => {
                    seen.extend(tags.iter().cloned());
                    model.insert(id, tags.clone());
                }
                None => {
                    model.remove(id);
                }
            }
        }
        for tag in &seen {
            let expected: Vec<&str> = model
                .iter()
                .filter(|(_, tags)| tags.contains(tag))
                .map(|(id, _)| *id)
                .collect();
            let count = store.count_by("tag", tag.as_bytes()).await.unwrap();
            prop_assert_eq!(count, expected.len() as u64, "count_by {:?}", tag);
            let found: Vec<(String, Vec<String>)> = store
                .find_by("tag", tag.as_bytes())
                .try_collect()
                .await
                .unwrap();
            let ids: Vec<&str> = found.iter().map(|(id, _)| id.as_str()).collect();
            prop_assert_eq!(ids, expected, "find_by {:?}", tag);
        }
        for (id, tags) in &model {
            let stored = store.get(id).await.unwrap();
            prop_assert_eq!(stored.as_ref(), Some(tags));
        }
    }
    let report = store.repair_indexes().await.unwrap();
    prop_assert_eq!(report.removed, 0, "stale entries: {:?}", report);
    prop_assert_eq!(store.clear().await.unwrap(), model.len() as u64);
    Ok(())
}

/// The two stores of case `case`, in namespaces of their own (so that no case sees another's
/// entries): one with an equality index on the tags, one with a range index on their count
/// too, whose records always hold several entries.
fn stores(server: &TestRedis, case: usize) -> [RedisStore<Vec<String>>; 2] {
    let tagged = |namespace: String| {
        RedisStore::builder(server.pool(), namespace)
            .index(Index::equality("tag", |tags: &Vec<String>| tags.clone()))
    };
    [
        tagged(format!("one{case}")).build().unwrap(),
        tagged(format!("two{case}"))
            .index(Index::range("tags", |tags: &Vec<String>| {
                Some(tags.len() as i64)
            }))
            .build()
            .unwrap(),
    ]
}

#[test]
fn records_hold_any_entries() {
    let runtime = typedkv_testkit::runtime();
    let server = runtime.block_on(TestRedis::start());
    let cases = std::sync::atomic::AtomicUsize::new(0);
    let mut runner = TestRunner::new(Config::with_cases(64));
    runner
        .run(&steps(), |steps| {
            let case = cases.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            runtime.block_on(async {
                for store in &stores(&server, case) {
                    apply_and_check(store, &steps).await?;
                }
                Ok(())
            })
        })
        .unwrap();
}
