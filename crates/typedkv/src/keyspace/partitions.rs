//! The partitions of a partitioned keyspace: a fixed number of hash tags, each an equal
//! share of the cluster's slots, and which of them each id belongs to.
//!
//! The 16,384 slots are cut into `count` equal shares: slot `x` is in share
//! `x * count / 16384` (rounded down). An entity of id `id` lives in partition `p`, the
//! share of `CRC16(id) mod 16384` (CRC16 as Redis Cluster computes it, over the whole id,
//! braces included). Partition `p` has the tag `namespace#s`, for the smallest
//! `s = 0, 1, 2, ...` whose slot is in share `p`: so the partitions spread over the masters
//! as evenly as the masters' slots do, whatever the namespace. Both rules are part of the data
//! layout: another program finds an entity's key with them, and changing the count moves
//! every key.

use super::slots::{SLOTS, crc16, slot_of};

/// Most partitions a store can have: each is one slot, and queries visit all of them.
pub const MAX_PARTITIONS: u16 = 1024;

/// A keyspace's partitions: each one's key prefix, `{namespace#s}:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Partitions {
    prefixes: Vec<String>,
}

impl Partitions {
    /// The `count` partitions of `namespace` (`1..=MAX_PARTITIONS`, checked by the caller).
    pub(crate) fn new(namespace: &str, count: u16) -> Self {
        let prefixes = (0..usize::from(count))
            .map(|p| {
                // Each share holds 16 slots or more, so a tag turns up within a few thousand
                // tries; the bound only keeps a mistake from looping.
                let tag = (0..u32::MAX)
                    .map(|s| format!("{namespace}#{s}"))
                    .find(|tag| share(slot_of(tag.as_bytes()), count) == p)
                    .unwrap_or_else(|| format!("{namespace}#p{p}"));
                format!("{{{tag}}}:")
            })
            .collect();
        Partitions { prefixes }
    }

    /// How many partitions there are.
    pub(crate) fn count(&self) -> usize {
        self.prefixes.len()
    }

    /// The partition of the entity `id`: the share its own slot falls in (CRC16's high
    /// bits: its low bits are skewed for ids that count up).
    pub(crate) fn of(&self, id: &str) -> usize {
        let count = self.prefixes.len() as u16;
        share(crc16(id.as_bytes()) % SLOTS, count)
    }

    /// The key prefix of partition `p`, `{namespace#s}:`.
    pub(crate) fn prefix(&self, p: usize) -> &str {
        &self.prefixes[p]
    }

    /// The id of `key`, if `key` is a key of these partitions: `{namespace#s}:id` with the
    /// tag of `id`'s own partition (a key written in another partition is nobody's).
    pub(crate) fn id_of<'k>(&self, key: &'k str) -> Option<&'k str> {
        let (_, id) = key.split_once("}:")?;
        let prefix = self.prefixes.get(self.of(id))?;
        key.strip_prefix(prefix.as_str())
            .filter(|&rest| rest == id && !id.is_empty())
    }
}

/// Which of `count` equal shares of the slots `slot` is in.
fn share(slot: u16, count: u16) -> usize {
    (u32::from(slot) * u32::from(count) / u32::from(SLOTS)) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_take_equal_shares_of_the_slots() {
        for count in [1, 3, 16, 64, 1024] {
            let partitions = Partitions::new("user", count);
            for p in 0..partitions.count() {
                let prefix = partitions.prefix(p);
                let slot = u32::from(slot_of(prefix.as_bytes()));
                let count = u32::from(count);
                assert_eq!(slot * count / u32::from(SLOTS), p as u32, "{prefix}");
                assert!(prefix.starts_with("{user#") && prefix.ends_with("}:"));
            }
        }
    }

    #[test]
    fn the_layout_is_fixed() {
        // Data written by one version is found by the next: these never change.
        let partitions = Partitions::new("user", 16);
        let prefixes: Vec<&str> = (0..3).map(|p| partitions.prefix(p)).collect();
        assert_eq!(prefixes, ["{user#0}:", "{user#62}:", "{user#22}:"]);
        // CRC16("42") = 57152: slot 8000, in share 8000 x 16 / 16384 = 7.
        assert_eq!((crc16(b"42"), partitions.of("42")), (57152, 7));
    }

    #[test]
    fn ids_come_back_only_from_their_own_partition() {
        let partitions = Partitions::new("user", 16);
        for id in ["1", "a}:b", "{x}", "}:", "ünï"] {
            let p = partitions.of(id);
            let key = format!("{}{id}", partitions.prefix(p));
            assert_eq!(partitions.id_of(&key), Some(id), "{key}");
            let elsewhere = format!("{}{id}", partitions.prefix((p + 1) % 16));
            assert_eq!(partitions.id_of(&elsewhere), None, "{elsewhere}");
        }
        assert_eq!(partitions.id_of(partitions.prefix(0)), None);
        assert_eq!(partitions.id_of("user:1"), None);
    }
}
