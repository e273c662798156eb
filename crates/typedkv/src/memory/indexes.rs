//! Indexes in process: each index a sorted map of members, entity records inside their
//! entries; the same steps, in the same order, as the Redis script `redis/indexes/apply.lua`
//! (guards, expired members, unique claims, then the writes), under the map's lock.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;

use tokio::time::Instant;

use super::{Map, MemoryBackend, deadline};
use crate::backend::{Applied, IndexSpace, IndexedOp, Lex, StaleMember, member_id};
use crate::backend::{Bytes, WriteExpiry};
use crate::index::{IndexKind, Order};
use crate::version::Version;

/// One index: its members with their entity's expiry, and the members by expiry.
#[derive(Default)]
pub(super) struct MemoryIndex {
    members: BTreeMap<Bytes, Option<Instant>>,
    expiries: BTreeSet<(Instant, Bytes)>,
}

impl MemoryIndex {
    fn insert(&mut self, member: Bytes, expires_at: Option<Instant>) {
        self.remove(&member);
        if let Some(at) = expires_at {
            self.expiries.insert((at, member.clone()));
        }
        self.members.insert(member, expires_at);
    }

    fn remove(&mut self, member: &[u8]) {
        if let Some(Some(at)) = self.members.remove(member) {
            self.expiries.remove(&(at, member.to_vec()));
        }
    }

    /// Removes the members of entities expired by `now`.
    fn purge(&mut self, now: Instant) {
        while let Some((at, _)) = self.expiries.first()
            && *at <= now
        {
            if let Some((_, member)) = self.expiries.pop_first() {
                self.members.remove(&member);
            }
        }
    }

    /// The members between `lo` and `hi` (empty when the bounds leave nothing between them,
    /// where `BTreeMap::range` would panic).
    fn range<'a>(
        &'a self,
        lo: &'a Lex,
        hi: &'a Lex,
    ) -> Box<dyn DoubleEndedIterator<Item = &'a Bytes> + 'a> {
        if matches!(lo, Lex::Max) || matches!(hi, Lex::Min) || !ordered(lo, hi) {
            return Box::new(std::iter::empty());
        }
        Box::new(
            self.members
                .range::<[u8], _>((lo.as_bound(), hi.as_bound()))
                .map(|(member, _)| member),
        )
    }
}

/// Whether some bytes can lie between `lo` and `hi`.
fn ordered(lo: &Lex, hi: &Lex) -> bool {
    match (lo.as_bound(), hi.as_bound()) {
        (Bound::Included(a), Bound::Included(b)) => a <= b,
        (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) => a < b,
        _ => true,
    }
}

impl Map {
    fn index(&mut self, members_key: &str) -> &mut MemoryIndex {
        self.indexes.entry(members_key.to_owned()).or_default()
    }

    /// Whether an op of the batch rewrites `key` without `member` of index `i` (so its
    /// holder gives it up in the same step).
    fn gives_up(ops: &[IndexedOp], key: &str, i: usize, member: &[u8]) -> bool {
        ops.iter()
            .filter(|op| op.key == key)
            .any(|op| op.value.is_none() || !op.members[i].iter().any(|m| m == member))
    }

