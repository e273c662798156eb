//! Get, set, overwrite, delete, exists; empty and large values; use through `dyn Store`.

use std::sync::Arc;

use typedkv::{Backend, Store, StoreExt, TypedStore};

use super::store;
use super::values::{Profile, profile};

/// A struct with nested `Vec`/`Option`/enum/`HashMap` fields comes back equal.
pub async fn round_trip_nested_struct<B: Backend>(backend: B) {
    let users = store::<Profile, B>(&backend, "user");
    for seed in [1, 2] {
        let id = seed.to_string();
        users.set(&id, &profile(seed)).await.unwrap();
        assert_eq!(users.get(&id).await.unwrap(), Some(profile(seed)));
    }
}

/// A key that was never written reads as `Ok(None)`, and does not exist.
pub async fn missing_key_is_none<B: Backend>(backend: B) {
    let users = store::<Profile, B>(&backend, "user");
    assert_eq!(users.get("nobody").await.unwrap(), None);
    assert!(!users.exists("nobody").await.unwrap());
    assert!(!users.delete("nobody").await.unwrap());
}

/// A second `set` replaces the value.
pub async fn overwrite_replaces_value<B: Backend>(backend: B) {
    let users = store::<Profile, B>(&backend, "user");
    users.set("1", &profile(1)).await.unwrap();
    users.set("1", &profile(2)).await.unwrap();
    assert_eq!(users.get("1").await.unwrap(), Some(profile(2)));
}

/// `delete` reports whether the key existed; afterwards it is gone.
pub async fn delete_and_exists<B: Backend>(backend: B) {
    let users = store::<Profile, B>(&backend, "user");
    users.set("1", &profile(1)).await.unwrap();
    assert!(users.exists("1").await.unwrap());
    assert!(users.delete("1").await.unwrap());
    assert!(!users.exists("1").await.unwrap());
    assert_eq!(users.get("1").await.unwrap(), None);
    assert!(!users.delete("1").await.unwrap());
}

/// Values whose encoding is empty or tiny are stored and told apart from "missing".
pub async fn empty_values<B: Backend>(backend: B) {
    let units = store::<(), B>(&backend, "unit");
    units.set("u", &()).await.unwrap();
    assert_eq!(units.get("u").await.unwrap(), Some(()));

    let strings = store::<String, B>(&backend, "string");
    strings.set("s", &String::new()).await.unwrap();
    assert_eq!(strings.get("s").await.unwrap(), Some(String::new()));

    let bytes = store::<Vec<u8>, B>(&backend, "bytes");
    bytes.set("b", &Vec::new()).await.unwrap();
    assert_eq!(bytes.get("b").await.unwrap(), Some(Vec::new()));
}

/// A 5 MiB value round-trips intact.
pub async fn large_value<B: Backend>(backend: B) {
    let blobs = store::<Vec<u8>, B>(&backend, "blob");
    let blob: Vec<u8> = (0..5 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(31) >> 3) as u8)
        .collect();
    blobs.set("big", &blob).await.unwrap();
    assert_eq!(blobs.get("big").await.unwrap(), Some(blob));
}

/// Application code can hold the store as `Arc<dyn Store<T>>`, share it across tasks and
/// use the extension trait on it.
pub async fn usable_as_dyn_store<B: Backend>(backend: B) {
    let users: Arc<dyn Store<Profile>> = Arc::new(store::<Profile, B>(&backend, "user"));
    assert_eq!(users.namespace(), "user");
    let tasks: Vec<_> = (0..16u32)
        .map(|seed| {
            let users = Arc::clone(&users);
            tokio::spawn(async move {
                users.put(seed, &profile(seed)).await.unwrap();
                users.fetch(seed).await.unwrap()
            })
        })
        .collect();
    for (seed, task) in (0..16u32).zip(tasks) {
        assert_eq!(task.await.unwrap(), Some(profile(seed)));
    }
    assert_eq!(
        users.fetch_all([3u32, 99]).await.unwrap(),
        vec![Some(profile(3)), None]
    );
    assert!(users.remove(3u32).await.unwrap());
}

/// Stores are cheap to clone and clones see the same data.
pub async fn clones_share_data<B: Backend>(backend: B) {
    let users: TypedStore<Profile, B> = store(&backend, "user");
    let clone = users.clone();
    users.set("1", &profile(1)).await.unwrap();
    assert_eq!(clone.get("1").await.unwrap(), Some(profile(1)));
}
