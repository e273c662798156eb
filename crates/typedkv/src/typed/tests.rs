//! Store behaviour that needs a misbehaving backend to show.

use std::sync::atomic::AtomicU32;

use super::*;
use crate::MemoryBackend;
use crate::backend::{Guard, Write};
use crate::options::Expiry;

/// A memory backend with Redis' rougher edges, made reliable: every compare-and-swap finds
/// the value changed by someone else (counting the attempts), and a scan returns every
/// key twice (Redis' SCAN may, while rehashing).
#[derive(Clone, Default)]
struct Quirky {
    inner: MemoryBackend,
    swaps: Arc<AtomicU32>,
}

impl Backend for Quirky {
    fn kind(&self) -> &'static str {
        "quirky"
    }
    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        self.inner.get(key).await
    }
    async fn set(&self, key: &str, value: Bytes, write: Write) -> Result<bool> {
        self.inner.set(key, value, write).await
    }
    async fn delete(&self, key: &str) -> Result<bool> {
        self.inner.delete(key).await
    }
    async fn exists(&self, key: &str) -> Result<bool> {
        self.inner.exists(key).await
    }
    async fn ttl(&self, key: &str) -> Result<Option<Expiry>> {
        self.inner.ttl(key).await
    }
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>> {
        self.inner.get_many(keys).await
    }
    async fn set_many(&self, entries: Vec<(String, Bytes)>, expiry: WriteExpiry) -> Result<()> {
        self.inner.set_many(entries, expiry).await
    }
    async fn scan_page(
        &self,
        prefix: &str,
        cursor: u64,
        count: usize,
    ) -> Result<(u64, Vec<Bytes>)> {
        // The same keys on two pages.
        let (_, keys) = self.inner.scan_page(prefix, 0, count).await?;
        Ok((if cursor == 0 { 1 } else { 0 }, keys))
    }
    async fn delete_many(&self, keys: &[Bytes]) -> Result<u64> {
        self.inner.delete_many(keys).await
    }
    async fn compare_and_swap(
        &self,
        key: &str,
        _guard: &Guard,
        _new: Option<Bytes>,
        _expiry: WriteExpiry,
    ) -> Result<Swap> {
        self.swaps.fetch_add(1, Ordering::Relaxed);
        Ok(Swap::Changed(self.inner.get(key).await?))
    }
}

#[tokio::test(start_paused = true)]
async fn update_gives_up_with_a_conflict_after_its_attempts() -> Result<()> {
    let backend = Quirky::default();
    let store: TypedStore<u32, _> = TypedStore::builder(backend.clone(), "n")
        .update_attempts(7)
        .build()?;
    let mut calls = 0;
    let err = store
        .update("k", &mut |n| {
            calls += 1;
            Update::Set(n.unwrap_or(0) + 1)
        })
        .await;
    match err {
        Err(Error::Conflict { key, attempts }) => {
            assert_eq!((key.as_str(), attempts), ("n:k", 7));
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(calls, 7);
    assert_eq!(backend.swaps.load(Ordering::Relaxed), 7);
    assert!(!store.exists("k").await?, "nothing was written");
    Ok(())
}

#[tokio::test]
async fn scan_yields_an_id_once_even_if_the_backend_repeats_it() -> Result<()> {
    use futures::TryStreamExt;
    let store: TypedStore<u32, _> = TypedStore::builder(Quirky::default(), "n").build()?;
    store.set_many(&[("a", &1), ("b", &2)]).await?;
    let mut items: Vec<(String, u32)> = store.scan().try_collect().await?;
    items.sort();
    assert_eq!(items, vec![("a".to_owned(), 1), ("b".to_owned(), 2)]);
    assert_eq!(store.count().await?, 2);
    Ok(())
}

#[test]
fn zero_update_attempts_are_refused() {
    let built = TypedStore::<u32, _>::builder(MemoryBackend::new(), "n")
        .update_attempts(0)
        .build();
    assert!(matches!(built, Err(Error::InvalidConfig { .. })));
}
