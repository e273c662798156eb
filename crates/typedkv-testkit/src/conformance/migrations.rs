//! Evolving a stored type: values of an older schema version read through a registered
//! conversion, optionally written back in the current one.

use std::time::Duration;

use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use typedkv::codec::Json;
use typedkv::{Backend, DecodeProblem, Error, Expiry, Store, StoreExt, TypedStore, Update};

use super::encoding::assert_decode_error;

/// Version 1 of a user, as an older release stored it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct UserV1 {
    name: String,
}

/// Version 2: a field was added, so bincode cannot read version-1 bytes as it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct UserV2 {
    name: String,
    email: Option<String>,
}

fn upgrade(old: UserV1) -> UserV2 {
    UserV2 {
        name: old.name,
        email: None,
    }
}

fn v2(name: &str) -> UserV2 {
    UserV2 {
        name: name.into(),
        email: None,
    }
}

/// Without a migration, version-1 values are a schema mismatch; with one they read as
/// version 2 everywhere (get, get_many, scan, update), are left as they are unless
/// write-back is on, and with write-back are rewritten in version 2 keeping their TTL.
pub async fn old_schemas_are_migrated_on_read<B: Backend>(backend: B) {
    let old: TypedStore<UserV1, B> = TypedStore::builder(backend.clone(), "mig")
        .schema_version(1)
        .build()
        .unwrap();
    for id in ["a", "b", "c"] {
        old.set(id, &UserV1 { name: id.into() }).await.unwrap();
    }
    old.set_opts(
        "t",
        &UserV1 { name: "t".into() },
        typedkv::SetOptions::new().ttl(Duration::from_secs(3600)),
    )
    .await
    .unwrap();

    let strict: TypedStore<UserV2, B> = TypedStore::builder(backend.clone(), "mig")
        .schema_version(2)
        .build()
        .unwrap();
    let mismatch = DecodeProblem::SchemaMismatch {
        found: 1,
        expected: 2,
    };
    assert_decode_error(strict.get("a").await, "mig:a", &mismatch);

    let reading = |write_back| -> TypedStore<UserV2, B> {
        TypedStore::builder(backend.clone(), "mig")
            .schema_version(2)
            .migrate_from(1, upgrade)
            .write_back_migrated(write_back)
            .build()
            .unwrap()
    };
    let converting = reading(false);
    assert_eq!(converting.get("a").await.unwrap(), Some(v2("a")));
    assert_eq!(
        converting.get_many(&["b", "x", "c"]).await.unwrap(),
        vec![Some(v2("b")), None, Some(v2("c"))]
    );
    let mut scanned: Vec<(String, UserV2)> = converting.scan().try_collect().await.unwrap();
    scanned.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(scanned.len(), 4);
    // Not written back: the old release still reads its values.
    assert_eq!(
        old.get("a").await.unwrap(),
        Some(UserV1 { name: "a".into() })
    );

    // update reads version 1 and writes version 2.
    let updated = converting
        .update_with("b", |user| {
            let mut user = user.unwrap();
            user.email = Some("b@example.com".into());
            Update::Set(user)
        })
        .await
        .unwrap();
    assert_eq!(updated.unwrap().email.as_deref(), Some("b@example.com"));
    assert!(strict.get("b").await.unwrap().is_some());

    // With write-back, a read leaves the value in version 2, TTL kept.
    let rewriting = reading(true);
    assert_eq!(rewriting.get("t").await.unwrap(), Some(v2("t")));
    assert_eq!(strict.get("t").await.unwrap(), Some(v2("t")));
    assert!(matches!(
        strict.ttl("t").await.unwrap(),
        Some(Expiry::In(_))
    ));
    let rewritten = DecodeProblem::SchemaMismatch {
        found: 2,
        expected: 1,
    };
    assert_decode_error(old.get("t").await, "mig:t", &rewritten);
}

