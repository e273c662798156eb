//! Atomic read-modify-write: no update is lost under concurrency, TTLs are kept.

use std::sync::Arc;
use std::time::Duration;

use typedkv::{Backend, DecodeProblem, Expiry, SetOptions, Store, StoreExt, TypedStore, Update};

use super::encoding::{assert_decode_error, write_raw};
use super::store;
use crate::Fixture;

const TASKS: u64 = 64;
/// Every increment contends with the 63 other tasks' (and, across two clients, is settled by
/// the compare-and-swap), so a few dozen per task prove no update is lost; more only
/// measured round trips (200 took 12 s per cluster pass).
const INCREMENTS: u64 = 32;

/// `tasks` tasks each add 1 to the counter at `id` `INCREMENTS` times.
async fn hammer<B: Backend>(counters: Arc<TypedStore<u64, B>>, tasks: u64) {
    let workers: Vec<_> = (0..tasks)
        .map(|_| {
            let counters = Arc::clone(&counters);
            tokio::spawn(async move {
                for _ in 0..INCREMENTS {
                    counters
                        .update_with("hits", |n| Update::Set(n.unwrap_or(0) + 1))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
}

/// 64 tasks × 32 increments of one counter end at exactly 2,048.
pub async fn update_counts_every_increment<B: Backend>(backend: B) {
    let counters = Arc::new(store::<u64, B>(&backend, "counter"));
    hammer(Arc::clone(&counters), TASKS).await;
    assert_eq!(
        counters.get("hits").await.unwrap(),
        Some(TASKS * INCREMENTS)
    );
}

/// Two independently connected clients (two "processes"), 32 tasks each, 32 increments per
/// task: exactly 2,048.
pub async fn update_from_two_clients<B: Backend>(fixture: &Fixture<B>) {
    let here = Arc::new(store::<u64, B>(&fixture.backend(), "counter"));
    let there = Arc::new(store::<u64, B>(&fixture.peer(), "counter"));
    tokio::join!(
        hammer(Arc::clone(&here), TASKS / 2),
        hammer(Arc::clone(&there), TASKS / 2)
    );
    assert_eq!(here.get("hits").await.unwrap(), Some(TASKS * INCREMENTS));
}

/// `Keep` changes nothing and answers the stored value, `Delete` removes the key, `Set` on an
/// absent key creates it; the function sees `None` for an absent key.
pub async fn update_keep_delete_and_create<B: Backend>(backend: B) {
    let s = store::<String, B>(&backend, "u");
    let created = s.update_with("a", |v| {
        assert_eq!(v, None);
        Update::Set("new".into())
    });
    assert_eq!(created.await.unwrap().as_deref(), Some("new"));
    let kept = s.update_with("a", |_| Update::Keep).await.unwrap();
    assert_eq!(kept.as_deref(), Some("new"));
    assert_eq!(s.update_with("a", |_| Update::Delete).await.unwrap(), None);
    assert!(!s.exists("a").await.unwrap());
    assert_eq!(s.update_with("a", |_| Update::Delete).await.unwrap(), None);
    assert_eq!(
        s.update_with("missing", |_| Update::Keep).await.unwrap(),
        None
    );
    assert!(!s.exists("missing").await.unwrap());
}

/// An update keeps the key's TTL (or its absence); a key created by an update gets the
/// store's default TTL.
pub async fn update_keeps_ttl<B: Backend>(backend: B) {
    let long = Duration::from_secs(600);
    let s: TypedStore<u32, B> = TypedStore::builder(backend.clone(), "t")
        .ttl(long)
        .build()
        .unwrap();
    s.set_opts("short", &1, SetOptions::new().ttl(Duration::from_secs(60)))
        .await
        .unwrap();
    s.update_with("short", |n| Update::Set(n.unwrap_or(0) + 1))
        .await
        .unwrap();
    match s.ttl("short").await.unwrap() {
        Some(Expiry::In(left)) => assert!(left <= Duration::from_secs(60), "{left:?}"),
        other => panic!("TTL lost: {other:?}"),
    }
    s.set_opts("forever", &1, SetOptions::new().never_expire())
        .await
        .unwrap();
    s.update_with("forever", |n| Update::Set(n.unwrap_or(0) + 1))
        .await
        .unwrap();
    assert_eq!(s.ttl("forever").await.unwrap(), Some(Expiry::Never));
    s.update_with("created", |_| Update::Set(1)).await.unwrap();
    match s.ttl("created").await.unwrap() {
        Some(Expiry::In(left)) => assert!(left > Duration::from_secs(590), "{left:?}"),
        other => panic!("default TTL not applied: {other:?}"),
    }
    assert_eq!(s.get("short").await.unwrap(), Some(2));
}

/// A value that cannot be decoded is an error for `update` too, and is left untouched.
pub async fn update_refuses_undecodable_values<B: Backend>(backend: B) {
    let s = store::<u64, B>(&backend, "c");
    write_raw(&backend, "c:bad", b"not ours".to_vec()).await;
    let result = s.update_with("bad", |_| Update::Set(1)).await;
    assert_decode_error(result, "c:bad", &DecodeProblem::NotEnveloped);
    assert_eq!(
        backend.get("c:bad").await.unwrap().as_deref(),
        Some(&b"not ours"[..])
    );
}
