//! Cache-aside loading: one load per key however many callers miss it; errors and panics
//! reach every caller and are never cached; the loader chooses the TTL.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use typedkv::{Backend, Error, Expiry, Loaded, Store, StoreExt, TypedStore};

use super::store;

const CALLERS: usize = 1000;

/// Runs `CALLERS` concurrent `get_or_insert_with` of one missing key and returns their results.
/// The loader answers `outcome` only once every call has begun (a call begins at its first
/// poll, before it reads the key): the guarantee is that a load is shared by every call
/// that began before it ended, whenever that call's read returns, so the count is exact on
/// any machine, however loaded. No sleep, no schedule.
async fn stampede<B: Backend>(
    s: &Arc<TypedStore<String, B>>,
    loads: &Arc<AtomicUsize>,
    outcome: fn() -> Result<Loaded<String>, std::io::Error>,
) -> Vec<typedkv::Result<String>> {
    let begun = Arc::new(tokio::sync::Semaphore::new(0));
    let callers: Vec<_> = (0..CALLERS)
        .map(|_| {
            let (s, loads, begun) = (Arc::clone(s), Arc::clone(loads), Arc::clone(&begun));
            tokio::spawn(async move {
                let all_begun = Arc::clone(&begun);
                let call = s.get_or_insert_with("hot", move || async move {
                    loads.fetch_add(1, Ordering::SeqCst);
                    // Bounded so that a broken guarantee fails the test instead of hanging it.
                    let all = all_begun.acquire_many(CALLERS as u32);
                    let waited = tokio::time::timeout(Duration::from_secs(60), all).await;
                    assert!(waited.is_ok(), "not every call began within 60 s");
                    outcome()
                });
                let mut call = std::pin::pin!(call);
                let first = futures::poll!(call.as_mut());
                begun.add_permits(1);
                match first {
                    std::task::Poll::Ready(result) => result,
                    std::task::Poll::Pending => call.await,
                }
            })
        })
        .collect();
    let mut results = Vec::with_capacity(CALLERS);
    for caller in callers {
        results.push(caller.await.unwrap());
    }
    results
}

/// 1,000 concurrent misses of one key run the loader once; all get its value, which is
/// cached.
pub async fn get_or_insert_with_loads_once<B: Backend>(backend: B) {
    let s = Arc::new(store::<String, B>(&backend, "page"));
    let loads = Arc::new(AtomicUsize::new(0));
    let results = stampede(&s, &loads, || Ok(Loaded::new("rendered".into()))).await;
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    assert!(
        results
            .iter()
            .all(|r| r.as_deref().ok() == Some("rendered"))
    );
    assert_eq!(s.get("hot").await.unwrap().as_deref(), Some("rendered"));
    // A present value is answered without loading.
    let again = s.get_or_insert_with("hot", || async {
        Err::<Loaded<String>, _>(std::io::Error::other("not called"))
    });
    assert_eq!(again.await.unwrap(), "rendered");
}

/// Loads are shared per store, as documented: clones of one store share a load (`join!`
/// begins both calls before either reads, so they share it whatever the timing), stores
/// built separately on one namespace each run their own: both loaders run at once, each
/// waiting for the other (a barrier that would never open if the loads were shared).
pub async fn get_or_insert_with_shares_loads_per_store<B: Backend>(backend: B) {
    let first = store::<String, B>(&backend, "page");
    let clone = first.clone();
    let separate = store::<String, B>(&backend, "page");
    let loads = Arc::new(AtomicUsize::new(0));
    let load = |s: TypedStore<String, B>, both: Option<Arc<tokio::sync::Barrier>>| {
        let loads = Arc::clone(&loads);
        async move {
            s.get_or_insert_with("hot", move || async move {
                loads.fetch_add(1, Ordering::SeqCst);
                if let Some(both) = both {
                    let met = tokio::time::timeout(Duration::from_secs(60), both.wait()).await;
                    assert!(met.is_ok(), "the other store's loader never ran");
                }
                Ok::<_, std::io::Error>(Loaded::new("rendered".to_owned()))
            })
            .await
        }
    };
    let (a, b) = futures::join!(load(first.clone(), None), load(clone, None));
    assert_eq!(
        (a.unwrap(), b.unwrap()),
        ("rendered".into(), "rendered".into())
    );
    assert_eq!(loads.load(Ordering::SeqCst), 1, "clones share a load");
    first.delete("hot").await.unwrap();
    let both = Some(Arc::new(tokio::sync::Barrier::new(2)));
    let (a, b) = futures::join!(load(first, both.clone()), load(separate, both));
    assert_eq!(
        (a.unwrap(), b.unwrap()),
        ("rendered".into(), "rendered".into())
    );
    assert_eq!(loads.load(Ordering::SeqCst), 3, "separate stores load each");
}