/// A migration from the current version, or registered before the codec changes, is a
/// configuration error.
pub async fn migration_mistakes_are_refused<B: Backend>(backend: B) {
    let from_current = TypedStore::<UserV2, B>::builder(backend.clone(), "mig")
        .schema_version(2)
        .migrate_from(2, upgrade)
        .build();
    assert!(matches!(from_current, Err(Error::InvalidConfig { .. })));
    let before_codec = TypedStore::<UserV2, B>::builder(backend.clone(), "mig")
        .schema_version(2)
        .migrate_from(1, upgrade)
        .codec(Json::new())
        .build();
    assert!(matches!(before_codec, Err(Error::InvalidConfig { .. })));
    // JSON values carry no schema version, so a migration could never
    // run; it was accepted and ignored (v1 values then failed with "missing field").
    let on_json = TypedStore::<UserV2, B>::builder(backend.clone(), "mig")
        .codec(Json::new())
        .migrate_from(1, upgrade)
        .build();
    let Err(Error::InvalidConfig { reason, .. }) = on_json else {
        panic!("a migration on a JSON store was accepted: {on_json:?}");
    };
    assert!(reason.contains("migrate_from"), "{reason}");
    // A schema version JSON cannot record is refused, not ignored.
    let json_schema = TypedStore::<UserV2, B>::builder(backend.clone(), "mig")
        .codec(Json::new())
        .schema_version(2)
        .build();
    let Err(Error::InvalidConfig { reason, .. }) = json_schema else {
        panic!("a schema version on a JSON store was accepted: {json_schema:?}");
    };
    assert!(reason.contains("schema_version"), "{reason}");
    let json_default = TypedStore::<UserV2, B>::builder(backend, "mig")
        .codec(Json::new())
        .build();
    assert!(json_default.is_ok());
}

/// A list of scores, then a level added at the front.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ScoresV1 {
    scores: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ScoresV2 {
    level: u8,
    scores: Vec<u8>,
}

/// Another shape some values of schema 1 were written with: scores as wider numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ScoresWide {
    scores: Vec<u32>,
}

/// A type changed without a schema bump does not read old bytes as
/// garbage. `ScoresV1 { scores: [2, 5, 7] }` is stored `03 02 05 07`, which bincode reads as
/// `ScoresV2 { level: 3, scores: [5, 7] }`; the layout fingerprint in the envelope makes it
/// `LayoutMismatch`. Bumping the schema with a migration reads it; the migration keys on the
/// old type's layout too (two shapes under one schema version each find theirs). Values
/// without a fingerprint (written before fingerprints, format 1, or by a type that cannot be
/// traced) still read by schema version.
pub async fn a_changed_type_is_detected_without_a_schema_bump<B: Backend>(backend: B) {
    use super::encoding::{enveloped, enveloped_v1, write_raw};

    let v1: TypedStore<ScoresV1, B> = TypedStore::builder(backend.clone(), "scores")
        .build()
        .unwrap();
    let old = ScoresV1 {
        scores: vec![2, 5, 7],
    };
    v1.set("a", &old).await.unwrap();

    let forgot_the_bump: TypedStore<ScoresV2, B> = TypedStore::builder(backend.clone(), "scores")
        .build()
        .unwrap();
    let read = forgot_the_bump.get("a").await;
    assert!(
        matches!(
            &read,
            Err(Error::Decode {
                problem: DecodeProblem::LayoutMismatch { .. },
                ..
            })
        ),
        "a value of another layout was read as {read:?}"
    );
    assert_eq!(read.unwrap_err().key(), Some("scores:a"));

    let wide = ScoresWide {
        scores: vec![300, 1],
    };
    let wide_writer: TypedStore<ScoresWide, B> = TypedStore::builder(backend.clone(), "scores")
        .build()
        .unwrap();
    wide_writer.set("w", &wide).await.unwrap();
    let migrated: TypedStore<ScoresV2, B> = TypedStore::builder(backend.clone(), "scores")
        .schema_version(2)
        .migrate_from(1, |old: ScoresV1| ScoresV2 {
            level: 0,
            scores: old.scores,
        })
        .migrate_from(1, |old: ScoresWide| ScoresV2 {
            level: 1,
            scores: old.scores.iter().map(|s| (*s).min(255) as u8).collect(),
        })
        .build()
        .unwrap();
    assert_eq!(
        migrated.get("a").await.unwrap(),
        Some(ScoresV2 {
            level: 0,
            scores: vec![2, 5, 7]
        })
    );
    assert_eq!(
        migrated.get("w").await.unwrap(),
        Some(ScoresV2 {
            level: 1,
            scores: vec![255, 1]
        })
    );

    // Values without a fingerprint keep reading by schema version.
    write_raw(&backend, "scores:v1-format", enveloped_v1(&old, 1)).await;
    write_raw(&backend, "scores:untraced", enveloped(&old, 1)).await;
    for id in ["v1-format", "untraced"] {
        assert_eq!(v1.get(id).await.unwrap(), Some(old.clone()), "{id}");
    }
}
