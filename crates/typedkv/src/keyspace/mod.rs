//! How a store's ids become Redis keys: `namespace:id`, `{namespace}:id` with a hash tag, or
//! `{namespace#s}:id` in a partitioned store (`partitions.rs`).
//!
//! The namespace is explicit and validated (never derived from a type name: renaming a type
//! must not orphan its data). Ids are arbitrary non-empty strings up to [`MAX_ID_LEN`] bytes;
//! `:`, `*`, spaces, newlines and any unicode are fine because the id is the tail of the key
//! and Redis keys are binary-safe.

mod partitions;
pub(crate) mod slots;

pub use self::partitions::MAX_PARTITIONS;
use self::partitions::Partitions;
use crate::error::{Error, Result};

/// Longest accepted namespace, in bytes.
pub const MAX_NAMESPACE_LEN: usize = 128;

/// Longest accepted id, in bytes. Longer ids are refused with [`Error::InvalidId`] instead of
/// creating multi-megabyte keys by accident.
pub const MAX_ID_LEN: usize = 4096;

/// The key layout of one store: a validated namespace and the `namespace:` prefix (or
/// `{namespace}:` when [hash-tagged](Keyspace::hash_tagged), or one prefix per partition
/// when [partitioned](Keyspace::partitioned)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyspace {
    namespace: String,
    /// What every key starts with: `namespace:`, `{namespace}:` or `{namespace#`.
    prefix: String,
    partitions: Option<Partitions>,
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
            partitions: None,
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

    /// Like [`Keyspace::new`], spread over `count` partitions (1 to [`MAX_PARTITIONS`]),
    /// each its own hash tag: the key of `id` is `{namespace#s}:id`, where `s` names the
    /// partition of `id`. The 16,384 slots are cut into `count` equal shares (slot `x` is in
    /// share `x * count / 16384`); partition `p` holds the ids whose own slot (CRC16 of the
    /// whole id, as Redis Cluster computes it, modulo 16,384) is in share `p`, and its tag
    /// `namespace#s` has the smallest `s` whose slot is in share `p` too, so the partitions
    /// spread over a cluster's masters as their slots do. Each partition is one slot: the
    /// keys of one entity (value, index entries, record) change atomically, and the store
    /// spreads over the cluster. Changing `count` moves every key.
    ///
    /// ```
    /// # fn main() -> typedkv::Result<()> {
    /// let keyspace = typedkv::Keyspace::partitioned("user", 16)?;
    /// let key = keyspace.key("42")?;
    /// assert!(key.starts_with("{user#") && key.ends_with("}:42"));
    /// assert_eq!(keyspace.id_of(&key), Some("42"));
    /// # Ok(()) }
    /// ```
    pub fn partitioned(namespace: &str, count: u16) -> Result<Self> {
        if !(1..=MAX_PARTITIONS).contains(&count) {
            return Err(Error::config(format!(
                "a store has 1 to {MAX_PARTITIONS} partitions, not {count}"
            )));
        }
        let mut keyspace = Keyspace::new(namespace)?;
        keyspace.prefix = format!("{{{namespace}#");
        keyspace.partitions = Some(Partitions::new(namespace, count));
        Ok(keyspace)
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// What every key of this keyspace starts with: `namespace:`, `{namespace}:`, or
    /// `{namespace#` when partitioned. No other namespace's keys start with it.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// How many partitions the keyspace has: 1 unless [partitioned](Keyspace::partitioned).
    pub fn partitions(&self) -> usize {
        self.partitions.as_ref().map_or(1, Partitions::count)
    }

    /// Whether every key carries a hash tag (hash-tagged or partitioned), so that the keys
    /// of one entity, or of one partition, share a Redis Cluster slot.
    pub(crate) fn tagged(&self) -> bool {
        self.prefix.starts_with('{')
    }

    /// The partition of the entity `id` (0 unless partitioned).
    pub(crate) fn partition_of(&self, id: &str) -> usize {
        self.partitions.as_ref().map_or(0, |p| p.of(id))
    }

    /// The prefix of the entity keys of partition `p`: the keyspace's prefix unless
    /// partitioned.
    pub(crate) fn entity_prefix(&self, p: usize) -> &str {
        self.partitions
            .as_ref()
            .map_or(&self.prefix, |parts| parts.prefix(p))
    }

    /// The key for `id`: `namespace:id`, `{namespace}:id` or `{namespace#s}:id`.
    pub fn key(&self, id: &str) -> Result<String> {
        check_id(id).map_err(|reason| self.invalid_id(reason))?;
        let prefix = self.entity_prefix(self.partition_of(id));
        let mut key = String::with_capacity(prefix.len() + id.len());
        key.push_str(prefix);
        key.push_str(id);
        Ok(key)
    }

    /// Keys for many ids, in order.
    pub fn keys<'a>(&self, ids: impl IntoIterator<Item = &'a str>) -> Result<Vec<String>> {
        ids.into_iter().map(|id| self.key(id)).collect()
    }

    /// The keys of index `name` in partition `p`: its members and their expiries,
    /// `namespace#ix:name` and `namespace#ix:name#exp` (with `{namespace}` when hash-tagged,
    /// `{namespace#s}` when partitioned). `#` is no namespace character, so no store's
    /// `namespace:` prefix covers them.
    pub(crate) fn index_keys(&self, name: &str, p: usize) -> (String, String) {
        let members = format!("{}#ix:{name}", self.base(p));
        let expiries = format!("{members}#exp");
        (members, expiries)
    }

    /// The prefix of the entity records of partition `p`: `namespace#rec:`
    /// (`{namespace}#rec:` when hash-tagged, `{namespace#s}#rec:` when partitioned).
    pub(crate) fn record_prefix(&self, p: usize) -> String {
        format!("{}#rec:", self.base(p))
    }

    /// Whether `key`, a key under [`prefix`](Self::prefix), is one of the store's own
    /// bookkeeping keys (an entity's index record, an index) rather than an entity's. Only a
    /// partitioned keyspace has them under its prefix: `{namespace#s}#...`, its partition's
    /// tag followed by `#`, where an entity key has `:`.
    pub(crate) fn is_bookkeeping(&self, key: &[u8]) -> bool {
        let Some(rest) = self.partitions.as_ref().and(key.get(self.prefix.len()..)) else {
            return false;
        };
        let tag_end = rest.iter().position(|&b| b == b'}');
        tag_end.is_some_and(|end| rest.get(end + 1) == Some(&b'#'))
    }

    /// The prefix of partition `p`'s entity keys without its `:`: `namespace`,
    /// `{namespace}` or `{namespace#s}`.
    fn base(&self, p: usize) -> &str {
        let prefix = self.entity_prefix(p);
        prefix.strip_suffix(':').unwrap_or(prefix)
    }

    /// The id part of a key of this keyspace, or `None` if the key belongs elsewhere (in
    /// a partitioned keyspace, also a key whose tag is not its id's partition's).
    pub fn id_of<'k>(&self, key: &'k str) -> Option<&'k str> {
        match &self.partitions {
            Some(partitions) => partitions.id_of(key),
            None => key.strip_prefix(&self.prefix).filter(|id| !id.is_empty()),
        }
    }

    /// The id of `key`, a key that starts with [`prefix`](Self::prefix) (as a scan finds
    /// them), if this keyspace builds `key` from it; otherwise why not.
    pub(crate) fn scanned_id<'k>(
        &self,
        key: &'k str,
    ) -> std::result::Result<&'k str, &'static str> {
        let id = match &self.partitions {
            None => key.get(self.prefix.len()..).unwrap_or_default(),
            Some(partitions) => partitions
                .id_of(key)
                .ok_or("the key is not in the partition of its id")?,
        };
        check_id(id).map(|()| id)
    }

    fn invalid_id(&self, reason: &'static str) -> Error {
        Error::InvalidId {
            namespace: self.namespace.clone(),
            reason,
        }
    }
}

