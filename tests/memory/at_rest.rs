//! Values at rest under random input: any value round-trips encrypted and
//! compressed, and any corruption of a stored value (a flipped bit, a cut, an inserted byte,
//! a length claim changed) is a decode error naming the key, never a value and never a
//! panic. The conformance suite runs fixed cases on every backend; these explore.

// Tests report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use typedkv::{
    Backend, Compression, EncryptionKey, Error, Keyring, MemoryBackend, MemoryStore, Store, Write,
    WriteExpiry,
};

/// How a stored value is damaged.
#[derive(Debug, Clone)]
enum Damage {
    Flip { at: usize, bit: u8 },
    Cut { at: usize },
    Insert { at: usize, byte: u8 },
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Damage::Flip { at, bit }),
        any::<usize>().prop_map(|at| Damage::Cut { at }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Damage::Insert { at, byte }),
    ]
}

fn apply(damage: &Damage, bytes: &mut Vec<u8>) {
    match *damage {
        Damage::Flip { at, bit } => {
            let at = at % bytes.len();
            bytes[at] ^= 1 << bit;
        }
        Damage::Cut { at } => bytes.truncate(at % bytes.len()),
        Damage::Insert { at, byte } => bytes.insert(at % (bytes.len() + 1), byte),
    }
}

/// A store that encrypts and compresses every value (threshold 0), on `backend`.
fn sealed(backend: &MemoryBackend) -> MemoryStore<String> {
    MemoryStore::builder(backend.clone(), "doc")
        .encryption(Keyring::new(7, EncryptionKey::from_bytes([9; 32])))
        .compression(Compression::lz4().threshold(0))
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn any_value_round_trips(value in ".{0,2000}", repeat in 1usize..20) {
        let value = value.repeat(repeat);
        typedkv_testkit::runtime().block_on(async {
            let store = sealed(&MemoryBackend::new());
            store.set("1", &value).await.unwrap();
            assert_eq!(store.get("1").await.unwrap(), Some(value));
        });
    }

    #[test]
    fn any_corruption_is_a_decode_error(value in ".{0,300}", damage in damage()) {
        typedkv_testkit::runtime().block_on(async {
            let backend = MemoryBackend::new();
            let store = sealed(&backend);
            store.set("good", &value.repeat(8)).await.unwrap();
            let mut bytes = backend.get("doc:good").await.unwrap().unwrap();
            apply(&damage, &mut bytes);
            let write = Write::new(WriteExpiry::Never, typedkv::Condition::Always);
            backend.set("doc:bad", bytes.clone(), write).await.unwrap();
            match store.get("bad").await {
                Err(err @ Error::Decode { .. }) => assert_eq!(err.key(), Some("doc:bad")),
                other => panic!("{damage:?} gave {other:?}"),
            }
        });
    }
}
