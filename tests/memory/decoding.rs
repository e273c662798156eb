//! Property tests of decoding stored bytes (hostile input): whatever bytes sit at a
//! key (random, truncated, bit-flipped, another codec's or schema's envelope, huge length
//! prefixes), decoding returns the value or a typed decode problem, and never panics.
//!
//! proptest generates the inputs (thousands per property, a few seconds in all) and shrinks
//! any failure to a minimal byte string.

// Tests report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use typedkv::DecodeProblem;
use typedkv::Layout;
use typedkv::codec::{Bincode, Codec, Json};
use typedkv::envelope::{self, HEADER_LEN, Stamp};

use typedkv_testkit::conformance::values::{Profile, profile};

const SCHEMA: u32 = 3;
/// Small, so that huge claimed lengths are refused early; also exercised with the default.
const LIMIT: usize = 64 * 1024;

/// What a store of `Profile` with schema `SCHEMA` stamps on its values.
fn stamp() -> Stamp {
    Stamp::new(SCHEMA).with_layout(Layout::of::<Profile>())
}

fn decode_with<C: Codec>(codec: &C, bytes: &[u8]) -> Result<Profile, DecodeProblem> {
    envelope::decode::<C, Profile>(codec, stamp(), bytes).map_err(|(problem, _)| problem)
}

/// Every codec and limit must handle `bytes` without panicking.
fn decode_everywhere(bytes: &[u8]) {
    let _ = decode_with(&Bincode::new(), bytes);
    let _ = decode_with(&Bincode::new().with_decode_limit(LIMIT), bytes);
    let _ = decode_with(&Json::new(), bytes);
    let _ = decode_with(&Json::new().with_decode_limit(LIMIT), bytes);
}

fn stored(seed: u32) -> Vec<u8> {
    envelope::encode(&Bincode::new(), stamp(), &profile(seed), 0).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        decode_everywhere(&bytes);
    }

    /// A valid header in front of random bytes: the payload decoder sees garbage directly.
    #[test]
    fn random_payloads_behind_a_valid_header_never_panic(
        payload in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let mut bytes = stored(1)[..HEADER_LEN].to_vec();
        bytes.extend_from_slice(&payload);
        decode_everywhere(&bytes);
        let problem = decode_with(&Bincode::new().with_decode_limit(LIMIT), &bytes);
        if let Err(problem) = problem {
            prop_assert!(
                matches!(problem, DecodeProblem::InvalidPayload | DecodeProblem::TooLarge { .. }),
                "{problem:?}"
            );
        }
    }

    /// A real value, cut short: always an error, never a panic or a partial value.
    #[test]
    fn truncated_values_are_errors(seed in 0u32..1000, cut in 0usize..10_000) {
        let bytes = stored(seed);
        let cut = cut % bytes.len();
        prop_assert!(decode_with(&Bincode::new(), &bytes[..cut]).is_err());
        decode_everywhere(&bytes[..cut]);
    }

    /// A real value with bytes overwritten: the value, another valid value, or an error.
    #[test]
    fn corrupted_values_never_panic(
        seed in 0u32..1000,
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
    ) {
        let mut bytes = stored(seed);
        for (at, value) in flips {
            let at = at % bytes.len();
            bytes[at] = value;
        }
        decode_everywhere(&bytes);
    }

    /// A length prefix anywhere in the payload claiming up to 2^64 bytes: refused, not
    /// allocated (the claim is checked against the decode limit before anything is reserved).
    #[test]
    fn huge_length_prefixes_are_refused(at in 0usize..64, claim in (1u64 << 20)..u64::MAX) {
        let mut bytes = stored(7);
        let at = HEADER_LEN + at % (bytes.len() - HEADER_LEN);
        // bincode's varint marker for a u64 follows (0xFD), then the little-endian length.
        let mut prefix = vec![0xFD];
        prefix.extend_from_slice(&claim.to_le_bytes());
        bytes.splice(at..at, prefix);
        let decoded = decode_with(&Bincode::new().with_decode_limit(LIMIT), &bytes);
        prop_assert!(decoded.is_err() || decoded == Ok(profile(7)));
    }

    /// Envelopes naming another codec or schema are reported as such, whatever follows.
    #[test]
    fn foreign_envelopes_are_named(
        codec in any::<u8>(),
        schema in any::<u32>(),
        payload in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut bytes = stored(1)[..HEADER_LEN].to_vec();
        bytes[4] = codec;
        bytes[5..9].copy_from_slice(&schema.to_le_bytes());
        bytes.extend_from_slice(&payload);
        match decode_with(&Bincode::new(), &bytes) {
            Err(DecodeProblem::CodecMismatch { .. } | DecodeProblem::SchemaMismatch { .. }) => {}
            Err(DecodeProblem::InvalidPayload | DecodeProblem::TooLarge { .. }) => {
                // Only possible when the header happens to be ours.
                prop_assert_eq!(&bytes[..HEADER_LEN], &stored(1)[..HEADER_LEN]);
            }
            Ok(_) => prop_assert_eq!(&bytes[..HEADER_LEN], &stored(1)[..HEADER_LEN]),
            Err(other) => prop_assert!(false, "unexpected {:?}", other),
        }
    }
}
