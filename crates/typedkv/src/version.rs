//! Versions for optimistic concurrency across requests.

use std::fmt;
use std::str::FromStr;

/// The version of a stored value: the SHA-1 digest (40 hex digits) of its stored bytes, as
/// Redis' `redis.sha1hex` computes it.
///
/// Because it is derived from the value itself, it needs no second key that could drift, and
/// works for every codec (plain JSON included). Its meaning is that of an HTTP ETag: a
/// [`Store::set_if_version`](crate::Store::set_if_version) succeeds while the stored bytes
/// are the ones the version was taken from, even if they were changed and changed back.
/// It displays and parses as the hex digest, so it can travel in a response and come back.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Version(String);

impl Version {
    /// The version of `bytes` as stored.
    pub fn of(bytes: &[u8]) -> Version {
        Version(sha1_smol::Sha1::from(bytes).hexdigest())
    }

    /// The digest, 40 lowercase hex digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Version {
    type Err = ParseVersionError;

    /// Parses a version from its 40-hex-digit form (as [`Display`](fmt::Display) writes it),
    /// e.g. from an HTTP `If-Match` header.
    fn from_str(text: &str) -> Result<Version, ParseVersionError> {
        if text.len() == 40 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(Version(text.to_ascii_lowercase()))
        } else {
            Err(ParseVersionError { len: text.len() })
        }
    }
}

/// Text that is not a [`Version`] (40 hex digits): what a client sent, not a configuration
/// mistake. The text itself is not repeated (it comes from outside).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a version: a version is 40 hex digits (a SHA-1 digest), this text has {len} bytes")]
pub struct ParseVersionError {
    len: usize,
}

/// A value with the [`Version`] it was read at; from
/// [`Store::get_versioned`](crate::Store::get_versioned).
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned<T> {
    /// The value.
    pub value: T,
    /// Its version.
    pub version: Version,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_sha1_hex_and_round_trip_through_text() -> Result<(), ParseVersionError> {
        let v = Version::of(b"abc");
        assert_eq!(v.as_str(), "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(v.to_string().parse::<Version>()?, v);
        assert_eq!(
            "A9993E364706816ABA3E25717850C26C9CD0D89D".parse::<Version>()?,
            v
        );
        assert!("not a digest".parse::<Version>().is_err());
        Ok(())
    }
}
