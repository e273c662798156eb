//! Plain JSON, readable by any Redis client in any language.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Codec, DEFAULT_DECODE_LIMIT};
use crate::error::BoxError;

/// Values stored as plain JSON text (serde_json), with no envelope header, so other programs
/// can read and write them. (Feature `json`.)
///
/// Because there is no header, a JSON store cannot tell schema versions apart: a value of an
/// older shape is decoded by serde's usual rules (missing fields fail unless
/// `#[serde(default)]`). Bytes that are not JSON, or not the expected type, are a decode error.
///
/// ```
/// use typedkv::codec::{Codec, Json};
///
/// let mut bytes = Vec::new();
/// Json::new().encode(&serde_json::json!({"name": "Alice"}), &mut bytes)?;
/// assert_eq!(bytes, br#"{"name":"Alice"}"#);
/// # Ok::<(), typedkv::BoxError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Json {
    decode_limit: usize,
}

impl Json {
    /// The codec with the default decode limit (64 MiB).
    pub const fn new() -> Self {
        Json {
            decode_limit: DEFAULT_DECODE_LIMIT,
        }
    }

    /// Refuse to decode stored payloads longer than `bytes`.
    pub const fn with_decode_limit(mut self, bytes: usize) -> Self {
        self.decode_limit = bytes;
        self
    }
}

impl Default for Json {
    fn default() -> Self {
        Self::new()
    }
}

impl Codec for Json {
    fn name(&self) -> &'static str {
        "json"
    }

    fn envelope_id(&self) -> Option<u8> {
        None
    }

    fn decode_limit(&self) -> usize {
        self.decode_limit
    }

    fn encode<T: Serialize + ?Sized>(&self, value: &T, out: &mut Vec<u8>) -> Result<(), BoxError> {
        serde_json::to_writer(out, value)?;
        Ok(())
    }

    fn decode<T: DeserializeOwned>(&self, payload: &[u8]) -> Result<T, BoxError> {
        // from_slice already rejects trailing non-whitespace.
        Ok(serde_json::from_slice(payload)?)
    }
}