/// A loader error reaches all 1,000 callers, is not cached, and the next call loads again.
pub async fn get_or_insert_with_shares_errors_without_caching<B: Backend>(backend: B) {
    let s = Arc::new(store::<String, B>(&backend, "page"));
    let loads = Arc::new(AtomicUsize::new(0));
    let results = stampede(&s, &loads, || {
        Err(std::io::Error::other("backend of record is down"))
    })
    .await;
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    for result in &results {
        match result {
            Err(err @ Error::Load { .. }) => {
                assert_eq!(err.key(), Some("page:hot"));
                let cause = std::error::Error::source(err).map(ToString::to_string);
                assert_eq!(cause.as_deref(), Some("backend of record is down"));
            }
            other => panic!("expected the load error, got {other:?}"),
        }
    }
    assert!(!s.exists("hot").await.unwrap());
    let value = s.get_or_insert_with("hot", || async {
        Ok::<_, std::io::Error>(Loaded::new("ok".to_owned()))
    });
    assert_eq!(value.await.unwrap(), "ok");
}

/// A panicking loader does not wedge its callers: they get an error, and the next call loads.
pub async fn get_or_insert_with_survives_a_panicking_loader<B: Backend>(backend: B) {
    let s = Arc::new(store::<String, B>(&backend, "page"));
    let waiters: Vec<_> = (0..10)
        .map(|_| {
            let s = Arc::clone(&s);
            tokio::spawn(async move {
                s.get_or_insert_with("boom", || async {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    if true {
                        panic!("loader bug (expected by this test)");
                    }
                    Ok::<_, std::io::Error>(Loaded::new(String::new()))
                })
                .await
            })
        })
        .collect();
    for waiter in waiters {
        let result = tokio::time::timeout(Duration::from_secs(5), waiter).await;
        assert!(
            matches!(result, Ok(Ok(Err(Error::Load { .. })))),
            "{result:?}"
        );
    }
    let value = s.get_or_insert_with("boom", || async {
        Ok::<_, std::io::Error>(Loaded::new("fixed".to_owned()))
    });
    assert_eq!(value.await.unwrap(), "fixed");
}

/// The loader chooses: store default TTL, its own TTL, no expiry, or not cached at all.
pub async fn get_or_insert_with_lets_the_loader_choose_the_ttl<B: Backend>(backend: B) {
    let hour = Duration::from_secs(3600);
    let s: TypedStore<u32, B> = TypedStore::builder(backend.clone(), "ttl")
        .ttl(hour)
        .build()
        .unwrap();
    let ok = |loaded: Loaded<u32>| async move { Ok::<_, std::io::Error>(loaded) };
    s.get_or_insert_with("default", move || ok(Loaded::new(1)))
        .await
        .unwrap();
    s.get_or_insert_with("own", move || {
        ok(Loaded::with_ttl(2, Duration::from_secs(60)))
    })
    .await
    .unwrap();
    s.get_or_insert_with("forever", move || ok(Loaded::forever(3)))
        .await
        .unwrap();
    assert_eq!(
        s.get_or_insert_with("uncached", move || ok(Loaded::uncached(4)))
            .await
            .unwrap(),
        4
    );
    let left = |e: Option<Expiry>| e.and_then(Expiry::remaining).unwrap_or_default();
    assert!(left(s.ttl("default").await.unwrap()) > Duration::from_secs(3500));
    assert!(left(s.ttl("own").await.unwrap()) <= Duration::from_secs(60));
    assert_eq!(s.ttl("forever").await.unwrap(), Some(Expiry::Never));
    assert!(!s.exists("uncached").await.unwrap());
    assert_eq!(
        s.get_or_insert_with("uncached", move || ok(Loaded::uncached(5)))
            .await
            .unwrap(),
        5
    );
}
