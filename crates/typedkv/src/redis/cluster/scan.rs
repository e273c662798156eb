//! Scanning a cluster: `SCAN` on every master in turn, behind the single `u64` cursor of
//! [`Backend::scan_page`](crate::Backend::scan_page).
//!
//! Masters are visited in the order of the lowest slot each serves, and are named by that
//! slot: a command routed to a slot reaches the master serving it, and redis-rs keeps that
//! mapping current. The cursor carries the slot (plus one, so no cursor of a started scan is
//! 0) in its top 16 bits and the node's own SCAN cursor in the low 48 (a node's cursor
//! indexes its hash table, far below 2^48).
//!
//! While the cluster is stable each key is returned exactly once. During a resharding or
//! failover keys that move between masters mid-scan may be returned twice or missed (Redis'
//! own guarantee covers one node's keyspace only); the typed scan drops repeats of an id.

use std::collections::HashMap;

use ::redis::Value;
use ::redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};

use super::RedisClusterPool;
use super::slots::slot_ranges;
use crate::backend::Bytes;
use crate::error::Result;
use crate::redis::commands::scan_command;
use crate::redis::errors::unexpected;
use crate::redis::shared::Resend;

const NODE_CURSOR_BITS: u32 = 48;
const NODE_CURSOR_MASK: u64 = (1 << NODE_CURSOR_BITS) - 1;
/// Slots in a Redis Cluster.
const SLOTS: u16 = 16384;

impl RedisClusterPool {
    pub(super) async fn scan_master_page(
        &self,
        prefix: &str,
        cursor: u64,
        count: usize,
    ) -> Result<(u64, Vec<Bytes>)> {
        let (slot, node_cursor) = match cursor {
            0 => match self.master_after(None, prefix).await? {
                Some(slot) => (slot, 0),
                None => return Ok((0, Vec::new())),
            },
            cursor => decode(cursor).ok_or_else(|| {
                let reason = format!("{cursor} is not a cursor of a cluster scan");
                unexpected(&prefix, self.shared().limits(), reason)
            })?,
        };
        let (pattern, cmd) = scan_command(prefix, node_cursor, count);
        let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(Route::new(
            slot,
            SlotAddr::Master,
        )));
        let (next, keys): (u64, Vec<Bytes>) = self.shared().route(&pattern, cmd, route).await?;
        let next = match next {
            0 => match self.master_after(Some(slot), prefix).await? {
                Some(slot) => encode(slot, 0),
                None => 0,
            },
            next => encode(slot, next),
        };
        Ok((next, keys))
    }

    /// The master whose lowest slot comes next after `after` (the first master for `None`),
    /// named by that slot, from the cluster's current slot table.
    async fn master_after(&self, after: Option<u16>, prefix: &str) -> Result<Option<u16>> {
        let table: Value = self
            .shared()
            .query(&prefix, ::redis::cmd("CLUSTER").arg("SLOTS"), Resend::Safe)
            .await?;
        let firsts = lowest_slot_of_each_master(&table)
            .map_err(|reason| unexpected(&prefix, self.shared().limits(), reason))?;
        Ok(firsts
            .into_iter()
            .find(|&slot| after.is_none_or(|after| slot > after)))
    }
}

/// The lowest slot of each master of a `CLUSTER SLOTS` reply, ascending.
fn lowest_slot_of_each_master(table: &Value) -> std::result::Result<Vec<u16>, String> {
    let ranges = slot_ranges(table)
        .ok_or_else(|| "CLUSTER SLOTS answered an entry of an unknown shape".to_owned())?;
    let mut lowest: HashMap<(String, u16), u16> = HashMap::new();
    for range in ranges {
        lowest
            .entry(range.master)
            .and_modify(|slot| *slot = (*slot).min(range.start))
            .or_insert(range.start);
    }
    let mut slots: Vec<u16> = lowest.into_values().collect();
    slots.sort_unstable();
    Ok(slots)
}

fn encode(slot: u16, node_cursor: u64) -> u64 {
    (u64::from(slot) + 1) << NODE_CURSOR_BITS | (node_cursor & NODE_CURSOR_MASK)
}

/// The slot and node cursor of a cursor from [`encode`]; `None` if it cannot be one.
fn decode(cursor: u64) -> Option<(u16, u64)> {
    let slot = u16::try_from(cursor >> NODE_CURSOR_BITS)
        .ok()?
        .checked_sub(1)?;
    (slot < SLOTS).then_some((slot, cursor & NODE_CURSOR_MASK))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_never_look_finished() {
        for (slot, node) in [(0, 0), (0, 17), (5461, NODE_CURSOR_MASK), (16383, 1)] {
            let cursor = encode(slot, node);
            assert_ne!(cursor, 0);
            assert_eq!(decode(cursor), Some((slot, node)));
        }
        assert_eq!(decode(1), None);
        assert_eq!(decode(u64::MAX), None);
    }

    #[test]
    fn masters_are_ordered_by_their_lowest_slot() {
        let node = |port| {
            Value::Array(vec![
                Value::BulkString(b"127.0.0.1".to_vec()),
                Value::Int(port),
            ])
        };
        let range =
            |start, end, port| Value::Array(vec![Value::Int(start), Value::Int(end), node(port)]);
        let table = vec![
            range(10923, 16383, 7002),
            range(0, 5000, 7000),
            range(5461, 10922, 7001),
            range(5001, 5460, 7002), // a second range of 7002, below its first
        ];
        let table = Value::Array(table);
        assert_eq!(lowest_slot_of_each_master(&table), Ok(vec![0, 5001, 5461]));
    }
}
