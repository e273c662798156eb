//! What encryption and compression at rest cost per call, measured on the store's
//! own path: `set` then `get` on in-memory stores with and without the setting, in alternating
//! rounds, so the difference is the sealing and opening alone (the backend's work is the same
//! on both sides).

use std::time::Instant;

use typedkv::{Compression, EncryptionKey, Keyring, MemoryBackend, MemoryStore, Store};

use crate::args::Args;
use crate::measure::{BenchResult, median};
use crate::payload::{BenchUser, sample};
use crate::report::Row;

/// Calls timed per sample at the default `--secs` and longer; a shorter `--secs` (a smoke
/// run, an unoptimized build) times proportionally fewer.
const CALLS: u32 = 2_000;

/// [`CALLS`] scaled to `--secs` (3 s is the default).
fn calls(args: &Args) -> u32 {
    let share = (args.per_case.as_secs_f64() / 3.0).min(1.0);
    ((f64::from(CALLS) * share) as u32).max(20)
}

/// The 16 KiB JSON-like document of the compression case: records with repeated field names
/// and similar values, as API payloads and cached query results are.
pub(crate) fn document() -> String {
    let records: Vec<String> = (0..164)
        .map(|i| {
            format!(
                r#"{{"id":{i},"name":"user-{i}","email":"user{i}@example.com","roles":["reader","editor"],"active":{}}}"#,
                i % 3 == 0
            )
        })
        .collect();
    format!("[{}]", records.join(","))
}

/// Median ns per `set`+`get` of `value` on `sealed` and on `plain`, alternating.
async fn set_get_ns<T>(
    args: &Args,
    sealed: &MemoryStore<T>,
    plain: &MemoryStore<T>,
    value: &T,
) -> BenchResult<(f64, f64)>
where
    T: serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    let calls = calls(args);
    let once = |store: &MemoryStore<T>| {
        let store = store.clone();
        async move {
            let started = Instant::now();
            for _ in 0..calls {
                store.set("k", value).await?;
                std::hint::black_box(store.get("k").await?);
            }
            Ok::<_, typedkv::Error>(started.elapsed().as_nanos() as f64 / f64::from(calls))
        }
    };
    let (mut with, mut without) = (Vec::new(), Vec::new());
    once(sealed).await?; // warm-up
    once(plain).await?;
    for round in 0..args.rounds.max(1) * 2 {
        if round % 2 == 0 {
            with.push(once(sealed).await?);
            without.push(once(plain).await?);
        } else {
            without.push(once(plain).await?);
            with.push(once(sealed).await?);
        }
    }
    Ok((median(with), median(without)))
}

/// The at-rest rows: encryption and compression on the 83-byte sample and on the 16 KiB
/// document, and the document's compressed size.
pub(crate) async fn at_rest(args: &Args) -> BenchResult<Vec<Row>> {
    let keyring = || -> BenchResult<Keyring> { Ok(Keyring::new(1, EncryptionKey::generate()?)) };
    // Sealed stores on one backend, plain ones on another: the same keys on both.
    let (sealed, plain) = (MemoryBackend::new(), MemoryBackend::new());
    let small = |b: &MemoryBackend| MemoryStore::<BenchUser>::builder(b.clone(), "s");
    let large = |b: &MemoryBackend| MemoryStore::<String>::builder(b.clone(), "l");
    let mut rows = Vec::new();

    let plain_small = small(&plain).build()?;
    let encrypted = small(&sealed).encryption(keyring()?).build()?;
    let (with, without) = set_get_ns(args, &encrypted, &plain_small, &sample()).await?;
    let cost = with - without;
    rows.push(Row::typed_only("encryption_83B_ns", cost, "ns/set+get"));
    // Below the threshold: what deciding not to compress costs.
    let zipped = small(&sealed).compression(Compression::lz4()).build()?;
    let (with, without) = set_get_ns(args, &zipped, &plain_small, &sample()).await?;
    let cost = with - without;
    rows.push(Row::typed_only("compression_83B_ns", cost, "ns/set+get"));

    let document = document();
    let plain_large = large(&plain).build()?;
    let encrypted = large(&sealed).encryption(keyring()?).build()?;
    let (with, without) = set_get_ns(args, &encrypted, &plain_large, &document).await?;
    rows.push(Row::typed_only(
        "encryption_16KiB_ns",
        with - without,
        "ns/set+get",
    ));

    let zipped = large(&sealed).compression(Compression::lz4()).build()?;
    let (with, without) = set_get_ns(args, &zipped, &plain_large, &document).await?;
    rows.push(Row::typed_only(
        "compression_16KiB_ns",
        with - without,
        "ns/set+get",
    ));
    zipped.set("size", &document).await?;
    plain_large.set("size", &document).await?;
    let ratio = stored_len(&sealed).await? as f64 / stored_len(&plain).await? as f64;
    rows.push(Row::typed_only(
        "compression_16KiB_ratio",
        ratio,
        "stored/plain",
    ));
    Ok(rows)
}

/// Stored length of the `size` value of the large stores on `backend`.
async fn stored_len(backend: &MemoryBackend) -> BenchResult<usize> {
    let bytes = typedkv::Backend::get(backend, "l:size").await?;
    Ok(bytes.map_or(0, |v| v.len()))
}
