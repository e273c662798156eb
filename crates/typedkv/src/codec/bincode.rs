//! The default codec: bincode 2.0.1 through its serde API.

use bincode::config::Configuration;
use bincode::enc::write::Writer;
use bincode::error::EncodeError;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::owned_strings::Owned;
use super::{Codec, DEFAULT_DECODE_LIMIT, ids};
use crate::error::BoxError;

/// The largest [decode limit](Bincode::with_decode_limit) a [`Bincode`] codec accepts (1 GiB).
///
/// Within that limit, nothing a payload claims can allocate more than the payload holds:
/// strings and byte buffers are copied out of the payload after their length is checked
/// against it, and serde caps what sequences and maps reserve up front.
pub const DECODED_SIZE_CEILING: usize = 1 << 30;

/// The stored format. Changing any part of it would make existing data unreadable: never do.
///
/// No bincode claim limit: it is only consulted by bincode's own owned `String`/`Vec<u8>`
/// decoding, which [`Owned`] replaces with the payload-bounded copy, and it cost every
/// decode ~10 ns of bookkeeping.
const FORMAT: Configuration = bincode::config::standard();

/// Compact binary encoding with [bincode](https://docs.rs/bincode/2.0.1) 2.0.1 (standard
/// configuration: varint integers, little endian). The default codec.
///
/// Fast and small, but not self-describing: it cannot read data written with a different
/// field layout, and serde attributes that need a self-describing format
/// (`#[serde(flatten)]`, `untagged` enums, `skip_serializing_if`) fail or misbehave. The
/// in-memory store runs the same codec, so unit tests catch those before production does.
///
/// ```
/// use typedkv::codec::{Bincode, Codec};
///
/// let codec = Bincode::new().with_decode_limit(1 << 20);
/// let mut bytes = Vec::new();
/// codec.encode(&("alice", 42u32), &mut bytes)?;
/// let back: (String, u32) = codec.decode(&bytes)?;
/// assert_eq!(back, ("alice".to_owned(), 42));
/// # Ok::<(), typedkv::BoxError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bincode {
    decode_limit: usize,
}

impl Bincode {
    /// The codec with the default decode limit ([`DEFAULT_DECODE_LIMIT`], 64 MiB).
    pub const fn new() -> Self {
        Bincode {
            decode_limit: DEFAULT_DECODE_LIMIT,
        }
    }

    /// Refuse to decode stored payloads longer than `bytes` (clamped to
    /// [`DECODED_SIZE_CEILING`]). No decoded string or byte buffer can be longer than this.
    pub const fn with_decode_limit(mut self, bytes: usize) -> Self {
        self.decode_limit = if bytes < DECODED_SIZE_CEILING {
            bytes
        } else {
            DECODED_SIZE_CEILING
        };
        self
    }
}

impl Default for Bincode {
    fn default() -> Self {
        Self::new()
    }
}

/// Appends to a `Vec` whose capacity the caller reserved, so encoding does not regrow it.
struct VecWriter<'a>(&'a mut Vec<u8>);

impl Writer for VecWriter<'_> {
    #[inline]
    fn write(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        self.0.extend_from_slice(bytes);
        Ok(())
    }
}

impl Codec for Bincode {
    fn name(&self) -> &'static str {
        "bincode"
    }

    fn envelope_id(&self) -> Option<u8> {
        Some(ids::BINCODE)
    }

    fn decode_limit(&self) -> usize {
        self.decode_limit
    }

    fn encode<T: Serialize + ?Sized>(&self, value: &T, out: &mut Vec<u8>) -> Result<(), BoxError> {
        bincode::serde::encode_into_writer(value, VecWriter(out), FORMAT)?;
        Ok(())
    }

    fn decode<T: DeserializeOwned>(&self, payload: &[u8]) -> Result<T, BoxError> {
        let (value, used) = bincode::serde::seed_decode_from_slice(Owned::new(), payload, FORMAT)?;
        // bincode stops at the end of the value; anything after it means the bytes were not
        // written as this type (or were corrupted), so accepting them would return garbage.
        if used != payload.len() {
            return Err(format!(
                "{} trailing bytes after the value (payload is {} bytes)",
                payload.len() - used,
                payload.len()
            )
            .into());
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_trailing_bytes() -> Result<(), BoxError> {
        let codec = Bincode::new();
        let mut bytes = Vec::new();
        codec.encode(&vec![1u64, 2, 3], &mut bytes)?;
        assert_eq!(codec.decode::<Vec<u64>>(&bytes)?, vec![1, 2, 3]);
        bytes.push(0);
        assert!(codec.decode::<Vec<u64>>(&bytes).is_err());
        Ok(())
    }

    #[test]
    fn hostile_length_prefix_is_refused_without_allocating() {
        // Varint 0xFD = u64 follows; 2^60 as the string length.
        let mut bytes = vec![0xFD];
        bytes.extend_from_slice(&(1u64 << 60).to_le_bytes());
        let err = Bincode::new().decode::<String>(&bytes);
        assert!(err.is_err());
    }

    #[test]
    fn decode_limit_is_clamped_to_the_ceiling() {
        assert_eq!(Bincode::new().with_decode_limit(10).decode_limit(), 10);
        assert_eq!(
            Bincode::new().with_decode_limit(usize::MAX).decode_limit(),
            DECODED_SIZE_CEILING
        );
    }
}
