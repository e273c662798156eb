//! Default TTL, explicit TTL, keep-TTL, no-expiry, and what `ttl` reports.
//!
//! TTLs are short (hundreds of milliseconds) so the suite runs quickly on a real server; on
//! the memory backend tests run under tokio's paused clock and the sleeps are instant.
//! A check that a key is still there holds only while its TTL has not run out, which a
//! loaded machine does not promise: [`expires_within`] accepts a key gone once its TTL has
//! passed since before the write. A wait for an expiry counts from the write's answer (the
//! server ran it before answering), so no check rests on speed.

use std::time::Duration;

use tokio::time::Instant;

use typedkv::{Backend, Expiry, SetOptions, Store, StoreExt, TypedStore};

use super::store;

const SHORT: Duration = Duration::from_millis(400);
const PAST_SHORT: Duration = Duration::from_millis(650);
const LONG: Duration = Duration::from_secs(600);

fn remaining(expiry: Option<Expiry>) -> Duration {
    match expiry {
        Some(Expiry::In(d)) => d,
        other => panic!("expected a key with a TTL, got {other:?}"),
    }
}

/// Asserts what a key written with `ttl` no earlier than `written` may report: a TTL of at
/// most `ttl`, or nothing once `ttl` has passed since `written` (never before).
pub(crate) fn expires_within(expiry: Option<Expiry>, ttl: Duration, written: Instant) {
    match expiry {
        Some(Expiry::In(left)) => assert!(left <= ttl && !left.is_zero(), "{left:?}"),
        None => assert!(
            written.elapsed() >= ttl,
            "gone {:?} after a write with a TTL of {ttl:?}",
            written.elapsed()
        ),
        Some(Expiry::Never) => panic!("expected a key with a TTL of at most {ttl:?}, got none"),
    }
}

/// `ttl` tells "absent" (`None`), "no expiry" and "expires in".
pub async fn ttl_reports_absent_never_and_remaining<B: Backend>(backend: B) {
    let s = store::<u32, B>(&backend, "n");
    assert_eq!(s.ttl("absent").await.unwrap(), None);
    s.set("forever", &1).await.unwrap();
    assert_eq!(s.ttl("forever").await.unwrap(), Some(Expiry::Never));
    assert_eq!(Expiry::Never.remaining(), None);
    s.set_opts("soon", &1, SetOptions::new().ttl(LONG))
        .await
        .unwrap();
    let left = remaining(s.ttl("soon").await.unwrap());
    assert!(
        left <= LONG && left > LONG - Duration::from_secs(5),
        "{left:?}"
    );
}

/// A store's default TTL applies to `set` and `set_many`; the values expire.
pub async fn default_ttl_expires_values<B: Backend>(backend: B) {
    let s: TypedStore<u32, B> = TypedStore::builder(backend.clone(), "n")
        .ttl(SHORT)
        .build()
        .unwrap();
    assert_eq!(s.default_ttl(), Some(SHORT));
    let written = Instant::now();
    s.set("a", &1).await.unwrap();
    s.set_many(&[("b", &2), ("c", &3)]).await.unwrap();
    let answered = Instant::now();
    for id in ["a", "b", "c"] {
        expires_within(s.ttl(id).await.unwrap(), SHORT, written);
    }
    tokio::time::sleep_until(answered + PAST_SHORT).await;
    for id in ["a", "b", "c"] {
        assert_eq!(s.get(id).await.unwrap(), None, "{id}");
        assert!(!s.exists(id).await.unwrap(), "{id}");
        assert_eq!(s.ttl(id).await.unwrap(), None, "{id}");
    }
}

/// An explicit TTL overrides the default; `never_expire` overrides it to "never"; without a
/// default, plain `set` clears an existing TTL (as Redis `SET` does).
pub async fn explicit_ttl_and_no_expiry<B: Backend>(backend: B) {
    let with_default: TypedStore<u32, B> = TypedStore::builder(backend.clone(), "d")
        .ttl(LONG)
        .build()
        .unwrap();
    let written = Instant::now();
    with_default
        .set_opts("short", &1, SetOptions::new().ttl(SHORT))
        .await
        .unwrap();
    let answered = Instant::now();
    with_default
        .set_opts("never", &2, SetOptions::new().never_expire())
        .await
        .unwrap();
    expires_within(with_default.ttl("short").await.unwrap(), SHORT, written);
    assert_eq!(
        with_default.ttl("never").await.unwrap(),
        Some(Expiry::Never)
    );

    let plain = store::<u32, B>(&backend, "p");
    plain
        .set_opts("k", &1, SetOptions::new().ttl(LONG))
        .await
        .unwrap();
    plain.set("k", &2).await.unwrap();
    assert_eq!(plain.ttl("k").await.unwrap(), Some(Expiry::Never));

    tokio::time::sleep_until(answered + PAST_SHORT).await;
    assert_eq!(with_default.get("short").await.unwrap(), None);
    assert_eq!(with_default.get("never").await.unwrap(), Some(2));
}

