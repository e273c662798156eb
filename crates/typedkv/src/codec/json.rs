//! Plain JSON, readable by any Redis client in any language.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Codec, DEFAULT_DECODE_LIMIT};
use crate::error::BoxError;

/// Values stored as plain JSON text (serde_json), with no envelope header, so other programs
/// can read and write them. (Feature `json`.)
///
/// A value is the `serde_json` text of `T` (struct fields by name, enums externally tagged:
/// `"Reader"`, `{"Admin":{"level":3}}`), stored as a Redis string at `namespace:id` (or
/// `{namespace}:id` with a hash tag), with plain Redis expiries. Any client reads it with
/// `GET` and writes it with `SET`, and the store decodes what they write (tested with
/// `redis-cli` in `tests/redis/interop.rs`).
///
/// Because there is no header, a JSON store cannot tell schema versions or type layouts
/// apart ([`schema_version`](crate::StoreBuilder::schema_version) is not recorded, and
/// [`migrate_from`](crate::StoreBuilder::migrate_from) is refused at `build`): a value written
/// by an older shape of the type is decoded by serde_json's rules, with no check by typedkv:
///
/// - a field added to the type and missing from the stored value fails with `missing field`,
///   **except an `Option` field, which silently reads as `None`**, and a field with
///   `#[serde(default)]`, which reads as its default;
/// - a field removed from the type is ignored in stored values (unless the type has
///   `#[serde(deny_unknown_fields)]`); a renamed field is a removed one plus an added one
///   (`#[serde(alias = "old")]` reads both);
/// - a field whose type changed fails with `invalid type` when the stored JSON does not fit
///   (text where a number is expected), and reads when it does (`u32` to `u64`);
/// - an enum variant removed from the type fails on values that name it.
///
/// Bytes that are not JSON, or not the expected type, are a decode error.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct WithOption {
        name: String,
        email: Option<String>,
    }

    #[derive(serde::Deserialize, Debug)]
    struct WithRequired {
        #[allow(dead_code)]
        email: String,
    }

    /// What the codec's docs say a changed type does with older JSON values.
    #[test]
    fn older_values_read_by_serde_json_rules() -> Result<(), BoxError> {
        let old = br#"{"name":"alice","removed":1}"#;
        let read: WithOption = Json::new().decode(old)?;
        assert_eq!(
            read,
            WithOption {
                name: "alice".into(),
                email: None
            }
        );
        let err = Json::new().decode::<WithRequired>(old).err();
        assert!(
            err.is_some_and(|e| e.to_string().contains("missing field")),
            "a missing required field must fail"
        );
        Ok(())
    }
}
