//! Batching of plain single-key commands (`GET`, `SET`, `UNLINK`, `EXISTS`, `PTTL`, and
//! unguarded indexed `set`s), on unless
//! `RedisPoolBuilder::batching(false)`: up to [`MAX_DIRECT`](queue::MAX_DIRECT)
//! concurrent calls go out alone; beyond that, the calls that arrive queue and go out
//! together, at most [`MAX_IN_FLIGHT`](queue::MAX_IN_FLIGHT) batches at a time, until the
//! queue is empty and no batch is in flight.
//!
//! - **A lone call goes out at once** on its caller's task: with no batch in flight, the
//!   last batch sent alone small ([`HOLD_BATCH`](queue::HOLD_BATCH)) and a lone slot free,
//!   it claims the slot (one compare-and-swap) and sends its command, with no hand-off.
//! - **A queued call costs one message** on the pool's channel (`queue.rs`); a dispatcher
//!   task drains the channel into a batch whenever a batch slot frees, and sends and polls
//!   its batches itself (a task per batch measured 10-15% slower at 64 tasks). Batches are
//!   never sent by a caller, so a caller whose future is dropped never
//!   strands the others; a queued call whose caller left is left out of its batch.
//! - **One command per kind**: on one server a batch is one pipeline holding one `MGET` for
//!   its `GET`s and one `MSET` for its plain `SET`s (no condition, no expiry; a lone one goes
//!   as `GET`/`SET`), one `EVALSHA` per store for its indexed writes (each applied on its
//!   own: see `indexes/apply.lua`), and the other commands as they are (`calls.rs`); on a
//!   cluster, one pipeline per master holding that for each slot (`cluster/routes.rs`): a
//!   hash-tagged store's batch is one `MGET`. Redis reads, parses and answers a whole batch
//!   at once, and the client parses one reply array instead of one reply per call.
//! - **Each call keeps its own outcome**: its own reply or error (a `GET` of a key holding
//!   another Redis type is `WRONGTYPE`, as alone: a nil of the `MGET` is checked with
//!   `TYPE`), and its own deadline: no call has a timer of its own, but the dispatcher and
//!   each batch sleep until the earliest deadline of the calls they hold and answer
//!   those whose time is up.
//! - The queue needs no bound of its own: each queued call belongs to a caller waiting for
//!   it, as a call sent alone waits in the connection's queue.

mod calls;
mod queue;

pub(crate) use calls::{BatchConnection, Call, Plain, Sent};
#[cfg(feature = "cluster")]
pub(crate) use calls::{Group, TypeCheck, answer, answered, unanswered};
pub(crate) use queue::{Batcher, Dispatch, Queued, Slot, expire, sleep_until};
