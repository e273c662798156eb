//! Write concerns: every write path of a store asking for every replica the master
//! reports, on every backend. Memory and one server without replicas meet it at once;
//! Sentinel and a cluster wait for their replicas.

use std::time::Duration;

use typedkv::{
    Backend, Error, SetOptions, Store, StoreExt, TypedStore, Update, WriteConcern, transaction,
};

use super::store;

/// A write's answer under a concern: its result when acknowledged, `None` when
/// [`Error::Unacknowledged`] (transient: the write may be there, which the caller checks);
/// any other error fails the case.
fn acknowledged<T>(result: typedkv::Result<T>) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(Error::Unacknowledged { .. }) => None,
        Err(other) => panic!("a write with a concern failed: {other}"),
    }
}

/// Every write path of a store whose writes wait for every replica (`set`, a conditional
/// `set_opts`, `set_many`, `update`, `set_if_version`, `delete`, `delete_many`, a
/// transaction) answers as without a concern, and its writes are there, read through a
/// store without one; a write asking for none is acknowledged at once.
pub async fn writes_wait_for_every_replica<B: Backend>(backend: B) {
    // Shorter than a cluster pool's response timeout (refused otherwise).
    let all = WriteConcern::all_replicas().timeout(Duration::from_millis(900));
    let waits: &TypedStore<u64, B> = &TypedStore::builder(backend.clone(), "concern")
        .write_concern(all)
        .build()
        .unwrap();
    let plain = store::<u64, B>(&backend, "concern");

    acknowledged(waits.set("a", &1).await);
    assert_eq!(plain.get("a").await.unwrap(), Some(1));
    let again = acknowledged(waits.set_opts("a", &2, SetOptions::new().if_absent()).await);
    assert_ne!(again, Some(true), "an if-absent write over a value wrote");
    assert_eq!(plain.get("a").await.unwrap(), Some(1));
    acknowledged(waits.set_many(&[("b", &2), ("c", &3)]).await);
    assert_eq!(
        plain.get_many(&["b", "c"]).await.unwrap(),
        [Some(2), Some(3)]
    );
    let bump = |n: Option<u64>| Update::Set(n.unwrap_or(0) + 1);
    acknowledged(waits.update_with("a", bump).await);
    assert_eq!(plain.get("a").await.unwrap(), Some(2));
    let version = plain.get_versioned("a").await.unwrap().unwrap().version;
    acknowledged(waits.set_if_version("a", &5, &version).await);
    assert_eq!(plain.get("a").await.unwrap(), Some(5));
    acknowledged(waits.delete("b").await);
    assert_eq!(plain.get("b").await.unwrap(), None);
    acknowledged(waits.delete_many(&["c"]).await);
    assert_eq!(plain.get("c").await.unwrap(), None);
    let committed = transaction(&backend, |tx| async move { tx.set(waits, "d", &4) }).await;
    acknowledged(committed);
    assert_eq!(plain.get("d").await.unwrap(), Some(4));

    let none = SetOptions::new().write_concern(WriteConcern::none());
    assert!(waits.set_opts("e", &5, none).await.unwrap());
    assert_eq!(plain.get("e").await.unwrap(), Some(5));
}
