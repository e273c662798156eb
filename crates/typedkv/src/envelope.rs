//! The header in front of binary payloads, and the one place values are encoded and decoded.
//!
//! Layout (format 1), 9 bytes, then the codec's payload:
//!
//! | offset | size | content |
//! |---|---|---|
//! | 0 | 3 | magic `C1 54 4B` (`0xC1` never starts UTF-8 text, then `TK`) |
//! | 3 | 1 | envelope format, `1` |
//! | 4 | 1 | codec id ([`Codec::envelope_id`]) |
//! | 5 | 4 | schema version, u32 little endian |
//!
//! Bincode bytes are not self-describing, so without this header a value written by another
//! codec, another version of the type or another program would decode into garbage. Codecs
//! without an envelope id (plain JSON) are stored as they are.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec::Codec;
use crate::error::{BoxError, DecodeProblem};

/// First bytes of every enveloped value.
pub const MAGIC: [u8; 3] = [0xC1, b'T', b'K'];
/// The envelope layout this version writes.
pub const FORMAT: u8 = 1;
/// Length of the format-1 header.
pub const HEADER_LEN: usize = 9;

/// What a stored header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Codec id.
    pub codec: u8,
    /// Schema version of the stored type.
    pub schema: u32,
}

impl Header {
    /// Reads the header at the start of `bytes`; returns it and the payload after it.
    pub fn parse(bytes: &[u8]) -> Result<(Header, &[u8]), DecodeProblem> {
        if !bytes.starts_with(&MAGIC) {
            // A prefix of the magic that ends early is a truncated header, not foreign bytes.
            return Err(if !bytes.is_empty() && MAGIC.starts_with(bytes) {
                DecodeProblem::TruncatedHeader { len: bytes.len() }
            } else {
                DecodeProblem::NotEnveloped
            });
        }
        match bytes.get(3) {
            Some(&FORMAT) => {}
            Some(&found) => return Err(DecodeProblem::UnknownEnvelope { found }),
            None => return Err(DecodeProblem::TruncatedHeader { len: bytes.len() }),
        }
        match (bytes.get(4), bytes.get(5..HEADER_LEN)) {
            (Some(&codec), Some(schema)) => {
                let mut le = [0u8; 4];
                le.copy_from_slice(schema);
                let header = Header {
                    codec,
                    schema: u32::from_le_bytes(le),
                };
                Ok((header, &bytes[HEADER_LEN..]))
            }
            _ => Err(DecodeProblem::TruncatedHeader { len: bytes.len() }),
        }
    }

    /// Appends the header to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&MAGIC);
        out.push(FORMAT);
        out.push(self.codec);
        out.extend_from_slice(&self.schema.to_le_bytes());
    }
}

/// Encodes `value` with `codec`, behind a header when the codec has an envelope id.
///
/// `size_hint` is the expected total length (e.g. the last value's); reserving it up front
/// avoids regrowing the buffer during encoding.
pub fn encode<C: Codec, T: Serialize + ?Sized>(
    codec: &C,
    schema: u32,
    value: &T,
    size_hint: usize,
) -> Result<Vec<u8>, BoxError> {
    let mut out = Vec::with_capacity(size_hint.max(HEADER_LEN + 16));
    if let Some(id) = codec.envelope_id() {
        Header { codec: id, schema }.write(&mut out);
    }
    codec.encode(value, &mut out)?;
    Ok(out)
}

/// Decodes stored bytes written by [`encode`] with the same codec and schema version.
///
/// Never panics and never decodes a payload the header says is of another codec or schema.
pub fn decode<C: Codec, T: DeserializeOwned>(
    codec: &C,
    schema: u32,
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
            if header.schema != schema {
                return Err((
                    DecodeProblem::SchemaMismatch {
                        found: header.schema,
                        expected: schema,
                    },
                    None,
                ));
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
        encode(&Bincode::new(), schema, value, 0).unwrap_or_default()
    }

    #[test]
    fn round_trip_through_header() {
        let bytes = enveloped("hi", 3);
        assert_eq!(&bytes[..3], &MAGIC);
        assert_eq!(
            decode::<_, String>(&Bincode::new(), 3, &bytes).ok(),
            Some("hi".into())
        );
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let bytes = enveloped("hello world", 1);
        for cut in 0..bytes.len() {
            assert!(
                decode::<_, String>(&Bincode::new(), 1, &bytes[..cut]).is_err(),
                "{cut}"
            );
        }
    }

    #[test]
    fn names_the_problem() {
        let codec = Bincode::new();
        let check = |bytes: &[u8], want: DecodeProblem| {
            let got = decode::<_, String>(&codec, 1, bytes).err().map(|e| e.0);
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
        let mut newer = enveloped("x", 1);
        newer[3] = 9;
        check(&newer, DecodeProblem::UnknownEnvelope { found: 9 });
        let limited = Bincode::new().with_decode_limit(4);
        let got = decode::<_, String>(&limited, 1, &enveloped("too long", 1))
            .err()
            .map(|e| e.0);
        assert_eq!(got, Some(DecodeProblem::TooLarge { len: 9, limit: 4 }));
    }
}
