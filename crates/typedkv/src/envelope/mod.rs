//! The header in front of binary payloads, and the one place values are encoded and decoded.
//!
//! Layout (format 2, written for plain values since typedkv records type layouts), 17 bytes,
//! then the codec's payload:
//!
//! | offset | size | content |
//! |---|---|---|
//! | 0 | 3 | magic `C1 54 4B` (`0xC1` never starts UTF-8 text, then `TK`) |
//! | 3 | 1 | envelope format, `2` |
//! | 4 | 1 | codec id ([`Codec::envelope_id`]) |
//! | 5 | 4 | schema version, u32 little endian |
//! | 9 | 8 | [layout fingerprint](crate::layout) of the type that wrote it, u64 little endian; `0`: none |
//!
//! Format 3 is written for values compressed or encrypted at rest (see
//! [`StoreBuilder::compression`](crate::StoreBuilder) and `encryption`): the same 17 bytes
//! with format `3`, then
//!
//! | size | content |
//! |---|---|
//! | 1 | flags: bit 0 (`FLAG_LZ4`) compressed, bit 1 (`FLAG_ENCRYPTED`) encrypted; other bits are refused |
//! | 4 | if compressed: the payload's length before compression, u32 little endian |
//! | 4 | if encrypted: the key id, u32 little endian |
//! | 24 | if encrypted: the writer's subkey salt (16 bytes) and nonce counter (8, little endian) |
//!
//! then the payload: compressed (an LZ4 block) if flagged, then encrypted (ciphertext and
//! its 16-byte tag) if flagged. A plain codec's sealed value has codec id `0`. Plain values
//! stay in format 2, so that older versions of typedkv keep reading them during a rolling
//! upgrade.
//!
//! Format 1 (9 bytes: format 2 without the fingerprint) is still read, as a value without a
//! fingerprint: values written before fingerprints existed keep their meaning.
//!
//! Bincode bytes are not self-describing, so without this header a value written by another
//! codec, another version of the type or another program would decode into garbage. Codecs
//! without an envelope id (plain JSON) are stored as they are unless sealed.

mod header;

use std::borrow::Cow;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use self::header::{
    Encrypted, FLAG_ENCRYPTED, FLAG_LZ4, FORMAT, FORMAT_SEALED, FORMAT_V1, HEADER_LEN,
    HEADER_LEN_V1, Header, MAGIC, NONCE_LEN, Seal, Stamp, TAG_LEN,
};
use crate::codec::Codec;
use crate::error::{BoxError, DecodeProblem};

/// Encodes `value` with `codec`, behind a header stamped `stamp` when the codec has an
/// envelope id.
///
/// Hidden from the docs: for typedkv's testkit and benchmark, which write values as a store
/// would without one. Stores encode their values themselves.
///
/// `size_hint` is the expected total length (e.g. the last value's); reserving it up front
/// avoids regrowing the buffer during encoding.
#[doc(hidden)]
pub fn encode<C: Codec, T: Serialize + ?Sized>(
    codec: &C,
    stamp: Stamp,
    value: &T,
    size_hint: usize,
) -> Result<Vec<u8>, BoxError> {
    let mut out = Vec::with_capacity(size_hint.max(HEADER_LEN + 16));
    if let Some(id) = codec.envelope_id() {
        Header::new(id, stamp).write(&mut out);
    }
    codec.encode(value, &mut out)?;
    Ok(out)
}

/// Decodes stored bytes written by [`encode`] with the same codec and stamp.
///
/// Never panics and never decodes a payload the header says is of another codec, schema
/// version or layout. A value without a layout fingerprint, or a stamp without one, is
/// checked by schema version only. Compressed values are decompressed (with the
/// `compression` feature); an encrypted one is `NoKeyring` here: the stores read those.
#[doc(hidden)]
pub fn decode<C: Codec, T: DeserializeOwned>(
    codec: &C,
    stamp: Stamp,
    bytes: &[u8],
) -> Result<T, (DecodeProblem, Option<BoxError>)> {
    let limit = codec.decode_limit();
    decode_with(codec, stamp, bytes, false, |header, _, body| {
        unsealed(header, Cow::Borrowed(body), limit)
    })
}

