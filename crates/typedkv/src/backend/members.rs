//! The byte layout of index entries ("members" of an index's sorted set).
//!
//! Every member sorts by the indexed value first and the entity's id second, so one
//! lexicographic range of the set is "every entity holding this value" or "every entity
//! between these two numbers", ties broken by id (which makes range cursors exact):
//! - equality and unique: `len(value) as u32 BE || value || id`; the length prefix keeps
//!   values of any bytes apart (`"a"` + id `"b:1"` never reads as `"ab"` + `":1"`);
//! - range: the value's 8 sortable bytes ([`RangeKey`](super::RangeKey)) `|| id`.
//!
//! Ids are UTF-8, which never contains the byte `0xFF`, so `prefix || 0xFF` is an exclusive
//! upper bound for every member starting with `prefix`.

use std::ops::Bound;

/// One end of a lexicographic range of members, as Redis `ZRANGEBYLEX` takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lex {
    /// Below every member (`-`).
    Min,
    /// Above every member (`+`).
    Max,
    /// Including this member (`[m`).
    Incl(Vec<u8>),
    /// Excluding this member (`(m`).
    Excl(Vec<u8>),
}

impl Lex {
    /// The bound as a `std` range bound over member bytes.
    pub fn as_bound(&self) -> Bound<&[u8]> {
        match self {
            Lex::Min | Lex::Max => Bound::Unbounded,
            Lex::Incl(m) => Bound::Included(m),
            Lex::Excl(m) => Bound::Excluded(m),
        }
    }
}

/// The member of an equality or unique index for `value` held by `id`.
pub(crate) fn value_member(value: &[u8], id: &str) -> Vec<u8> {
    let mut member = value_prefix(value);
    member.extend_from_slice(id.as_bytes());
    member
}

/// What every member for `value` starts with.
pub(crate) fn value_prefix(value: &[u8]) -> Vec<u8> {
    // Values longer than u32::MAX bytes cannot reach here: Redis' limit is 512 MB.
    let len = u32::try_from(value.len()).unwrap_or(u32::MAX);
    let mut prefix = Vec::with_capacity(4 + value.len() + 16);
    prefix.extend_from_slice(&len.to_be_bytes());
    prefix.extend_from_slice(value);
    prefix
}

/// The member of a range index for the sortable `value` held by `id`.
pub(crate) fn range_member(value: &[u8], id: &str) -> Vec<u8> {
    [value, id.as_bytes()].concat()
}

/// The range `[prefix, prefix || 0xFF)`: every member starting with `prefix`.
pub(crate) fn prefix_range(prefix: &[u8]) -> (Lex, Lex) {
    let mut end = prefix.to_vec();
    end.push(0xFF);
    (Lex::Incl(prefix.to_vec()), Lex::Excl(end))
}

/// The id held by a `member` whose value part is `value_len` bytes long (4 + value for
/// equality members, 8 for range members); `None` for bytes that are no member of ours.
pub(crate) fn id_of(member: &[u8], value_len: usize) -> Option<&str> {
    let id = member.get(value_len..).filter(|id| !id.is_empty())?;
    std::str::from_utf8(id).ok()
}

/// The length of the value part of an equality member (its prefix), if well formed.
pub(crate) fn equality_value_len(member: &[u8]) -> Option<usize> {
    let len: [u8; 4] = member.get(..4)?.try_into().ok()?;
    Some(4 + usize::try_from(u32::from_be_bytes(len)).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_of_any_bytes_stay_apart() {
        // "a" held by "b:1" and "ab" held by ":1" would collide without the length prefix.
        assert_ne!(value_member(b"a", "b:1"), value_member(b"ab", ":1"));
        let member = value_member(b"\xff*?[]\0", "x");
        assert_eq!(equality_value_len(&member), Some(4 + 6));
        assert_eq!(id_of(&member, 10), Some("x"));
    }

    #[test]
    fn a_prefix_range_holds_exactly_its_values_members() {
        let (lo, hi) = prefix_range(&value_prefix(b"a"));
        let inside = |m: &[u8]| {
            let lo_ok = matches!(&lo, Lex::Incl(b) if m >= b.as_slice());
            let hi_ok = matches!(&hi, Lex::Excl(b) if m < b.as_slice());
            lo_ok && hi_ok
        };
        assert!(inside(&value_member(b"a", "1")));
        assert!(inside(&value_member(b"a", "\u{10FFFF}")));
        assert!(!inside(&value_member(b"ab", "1")));
        assert!(!inside(&value_member(b"", "a1")));
    }
}
