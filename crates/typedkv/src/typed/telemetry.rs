//! What every store operation reports: a `tracing` span and `metrics` counts and latencies.
//!
//! Spans are named `typedkv.<op>` (`typedkv.get`, `typedkv.set_opts`, ...) at `DEBUG` level,
//! with fields `namespace`, `backend`, `outcome` (`ok` or [`Error::kind`]), `bytes` (value
//! bytes read or written, where one value is) and `id` only if the store was built with
//! [`trace_ids`](super::StoreBuilder::trace_ids) (ids may be personal data). A value that
//! cannot be decoded is also a `WARN` event with its problem and codec (not its key, unless
//! ids are traced). Passwords never reach either: stores do not know URLs.
//!
//! Metrics, for stores built with [`metrics(true)`](super::StoreBuilder::metrics), through
//! the `metrics` facade (the application installs the recorder):
//! - `typedkv_operations_total` (counter), label `op`: every operation;
//! - `typedkv_operation_errors_total` (counter), labels `op`, `kind` ([`Error::kind`]);
//! - `typedkv_operation_seconds` (histogram), label `op`.
//!
//! Off (no subscriber interested, metrics not enabled) an operation pays a disabled-span
//! check and nothing else; with metrics on it also reads the clock twice, and still
//! allocates nothing on success (the metric keys are statics). Measured in BENCHMARKS.md.

use std::time::Instant;

use metrics::{Key, Level, Metadata};
use tracing::Span;

use crate::error::{Error, Result};

/// What a store's operations report beyond their span; from the store's builder.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Telemetry {
    /// Spans and events carry ids (and keys).
    pub(crate) trace_ids: bool,
    /// Operations are counted and timed through the `metrics` facade.
    pub(crate) metrics: bool,
}

/// The metric keys of one operation, built at compile time (see [`op_metrics`]).
pub(crate) struct OpKeys {
    pub(crate) op: &'static str,
    pub(crate) total: Key,
    pub(crate) seconds: Key,
}

/// Where the metrics come from, for recorders that filter.
static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// The [`OpKeys`] of operation `$op`, as statics: recording them allocates nothing.
macro_rules! op_metrics {
    ($op:literal) => {{
        static LABELS: [metrics::Label; 1] = [metrics::Label::from_static_parts("op", $op)];
        static KEYS: $crate::typed::telemetry::OpKeys = $crate::typed::telemetry::OpKeys {
            op: $op,
            total: metrics::Key::from_static_parts("typedkv_operations_total", &LABELS),
            seconds: metrics::Key::from_static_parts("typedkv_operation_seconds", &LABELS),
        };
        &KEYS
    }};
}
pub(crate) use op_metrics;

/// Runs `$body` (an async block) as operation `$op` of `$store`, observed: in a span named
/// `typedkv.$op`, bound to `$span` for the body to record on, with [`finish`]'s reporting.
/// `$id` is the id the operation concerns, if one.
macro_rules! observed {
    ($store:expr, $op:literal, $id:expr, |$span:ident| $body:expr) => {{
        let store = &$store;
        let $span = tracing::debug_span!(
            concat!("typedkv.", $op),
            namespace = store.inner.keyspace.namespace(),
            backend = store.inner.backend.kind(),
            id = tracing::field::Empty,
            outcome = tracing::field::Empty,
            bytes = tracing::field::Empty,
        );
        if store.inner.telemetry.trace_ids {
            let id: Option<&str> = $id;
            if let Some(id) = id {
                $span.record("id", id);
            }
        }
        // Awaited here, not passed to an `async fn`: an async fn's argument is stored twice
        // in its future (once as the argument, once as the awaited value), which made every
        // `get`'s boxed future 1.8 KiB, past the allocator's per-thread cache.
        let started = $crate::typed::telemetry::started(store.inner.telemetry);
        let result = tracing::Instrument::instrument($body, $span.clone()).await;
        $crate::typed::telemetry::finish(
            $crate::typed::telemetry::op_metrics!($op),
            &$span,
            store.inner.telemetry,
            started,
            &result,
        );
        result
    }};
}
pub(crate) use observed;

/// When an operation starts, if its duration is recorded: the clock is read only for
/// metrics (two reads were most of the cost of telemetry that nobody collects, measured with
/// the benchmark's memory_get case).
pub(crate) fn started(telemetry: Telemetry) -> Option<Instant> {
    telemetry.metrics.then(Instant::now)
}

/// Records the outcome of an operation that ran inside `span` since `started`, on the span
/// and in metrics.
pub(crate) fn finish<R>(
    keys: &'static OpKeys,
    span: &Span,
    telemetry: Telemetry,
    started: Option<Instant>,
    result: &Result<R>,
) {
    if !span.is_disabled() {
        let outcome = match result {
            Ok(_) => "ok",
            Err(error) => error.kind(),
        };
        span.record("outcome", outcome);
        if let Err(Error::Decode {
            problem,
            codec,
            key,
            ..
        }) = result
        {
            let key = telemetry.trace_ids.then_some(key.as_str());
            tracing::warn!(parent: span, ?problem, codec, key, "stored value cannot be decoded");
        }
    }
    if let Some(started) = started {
        metrics::with_recorder(|recorder| {
            recorder
                .register_counter(&keys.total, &METADATA)
                .increment(1);
            recorder
                .register_histogram(&keys.seconds, &METADATA)
                .record(started.elapsed().as_secs_f64());
        });
        if let Err(error) = result {
            metrics::counter!("typedkv_operation_errors_total", "op" => keys.op, "kind" => error.kind())
                .increment(1);
        }
    }
}
