//! Codecs and the envelope: bytes a store cannot read are decode errors naming key, codec and
//! versions, never garbage and never a panic.

use serde_json::Value as JsonValue;
use typedkv::codec::Json;
use typedkv::envelope::{HEADER_LEN, Header};
use typedkv::{Backend, Condition, DecodeProblem, Error, Store, TypedStore, Write, WriteExpiry};

use super::store;
use super::values::{Profile, profile};

/// Writes raw bytes at `key`, behind any store's back.
pub async fn write_raw<B: Backend>(backend: &B, key: &str, bytes: Vec<u8>) {
    let write = Write::new(WriteExpiry::Never, Condition::Always);
    backend.set(key, bytes, write).await.unwrap();
}

/// The bincode envelope of `value` with `schema` and no layout fingerprint, as a store of
/// `schema` whose type cannot be traced writes it (such values are checked by schema version
/// only).
pub fn enveloped<T: serde::Serialize>(value: &T, schema: u32) -> Vec<u8> {
    let stamp = typedkv::envelope::Stamp::new(schema);
    typedkv::envelope::encode(&typedkv::Bincode::new(), stamp, value, 0).unwrap()
}

/// The bincode value of `value` behind a format-1 header (9 bytes, no layout fingerprint),
/// as typedkv wrote values before it recorded layouts.
pub fn enveloped_v1<T: serde::Serialize>(value: &T, schema: u32) -> Vec<u8> {
    let mut bytes = vec![0xC1, b'T', b'K', typedkv::envelope::FORMAT_V1, 1];
    bytes.extend_from_slice(&schema.to_le_bytes());
    typedkv::codec::Codec::encode(&typedkv::Bincode::new(), value, &mut bytes).unwrap();
    bytes
}

/// Asserts `result` is a decode error for `key` with `problem`, and says so in its message.
pub fn assert_decode_error<T: std::fmt::Debug>(
    result: typedkv::Result<T>,
    key: &str,
    problem: &DecodeProblem,
) {
    match result {
        Err(err @ Error::Decode { .. }) => {
            assert_eq!(err.key(), Some(key));
            let Error::Decode {
                problem: got,
                codec,
                ..
            } = &err
            else {
                unreachable!()
            };
            assert_eq!(got, problem, "{err}");
            let shown = err.to_string();
            assert!(shown.contains(key) && shown.contains(codec), "{shown}");
        }
        other => panic!("expected a decode error for {key}, got {other:?}"),
    }
}

/// Foreign, truncated, corrupt, other-codec, other-schema and newer-format bytes each give
/// the matching [`DecodeProblem`] on `get` and `get_many`.
pub async fn unreadable_bytes_are_decode_errors<B: Backend>(backend: B) {
    let users = store::<Profile, B>(&backend, "user");
    let good = enveloped(&profile(1), 1);
    let mut other_codec = good.clone();
    other_codec[4] = 200;
    let mut newer_format = good.clone();
    newer_format[3] = typedkv::envelope::FORMAT_SEALED + 1;
    let other_layout = typedkv::envelope::Stamp::new(1).with_layout(typedkv::Layout::of::<u8>());
    let other_layout =
        typedkv::envelope::encode(&typedkv::Bincode::new(), other_layout, &profile(1), 0).unwrap();
    let mut trailing = good.clone();
    trailing.extend_from_slice(b"junk");
    let cases: Vec<(&str, Vec<u8>, DecodeProblem)> = vec![
        (
            "garbage",
            b"\x00\x01 not ours".to_vec(),
            DecodeProblem::NotEnveloped,
        ),
        (
            "json",
            br#"{"name":"x"}"#.to_vec(),
            DecodeProblem::NotEnveloped,
        ),
        (
            "cut-header",
            good[..5].to_vec(),
            DecodeProblem::TruncatedHeader { len: 5 },
        ),
        (
            "cut-payload",
            good[..good.len() - 3].to_vec(),
            DecodeProblem::InvalidPayload,
        ),
        (
            "header-only",
            good[..HEADER_LEN].to_vec(),
            DecodeProblem::InvalidPayload,
        ),
        ("trailing", trailing, DecodeProblem::InvalidPayload),
        (
            "other-layout",
            other_layout,
            DecodeProblem::LayoutMismatch {
                found: typedkv::Layout::of::<u8>().unwrap(),
                expected: typedkv::Layout::of::<Profile>().unwrap(),
            },
        ),
        (
            "other-type",
            enveloped(&7u8, 1),
            DecodeProblem::InvalidPayload,
        ),
        (
            "other-codec",
            other_codec,
            DecodeProblem::CodecMismatch {
                found: 200,
                expected: 1,
            },
        ),
        (
            "newer-format",
            newer_format,
            DecodeProblem::UnknownEnvelope {
                found: typedkv::envelope::FORMAT_SEALED + 1,
            },
        ),
        (
            "schema-2",
            enveloped(&profile(1), 2),
            DecodeProblem::SchemaMismatch {
                found: 2,
                expected: 1,
            },
        ),
    ];
    for (id, bytes, problem) in &cases {
        let key = format!("user:{id}");
        write_raw(&backend, &key, bytes.clone()).await;
        assert_decode_error(users.get(id).await, &key, problem);
        assert_decode_error(users.get_many(&["missing", id]).await, &key, problem);
        // The key is still there: reading never destroys data.
        assert!(users.exists(id).await.unwrap());
    }
}

