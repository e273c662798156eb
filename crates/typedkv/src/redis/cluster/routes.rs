//! Batches on a cluster: one pipeline per master.
//!
//! redis-rs sends a `Pipeline` on a cluster connection to one slot only, and concurrent
//! commands are for keys all over the slots, so a batch is split by the node that owns each
//! command's slot, as `CLUSTER SLOTS` last said (redis-rs keeps its own slot map private).
//! Each part goes out with `route_pipeline`, routed by its first command's slot, so redis-rs'
//! map and retries choose the node. A command answered `MOVED`, `ASK`, `TRYAGAIN` or
//! `CLUSTERDOWN` was not carried out: its caller sends it again alone (which follows the
//! redirect), and the owners are learned again (at most every 100 ms). A wrong or missing map
//! costs speed only (a part per slot, or redirected commands), never an answer.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use ::redis::cluster_async::ClusterConnection;
use ::redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use ::redis::{Arg, Cmd, ServerErrorKind, Value};
use futures::future::join_all;

use super::slots::slot_ranges;
use crate::redis::batching::{BatchConnection, Call, Sent};

/// Slots of a Redis Cluster.
const SLOTS: usize = 16_384;
/// The owner of a slot no node claimed.
const NOBODY: u16 = u16::MAX;
/// While slots move (a failover, resharding), redirects come in bursts: learn the owners
/// again at most this often.
const RELEARN_AFTER: Duration = Duration::from_millis(100);

/// Which node owns each slot, as the batches last learned it (`CLUSTER SLOTS`).
#[derive(Default)]
pub(crate) struct SlotOwners {
    /// The owner (a node number) of each of the 16,384 slots, and when they were learned.
    owners: Mutex<Option<(Arc<Vec<u16>>, Instant)>>,
    /// A command was redirected: learn the owners again before the next batch.
    stale: AtomicBool,
}

/// The slot of `key`: CRC16 (XMODEM) of its hash tag (the text between the first `{` and the
/// next `}`, if not empty) or of the whole key, modulo 16,384.
pub(crate) fn slot_of(key: &[u8]) -> u16 {
    let tagged = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            let close = rest.iter().position(|&b| b == b'}')?;
            (close > 0).then(|| &rest[..close])
        })
        .unwrap_or(key);
    let mut crc: u16 = 0;
    for &byte in tagged {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc % SLOTS as u16
}

/// The slot of a single-key command (`GET key`, `SET key ...`).
fn slot_of_command(cmd: &Cmd) -> u16 {
    match cmd.args_iter().nth(1) {
        Some(Arg::Simple(key)) => slot_of(key),
        _ => 0,
    }
}

/// The owner of every slot, from a `CLUSTER SLOTS` reply: node numbers in order of first
/// appearance (`NOBODY` where no range covers a slot); `None` if the reply has another shape.
fn owners_of(reply: &Value) -> Option<Vec<u16>> {
    let mut owners = vec![NOBODY; SLOTS];
    let mut nodes: HashMap<(String, u16), u16> = HashMap::new();
    for range in slot_ranges(reply)? {
        let next = u16::try_from(nodes.len()).ok()?;
        let node = *nodes.entry(range.master).or_insert(next);
        for owner in owners.get_mut(usize::from(range.start)..=usize::from(range.end))? {
            *owner = node;
        }
    }
    Some(owners)
}

/// The owners `routes` knows, learned again (with `CLUSTER SLOTS`) if it knows none, or a
/// redirect made them stale and they are older than [`RELEARN_AFTER`]; `None` if they
/// cannot be learned now.
async fn owners(conn: &mut ClusterConnection, routes: &SlotOwners) -> Option<Arc<Vec<u16>>> {
    let known = routes
        .owners
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    if let Some((owners, learned_at)) = known {
        let stale = routes.stale.load(Ordering::Relaxed);
        if !stale || learned_at.elapsed() < RELEARN_AFTER {
            return Some(owners);
        }
    }
    routes.stale.store(false, Ordering::Relaxed);
    let mut slots = ::redis::cmd("CLUSTER");
    slots.arg("SLOTS");
    let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::RandomPrimary);
    let learned = match conn.route_command(slots, routing).await {
        Ok(reply) => owners_of(&reply).map(Arc::new),
        Err(_) => None,
    };
    let mut owners = routes.owners.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(learned) = &learned {
        *owners = Some((Arc::clone(learned), Instant::now()));
    }
    learned.or_else(|| owners.as_ref().map(|(owners, _)| Arc::clone(owners)))
}

