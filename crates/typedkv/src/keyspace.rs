//! How a store's ids become Redis keys: `namespace:id`, or `{namespace}:id` with a hash tag.
//!
//! The namespace is explicit and validated (never derived from a type name: renaming a type
//! must not orphan its data). Ids are arbitrary non-empty strings up to [`MAX_ID_LEN`] bytes;
//! `:`, `*`, spaces, newlines and any unicode are fine because the id is the tail of the key
//! and Redis keys are binary-safe.

use crate::error::{Error, Result};

/// Longest accepted namespace, in bytes.
pub const MAX_NAMESPACE_LEN: usize = 128;

/// Longest accepted id, in bytes. Longer ids are refused with [`Error::InvalidId`] instead of
/// creating multi-megabyte keys by accident.
pub const MAX_ID_LEN: usize = 4096;

/// The key layout of one store: a validated namespace and the `namespace:` prefix (or
/// `{namespace}:` when [hash-tagged](Keyspace::hash_tagged)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyspace {
    namespace: String,
    prefix: String,
}

impl Keyspace {
    /// Validates `namespace` and builds the keyspace.
    ///
    /// A namespace is 1 to [`MAX_NAMESPACE_LEN`] bytes of ASCII letters, digits and `_ - . /`.
    /// Everything else is refused: `:` is the separator, glob characters (`* ? [ ] \`) would
    /// make SCAN patterns of one namespace match another, `{ }` are Redis Cluster hash-tag
    /// syntax, and whitespace or control characters are always a mistake.
    pub fn new(namespace: &str) -> Result<Self> {
        let refuse = |reason| Error::InvalidNamespace {
            namespace: namespace.chars().take(MAX_NAMESPACE_LEN).collect(),
            reason,
        };
        if namespace.is_empty() {
            return Err(refuse("it is empty"));
        }
        if namespace.len() > MAX_NAMESPACE_LEN {
            return Err(refuse("it is longer than 128 bytes"));
        }
        if namespace.contains(':') {
            return Err(refuse("':' is the namespace/id separator"));
        }
        if !namespace
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/'))
        {
            return Err(refuse("only ASCII letters, digits and _ - . / are allowed"));
        }
        Ok(Keyspace {
            namespace: namespace.to_owned(),
            prefix: format!("{namespace}:"),
        })
    }

    /// Like [`Keyspace::new`], with keys `{namespace}:id`: Redis Cluster hashes only the part
    /// in braces, so every key of the namespace lands in one slot (one master). Multi-key
    /// operations are then atomic across the whole namespace, and that master carries all of
    /// its load and memory.
    pub fn hash_tagged(namespace: &str) -> Result<Self> {
        let mut keyspace = Keyspace::new(namespace)?;
        keyspace.prefix = format!("{{{namespace}}}:");
        Ok(keyspace)
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// `namespace:` (or `{namespace}:`), the prefix of every key of this keyspace.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The key for `id`: `namespace:id` (or `{namespace}:id`).
    pub fn key(&self, id: &str) -> Result<String> {
        if id.is_empty() {
            return Err(self.invalid_id("the id is empty"));
        }
        if id.len() > MAX_ID_LEN {
            return Err(self.invalid_id("the id is longer than MAX_ID_LEN (4096 bytes)"));
        }
        let mut key = String::with_capacity(self.prefix.len() + id.len());
        key.push_str(&self.prefix);
        key.push_str(id);
        Ok(key)
    }

    /// Keys for many ids, in order.
    pub fn keys<'a>(&self, ids: impl IntoIterator<Item = &'a str>) -> Result<Vec<String>> {
        ids.into_iter().map(|id| self.key(id)).collect()
    }

    /// The keys of index `name`: its members and their expiries,
    /// `namespace#ix:name` and `namespace#ix:name#exp` (with `{namespace}` when hash-tagged).
    /// `#` is no namespace character, so no store's `namespace:` prefix covers them.
    pub(crate) fn index_keys(&self, name: &str) -> (String, String) {
        let members = format!("{}#ix:{name}", self.base());
        let expiries = format!("{members}#exp");
        (members, expiries)
    }

    /// The prefix of entity records: `namespace#rec:` (`{namespace}#rec:` when hash-tagged).
    pub(crate) fn record_prefix(&self) -> String {
        format!("{}#rec:", self.base())
    }

    /// The prefix without its `:`: `namespace` or `{namespace}`.
    fn base(&self) -> &str {
        self.prefix.strip_suffix(':').unwrap_or(&self.prefix)
    }

    /// The id part of a key of this keyspace, or `None` if the key belongs elsewhere.
    pub fn id_of<'k>(&self, key: &'k str) -> Option<&'k str> {
        key.strip_prefix(&self.prefix).filter(|id| !id.is_empty())
    }

    fn invalid_id(&self, reason: &'static str) -> Error {
        Error::InvalidId {
            namespace: self.namespace.clone(),
            reason,
        }
    }
}

/// A key as text for errors and logs: as it is when it is UTF-8, with its other bytes
/// escaped (`\xff`) when it is not, so two different keys never read the same.
pub(crate) fn key_text(key: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(key) {
        Ok(text) => text.into(),
        Err(_) => key.escape_ascii().to_string().into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_namespaces() {
        for ns in ["user", "user_v2", "a-b.c/d", "X9"] {
            assert!(Keyspace::new(ns).is_ok(), "{ns}");
        }
    }

    #[test]
    fn refuses_separator_globs_tags_and_whitespace() {
        for ns in [
            "", "a:b", "a*", "a?", "a[b]", "a\\b", "{user}", "a b", "a\nb", "ü",
        ] {
            assert!(
                matches!(Keyspace::new(ns), Err(Error::InvalidNamespace { .. })),
                "{ns:?}"
            );
        }
        assert!(Keyspace::new(&"a".repeat(129)).is_err());
        assert!(Keyspace::new(&"a".repeat(128)).is_ok());
    }

    #[test]
    fn keys_are_namespace_colon_id() -> Result<()> {
        let ks = Keyspace::new("user")?;
        assert_eq!(ks.key("42")?, "user:42");
        assert_eq!(ks.key("a:b*c d")?, "user:a:b*c d");
        assert_eq!(ks.id_of("user:a:b"), Some("a:b"));
        assert_eq!(ks.id_of("users:1"), None);
        assert_eq!(ks.id_of("user:"), None);
        Ok(())
    }

    #[test]
    fn refuses_empty_and_oversized_ids() -> Result<()> {
        let ks = Keyspace::new("user")?;
        assert!(matches!(ks.key(""), Err(Error::InvalidId { .. })));
        assert!(ks.key(&"x".repeat(MAX_ID_LEN)).is_ok());
        assert!(matches!(
            ks.key(&"x".repeat(MAX_ID_LEN + 1)),
            Err(Error::InvalidId { .. })
        ));
        Ok(())
    }
}
