//! The lean coalescer: the reference contender that typedkv's batching must clear.
//! Written here, in the bench, as a service would write it by hand, not in the library.
//!
//! Callers push `(key, one-shot sender)` into a channel. One dispatcher task drains whatever
//! is queued into **one `MGET`** for the reads and **one `MSET`** for the writes of a batch
//! (pipelined together when a batch has both), keeps at most [`MAX_IN_FLIGHT`] batches in
//! flight on one multiplexed connection, and hands each caller its own slot of the reply.
//! Callers decode on their own tasks. No timers, no locks, no spans: it is the floor of what
//! coalescing costs per call.

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use redis::RedisResult;
use redis::aio::MultiplexedConnection;
use tokio::sync::{mpsc, oneshot};

/// Batches in flight at once on the connection.
const MAX_IN_FLIGHT: usize = 2;
/// Most calls drained into one batch.
const MAX_BATCH: usize = 512;

/// One caller's request.
enum Request {
    Get(String, oneshot::Sender<RedisResult<Option<Vec<u8>>>>),
    Set(String, Vec<u8>, oneshot::Sender<RedisResult<()>>),
}

/// A handle on the coalescer: cheap to clone, one per task.
#[derive(Clone)]
pub(crate) struct Coalescer {
    requests: mpsc::UnboundedSender<Request>,
}

/// The error a caller gets when the dispatcher is gone (it never is while the bench runs).
fn gone() -> redis::RedisError {
    redis::RedisError::from((redis::ErrorKind::Client, "the coalescer stopped"))
}

impl Coalescer {
    /// Starts the dispatcher on `conn`; it ends when the last handle is dropped.
    pub(crate) fn start(conn: MultiplexedConnection) -> Coalescer {
        let (requests, queue) = mpsc::unbounded_channel();
        tokio::spawn(dispatch(queue, conn));
        Coalescer { requests }
    }

    /// `GET key`, in the next batch's `MGET`.
    pub(crate) async fn get(&self, key: String) -> RedisResult<Option<Vec<u8>>> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(Request::Get(key, reply))
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }

    /// `SET key value`, in the next batch's `MSET`.
    pub(crate) async fn set(&self, key: String, value: Vec<u8>) -> RedisResult<()> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(Request::Set(key, value, reply))
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

/// Drains the queue into batches while fewer than [`MAX_IN_FLIGHT`] are in flight.
async fn dispatch(mut queue: mpsc::UnboundedReceiver<Request>, conn: MultiplexedConnection) {
    let mut in_flight = FuturesUnordered::new();
    loop {
        tokio::select! {
            biased;
            Some(()) = in_flight.next(), if !in_flight.is_empty() => {}
            first = queue.recv(), if in_flight.len() < MAX_IN_FLIGHT => {
                let Some(first) = first else { break };
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match queue.try_recv() {
                        Ok(request) => batch.push(request),
                        Err(_) => break,
                    }
                }
                in_flight.push(send(conn.clone(), batch));
            }
        }
    }
    while in_flight.next().await.is_some() {}
}

/// Sends one batch: its reads as one `MGET`, its writes as one `MSET`, and answers each caller.
async fn send(mut conn: MultiplexedConnection, batch: Vec<Request>) {
    let mut mget = redis::cmd("MGET");
    let mut mset = redis::cmd("MSET");
    let mut gets = Vec::new();
    let mut sets = Vec::new();
    for request in batch {
        match request {
            Request::Get(key, reply) => {
                mget.arg(key);
                gets.push(reply);
            }
            Request::Set(key, value, reply) => {
                mset.arg(key).arg(value);
                sets.push(reply);
            }
        }
    }
    let mut pipe = redis::pipe();
    if !gets.is_empty() {
        pipe.add_command(mget);
    }
    if !sets.is_empty() {
        pipe.add_command(mset).ignore();
    }
    let values: RedisResult<Vec<Vec<Option<Vec<u8>>>>> = pipe.query_async(&mut conn).await;
    match values {
        Ok(mut replies) => {
            let values = replies.pop().unwrap_or_default();
            if values.len() != gets.len() {
                let error = redis::RedisError::from((
                    redis::ErrorKind::UnexpectedReturnType,
                    "MGET answered a different number of values",
                ));
                gets.into_iter()
                    .for_each(|reply| drop(reply.send(Err(error.clone()))));
            } else {
                for (reply, value) in gets.into_iter().zip(values) {
                    let _ = reply.send(Ok(value));
                }
            }
            for reply in sets {
                let _ = reply.send(Ok(()));
            }
        }
        Err(error) => {
            for reply in gets {
                let _ = reply.send(Err(error.clone()));
            }
            for reply in sets {
                let _ = reply.send(Err(error.clone()));
            }
        }
    }
}