/// Whether a command answered `error` was not carried out because its slot is elsewhere or
/// moving.
fn redirected(error: &::redis::ServerError) -> bool {
    matches!(
        error.kind(),
        Some(
            ServerErrorKind::Moved
                | ServerErrorKind::Ask
                | ServerErrorKind::TryAgain
                | ServerErrorKind::ClusterDown
        )
    )
}

impl BatchConnection for ClusterConnection {
    type Routes = SlotOwners;

    /// Every call as its own command: `MGET`/`MSET` need all keys in one slot.
    async fn send_batch(&mut self, calls: Vec<Call>, routes: &SlotOwners) -> Vec<Sent> {
        let cmds: Vec<Cmd> = calls.into_iter().map(Call::into_cmd).collect();
        let owners = owners(self, routes).await;
        // Commands by owner (or, for a slot nobody is known to own, by slot), in order.
        let mut parts: HashMap<u32, Vec<usize>> = HashMap::new();
        let slots: Vec<u16> = cmds.iter().map(slot_of_command).collect();
        for (n, &slot) in slots.iter().enumerate() {
            let owner = owners
                .as_ref()
                .and_then(|owners| owners.get(usize::from(slot)))
                .filter(|&&owner| owner != NOBODY);
            let part = match owner {
                Some(&owner) => u32::from(owner),
                None => SLOTS as u32 + u32::from(slot),
            };
            parts.entry(part).or_default().push(n);
        }
        let mut cmds: Vec<Option<Cmd>> = cmds.into_iter().map(Some).collect();
        let sends = parts.into_values().map(|members| {
            let mut pipe = ::redis::pipe();
            for &n in &members {
                if let Some(cmd) = cmds[n].take() {
                    pipe.add_command(cmd);
                }
            }
            let route = Route::new(slots[members[0]], SlotAddr::Master);
            let mut conn = self.clone();
            async move {
                let count = members.len();
                let routing = SingleNodeRoutingInfo::SpecificNode(route);
                // A clone: the commands go back to their callers if they must be sent alone.
                let result = conn.route_pipeline(pipe.clone(), 0, count, routing).await;
                (members, pipe, result)
            }
        });
        let mut sent: Vec<Option<Sent>> = (0..slots.len()).map(|_| None).collect();
        for (members, pipe, result) in join_all(sends).await {
            let count = members.len();
            let commands = pipe.cmd_iter();
            match result {
                Ok(replies) if replies.len() == count => {
                    for ((n, reply), cmd) in members.into_iter().zip(replies).zip(commands) {
                        sent[n] = Some(match reply {
                            Value::ServerError(error) if redirected(&error) => {
                                routes.stale.store(true, Ordering::Relaxed);
                                Sent::Alone(cmd.clone())
                            }
                            reply => Sent::Reply(reply),
                        });
                    }
                }
                Ok(replies) => {
                    let reason =
                        format!("a batch of {count} commands got {} replies", replies.len());
                    for n in members {
                        sent[n] = Some(Sent::Garbled(reason.clone()));
                    }
                }
                Err(error) => {
                    for (n, cmd) in members.into_iter().zip(commands) {
                        sent[n] = Some(Sent::Failed(error.clone(), cmd.clone()));
                    }
                }
            }
        }
        sent.into_iter()
            .map(|sent| {
                sent.unwrap_or_else(|| Sent::Garbled("a command of a batch was lost".into()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::redis::cluster_routing::Slot;

    #[test]
    fn slots_are_redis_rs_slots() {
        let keys: [&[u8]; 8] = [
            b"",
            b"user:1",
            b"{user}:1",
            b"{user}:2",
            b"a{}b",
            b"a{b",
            b"x{tag}y{other}",
            "ünï:🦀".as_bytes(),
        ];
        for key in keys {
            assert_eq!(Slot::new(slot_of(key)), Some(Slot::for_key(key)), "{key:?}");
        }
        assert_eq!(slot_of(b"{user}:1"), slot_of(b"{user}:2"));
    }

    #[test]
    fn owners_come_from_cluster_slots() {
        let node = |port: i64| {
            Value::Array(vec![
                Value::BulkString(b"127.0.0.1".to_vec()),
                Value::Int(port),
            ])
        };
        let range =
            |start, end, port| Value::Array(vec![Value::Int(start), Value::Int(end), node(port)]);
        let reply = Value::Array(vec![
            range(0, 5460, 7000),
            range(5461, 10922, 7001),
            range(10923, 16383, 7000),
        ]);
        let owners = owners_of(&reply).unwrap();
        assert_eq!((owners[0], owners[5461], owners[16383]), (0, 1, 0));
        assert_eq!(owners_of(&Value::Nil), None);
        let beyond = Value::Array(vec![range(0, 20000, 7000)]);
        assert_eq!(owners_of(&beyond), None);
    }
}
