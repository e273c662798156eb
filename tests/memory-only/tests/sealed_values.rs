//! A build of typedkv without `encryption` and `compression` (this crate has no features)
//! reading values that a build with them wrote: the rolling-upgrade promise that such a
//! value is a decode error naming the missing feature, never garbage and never a panic.

// Tests report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use typedkv::codec::ids::BINCODE;
use typedkv::envelope::{Encrypted, Header, NONCE_LEN, Seal, Stamp, TAG_LEN};
use typedkv::{
    Backend, Condition, DecodeProblem, Error, MemoryBackend, MemoryStore, Store, Write, WriteExpiry,
};

/// A format-3 value as a build with the features writes it: its header (through the
/// envelope's own writer), then a payload.
fn sealed(compressed: bool, encrypted: bool) -> Vec<u8> {
    let header = Header::new(BINCODE, Stamp::new(1)).with_seal(Seal::new(
        compressed.then_some(64),
        encrypted.then_some(Encrypted::new(1, [7; NONCE_LEN])),
    ));
    let mut bytes = Vec::new();
    header.write(&mut bytes);
    bytes.extend_from_slice(&[0x5a; 40 + TAG_LEN]);
    bytes
}

#[tokio::test]
async fn values_sealed_by_a_build_with_the_features_name_the_missing_one() {
    let backend = MemoryBackend::new();
    let store = MemoryStore::<String>::builder(backend.clone(), "doc")
        .build()
        .unwrap();
    let write = Write::new(WriteExpiry::Never, Condition::Always);
    let cases = [
        ("compressed", sealed(true, false), "compression"),
        ("encrypted", sealed(false, true), "encryption"),
        // Decryption comes first, so it is the feature named.
        ("both", sealed(true, true), "encryption"),
    ];
    for (id, bytes, feature) in cases {
        backend
            .set(&format!("doc:{id}"), bytes, write)
            .await
            .unwrap();
        match store.get(id).await {
            Err(Error::Decode {
                problem: DecodeProblem::FeatureMissing { feature: named },
                key,
                ..
            }) => {
                assert_eq!(named, feature, "{id}");
                assert_eq!(key, format!("doc:{id}"));
            }
            other => panic!("{id}: {other:?}"),
        }
    }
    // What it says names the feature to turn on.
    let error = store.get("compressed").await.unwrap_err();
    let problem = match &error {
        Error::Decode { problem, .. } => problem.to_string(),
        other => panic!("{other:?}"),
    };
    assert!(problem.contains("`compression` feature"), "{problem}");
}
