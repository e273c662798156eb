//! What stores report: one `tracing` span per operation with its namespace, backend, outcome
//! and size (ids only when opted in), a warning event for undecodable
//! values, `metrics` counts and latencies per operation and outcome, and pool gauges.
//!
//! This binary installs a process-wide metrics recorder and tracing dispatcher, so it holds
//! only this one test.

// Tests report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use redis::AsyncCommands;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use typedkv::{RedisStore, Store};
use typedkv_testkit::TestRedis;
use typedkv_testkit::conformance::values::{Profile, profile};

/// A span or event as the test sees it: its name and every field, as text.
#[derive(Debug, Clone, Default)]
struct Seen {
    name: String,
    fields: HashMap<String, String>,
}

impl Visit for Seen {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.fields.insert(
            field.name().to_owned(),
            format!("{value:?}").trim_matches('"').to_owned(),
        );
    }
}

/// Collects closed spans and events.
#[derive(Clone, Default)]
struct Collector {
    open: Arc<Mutex<HashMap<u64, Seen>>>,
    spans: Arc<Mutex<Vec<Seen>>>,
    events: Arc<Mutex<Vec<Seen>>>,
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Collector {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _: Context<'_, S>) {
        let mut seen = Seen {
            name: attrs.metadata().name().to_owned(),
            ..Seen::default()
        };
        attrs.record(&mut seen);
        self.open.lock().unwrap().insert(id.into_u64(), seen);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        if let Some(seen) = self.open.lock().unwrap().get_mut(&id.into_u64()) {
            values.record(seen);
        }
    }

    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut seen = Seen {
            name: event.metadata().level().to_string(),
            ..Seen::default()
        };
        event.record(&mut seen);
        self.events.lock().unwrap().push(seen);
    }

    fn on_close(&self, id: Id, _: Context<'_, S>) {
        if let Some(seen) = self.open.lock().unwrap().remove(&id.into_u64()) {
            self.spans.lock().unwrap().push(seen);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_report_spans_events_and_metrics() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().unwrap();
    let collector = Collector::default();
    let subscriber = tracing_subscriber::registry().with(collector.clone());
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = TestRedis::start().await;
    let pool = server.pool();
    let private: RedisStore<Profile> = RedisStore::builder(pool.clone(), "user")
        .metrics(true)
        .build()
        .unwrap();
    let traced: RedisStore<Profile> = RedisStore::builder(pool.clone(), "user")
        .trace_ids(true)
        .metrics(true)
        .build()
        .unwrap();

    private.set("alice", &profile(1)).await.unwrap();
    assert_eq!(private.get("alice").await.unwrap(), Some(profile(1)));
    assert_eq!(private.get("nobody").await.unwrap(), None);
    traced.get("alice").await.unwrap();
    let mut raw = server.raw_connection().await;
    let () = raw.set("user:garbage", b"not typedkv").await.unwrap();
    assert!(private.get("garbage").await.unwrap_err().is_decode());
    assert!(traced.get("garbage").await.unwrap_err().is_decode());

    let spans = collector.spans.lock().unwrap().clone();
    let named = |name: &str| {
        spans
            .iter()
            .filter(|s| s.name == name)
            .cloned()
            .collect::<Vec<_>>()
    };
    let sets = named("typedkv.set_opts");
    assert_eq!(sets.len(), 1, "{spans:?}");
    assert_eq!(sets[0].fields["namespace"], "user");
    assert_eq!(sets[0].fields["backend"], "redis");
    assert_eq!(sets[0].fields["outcome"], "ok");
    assert!(sets[0].fields["bytes"].parse::<usize>().unwrap() > 9);
    let gets = named("typedkv.get");
    assert_eq!(gets.len(), 5, "{gets:?}");
    let outcomes: Vec<&str> = gets.iter().map(|s| s.fields["outcome"].as_str()).collect();
    assert_eq!(outcomes, ["ok", "ok", "ok", "decode", "decode"]);
    // Ids only from the store that opted in.
    let with_ids: Vec<&str> = gets
        .iter()
        .filter_map(|s| s.fields.get("id"))
        .map(String::as_str)
        .collect();
    assert_eq!(with_ids, ["alice", "garbage"]);

    let events = collector.events.lock().unwrap().clone();
    let warnings: Vec<&Seen> = events.iter().filter(|e| e.name == "WARN").collect();
    assert_eq!(warnings.len(), 2, "{events:?}");
    assert_eq!(warnings[0].fields["problem"], "NotEnveloped");
    assert!(!warnings[0].fields.contains_key("key"), "{:?}", warnings[0]);
    assert_eq!(warnings[1].fields["key"], "user:garbage");
    // Nothing the private store reported names its ids.
    let private_reports = format!("{:?} {:?}", &gets[..2], sets);
    assert!(!private_reports.contains("alice"), "{private_reports}");

    pool.record_metrics();
    let metrics = snapshotter.snapshot().into_vec();
    let gauge = |name: &str, state: Option<&str>| -> Option<f64> {
        metrics.iter().find_map(|(key, _, _, value)| {
            let key = key.key();
            let matches = key.name() == name
                && key
                    .labels()
                    .any(|l| l.key() == "pool" && l.value().starts_with("redis://"))
                && state.is_none_or(|state| {
                    key.labels()
                        .any(|l| l.key() == "state" && l.value() == state)
                });
            match value {
                DebugValue::Gauge(v) if matches => Some(v.into_inner()),
                _ => None,
            }
        })
    };
    assert_eq!(gauge("typedkv_pool_connections", Some("max")), Some(8.0));
    assert_eq!(gauge("typedkv_pool_connections", Some("open")), Some(1.0));
    assert_eq!(gauge("typedkv_pool_waiting", None), Some(0.0));
    let count = |name: &str, labels: &[(&str, &str)]| -> u64 {
        metrics
            .iter()
            .filter(|(key, _, _, _)| {
                let key = key.key();
                key.name() == name
                    && labels
                        .iter()
                        .all(|(k, v)| key.labels().any(|l| l.key() == *k && l.value() == *v))
            })
            .map(|(_, _, _, value)| match value {
                DebugValue::Counter(n) => *n,
                _ => 0,
            })
            .sum()
    };
    assert_eq!(count("typedkv_operations_total", &[("op", "get")]), 5);
    assert_eq!(count("typedkv_operations_total", &[("op", "set_opts")]), 1);
    let decode_errors = [("op", "get"), ("kind", "decode")];
    assert_eq!(count("typedkv_operation_errors_total", &decode_errors), 2);
    let latencies = metrics
        .iter()
        .filter(|(key, _, _, _)| key.key().name() == "typedkv_operation_seconds")
        .count();
    assert!(latencies >= 2, "{metrics:?}");
}
