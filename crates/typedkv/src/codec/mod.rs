//! Codecs turn values into the bytes stored in Redis and back.
//!
//! A store has exactly one codec, chosen on its builder ([`Bincode`] by default). Binary codecs
//! are wrapped in a small [envelope](crate::envelope) so that bytes written by another codec,
//! another schema version or another program are detected instead of decoded into garbage;
//! self-describing text codecs ([`Json`]) are stored plain so any client can read them.

mod bincode;
#[cfg(feature = "json")]
mod json;
mod owned_strings;

pub use self::bincode::{Bincode, DECODED_SIZE_CEILING};
#[cfg(feature = "json")]
pub use self::json::Json;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::BoxError;

/// Default [`Codec::decode_limit`]: payloads above 64 MiB are refused without being decoded.
pub const DEFAULT_DECODE_LIMIT: usize = 64 * 1024 * 1024;

/// A serde data format used by a store.
///
/// Implement it to plug in another format. `encode` appends to `out` (which may already hold
/// the envelope header and has capacity reserved for the expected size); `decode` must reject
/// payloads it does not consume completely.
pub trait Codec: Clone + Send + Sync + std::fmt::Debug + 'static {
    /// A short name for errors and logs, e.g. `"bincode"`.
    fn name(&self) -> &'static str;

    /// The id written into the envelope header, or `None` for a self-describing format that is
    /// stored plain (no header, so no codec or schema-version check on read).
    ///
    /// Ids 1–127 are reserved for typedkv's own codecs; use 128–255 for your own.
    fn envelope_id(&self) -> Option<u8>;

    /// The largest payload [`decode`](Codec::decode) will be given; longer stored values fail
    /// with [`DecodeProblem::TooLarge`](crate::DecodeProblem::TooLarge) before any decoding.
    fn decode_limit(&self) -> usize {
        DEFAULT_DECODE_LIMIT
    }

    /// Serializes `value`, appending to `out`.
    fn encode<T: Serialize + ?Sized>(&self, value: &T, out: &mut Vec<u8>) -> Result<(), BoxError>;

    /// Deserializes a whole payload. Trailing bytes are an error.
    fn decode<T: DeserializeOwned>(&self, payload: &[u8]) -> Result<T, BoxError>;
}

/// Codec ids of the built-in codecs, as written in envelope headers.
pub mod ids {
    /// [`Bincode`](super::Bincode), standard configuration (varint, little endian).
    pub const BINCODE: u8 = 1;
}
