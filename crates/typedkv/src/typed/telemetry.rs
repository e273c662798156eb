//! What every store operation reports: a `tracing` span and `metrics` counts and latencies.
//!
//! Spans are named `typedkv.<op>` (`typedkv.get`, `typedkv.set_with`, ...) at `DEBUG` level,
//! with fields `namespace`, `backend`, `outcome` (`ok` or [`Error::kind`]), `bytes` (value
//! bytes read or written, where one value is) and `id` only if the store was built with
//! [`trace_ids`](super::StoreBuilder::trace_ids) (ids may be personal data). A value that
//! cannot be decoded is also a `WARN` event with its problem and codec (not its key, unless
//! ids are traced). Passwords never reach either: stores do not know URLs.
//!
//! Metrics (through the `metrics` facade; a no-op until the application installs a
//! recorder):
//! - `typedkv_operations_total` (counter), labels `op`, `outcome`;
//! - `typedkv_operation_seconds` (histogram), label `op`.
//!
//! With no subscriber and no recorder, an operation pays a disabled-span check, two clock
//! reads and two no-op metric calls (see BENCHMARKS.md: not measurable against a round
//! trip).

use std::future::Future;
use std::time::Instant;

use tracing::{Instrument, Span};

use crate::error::{Error, Result};

/// A span for operation `op` ("typedkv." + `op` must be its literal name) of a store.
macro_rules! op_span {
    ($name:literal, $store:expr, $id:expr) => {{
        let store = &$store;
        let span = tracing::debug_span!(
            $name,
            namespace = store.inner.keyspace.namespace(),
            backend = store.inner.backend.kind(),
            id = tracing::field::Empty,
            outcome = tracing::field::Empty,
            bytes = tracing::field::Empty,
        );
        if store.inner.trace_ids {
            let id: Option<&str> = $id;
            if let Some(id) = id {
                span.record("id", id);
            }
        }
        span
    }};
}
pub(crate) use op_span;

/// Runs `operation` inside `span`, then records its outcome on the span and in metrics.
pub(crate) async fn observe<R>(
    op: &'static str,
    span: Span,
    trace_ids: bool,
    operation: impl Future<Output = Result<R>>,
) -> Result<R> {
    let started = Instant::now();
    let result = operation.instrument(span.clone()).await;
    let outcome = match &result {
        Ok(_) => "ok",
        Err(error) => error.kind(),
    };
    span.record("outcome", outcome);
    if let Err(Error::Decode {
        problem,
        codec,
        key,
        ..
    }) = &result
    {
        let key = trace_ids.then_some(key.as_str());
        tracing::warn!(parent: &span, ?problem, codec, key, "stored value cannot be decoded");
    }
    metrics::counter!("typedkv_operations_total", "op" => op, "outcome" => outcome).increment(1);
    metrics::histogram!("typedkv_operation_seconds", "op" => op)
        .record(started.elapsed().as_secs_f64());
    result
}

/// Records the size of the value the current operation read or wrote.
pub(crate) fn record_bytes(len: usize) {
    Span::current().record("bytes", len);
}