/// [`decode`] for a store that seals values: `open` undoes what was done to the payload of a
/// value with a header (given the header, its bytes and the body; see `at_rest`), and with
/// `requires_encryption` a value without one is refused.
pub(crate) fn decode_with<'b, C: Codec, T: DeserializeOwned>(
    codec: &C,
    stamp: Stamp,
    bytes: &'b [u8],
    requires_encryption: bool,
    open: impl FnOnce(&Header, &'b [u8], &'b [u8]) -> Result<Cow<'b, [u8]>, DecodeProblem>,
) -> Result<T, (DecodeProblem, Option<BoxError>)> {
    let payload = payload(codec, stamp, bytes, requires_encryption, open).map_err(|p| (p, None))?;
    if payload.len() > codec.decode_limit() {
        return Err((
            DecodeProblem::TooLarge {
                len: payload.len(),
                limit: codec.decode_limit(),
            },
            None,
        ));
    }
    codec
        .decode(&payload)
        .map_err(|e| (DecodeProblem::InvalidPayload, Some(e)))
}

/// The codec's payload in `bytes`, after checking the header against the store's codec and
/// stamp, and opening what was sealed.
fn payload<'b, C: Codec>(
    codec: &C,
    stamp: Stamp,
    bytes: &'b [u8],
    requires_encryption: bool,
    open: impl FnOnce(&Header, &'b [u8], &'b [u8]) -> Result<Cow<'b, [u8]>, DecodeProblem>,
) -> Result<Cow<'b, [u8]>, DecodeProblem> {
    let parsed = Header::parse(bytes);
    let expected = match (codec.envelope_id(), &parsed) {
        (Some(id), _) => id,
        // A plain codec's value without a header is its payload as it is.
        (None, Err(_)) if requires_encryption => return Err(DecodeProblem::NotEncrypted),
        (None, Err(_)) => return Ok(Cow::Borrowed(bytes)),
        // A plain codec's value behind a header: sealed (format 3, codec 0), or a binary
        // codec's value, reported as such rather than as "invalid JSON".
        (None, Ok(_)) => 0,
    };
    let (header, body) = parsed?;
    if header.codec != expected {
        return Err(DecodeProblem::CodecMismatch {
            found: header.codec,
            expected,
        });
    }
    let header_bytes = &bytes[..bytes.len() - body.len()];
    let payload = open(&header, header_bytes, body)?;
    if header.stamp.schema != stamp.schema {
        return Err(DecodeProblem::SchemaMismatch {
            found: header.stamp.schema,
            expected: stamp.schema,
        });
    }
    if let (Some(found), Some(expected)) = (header.stamp.layout, stamp.layout)
        && found != expected
    {
        return Err(DecodeProblem::LayoutMismatch { found, expected });
    }
    Ok(payload)
}

/// What a reader without a keyring makes of a value's body: an encrypted one is refused,
/// naming its key; a compressed one is decompressed.
pub(crate) fn unsealed<'b>(
    header: &Header,
    body: Cow<'b, [u8]>,
    limit: usize,
) -> Result<Cow<'b, [u8]>, DecodeProblem> {
    match &header.seal.encrypted {
        Some(how) => Err(no_keyring(how)),
        None => decompressed(header, body, limit),
    }
}

/// Why an encrypted value cannot be read without a keyring, or by a build without the
/// `encryption` feature.
pub(crate) fn no_keyring(how: &Encrypted) -> DecodeProblem {
    #[cfg(feature = "encryption")]
    {
        DecodeProblem::NoKeyring { key_id: how.key_id }
    }
    #[cfg(not(feature = "encryption"))]
    {
        let _ = how;
        DecodeProblem::FeatureMissing {
            feature: "encryption",
        }
    }
}

