//! Compression of large payloads (feature `compression`): LZ4 blocks (lz4_flex, safe Rust).
//!
//! LZ4 rather than zstd: it costs little enough per call to sit on every `get` and `set` of
//! a cache, needs no C library, and halves the JSON-like values it is meant for (measured in
//! BENCHMARKS.md, "Local cache, indexes, values at rest").

/// Compression of values at rest: payloads of at least [`Compression::threshold`] bytes are
/// stored as LZ4 blocks when that makes them smaller; others stay as they are. Every value
/// says in its header whether it is compressed, so a store reads both kinds, and turning
/// compression on or off never makes stored values unreadable.
///
/// ```
/// use typedkv::{Compression, MemoryBackend, MemoryStore, Store};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> typedkv::Result<()> {
/// let notes = MemoryStore::<String>::builder(MemoryBackend::new(), "note")
///     .compression(Compression::lz4().threshold(256))
///     .build()?;
/// let long = "all work and no play ".repeat(100);
/// notes.set("1", &long).await?;
/// assert_eq!(notes.get("1").await?, Some(long));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compression {
    threshold: usize,
}

impl Compression {
    /// The default [`threshold`](Compression::threshold): 1 KiB. Below it, LZ4 saves little
    /// and costs a header field.
    pub const DEFAULT_THRESHOLD: usize = 1024;

    /// LZ4 above [`Compression::DEFAULT_THRESHOLD`].
    pub fn lz4() -> Self {
        Compression {
            threshold: Self::DEFAULT_THRESHOLD,
        }
    }

    /// Compress encoded payloads of at least `bytes` bytes.
    pub fn threshold(mut self, bytes: usize) -> Self {
        self.threshold = bytes;
        self
    }

    /// `payload` compressed, if it is large enough and compressing makes it smaller.
    pub(crate) fn compress(&self, payload: &[u8]) -> Option<(Vec<u8>, u32)> {
        if payload.len() < self.threshold {
            return None;
        }
        let len = u32::try_from(payload.len()).ok()?;
        let compressed = lz4_flex::block::compress(payload);
        (compressed.len() < payload.len()).then_some((compressed, len))
    }
}