/// A length prefix claiming 2^60 bytes is a decode error, not an allocation or a panic:
/// for a top-level string and for one nested inside a struct and an option.
pub async fn hostile_length_prefix_is_refused<B: Backend>(backend: B) {
    let hostile = |before: &[u8]| {
        let mut bytes = Vec::new();
        Header::new(1, typedkv::envelope::Stamp::new(1)).write(&mut bytes);
        bytes.extend_from_slice(before);
        bytes.push(0xFD); // bincode varint marker: a u64 follows
        bytes.extend_from_slice(&(1u64 << 60).to_le_bytes());
        bytes
    };
    let strings = store::<String, B>(&backend, "s");
    write_raw(&backend, "s:huge", hostile(&[])).await;
    assert_decode_error(
        strings.get("huge").await,
        "s:huge",
        &DecodeProblem::InvalidPayload,
    );
    // `Profile`: empty name, age 0, `Some(address)` whose street is the hostile string.
    let users = store::<Profile, B>(&backend, "user");
    write_raw(&backend, "user:huge", hostile(&[0, 0, 1])).await;
    assert_decode_error(
        users.get("huge").await,
        "user:huge",
        &DecodeProblem::InvalidPayload,
    );
}

/// Values written with schema version 1 are refused by a store that reads version 2 (and
/// the other way round), while each reads its own.
pub async fn schema_versions_are_checked<B: Backend>(backend: B) {
    let v1: TypedStore<Profile, B> = TypedStore::builder(backend.clone(), "user")
        .build()
        .unwrap();
    let v2: TypedStore<Profile, B> = TypedStore::builder(backend.clone(), "user")
        .schema_version(2)
        .build()
        .unwrap();
    v1.set("old", &profile(1)).await.unwrap();
    v2.set("new", &profile(2)).await.unwrap();
    assert_eq!(v1.get("old").await.unwrap(), Some(profile(1)));
    assert_eq!(v2.get("new").await.unwrap(), Some(profile(2)));
    assert_decode_error(
        v2.get("old").await,
        "user:old",
        &DecodeProblem::SchemaMismatch {
            found: 1,
            expected: 2,
        },
    );
    assert_decode_error(
        v1.get("new").await,
        "user:new",
        &DecodeProblem::SchemaMismatch {
            found: 2,
            expected: 1,
        },
    );
}

/// The JSON codec round-trips and stores plain JSON any client can read; it refuses a bincode
/// envelope and non-JSON bytes.
pub async fn json_codec_stores_plain_json<B: Backend>(backend: B) {
    let users: TypedStore<Profile, B, Json> = TypedStore::builder(backend.clone(), "juser")
        .codec(Json::new())
        .build()
        .unwrap();
    users.set("1", &profile(2)).await.unwrap();
    assert_eq!(users.get("1").await.unwrap(), Some(profile(2)));

    let raw = backend.get("juser:1").await.unwrap().unwrap();
    let json: JsonValue = serde_json::from_slice(&raw).unwrap();
    assert_eq!(json["name"], "user-2");
    assert_eq!(json["address"]["street"], "2 Main St");
    assert_eq!(json["roles"][2]["Admin"]["level"], 3);

    write_raw(&backend, "juser:bin", enveloped(&profile(1), 1)).await;
    assert_decode_error(
        users.get("bin").await,
        "juser:bin",
        &DecodeProblem::CodecMismatch {
            found: 1,
            expected: 0,
        },
    );
    write_raw(&backend, "juser:text", b"not json".to_vec()).await;
    assert_decode_error(
        users.get("text").await,
        "juser:text",
        &DecodeProblem::InvalidPayload,
    );
}

/// A payload above the codec's decode limit is refused before decoding.
pub async fn decode_limit_is_enforced<B: Backend>(backend: B) {
    let small: TypedStore<Vec<u8>, B> = TypedStore::builder(backend.clone(), "lim")
        .codec(typedkv::Bincode::new().with_decode_limit(1024))
        .build()
        .unwrap();
    small.set("ok", &vec![7; 1000]).await.unwrap();
    assert_eq!(small.get("ok").await.unwrap(), Some(vec![7; 1000]));
    small.set("big", &vec![7; 4096]).await.unwrap();
    assert_decode_error(
        small.get("big").await,
        "lim:big",
        &DecodeProblem::TooLarge {
            len: 4099,
            limit: 1024,
        },
    );
}