/// `payload` (decrypted, if it was encrypted), decompressed if its header says it was
/// compressed: an LZ4 block that claims its length in the header, of which at most `limit`
/// bytes are allocated (a longer claim is refused before anything is), and that must
/// decompress to exactly its claim.
pub(crate) fn decompressed<'b>(
    header: &Header,
    payload: Cow<'b, [u8]>,
    limit: usize,
) -> Result<Cow<'b, [u8]>, DecodeProblem> {
    let Some(len) = header.seal.compressed else {
        return Ok(payload);
    };
    #[cfg(feature = "compression")]
    {
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if len > limit {
            return Err(DecodeProblem::TooLarge { len, limit });
        }
        let mut out = vec![0u8; len];
        match lz4_flex::block::decompress_into(&payload, &mut out) {
            Ok(written) if written == len => Ok(Cow::Owned(out)),
            _ => Err(DecodeProblem::InvalidCompression),
        }
    }
    #[cfg(not(feature = "compression"))]
    {
        let _ = (len, payload, limit);
        Err(DecodeProblem::FeatureMissing {
            feature: "compression",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Bincode;
    use crate::layout::Layout;

    fn enveloped(value: &str, schema: u32) -> Vec<u8> {
        encode(&Bincode::new(), Stamp::new(schema), value, 0).unwrap_or_default()
    }

    #[test]
    fn round_trip_through_header() {
        let bytes = enveloped("hi", 3);
        assert_eq!(&bytes[..3], &MAGIC);
        assert_eq!(
            decode::<_, String>(&Bincode::new(), Stamp::new(3), &bytes).ok(),
            Some("hi".into())
        );
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let bytes = enveloped("hello world", 1);
        for cut in 0..bytes.len() {
            assert!(
                decode::<_, String>(&Bincode::new(), Stamp::new(1), &bytes[..cut]).is_err(),
                "{cut}"
            );
        }
    }

    #[test]
    fn names_the_problem() {
        let codec = Bincode::new();
        let check = |bytes: &[u8], want: DecodeProblem| {
            let got = decode::<_, String>(&codec, Stamp::new(1), bytes)
                .err()
                .map(|e| e.0);
            assert_eq!(got, Some(want), "{bytes:?}");
        };
        check(b"plain text", DecodeProblem::NotEnveloped);
        check(&[], DecodeProblem::NotEnveloped);
        check(&MAGIC[..2], DecodeProblem::TruncatedHeader { len: 2 });
        check(
            &enveloped("x", 1)[..7],
            DecodeProblem::TruncatedHeader { len: 7 },
        );
        check(
            &enveloped("x", 1)[..16],
            DecodeProblem::TruncatedHeader { len: 16 },
        );
        check(
            &enveloped("x", 2),
            DecodeProblem::SchemaMismatch {
                found: 2,
                expected: 1,
            },
        );
        let mut other_codec = enveloped("x", 1);
        other_codec[4] = 200;
        check(
            &other_codec,
            DecodeProblem::CodecMismatch {
                found: 200,
                expected: 1,
            },
        );
        let layout = |t: u64| Layout::from_bits(t);
        let mut other_layout = Vec::new();
        Header::new(1, Stamp::new(1).with_layout(layout(7))).write(&mut other_layout);
        let mut payload = Vec::new();
        let _ = Bincode::new().encode("x", &mut payload);
        other_layout.extend_from_slice(&payload);
        let want_layout = Stamp::new(1).with_layout(layout(8));
        let got = decode::<_, String>(&codec, want_layout, &other_layout).err();
        assert_eq!(
            got.map(|e| e.0),
            layout(7)
                .zip(layout(8))
                .map(|(found, expected)| { DecodeProblem::LayoutMismatch { found, expected } })
        );
        // Without a fingerprint on either side, the schema version decides.
        assert!(decode::<_, String>(&codec, Stamp::new(1), &other_layout).is_ok());
        let mut newer = enveloped("x", 1);
        newer[3] = 9;
        check(&newer, DecodeProblem::UnknownEnvelope { found: 9 });
        let limited = Bincode::new().with_decode_limit(4);
        let got = decode::<_, String>(&limited, Stamp::new(1), &enveloped("too long", 1))
            .err()
            .map(|e| e.0);
        assert_eq!(got, Some(DecodeProblem::TooLarge { len: 9, limit: 4 }));
    }

    /// Values written before fingerprints (format 1, 9-byte header) still read.
    #[test]
    fn format_1_values_still_read() {
        let mut v1 = vec![0xC1, b'T', b'K', 1, 1, 3, 0, 0, 0];
        let _ = Bincode::new().encode("old", &mut v1);
        let stamp = Stamp::new(3).with_layout(Layout::of::<String>());
        assert_eq!(
            decode::<_, String>(&Bincode::new(), stamp, &v1).ok(),
            Some("old".into())
        );
    }
}
