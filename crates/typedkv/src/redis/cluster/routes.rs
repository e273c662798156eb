//! Batches on a cluster: one pipeline per master, one `MGET`/`MSET` per slot in it.
//!
//! redis-rs sends a `Pipeline` on a cluster connection to one slot only, and concurrent
//! commands are for keys all over the slots, so a batch is split by the node that owns each
//! command's slot, as `CLUSTER SLOTS` last said (redis-rs keeps its own slot map private).
//! Each part goes out with `route_pipeline`, routed by one of its slots, so redis-rs' map and
//! retries choose the node. Inside a part, the calls of each slot are coalesced as on one
//! server (`batching/calls.rs`: one `MGET`, one `MSET`, a `TYPE` check of the `MGET`'s nils
//! on the same node). A command answered `MOVED`, `ASK`, `TRYAGAIN` (an `MGET` of a slot
//! being migrated) or `CLUSTERDOWN` was not carried out: each of its calls is sent again
//! alone by its caller (which follows the redirect), and the owners are learned again (at
//! most every 100 ms). A wrong or missing map costs speed only (a part per slot, or
//! redirected commands), never an answer.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use ::redis::cluster_async::ClusterConnection;
use ::redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use ::redis::{Arg, Cmd, Pipeline, ServerErrorKind, Value};
use futures::future::join_all;

use super::slots::slot_ranges;
use crate::keyspace::slots::slot_of;
use crate::redis::batching::{
    BatchConnection, Call, Group, Sent, TypeCheck, answer, answered, unanswered,
};

/// Slots of a Redis Cluster.
const SLOTS: usize = crate::keyspace::slots::SLOTS as usize;
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

    /// One pipeline per master, holding one [`Group`] per slot: `MGET`/`MSET` need all
    /// their keys in one slot. Keys spread by hash are mostly alone in their slot (a plain
    /// `GET`/`SET`); a hash-tagged store's keys share one, so its batch is one `MGET`.
    async fn send_batch(&mut self, calls: Vec<Call>, routes: &SlotOwners) -> Vec<Sent> {
        let owners = owners(self, routes).await;
        // Each call's part (its slot's owner or, for a slot nobody is known to own, the slot
        // itself), its slot and its position: sorted, the calls of a part, and of each slot
        // in it, are runs in call order. One sort, not a map of maps: keys spread by hash
        // are mostly alone in their slot, which cost a map entry and a list per call.
        let mut order: Vec<(u32, u16, usize)> = calls
            .iter()
            .enumerate()
            .map(|(n, call)| {
                let slot = slot_of_call(call);
                let owner = owners
                    .as_ref()
                    .and_then(|owners| owners.get(usize::from(slot)))
                    .filter(|&&owner| owner != NOBODY);
                let part = match owner {
                    Some(&owner) => u32::from(owner),
                    None => SLOTS as u32 + u32::from(slot),
                };
                (part, slot, n)
            })
            .collect();
        order.sort_unstable();
        let mut parts: Vec<Part> = order
            .chunk_by(|a, b| a.0 == b.0)
            .map(|part| {
                let mut pipe = ::redis::pipe();
                let groups = part
                    .chunk_by(|a, b| a.1 == b.1)
                    .map(|slot| {
                        let members = slot.iter().map(|&(_, _, n)| n).collect();
                        Group::add(&calls, members, &mut pipe)
                    })
                    .collect();
                Part {
                    slot: part[0].1,
                    pipe,
                    groups,
                }
            })
            .collect();
        // The parts go out together; their replies are then handed out one part after the
        // other, into one list for the whole batch.
        let replies = join_all(parts.iter_mut().map(|part| {
            let mut conn = self.clone();
            let pipe = std::mem::take(&mut part.pipe);
            let count = pipe.len();
            let route = part.route();
            async move { conn.route_pipeline(pipe, 0, count, route).await }
        }))
        .await;
        let mut sent = unanswered(calls.len());
        for (part, replies) in parts.iter().zip(replies) {
            answer(&part.groups, &calls, replies, &mut sent);
        }
        for (n, outcome) in sent.iter_mut().enumerate() {
            if let Some(Sent::Reply(Value::ServerError(error))) = outcome
                && redirected(error)
            {
                routes.stale.store(true, Ordering::Relaxed);
                *outcome = Some(Sent::Alone(Box::new(calls[n].to_cmd())));
            }
        }
        // The `TYPE`s go where the `MGET`s went; one answered with a redirect names no other
        // type, so its call keeps its nil (its slot was moving). Rare: only a batch whose
        // `MGET`s found nothing somewhere asks.
        let checks: Vec<_> = parts
            .iter()
            .filter_map(|part| Some((part, TypeCheck::of_some(&calls, part.members(), &sent)?)))
            .collect();
        if !checks.is_empty() {
            let checked = join_all(checks.into_iter().map(|(part, mut check)| {
                let mut conn = self.clone();
                let pipe = std::mem::take(&mut check.pipe);
                let route = part.route();
                async move {
                    let types = conn.route_pipeline(pipe, 0, check.len(), route).await;
                    (check, types)
                }
            }))
            .await;
            for (check, types) in checked {
                check.apply(&calls, types, &mut sent);
            }
        }
        answered(sent)
    }
}

/// The calls of a batch that go to one master: one pipeline, one [`Group`] per slot.
struct Part {
    /// One of its slots, which routes the pipeline.
    slot: u16,
    pipe: Pipeline,
    groups: Vec<Group>,
}

impl Part {
    fn route(&self) -> SingleNodeRoutingInfo {
        SingleNodeRoutingInfo::SpecificNode(Route::new(self.slot, SlotAddr::Master))
    }

    /// Its calls, as positions in the batch.
    fn members(&self) -> impl Iterator<Item = usize> + '_ {
        self.groups.iter().flat_map(Group::members)
    }
}

/// The slot of a call's key.
fn slot_of_call(call: &Call) -> u16 {
    match call {
        Call::Get(key) | Call::Set(key, _) => slot_of(key),
        Call::Cmd(cmd) => slot_of_command(cmd),
        Call::Apply(write) => slot_of(write.op.key.as_bytes()),
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