/// Why `id` is no id, if it is not.
fn check_id(id: &str) -> std::result::Result<(), &'static str> {
    if id.is_empty() {
        return Err("the id is empty");
    }
    if id.len() > MAX_ID_LEN {
        return Err("the id is longer than MAX_ID_LEN (4096 bytes)");
    }
    Ok(())
}

/// A key as text for errors and logs: as it is when it is UTF-8, with its other bytes
/// escaped (`\xff`) when it is not, so two different keys never read the same.
pub(crate) fn key_text(key: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(key) {
        Ok(text) => text.into(),
        Err(_) => key.escape_ascii().to_string().into(),
    }
}

/// `items` grouped by `group` (a partition, a cluster slot), in the groups' order: what a
/// batch over several slots sends one step per slot of.
pub(crate) fn grouped<G: Ord, I>(
    items: impl IntoIterator<Item = I>,
    group: impl Fn(&I) -> G,
) -> std::collections::BTreeMap<G, Vec<I>> {
    let mut grouped = std::collections::BTreeMap::<G, Vec<I>>::new();
    for item in items {
        grouped.entry(group(&item)).or_default().push(item);
    }
    grouped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_partitioned_bookkeeping_keys_are_told_apart() {
        let partitioned = Keyspace::partitioned("user", 4).unwrap();
        let (members, _) = partitioned.index_keys("email", 2);
        let record = format!("{}7", partitioned.record_prefix(3));
        assert!(partitioned.is_bookkeeping(members.as_bytes()));
        assert!(partitioned.is_bookkeeping(record.as_bytes()));
        for id in ["7", "a}#b", "#rec:x"] {
            let key = partitioned.key(id).unwrap();
            assert!(!partitioned.is_bookkeeping(key.as_bytes()), "{key}");
        }
        assert!(!partitioned.is_bookkeeping(b"{user#x"));
        let tagged = Keyspace::hash_tagged("user").unwrap();
        assert!(!tagged.is_bookkeeping(b"{user}:#rec:1"));
    }

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
