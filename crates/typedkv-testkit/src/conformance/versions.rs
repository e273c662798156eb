//! Versioned compare-and-set for values held across a request.

use typedkv::codec::Json;
use typedkv::{Backend, Expiry, SetOptions, Store, TypedStore, Version};

use super::store;
use super::values::{Profile, profile};
use crate::Fixture;

/// A stale version is refused and nothing is overwritten; the current version succeeds and
/// answers the version of what it wrote.
pub async fn set_if_version_refuses_stale_versions<B: Backend>(backend: B) {
    let users = store::<Profile, B>(&backend, "user");
    users.set("1", &profile(1)).await.unwrap();
    let read = users.get_versioned("1").await.unwrap().unwrap();
    assert_eq!(read.value, profile(1));

    users.set("1", &profile(2)).await.unwrap(); // someone else writes meanwhile
    assert_eq!(
        users
            .set_if_version("1", &profile(3), &read.version)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        users.get("1").await.unwrap(),
        Some(profile(2)),
        "nothing overwritten"
    );

    let fresh = users.get_versioned("1").await.unwrap().unwrap();
    let written = users
        .set_if_version("1", &profile(3), &fresh.version)
        .await
        .unwrap();
    let after = users.get_versioned("1").await.unwrap().unwrap();
    assert_eq!(after.value, profile(3));
    assert_eq!(written, Some(after.version.clone()));
    // The old version is spent, and a deleted key has no version to match.
    assert_eq!(
        users
            .set_if_version("1", &profile(4), &fresh.version)
            .await
            .unwrap(),
        None
    );
    users.delete("1").await.unwrap();
    assert_eq!(
        users
            .set_if_version("1", &profile(4), &after.version)
            .await
            .unwrap(),
        None
    );
    assert!(!users.exists("1").await.unwrap());
    assert_eq!(users.get_versioned("1").await.unwrap(), None);
}

/// A version travels as text and is the same for every client of the data (it lives in the
/// value, not in a second key); it works for plain JSON values; the key's TTL is kept.
pub async fn versions_travel_and_keep_ttl<B: Backend>(fixture: &Fixture<B>) {
    let here = store::<Profile, B>(&fixture.backend(), "user");
    let there = store::<Profile, B>(&fixture.peer(), "user");
    here.set_opts(
        "1",
        &profile(1),
        SetOptions::new().ttl(std::time::Duration::from_secs(600)),
    )
    .await
    .unwrap();
    let version = here.get_versioned("1").await.unwrap().unwrap().version;
    let as_text: Version = version.to_string().parse().unwrap();
    assert_eq!(
        there.get_versioned("1").await.unwrap().unwrap().version,
        as_text
    );
    assert!(
        there
            .set_if_version("1", &profile(2), &as_text)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        matches!(here.ttl("1").await.unwrap(), Some(Expiry::In(_))),
        "TTL kept"
    );

    let json: TypedStore<Profile, B, Json> = TypedStore::builder(fixture.backend(), "juser")
        .codec(Json::new())
        .build()
        .unwrap();
    json.set("1", &profile(1)).await.unwrap();
    let v = json.get_versioned("1").await.unwrap().unwrap().version;
    assert!(
        json.set_if_version("1", &profile(5), &v)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(json.get("1").await.unwrap(), Some(profile(5)));
}
