//! Values at rest: encryption (keyrings, rotation, values bound to their key) and
//! compression, checked on the bytes the backend really holds.

use std::time::Duration;

use typedkv::backend::Lex;
use typedkv::envelope::{FLAG_LZ4, FORMAT_SEALED, HEADER_LEN, Header, Seal, Stamp};
use typedkv::{
    Backend, Compression, DecodeProblem, EncryptionKey, Error, Index, Keyring, Loaded, Order,
    SetOptions, Store, StoreExt, TypedStore, Update,
};

use super::encoding::{assert_decode_error, write_raw};
use super::indexes::{Account, account, ids_by};
use super::values::{Profile, profile};

const KEY_1: [u8; 32] = [0x11; 32];
const KEY_2: [u8; 32] = [0x22; 32];

fn key(bytes: [u8; 32]) -> EncryptionKey {
    EncryptionKey::from_bytes(bytes)
}

/// A store of profiles under `namespace` encrypting with `keyring`.
fn sealed<B: Backend>(backend: &B, namespace: &str, keyring: Keyring) -> TypedStore<Profile, B> {
    TypedStore::builder(backend.clone(), namespace)
        .encryption(keyring)
        .build()
        .unwrap()
}

/// The header of the value stored at `key`.
async fn stored_seal<B: Backend>(backend: &B, key: &str) -> (Seal, Vec<u8>) {
    let bytes = backend.get(key).await.unwrap().expect("the key exists");
    let (header, _) = Header::parse(&bytes).unwrap();
    (header.seal, bytes)
}

/// Every write path encrypts (nothing of the value is left in clear in the stored bytes),
/// every read path decrypts; after a rotation old values read, new ones use the new key,
/// and `reencrypt` leaves no value under the old key, keeping TTLs.
pub async fn encrypted_values_round_trip_and_rotate<B: Backend>(backend: B) {
    let v1 = sealed(&backend, "secret", Keyring::new(1, key(KEY_1)));
    v1.set("set", &profile(1)).await.unwrap();
    v1.set_many(&[("many", &profile(2))]).await.unwrap();
    v1.update_with("update", |_| Update::Set(profile(3)))
        .await
        .unwrap();
    let loaded = v1
        .get_or_insert_with("loaded", || async {
            Ok::<_, std::convert::Infallible>(Loaded::new(profile(4)))
        })
        .await
        .unwrap();
    assert_eq!(loaded, profile(4));
    let ttl = SetOptions::new().ttl(Duration::from_secs(600));
    v1.set_opts("ttl", &profile(5), ttl).await.unwrap();
    let versioned = v1.get_versioned("set").await.unwrap().unwrap();
    assert_eq!(versioned.value, profile(1));
    let six = profile(6);
    let written = v1.set_if_version("set", &six, &versioned.version).await;
    assert!(written.unwrap().is_some());

    let ids = ["set", "many", "update", "loaded", "ttl"];
    for id in ids {
        let (seal, bytes) = stored_seal(&backend, &format!("secret:{id}")).await;
        assert_eq!(seal.encrypted.map(|e| e.key_id), Some(1), "{id}");
        assert!(
            !bytes.windows(5).any(|w| w == b"user-"),
            "{id}: the name is stored in clear"
        );
    }
    let mut scanned = futures::StreamExt::collect::<Vec<_>>(v1.scan()).await;
    scanned.sort_by(|a, b| a.as_ref().unwrap().0.cmp(&b.as_ref().unwrap().0));
    assert_eq!(scanned.len(), ids.len());
    assert!(scanned.iter().all(Result::is_ok));

    // Rotation: key 2 current, key 1 still readable.
    let rotated = Keyring::new(2, key(KEY_2)).with_old_key(1, key(KEY_1));
    let v2 = sealed(&backend, "secret", rotated.unwrap());
    assert_eq!(v2.get("many").await.unwrap(), Some(profile(2)));
    v2.set("new", &profile(7)).await.unwrap();
    let (seal, _) = stored_seal(&backend, "secret:new").await;
    assert_eq!(seal.encrypted.map(|e| e.key_id), Some(2));

    let mut pages = 0;
    let report = v2.reencrypt(&mut |_| pages += 1).await.unwrap();
    assert!(pages >= 1);
    assert_eq!(
        (
            report.scanned,
            report.rewritten,
            report.current,
            report.skipped
        ),
        (6, 5, 1, 0)
    );
    for id in ids.iter().chain(&["new"]) {
        let (seal, _) = stored_seal(&backend, &format!("secret:{id}")).await;
        assert_eq!(seal.encrypted.map(|e| e.key_id), Some(2), "{id}");
    }
    let left = v2.ttl("ttl").await.unwrap();
    assert!(
        matches!(left, Some(typedkv::Expiry::In(d)) if d > Duration::from_secs(500)),
        "reencrypt kept the TTL: {left:?}"
    );
    // A second pass finds nothing to do.
    let again = v2.reencrypt(&mut |_| {}).await.unwrap();
    assert_eq!((again.current, again.rewritten), (6, 0));

    // Key 1 can go: key 2 alone reads everything.
    let only_2 = sealed(&backend, "secret", Keyring::new(2, key(KEY_2)));
    assert_eq!(only_2.get("set").await.unwrap(), Some(profile(6)));
    assert_eq!(only_2.get("update").await.unwrap(), Some(profile(3)));
    // A keyring without key 2, and a store without a keyring, say why they cannot read.
    let only_1 = sealed(&backend, "secret", Keyring::new(1, key(KEY_1)));
    let unknown = DecodeProblem::UnknownKeyId { id: 2 };
    assert_decode_error(only_1.get("set").await, "secret:set", &unknown);
    let plain: TypedStore<Profile, B> = TypedStore::builder(backend.clone(), "secret")
        .build()
        .unwrap();
    let no_keyring = DecodeProblem::NoKeyring { key_id: 2 };
    assert_decode_error(plain.get("set").await, "secret:set", &no_keyring);
}