    pub(super) fn apply(&mut self, space: &IndexSpace, ops: &[IndexedOp], now: Instant) -> Applied {
        // 1. Guards.
        for (o, op) in ops.iter().enumerate() {
            let current = self.live(&op.key, now).map(|e| e.bytes.as_slice());
            if !op.guard.matches(current) {
                let found = current.map(<[u8]>::to_vec);
                return Applied::Unmet { op: o, found };
            }
        }
        // 2. Expired members leave.
        for keys in &space.indexes {
            self.index(&keys.members).purge(now);
        }
        // 3. Unique claims.
        let mut claimed: HashMap<(usize, Bytes), &str> = HashMap::new();
        for (o, op) in ops.iter().enumerate().filter(|(_, op)| op.value.is_some()) {
            let id = op.key.get(space.entity_prefix.len()..).unwrap_or_default();
            for (i, keys) in space.indexes.iter().enumerate() {
                if keys.kind != IndexKind::Unique {
                    continue;
                }
                for member in &op.members[i] {
                    let prefix = member[..member.len().saturating_sub(id.len())].to_vec();
                    let taken = || Applied::Taken {
                        op: o,
                        key: op.key.clone(),
                        index: i,
                        value: prefix.clone(),
                    };
                    if claimed
                        .insert((i, prefix.clone()), id)
                        .is_some_and(|by| by != id)
                    {
                        return taken();
                    }
                    let (lo, hi) = crate::backend::prefix_range(&prefix);
                    let holders: Vec<Bytes> =
                        self.index(&keys.members).range(&lo, &hi).cloned().collect();
                    for held in holders {
                        let Some(holder) = member_id(keys.kind, &held).map(str::to_owned) else {
                            continue;
                        };
                        if holder == id {
                            continue;
                        }
                        let key = format!("{}{holder}", space.entity_prefix);
                        match self.live(&key, now).map(|e| e.bytes.clone()) {
                            // A leftover of an entity that is gone: it frees the value.
                            None => self.index(&keys.members).remove(&held),
                            Some(_) if Self::gives_up(ops, &key, i, &held) => {}
                            // Whether its value still gives the member, the typed layer
                            // decides.
                            Some(found) => {
                                return Applied::Held {
                                    op: o,
                                    key: op.key.clone(),
                                    index: i,
                                    value: prefix,
                                    member: held,
                                    holder: key,
                                    found,
                                };
                            }
                        }
                    }
                }
            }
        }
        // 4. The writes.
        let mut existed = 0;
        for op in ops {
            let current = self.live(&op.key, now);
            let kept = current.and_then(|e| e.expires_at);
            let old = current.map(|e| e.record.clone()).unwrap_or_default();
            for (name, member) in old {
                if let Some((_, keys)) = space.find(&name) {
                    self.index(&keys.members).remove(&member);
                }
            }
            let Some(bytes) = op.value.clone() else {
                existed += u64::from(self.entries.remove(&op.key).is_some_and(|e| e.alive(now)));
                continue;
            };
            let expires_at = match op.expiry {
                WriteExpiry::Never => None,
                WriteExpiry::After(ttl) => deadline(ttl, now),
                WriteExpiry::Keep => kept,
            };
            let mut record = Vec::new();
            for (keys, members) in space.indexes.iter().zip(&op.members) {
                for member in members.iter().cloned() {
                    self.index(&keys.members).insert(member.clone(), expires_at);
                    record.push((keys.name.clone(), member));
                }
            }
            self.insert(op.key.clone(), bytes, expires_at, now);
            if let Some(entry) = self.entries.get_mut(&op.key) {
                entry.record = record;
            }
        }
        Applied::Done { existed }
    }
}

impl Map {
    /// Removes each of `stale` (of index `keys`) whose entity still holds what was seen, with
    /// its record entry (the whole record goes with an entity that is gone); how many.
    fn forget(&mut self, space: &IndexSpace, i: usize, stale: &[StaleMember], now: Instant) -> u64 {
        let keys = &space.indexes[i];
        let mut removed = 0;
        for stale in stale {
            let key = format!("{}{}", space.entity_prefix, stale.id);
            let current = self.live(&key, now).map(|e| e.bytes.as_slice());
            let unchanged = match &stale.seen {
                None => current.is_none(),
                Some(version) => current.is_some_and(|have| *version == Version::of(have)),
            };
            if !unchanged {
                continue;
            }
            // Records live in their entities' entries: an absent entity has none left.
            if let Some(entry) = self.entries.get_mut(&key) {
                entry
                    .record
                    .retain(|(name, m)| *name != keys.name || *m != stale.member);
            }
            self.index(&keys.members).remove(&stale.member);
            removed += 1;
        }
        removed
    }
}

impl MemoryBackend {
    pub(super) fn index_forget_now(
        &self,
        space: &IndexSpace,
        index: usize,
        stale: &[StaleMember],
    ) -> u64 {
        if index >= space.indexes.len() {
            return 0;
        }
        self.lock().forget(space, index, stale, Instant::now())
    }

    pub(super) fn apply_indexed_now(&self, space: &IndexSpace, ops: &[IndexedOp]) -> Applied {
        self.lock().apply(space, ops, Instant::now())
    }

    pub(super) fn index_members_now(
        &self,
        space: &IndexSpace,
        index: usize,
        (lo, hi): (&Lex, &Lex),
        order: Order,
        limit: usize,
    ) -> Vec<Bytes> {
        let Some(keys) = space.indexes.get(index) else {
            return Vec::new();
        };
        let mut map = self.lock();
        let index = map.index(&keys.members);
        index.purge(Instant::now());
        let range = index.range(lo, hi);
        match order {
            Order::Ascending => range.take(limit).cloned().collect(),
            Order::Descending => range.rev().take(limit).cloned().collect(),
        }
    }

    pub(super) fn index_count_now(
        &self,
        space: &IndexSpace,
        index: usize,
        (lo, hi): (&Lex, &Lex),
    ) -> u64 {
        let Some(keys) = space.indexes.get(index) else {
            return 0;
        };
        let mut map = self.lock();
        let index = map.index(&keys.members);
        index.purge(Instant::now());
        index.range(lo, hi).count() as u64
    }
}
