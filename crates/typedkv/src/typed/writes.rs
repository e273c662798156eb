//! The write path of every store: `set`, compare-and-swap, `delete`, deletes of many keys
//! and `set_many`. Each is
//! one backend call, or, for a store with indexes, the write and its index entries in one
//! step (`indexing.rs`); either way, this process' fail-safe tables hear of it
//! (`write_listeners.rs`).

use futures::future::{Either, FutureExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::TypedStore;
use crate::backend::{Backend, Bytes, Guard, Swap, Write, WriteExpiry};
use crate::codec::Codec;
use crate::error::Result;
use crate::store::participation::WriteNotice;

impl<T, B, C> TypedStore<T, B, C>
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
    B: Backend,
    C: Codec,
{
    /// `set` of a store: the value `value`, encoded as `bytes`, at `key`.
    ///
    /// Not an `async fn`: the plain path hands back the backend's future itself (a wrapper
    /// would store the arguments again in a future that every `set` allocates), and the
    /// index path's larger future is boxed.
    pub(super) fn write<'a>(
        &'a self,
        key: &'a str,
        value: &'a T,
        bytes: Bytes,
        write: Write,
    ) -> impl Future<Output = Result<bool>> + Send + 'a {
        self.write_on(&self.inner.backend, key, value, bytes, write)
    }

    /// [`write`](Self::write) on `backend`: the store's own, or the store's with the write
    /// concern of one write.
    pub(super) fn write_on<'a>(
        &'a self,
        backend: &'a B,
        key: &'a str,
        value: &'a T,
        bytes: Bytes,
        write: Write,
    ) -> impl Future<Output = Result<bool>> + Send + 'a {
        let written = match self.indexed() {
            false => Either::Left(backend.set(key, bytes, write)),
            true => Either::Right(Box::pin(
                self.write_indexed(backend, key, value, bytes, write),
            )),
        };
        written.inspect(move |_| self.wrote([key.as_bytes()]))
    }

    /// Compare-and-swap at `key` (`new`: the value and its encoding; `None` deletes).
    pub(super) async fn swap(
        &self,
        key: &str,
        guard: Guard,
        new: Option<(&T, Bytes)>,
        expiry: WriteExpiry,
    ) -> Result<Swap> {
        let swapped = match self.indexed() {
            false => {
                let new = new.map(|(_, bytes)| bytes);
                let backend = &self.inner.backend;
                backend.compare_and_swap(key, &guard, new, expiry).await
            }
            // Boxed, as in `write`.
            true => Box::pin(self.swap_indexed(key, guard, new, expiry)).await,
        };
        self.wrote([key.as_bytes()]);
        swapped
    }

    /// `delete` of `key`: whether it existed.
    pub(super) async fn remove_one(&self, key: String) -> Result<bool> {
        match self.indexed() {
            // Boxed, as `write` boxes the index path.
            true => Ok(Box::pin(self.remove(vec![key.into_bytes()])).await? > 0),
            false => {
                let deleted = self.inner.backend.delete(&key).await;
                self.wrote([key.as_bytes()]);
                deleted
            }
        }
    }

    /// Deletes `keys` (as bytes, as scans find them); how many existed.
    pub(super) async fn remove(&self, keys: Vec<Bytes>) -> Result<u64> {
        let removed = match self.indexed() {
            false => self.inner.backend.delete_many(&keys).await,
            true => self.remove_indexed(&keys).await,
        };
        self.wrote(keys.iter().map(Vec::as_slice));
        removed
    }

    /// `set_many`: every entry encoded, written with `expiry`.
    pub(super) async fn write_many(
        &self,
        entries: Vec<(String, &T, Bytes)>,
        expiry: WriteExpiry,
    ) -> Result<()> {
        // Kept only when a fail-safe table of the process may need to hear of them.
        let keys: Vec<String> = match self.heard() {
            true => entries.iter().map(|(key, _, _)| key.clone()).collect(),
            false => Vec::new(),
        };
        let written = match self.indexed() {
            false => {
                let entries = entries
                    .into_iter()
                    .map(|(key, _, bytes)| (key, bytes))
                    .collect();
                self.inner.backend.set_many(entries, expiry).await
            }
            true => self.write_many_indexed(entries, expiry).await,
        };
        self.wrote(keys.iter().map(String::as_bytes));
        written
    }

    /// Whether a write of this process may have to be told to a fail-safe table.
    fn heard(&self) -> bool {
        #[cfg(feature = "cache")]
        return super::write_listeners::any();
        #[cfg(not(feature = "cache"))]
        false
    }

    /// Who must hear of writes to this store's keys made outside its own calls (a
    /// transaction's commit): as [`TypedStore::wrote`].
    pub(crate) fn write_notice(&self) -> WriteNotice {
        self.inner.write_notice.clone()
    }

    /// Tells this process' fail-safe tables of the namespace that `keys` were written (or a
    /// write was tried): see `write_listeners.rs`.
    pub(super) fn wrote<'k>(&self, keys: impl IntoIterator<Item = &'k [u8]>) {
        #[cfg(feature = "cache")]
        super::write_listeners::wrote(&self.inner.listen_key, keys);
        #[cfg(not(feature = "cache"))]
        let _ = keys;
    }
}

/// The [`WriteNotice`] of a store whose writes this process' fail-safe tables hear under
/// `listen_key`.
#[cfg(feature = "cache")]
pub(super) fn write_notice(listen_key: String) -> WriteNotice {
    WriteNotice::new(move |key| super::write_listeners::wrote(&listen_key, [key.as_bytes()]))
}

/// Without the cache, nobody hears of writes.
#[cfg(not(feature = "cache"))]
pub(super) fn write_notice() -> WriteNotice {
    WriteNotice::new(|_| {})
}