/// Unencrypted values are refused by an encrypting store unless its keyring accepts them
/// for the switch-over, and `reencrypt` then encrypts them.
pub async fn adopting_encryption_on_existing_data<B: Backend>(backend: B) {
    let plain: TypedStore<Profile, B> = TypedStore::builder(backend.clone(), "adopt")
        .build()
        .unwrap();
    plain.set("1", &profile(1)).await.unwrap();
    let strict = sealed(&backend, "adopt", Keyring::new(1, key(KEY_1)));
    assert_decode_error(
        strict.get("1").await,
        "adopt:1",
        &DecodeProblem::NotEncrypted,
    );
    let lenient = Keyring::new(1, key(KEY_1)).accept_unencrypted(true);
    let lenient = sealed(&backend, "adopt", lenient);
    assert_eq!(lenient.get("1").await.unwrap(), Some(profile(1)));
    let report = lenient.reencrypt(&mut |_| {}).await.unwrap();
    assert_eq!(report.rewritten, 1);
    assert_eq!(strict.get("1").await.unwrap(), Some(profile(1)));
}

/// A plain codec's values (JSON) are sealed too: encrypted and compressed values carry an
/// envelope with codec id 0, values too small to compress stay plain JSON when only
/// compression is on, and plain JSON written before still reads.
pub async fn json_values_are_sealed_too<B: Backend>(backend: B) {
    use typedkv::codec::Json;
    let json = |namespace: &str| {
        TypedStore::<Profile, B>::builder(backend.clone(), namespace).codec(Json::new())
    };
    let sealed = json("jsealed")
        .encryption(Keyring::new(1, key(KEY_1)))
        .build()
        .unwrap();
    sealed.set("1", &profile(1)).await.unwrap();
    let bytes = backend.get("jsealed:1").await.unwrap().unwrap();
    let (header, _) = Header::parse(&bytes).unwrap();
    assert_eq!(header.codec, 0);
    assert_eq!(header.seal.encrypted.map(|e| e.key_id), Some(1));
    assert_eq!(sealed.get("1").await.unwrap(), Some(profile(1)));

    let zipped = json("jzip")
        .compression(Compression::lz4().threshold(200))
        .build()
        .unwrap();
    json("jzip")
        .build()
        .unwrap()
        .set("old", &profile(2))
        .await
        .unwrap();
    zipped.set("small", &profile(3)).await.unwrap();
    let mut large = profile(4);
    large.name = "a long name ".repeat(100);
    zipped.set("large", &large).await.unwrap();
    let small = backend.get("jzip:small").await.unwrap().unwrap();
    assert_eq!(small.first(), Some(&b'{'), "a small value stays plain JSON");
    let (seal, _) = stored_seal(&backend, "jzip:large").await;
    assert!(seal.compressed.is_some());
    assert_eq!(zipped.get("old").await.unwrap(), Some(profile(2)));
    assert_eq!(zipped.get("small").await.unwrap(), Some(profile(3)));
    assert_eq!(zipped.get("large").await.unwrap(), Some(large));
}

