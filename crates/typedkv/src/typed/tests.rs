//! Store behaviour that needs a misbehaving backend to show.

use std::sync::atomic::AtomicU32;

use super::*;
use crate::MemoryBackend;
use crate::backend::{Guard, Write};
use crate::options::Expiry;

/// A memory backend with Redis' rougher edges, made reliable: every compare-and-swap finds
/// the value changed by someone else (counting the attempts), and a scan returns every
/// key twice (Redis' SCAN may, while rehashing). With a [`Meddle`], compare-and-swaps
/// apply, and the meddler's write lands just before the first one at its key.
#[derive(Clone, Default)]
struct Quirky {
    inner: MemoryBackend,
    swaps: Arc<AtomicU32>,
    meddle: Option<Arc<std::sync::Mutex<Option<Meddle>>>>,
}

/// Another client's write, made once, just before a compare-and-swap at `before`.
struct Meddle {
    before: String,
    key: String,
    bytes: Bytes,
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
        guard: &Guard,
        new: Option<Bytes>,
        expiry: WriteExpiry,
    ) -> Result<Swap> {
        self.swaps.fetch_add(1, Ordering::Relaxed);
        let Some(meddle) = &self.meddle else {
            return Ok(Swap::Changed(self.inner.get(key).await?));
        };
        let now = {
            let mut meddle = meddle.lock().unwrap();
            meddle.take_if(|m| m.before == key)
        };
        if let Some(Meddle { key, bytes, .. }) = now {
            let always = Write::new(WriteExpiry::Never, crate::Condition::Always);
            self.inner.set(&key, bytes, always).await?;
        }
        self.inner.compare_and_swap(key, guard, new, expiry).await
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

/// A write through the old layout between `move_from`'s copy and its delete of the old
/// copy: the copy is undone and the entity left in the old layout with the newer value,
/// counted as changed; the next run moves it.
#[tokio::test]
async fn move_from_leaves_an_entity_written_meanwhile_in_the_old_layout() -> Result<()> {
    let slot = Arc::new(std::sync::Mutex::new(None));
    let backend = Quirky {
        meddle: Some(Arc::clone(&slot)),
        ..Quirky::default()
    };
    let old: TypedStore<u32, _> = TypedStore::builder(backend.clone(), "n").build()?;
    let new: TypedStore<u32, _> = TypedStore::builder(backend.clone(), "n")
        .hash_tag(true)
        .build()?;
    old.set("a", &1).await?;
    old.set("b", &2).await?;
    let bytes = backend.inner.get("n:b").await?.unwrap_or_default();
    *slot.lock().unwrap() = Some(Meddle {
        before: "{n}:a".into(),
        key: "n:a".into(),
        bytes,
    });

    let report = new.move_from(&old, &mut |_| {}).await?;
    assert_eq!((report.moved, report.changed), (1, 1), "{report:?}");
    assert_eq!(new.get("a").await?, None);
    assert_eq!(old.get("a").await?, Some(2));
    let report = new.move_from(&old, &mut |_| {}).await?;
    assert_eq!((report.scanned, report.moved), (1, 1), "{report:?}");
    assert_eq!(
        (new.get("a").await?, new.get("b").await?),
        (Some(2), Some(2))
    );
    assert_eq!(old.get("a").await?, None);
    Ok(())
}

/// A backend of a user's own (the trait's default) cannot wait for replicas: a store
/// asking it to is refused at `build`, and one write asking it to writes nothing, never
/// silently unprotected; asking for none is fine.
#[tokio::test]
async fn a_backend_without_write_concerns_refuses_one() -> Result<()> {
    use crate::{SetOptions, WriteConcern};
    let built = TypedStore::<u32, _>::builder(Quirky::default(), "c")
        .write_concern(WriteConcern::replicas(1))
        .build();
    assert!(
        matches!(built, Err(Error::InvalidConfig { .. })),
        "{built:?}"
    );
    let store: TypedStore<u32, _> = TypedStore::builder(Quirky::default(), "c")
        .write_concern(WriteConcern::none())
        .build()?;
    let one = SetOptions::new().write_concern(WriteConcern::replicas(1));
    let written = store.set_opts("a", &1, one).await;
    assert!(
        matches!(written, Err(Error::InvalidConfig { .. })),
        "{written:?}"
    );
    assert_eq!(store.get("a").await?, None);
    Ok(())
}