/// `keep_ttl` overwrites the value but keeps the key's expiry (not the store's default);
/// on a key without expiry, or a new key, it means no expiry.
///
/// The kept TTL is a minute against a default of ten, so "kept" and "reset" differ by far
/// more than a slow machine can blur, and nothing here waits for an expiry (the TTL tests
/// above see keys expire).
pub async fn keep_ttl<B: Backend>(backend: B) {
    const MINUTE: Duration = Duration::from_secs(60);
    let s: TypedStore<u32, B> = TypedStore::builder(backend.clone(), "k")
        .ttl(LONG)
        .build()
        .unwrap();
    s.set_opts("a", &1, SetOptions::new().ttl(MINUTE))
        .await
        .unwrap();
    s.set_opts("a", &2, SetOptions::new().keep_ttl())
        .await
        .unwrap();
    assert_eq!(s.get("a").await.unwrap(), Some(2));
    let left = remaining(s.ttl("a").await.unwrap());
    assert!(left <= MINUTE && left > MINUTE / 2, "{left:?}");

    s.set_opts("b", &1, SetOptions::new().never_expire())
        .await
        .unwrap();
    s.set_opts("b", &2, SetOptions::new().keep_ttl())
        .await
        .unwrap();
    assert_eq!(s.ttl("b").await.unwrap(), Some(Expiry::Never));
    assert_eq!(s.get("b").await.unwrap(), Some(2));

    s.set_opts("new", &1, SetOptions::new().keep_ttl())
        .await
        .unwrap();
    assert_eq!(s.ttl("new").await.unwrap(), Some(Expiry::Never));
}

/// Zero TTLs are refused, on the builder and per write, before anything is written.
pub async fn zero_ttl_is_refused<B: Backend>(backend: B) {
    let built: typedkv::Result<TypedStore<u32, B>> = TypedStore::builder(backend.clone(), "z")
        .ttl(Duration::ZERO)
        .build();
    assert!(matches!(built, Err(typedkv::Error::InvalidConfig { .. })));
    let s = store::<u32, B>(&backend, "z");
    let err = s
        .set_opts("a", &1, SetOptions::new().ttl(Duration::ZERO))
        .await;
    assert!(
        matches!(err, Err(typedkv::Error::InvalidConfig { .. })),
        "{err:?}"
    );
    assert!(!s.exists("a").await.unwrap());
}

/// A TTL beyond [`MAX_TTL`](typedkv::MAX_TTL) (e.g. `Duration::MAX`) is refused the same way
/// on every backend (Redis would refuse the `PX`, memory used to accept it), on the builder,
/// per write and from a loader; `MAX_TTL` itself is kept. A loader's bad TTL is the caller's
/// mistake, `InvalidConfig`, not a load failure.
pub async fn ttls_beyond_max_ttl_are_refused<B: Backend>(backend: B) {
    let max = typedkv::MAX_TTL;
    let built: typedkv::Result<TypedStore<u32, B>> = TypedStore::builder(backend.clone(), "z")
        .ttl(Duration::MAX)
        .build();
    assert!(matches!(built, Err(typedkv::Error::InvalidConfig { .. })));
    let s = store::<u32, B>(&backend, "z");
    for too_long in [Duration::MAX, max + Duration::from_millis(1)] {
        let err = s.set_opts("a", &1, SetOptions::new().ttl(too_long)).await;
        assert!(
            matches!(err, Err(typedkv::Error::InvalidConfig { .. })),
            "{too_long:?}: {err:?}"
        );
    }
    assert!(!s.exists("a").await.unwrap());
    assert!(
        s.set_opts("a", &1, SetOptions::new().ttl(max))
            .await
            .unwrap()
    );
    let left = remaining(s.ttl("a").await.unwrap());
    assert!(
        left <= max && left > max - Duration::from_secs(60),
        "{left:?}"
    );

    for ttl in [Duration::MAX, Duration::ZERO] {
        let loaded = s
            .get_or_insert_with("loaded", move || async move {
                Ok::<_, std::io::Error>(typedkv::Loaded::with_ttl(7, ttl))
            })
            .await;
        assert!(
            matches!(loaded, Err(typedkv::Error::InvalidConfig { .. })),
            "{ttl:?}: {loaded:?}"
        );
    }
    assert!(!s.exists("loaded").await.unwrap());
}

/// `Backend::get_with_ttl` answers the bytes `get` answers with the expiry `ttl` reports.
pub async fn get_with_ttl_pairs_value_and_expiry<B: Backend>(backend: B) {
    let s = store::<u32, B>(&backend, "n");
    s.set("forever", &1).await.unwrap();
    s.set_opts("soon", &2, SetOptions::new().ttl(LONG))
        .await
        .unwrap();
    assert_eq!(backend.get_with_ttl("n:absent").await.unwrap(), None);
    let (bytes, expiry) = backend.get_with_ttl("n:forever").await.unwrap().unwrap();
    assert_eq!(Some(bytes), backend.get("n:forever").await.unwrap());
    assert_eq!(expiry, Expiry::Never);
    let (bytes, expiry) = backend.get_with_ttl("n:soon").await.unwrap().unwrap();
    assert_eq!(Some(bytes), backend.get("n:soon").await.unwrap());
    let left = remaining(Some(expiry));
    assert!(
        left > LONG - Duration::from_secs(5) && left <= LONG,
        "{left:?}"
    );
}