/// Values of an older schema version read through a migration when encrypted, and the
/// write-back stores them encrypted under the current schema version.
pub async fn encrypted_old_schemas_are_migrated<B: Backend>(backend: B) {
    let keyring = || Keyring::new(1, key(KEY_1));
    let v1 = TypedStore::<String, B>::builder(backend.clone(), "mig")
        .encryption(keyring())
        .build()
        .unwrap();
    v1.set("1", &"ann".to_string()).await.unwrap();
    let v2 = TypedStore::<(String, u32), B>::builder(backend.clone(), "mig")
        .schema_version(2)
        .migrate_from(1, |name: String| (name, 0))
        .write_back_migrated(true)
        .encryption(keyring())
        .build()
        .unwrap();
    assert_eq!(v2.get("1").await.unwrap(), Some(("ann".to_string(), 0)));
    let bytes = backend.get("mig:1").await.unwrap().unwrap();
    let (header, _) = Header::parse(&bytes).unwrap();
    assert_eq!(
        header.stamp.schema, 2,
        "the converted value was written back"
    );
    assert_eq!(header.seal.encrypted.map(|e| e.key_id), Some(1));
    assert_eq!(v2.get("1").await.unwrap(), Some(("ann".to_string(), 0)));
}

/// A value copied to another key or namespace (as `COPY`/`RENAME` would), or whose header
/// is changed to claim another schema version, fails to decrypt.
pub async fn moved_encrypted_values_fail_to_decrypt<B: Backend>(backend: B) {
    let keyring = || Keyring::new(1, key(KEY_1));
    let users = sealed(&backend, "secret", keyring());
    users.set("alice", &profile(1)).await.unwrap();
    let bytes = backend.get("secret:alice").await.unwrap().unwrap();
    let unauthentic = DecodeProblem::Unauthentic { key_id: 1 };

    write_raw(&backend, "secret:mallory", bytes.clone()).await;
    assert_decode_error(users.get("mallory").await, "secret:mallory", &unauthentic);
    let others = sealed(&backend, "other", keyring());
    write_raw(&backend, "other:alice", bytes.clone()).await;
    assert_decode_error(others.get("alice").await, "other:alice", &unauthentic);

    let mut replayed = bytes.clone();
    replayed[5] ^= 0x03; // schema version 1 → 2
    write_raw(&backend, "secret:alice", replayed).await;
    let v2 = TypedStore::<Profile, B>::builder(backend.clone(), "secret")
        .schema_version(2)
        .encryption(keyring())
        .build()
        .unwrap();
    assert_decode_error(v2.get("alice").await, "secret:alice", &unauthentic);
    // A wrong key under the right id.
    write_raw(&backend, "secret:alice", bytes).await;
    let wrong = sealed(&backend, "secret", Keyring::new(1, key(KEY_2)));
    assert_decode_error(wrong.get("alice").await, "secret:alice", &unauthentic);
    assert_eq!(users.get("alice").await.unwrap(), Some(profile(1)));

    // A partitioned store binds each value to its id too, whatever partition keys it.
    let parts = TypedStore::<Profile, B>::builder(backend.clone(), "secret")
        .partitions(8)
        .encryption(keyring())
        .build()
        .unwrap();
    parts.set("alice", &profile(2)).await.unwrap();
    let (alice, mallory) = (
        parts.keyspace().key("alice"),
        parts.keyspace().key("mallory"),
    );
    let (alice, mallory) = (alice.unwrap(), mallory.unwrap());
    let sealed_alice = backend.get(&alice).await.unwrap().unwrap();
    write_raw(&backend, &mallory, sealed_alice).await;
    assert_decode_error(parts.get("mallory").await, &mallory, &unauthentic);
    assert_eq!(parts.get("alice").await.unwrap(), Some(profile(2)));
    // Bound to namespace and id, not to the key: a value moved to another layout reads.
    let plain = backend.get("secret:alice").await.unwrap().unwrap();
    write_raw(&backend, &alice, plain).await;
    assert_eq!(parts.get("alice").await.unwrap(), Some(profile(1)));
}

