//! Indexed writes of a cluster store without hash tag: values spread over the cluster,
//! indexes, records and leases in one slot. Three steps (DESIGN.md, "Indexes"): `begin.lua`
//! takes a lease per entity, checks unique claims and adds the new members; `value.lua`
//! checks each guard and writes each value on its own slot; `commit.lua` settles records
//! and members by each write's outcome and releases the leases. Members are added before
//! values are written and removed after, and one entity's writes never overlap, so a query
//! (which checks answers against values) never misses nor wrongly answers an entity.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ::redis::{ScriptInvocation, Value};
use futures::future::join_all;

use super::RedisClusterPool;
use crate::backend::{Bytes, ceil_millis};
use crate::error::{Error, Result, Waited};
use crate::index::ops::{Applied, IndexSpace, IndexedOp};
use crate::redis::errors::unexpected;
use crate::redis::indexes::{BEGIN, COMMIT, VALUE, kind_arg, write_args};
use crate::redis::keys::KeyBatch;

/// Leases last this long without a response timeout; with one, four times that timeout: a
/// write is three calls after the lease is taken (the reply of `begin`, the value, the
/// commit), each given up on within the timeout, so the lease outlives the write.
const LEASE_WITHOUT_TIMEOUT: Duration = Duration::from_secs(30);

/// What became of one op's value.
enum Outcome {
    Done { existed: bool, pttl: i64 },
    Unmet(Option<Bytes>),
    Unknown(Error),
}

/// A token no other write holds: process, time and a counter.
fn token() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{}-{nanos}-{n}", std::process::id())
}

/// The index keys, then each op's record and lease keys; the index names.
fn index_args(invocation: &mut ScriptInvocation<'_>, space: &IndexSpace, ids: &[&str]) {
    for index in &space.indexes {
        invocation.key(&index.members).key(&index.expiries);
    }
    for id in ids {
        invocation
            .key(format!("{}{id}", space.record_prefix))
            .key(format!("{}{id}", space.lease_prefix));
    }
    invocation.arg(space.indexes.len());
    for index in &space.indexes {
        invocation.arg(&index.name);
    }
}

fn members_args(invocation: &mut ScriptInvocation<'_>, op: &IndexedOp) {
    for members in &op.members {
        invocation.arg(members.len());
        for member in members {
            invocation.arg(member.as_slice());
        }
    }
}

impl RedisClusterPool {
    pub(super) async fn apply_split(
        &self,
        space: &IndexSpace,
        ops: Vec<IndexedOp>,
    ) -> Result<Applied> {
        let limits = self.shared().limits();
        let lease = limits.response.map_or(LEASE_WITHOUT_TIMEOUT, |r| 4 * r);
        let ids: Vec<&str> = ops
            .iter()
            .map(|op| op.key.get(space.entity_prefix.len()..).unwrap_or_default())
            .collect();
        let keys: Vec<&str> = ops.iter().map(|op| op.key.as_str()).collect();
        let batch = KeyBatch::new(&keys);
        let token = token();

        // 1. Leases, unique claims, new members; waiting while another writer holds a lease.
        let started = Instant::now();
        let mut pause = Duration::from_millis(2);
        loop {
            let mut begin = BEGIN.prepare_invoke();
            index_args(&mut begin, space, &ids);
            for index in &space.indexes {
                begin.arg(kind_arg(index.kind));
            }
            begin
                .arg(&space.record_prefix)
                .arg(&space.lease_prefix)
                .arg(&token)
                .arg(ceil_millis(lease))
                .arg(ops.len());
            for (op, id) in ops.iter().zip(&ids) {
                begin
                    .arg(*id)
                    .arg(if op.value.is_some() { "set" } else { "del" });
                members_args(&mut begin, op);
            }
            let reply: Vec<Value> = self.shared().invoke(&batch, &begin).await?;
            let mut reply = reply.into_iter();
            match (reply.next(), reply.next(), reply.next(), reply.next()) {
                (Some(Value::Int(1)), None, _, _) => break,
                (Some(Value::Int(3)), Some(_), _, _) if started.elapsed() < lease => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
                (Some(Value::Int(3)), _, _, _) => {
                    return Err(Error::Timeout {
                        backend: limits.backend,
                        keys: crate::redis::keys::ToKeys::to_keys(&batch),
                        timeout: lease,
                        waited: Waited::UpdateTurn,
                    });
                }
                (
                    Some(Value::Int(2)),
                    Some(Value::Int(op)),
                    Some(Value::Int(index)),
                    Some(Value::BulkString(value)),
                ) => {
                    let (op, index) = (usize::try_from(op - 1), usize::try_from(index - 1));
                    if let (Ok(op), Ok(index)) = (op, index)
                        && op < ops.len()
                        && index < space.indexes.len()
                    {
                        let key = ops[op].key.clone();
                        return Ok(Applied::Taken {
                            op,
                            key,
                            index,
                            value,
                        });
                    }
                    return Err(unexpected(
                        &batch,
                        limits,
                        "the begin script named no such op".into(),
                    ));
                }
                other => {
                    return Err(unexpected(
                        &batch,
                        limits,
                        format!("the begin script answered {other:?}"),
                    ));
                }
            }
        }

        // 2. Each value on its own slot, concurrently.
        let outcomes = join_all(ops.iter().map(|op| self.write_value(op))).await;

        // 3. Records and members follow the outcomes; leases released.
        let mut commit = COMMIT.prepare_invoke();
        index_args(&mut commit, space, &ids);
        commit.arg(&token).arg(ops.len());
        for (op, outcome) in ops.iter().zip(&outcomes) {
            match outcome {
                Outcome::Done { pttl, .. } => commit.arg("done").arg(*pttl),
                Outcome::Unmet(_) => commit.arg("unmet").arg(0),
                Outcome::Unknown(_) => commit.arg("unknown").arg(0),
            };
            members_args(&mut commit, op);
        }
        let committed: Result<i64> = self.shared().invoke(&batch, &commit).await;

        let mut existed = 0;
        let mut unmet = None;
        for (n, outcome) in outcomes.into_iter().enumerate() {
            match outcome {
                Outcome::Done { existed: true, .. } => existed += 1,
                Outcome::Done { .. } => {}
                Outcome::Unmet(found) => {
                    unmet.get_or_insert(Applied::Unmet { op: n, found });
                }
                Outcome::Unknown(error) => return Err(error),
            }
        }
        committed?;
        Ok(unmet.unwrap_or(Applied::Done { existed }))
    }

    /// `value.lua` for one op.
    async fn write_value(&self, op: &IndexedOp) -> Outcome {
        let mut invocation = VALUE.key(&op.key);
        write_args(&mut invocation, op);
        let reply: Vec<Value> = match self.shared().invoke(&op.key, &invocation).await {
            Ok(reply) => reply,
            Err(error) => return Outcome::Unknown(error),
        };
        let mut reply = reply.into_iter();
        match (reply.next(), reply.next(), reply.next()) {
            (Some(Value::Int(1)), Some(Value::Int(existed)), Some(Value::Int(pttl))) => {
                Outcome::Done {
                    existed: existed == 1,
                    pttl,
                }
            }
            (Some(Value::Int(0)), Some(Value::BulkString(found)), _) => Outcome::Unmet(Some(found)),
            (Some(Value::Int(0)), None | Some(Value::Nil) | Some(Value::Boolean(false)), _) => {
                Outcome::Unmet(None)
            }
            other => Outcome::Unknown(unexpected(
                &op.key,
                self.shared().limits(),
                format!("the value script answered {other:?}"),
            )),
        }
    }
}
