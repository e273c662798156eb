//! The header in front of binary payloads, and the one place values are encoded and decoded.
//!
//! Layout (format 2, written since typedkv records type layouts), 17 bytes, then the codec's
//! payload:
//!
//! | offset | size | content |
//! |---|---|---|
//! | 0 | 3 | magic `C1 54 4B` (`0xC1` never starts UTF-8 text, then `TK`) |
//! | 3 | 1 | envelope format, `2` |
//! | 4 | 1 | codec id ([`Codec::envelope_id`]) |
//! | 5 | 4 | schema version, u32 little endian |
//! | 9 | 8 | [layout fingerprint](crate::layout) of the type that wrote it, u64 little endian; `0`: none |
//!
//! Format 1 (9 bytes: the same without the fingerprint) is still read, as a value without a
//! fingerprint: values written before fingerprints existed keep their meaning.
//!
//! Bincode bytes are not self-describing, so without this header a value written by another
//! codec, another version of the type or another program would decode into garbage. Codecs
//! without an envelope id (plain JSON) are stored as they are.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec::Codec;
use crate::error::{BoxError, DecodeProblem};
use crate::layout::Layout;

/// First bytes of every enveloped value.
pub const MAGIC: [u8; 3] = [0xC1, b'T', b'K'];
/// The envelope layout this version writes.
pub const FORMAT: u8 = 2;
/// Length of the header this version writes (format 2).
pub const HEADER_LEN: usize = 17;
/// The first envelope layout, still read: no layout fingerprint.
pub const FORMAT_V1: u8 = 1;
/// Length of a format-1 header.
pub const HEADER_LEN_V1: usize = 9;

/// What a store writes into the header of every value, and requires of every value it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// The store's schema version.
    pub schema: u32,
    /// The layout fingerprint of the store's type, if it could be traced.
    pub layout: Option<Layout>,
}

impl Stamp {
    /// A stamp of `schema` without a layout fingerprint: values written with it carry none,
    /// and reading with it checks the schema version only.
    pub const fn new(schema: u32) -> Self {
        Stamp {
            schema,
            layout: None,
        }
    }

    /// The same stamp with `layout`.
    pub const fn with_layout(mut self, layout: Option<Layout>) -> Self {
        self.layout = layout;
        self
    }
}

/// What a stored header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Codec id.
    pub codec: u8,
    /// Schema version and layout fingerprint (`None` in format 1, or when the writer's type
    /// had none).
    pub stamp: Stamp,
}

impl Header {
    /// Reads the header at the start of `bytes` (format 1 or 2); returns it and the payload
    /// after it.
    pub fn parse(bytes: &[u8]) -> Result<(Header, &[u8]), DecodeProblem> {
        if !bytes.starts_with(&MAGIC) {
            // A prefix of the magic that ends early is a truncated header, not foreign bytes.
            return Err(if !bytes.is_empty() && MAGIC.starts_with(bytes) {
                DecodeProblem::TruncatedHeader { len: bytes.len() }
            } else {
                DecodeProblem::NotEnveloped
            });
        }
        // One fixed-size read of the whole header: this runs on every decode.
        let (header, payload, layout) = match bytes.get(3) {
            Some(&FORMAT) => match bytes.split_first_chunk::<HEADER_LEN>() {
                Some((header, payload)) => {
                    let bits = u64::from_le_bytes([
                        header[9], header[10], header[11], header[12], header[13], header[14],
                        header[15], header[16],
                    ]);
                    (&header[..], payload, Layout::from_bits(bits))
                }
                None => return Err(DecodeProblem::TruncatedHeader { len: bytes.len() }),
            },
            Some(&FORMAT_V1) => match bytes.split_first_chunk::<HEADER_LEN_V1>() {
                Some((header, payload)) => (&header[..], payload, None),
                None => return Err(DecodeProblem::TruncatedHeader { len: bytes.len() }),
            },
            Some(&found) => return Err(DecodeProblem::UnknownEnvelope { found }),
            None => return Err(DecodeProblem::TruncatedHeader { len: bytes.len() }),
        };
        let schema = u32::from_le_bytes([header[5], header[6], header[7], header[8]]);
        let header = Header {
            codec: header[4],
            stamp: Stamp { schema, layout },
        };
        Ok((header, payload))
    }

    /// Appends the header (format 2) to `out`, in one write.
    pub fn write(&self, out: &mut Vec<u8>) {
        let mut header = [0u8; HEADER_LEN];
        header[..3].copy_from_slice(&MAGIC);
        header[3] = FORMAT;
        header[4] = self.codec;
        header[5..9].copy_from_slice(&self.stamp.schema.to_le_bytes());
        let layout = self.stamp.layout.map_or(0, Layout::to_bits);
        header[9..].copy_from_slice(&layout.to_le_bytes());
        out.extend_from_slice(&header);
    }
}
/// Encodes `value` with `codec`, behind a header stamped `stamp` when the codec has an
/// envelope id.
///
/// `size_hint` is the expected total length (e.g. the last value's); reserving it up front
/// avoids regrowing the buffer during encoding.
pub fn encode<C: Codec, T: Serialize + ?Sized>(
    codec: &C,
    stamp: Stamp,
    value: &T,
    size_hint: usize,
) -> Result<Vec<u8>, BoxError> {
    let mut out = Vec::with_capacity(size_hint.max(HEADER_LEN + 16));
    if let Some(id) = codec.envelope_id() {
        Header { codec: id, stamp }.write(&mut out);
    }
    codec.encode(value, &mut out)?;
    Ok(out)
}

/// Decodes stored bytes written by [`encode`] with the same codec and stamp.
///
/// Never panics and never decodes a payload the header says is of another codec, schema
/// version or layout. A value without a layout fingerprint, or a stamp without one, is
/// checked by schema version only.
pub fn decode<C: Codec, T: DeserializeOwned>(
    codec: &C,
    stamp: Stamp,
    bytes: &[u8],
) -> Result<T, (DecodeProblem, Option<BoxError>)> {
    let payload = match codec.envelope_id() {
        Some(expected) => {
            let (header, payload) = Header::parse(bytes).map_err(|p| (p, None))?;
            if header.codec != expected {
                return Err((
                    DecodeProblem::CodecMismatch {
                        found: header.codec,
                        expected,
                    },
                    None,
                ));
            }
            if header.stamp.schema != stamp.schema {
                return Err((
                    DecodeProblem::SchemaMismatch {
                        found: header.stamp.schema,
                        expected: stamp.schema,
                    },
                    None,
                ));
            }
            if let (Some(found), Some(expected)) = (header.stamp.layout, stamp.layout)
                && found != expected
            {
                return Err((DecodeProblem::LayoutMismatch { found, expected }, None));
            }
            payload
        }
        None => {
            // A plain codec given an enveloped binary value: say so rather than "invalid JSON".
            if let Ok((header, _)) = Header::parse(bytes) {
                return Err((
                    DecodeProblem::CodecMismatch {
                        found: header.codec,
                        expected: 0,
                    },
                    None,
                ));
            }
            bytes
        }
    };
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
        .decode(payload)
        .map_err(|e| (DecodeProblem::InvalidPayload, Some(e)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Bincode;

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
        Header {
            codec: 1,
            stamp: Stamp::new(1).with_layout(layout(7)),
        }
        .write(&mut other_layout);
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