/// Random corruptions of encrypted and compressed values (bit flips anywhere, truncations,
/// inserted and appended bytes), 300 of them from a fixed seed: each read is a decode error
/// naming the key, never a value and never a panic.
pub async fn corrupted_sealed_values_are_decode_errors<B: Backend>(backend: B) {
    let store = TypedStore::<Profile, B>::builder(backend.clone(), "bits")
        .encryption(Keyring::new(1, key(KEY_1)))
        .compression(Compression::lz4().threshold(0))
        .build()
        .unwrap();
    let mut value = profile(1);
    value.name = "a name that compresses well ".repeat(20);
    store.set("good", &value).await.unwrap();
    let good = backend.get("bits:good").await.unwrap().unwrap();
    let (header, _) = Header::parse(&good).unwrap();
    assert!(header.seal.compressed.is_some() && header.seal.encrypted.is_some());

    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move |below: usize| {
        // xorshift64*: reproducible, no dependency.
        rng ^= rng >> 12;
        rng ^= rng << 25;
        rng ^= rng >> 27;
        (rng.wrapping_mul(0x2545_F491_4F6C_DD1D) % below as u64) as usize
    };
    for case in 0..300 {
        let mut bytes = good.clone();
        match case % 4 {
            0 => {
                let at = next(bytes.len());
                bytes[at] ^= 1 << next(8);
            }
            1 => bytes.truncate(next(bytes.len())),
            2 => bytes.insert(next(bytes.len()), next(256) as u8),
            _ => bytes.push(next(256) as u8),
        }
        write_raw(&backend, "bits:bad", bytes.clone()).await;
        match store.get("bad").await {
            Err(err @ Error::Decode { .. }) => assert_eq!(err.key(), Some("bits:bad")),
            other => panic!("case {case}, {bytes:?}: {other:?}"),
        }
    }
    assert_eq!(store.get("good").await.unwrap(), Some(value));
}

/// Large values are stored compressed (a 16 KiB JSON-like value in well under half), small
/// ones as they are; values of both kinds read with and without compression switched on;
/// a block claiming 4 GiB is refused before it is decompressed, one whose claim is wrong is
/// an error.
pub async fn compressed_values_shrink_and_bombs_are_refused<B: Backend>(backend: B) {
    let store = TypedStore::<String, B>::builder(backend.clone(), "zip")
        .compression(Compression::lz4())
        .build()
        .unwrap();
    let document: String = (0..300)
        .map(|i| format!(r#"{{"id":{i},"name":"user-{i}","roles":["reader","editor"]}},"#))
        .collect();
    assert!(document.len() > 12 * 1024);
    store.set("big", &document).await.unwrap();
    store.set("small", &"tiny".to_string()).await.unwrap();
    let (seal, stored) = stored_seal(&backend, "zip:big").await;
    assert!(seal.compressed.is_some());
    assert!(
        stored.len() * 2 < document.len(),
        "{} bytes stored for {}",
        stored.len(),
        document.len()
    );
    let (seal, _) = stored_seal(&backend, "zip:small").await;
    assert!(seal.is_plain());
    assert_eq!(store.get("big").await.unwrap(), Some(document.clone()));
    let without = TypedStore::<String, B>::builder(backend.clone(), "zip")
        .build()
        .unwrap();
    assert_eq!(without.get("big").await.unwrap(), Some(document.clone()));
    without.set("plain", &document).await.unwrap();
    assert_eq!(store.get("plain").await.unwrap(), Some(document));

    let bomb = |claimed: u32, block: &[u8]| {
        let mut bytes = Vec::new();
        let mut header = Header::new(
            1,
            Stamp::new(1).with_layout(typedkv::Layout::of::<String>()),
        );
        header.seal.compressed = Some(claimed);
        header.write(&mut bytes);
        assert_eq!((bytes[3], bytes[HEADER_LEN]), (FORMAT_SEALED, FLAG_LZ4));
        bytes.extend_from_slice(block);
        bytes
    };
    let block: Vec<u8> = (0..1024u32).map(|i| (i * 7919 % 251) as u8).collect();
    write_raw(&backend, "zip:bomb", bomb(u32::MAX, &block)).await;
    let too_large = DecodeProblem::TooLarge {
        len: u32::MAX as usize,
        limit: typedkv::codec::DEFAULT_DECODE_LIMIT,
    };
    assert_decode_error(store.get("bomb").await, "zip:bomb", &too_large);
    let (_, real) = stored_seal(&backend, "zip:big").await;
    let (header, body) = Header::parse(&real).unwrap();
    let claimed = header.seal.compressed.unwrap();
    write_raw(&backend, "zip:liar", bomb(claimed - 1, body)).await;
    let corrupt = DecodeProblem::InvalidCompression;
    assert_decode_error(store.get("liar").await, "zip:liar", &corrupt);
}

/// Key bytes appear in no `Debug` or `Display` output of keys, keyrings, builders, stores
/// and the errors of encrypted values.
pub async fn encryption_keys_are_never_printed<B: Backend>(backend: B) {
    let secret = [0xA7u8; 32];
    let keyring = || Keyring::new(9, key(secret));
    let builder = TypedStore::<Profile, B>::builder(backend.clone(), "k").encryption(keyring());
    let mut shown = vec![
        format!("{:?}", key(secret)),
        format!("{:?}", keyring()),
        format!("{builder:?}"),
    ];
    let store = builder.build().unwrap();
    shown.push(format!("{store:?}"));
    store.set("1", &profile(1)).await.unwrap();
    let mut bytes = backend.get("k:1").await.unwrap().unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    write_raw(&backend, "k:2", bytes).await;
    let wrong = sealed(&backend, "k", Keyring::new(9, key([0x5Au8; 32])));
    for err in [
        store.get("2").await.unwrap_err(),
        wrong.get("1").await.unwrap_err(),
    ] {
        let mut chain = format!("{err} {err:?}");
        let mut source = std::error::Error::source(&err);
        while let Some(cause) = source {
            chain.push_str(&format!(" {cause} {cause:?}"));
            source = cause.source();
        }
        shown.push(chain);
    }
    for text in shown {
        for needle in ["167, 167", "a7a7", "A7A7", "0xa7", "0xA7"] {
            assert!(!text.contains(needle), "{needle} in {text}");
        }
        assert!(
            !text.as_bytes().windows(4).any(|w| w == [0xA7; 4]),
            "{text}"
        );
    }
}

/// Equality and unique indexes of an encrypted store find by value while their entries hold
/// keyed hashes, never the values; a unique conflict does not name the value in clear; a
/// new index key finds nothing until the indexes are rebuilt; range indexes, and indexes
/// without an index key, are refused.
pub async fn encrypted_indexes_hold_no_values_in_clear<B: Backend>(backend: B) {
    let indexed = |index_key: [u8; 32]| {
        TypedStore::<Account, B>::builder(backend.clone(), "vault")
            .hash_tag(true)
            .encryption(Keyring::new(1, key(KEY_1)).with_index_key(key(index_key)))
            .index(Index::equality("email", |a: &Account| [a.email.clone()]))
            .index(Index::unique("handle", |a: &Account| [a.handle.clone()]))
    };
    let users = indexed(KEY_2).build().unwrap();
    let email = "ann@example.com";
    users
        .set("1", &account(email, "ann", &[], 1))
        .await
        .unwrap();
    users
        .set("2", &account(email, "bob", &[], 2))
        .await
        .unwrap();
    assert_eq!(ids_by(&users, "email", email).await, ["1", "2"]);
    assert_eq!(users.count_by("email", email.as_bytes()).await.unwrap(), 2);
    let (id, _) = users.find_one_by("handle", b"bob").await.unwrap().unwrap();
    assert_eq!(id, "2");
    match users
        .set("3", &account("x@example.com", "bob", &[], 3))
        .await
    {
        Err(Error::UniqueViolation { index, value, .. }) => {
            assert_eq!(index, "handle");
            assert!(!value.contains("bob"), "{value}");
        }
        other => panic!("a taken handle was not refused: {other:?}"),
    }

    let space = &users.index_spaces()[0];
    for (n, clear) in [(0, &b"ann@example.com"[..]), (1, &b"bob"[..])] {
        let all = (&Lex::Min, &Lex::Max);
        let members = backend.index_members(space, n, all, Order::Ascending, 100);
        let members = members.await.unwrap();
        assert_eq!(members.len(), 2, "index {n}");
        for member in members {
            assert!(
                !member.windows(clear.len()).any(|w| w == clear),
                "{member:?}"
            );
        }
    }

    // Another index key: nothing found until the indexes are rebuilt with it.
    let rekeyed = indexed([0x33; 32]).build().unwrap();
    assert!(ids_by(&rekeyed, "email", email).await.is_empty());
    rekeyed.rebuild_indexes(&mut |_| {}).await.unwrap();
    assert_eq!(ids_by(&rekeyed, "email", email).await, ["1", "2"]);

    let refused = |builder: typedkv::StoreBuilder<Account, B, typedkv::Bincode>| {
        matches!(builder.build(), Err(Error::InvalidIndex { .. }))
    };
    assert!(refused(
        indexed(KEY_2).index(Index::range("score", |a: &Account| Some(a.score)))
    ));
    let without_index_key = TypedStore::<Account, B>::builder(backend.clone(), "vault")
        .hash_tag(true)
        .encryption(Keyring::new(1, key(KEY_1)))
        .index(Index::equality("email", |a: &Account| [a.email.clone()]));
    assert!(refused(without_index_key));
}
