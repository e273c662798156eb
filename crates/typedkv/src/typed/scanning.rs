//! Pages of a namespace's keys behind `scan`, `scan_ids`, `count` and `clear`.
//!
//! Keys are scanned as bytes: Redis keys are binary-safe, and another program may have
//! written a key under the namespace whose id this store would refuse: not UTF-8, empty
//! (the key is the bare prefix), or longer than [`MAX_ID_LEN`](crate::MAX_ID_LEN). One rule
//! for all of them: every string key under the prefix is the namespace's, so such a key is
//! an error item of `scan` and `scan_ids` for that key alone (the stream goes on), is
//! counted by `count` and removed by `clear`, like any other key of the namespace; passes
//! over stored values (`rebuild_indexes`, `reencrypt`) skip it, as no id reaches it.

use std::collections::HashSet;

use futures::stream::{self, BoxStream, StreamExt};
use serde::de::DeserializeOwned;

use super::TypedStore;
use crate::backend::{Backend, Bytes};
use crate::codec::Codec;
use crate::error::{DecodeProblem, Error, ErrorSource, Result};
use crate::keyspace::key_text;

/// A key with a text id and its stored bytes (`None`: deleted since the scan saw it).
pub(super) type Stored = (String, Option<Bytes>);

/// Keys asked for per `SCAN` page (Redis' `COUNT` hint).
const SCAN_PAGE: usize = 1000;

impl<T: Send + 'static, B: Backend, C: Codec> TypedStore<T, B, C> {
    /// The namespace's keys, page by page, each key once (Redis may return a key twice
    /// while it rehashes), the bare prefix (an empty id) included, its own bookkeeping keys
    /// (index records of a partitioned store) left out. The stream owns a clone
    /// of the store, so it is `'static`.
    pub(super) fn key_pages(&self) -> BoxStream<'static, Result<Vec<Bytes>>> {
        let state = Some((self.clone(), 0u64, HashSet::<Bytes>::new()));
        stream::unfold(state, move |state| async move {
            let (store, cursor, mut seen) = state?;
            let prefix = store.inner.keyspace.prefix();
            let page = store
                .inner
                .backend
                .scan_page(prefix, cursor, SCAN_PAGE)
                .await;
            Some(match page {
                Ok((next, keys)) => {
                    let keys = keys
                        .into_iter()
                        .filter(|key| key.starts_with(prefix.as_bytes()))
                        .filter(|key| !store.inner.keyspace.is_bookkeeping(key))
                        .filter(|key| seen.insert(key.clone()))
                        .collect();
                    let more = next != 0;
                    (Ok(keys), more.then_some((store, next, seen)))
                }
                Err(e) => (Err(e), None),
            })
        })
        .boxed()
    }

    /// The namespace's keys whose ids this store accepts, with their stored bytes, page by
    /// page: what whole-namespace passes (`rebuild_indexes`, `reencrypt`) work through. Keys
    /// with other ids are not this store's values: skipped.
    pub(super) fn stored_pages(&self) -> BoxStream<'static, Result<Vec<Stored>>> {
        let store = self.clone();
        self.key_pages()
            .then(move |keys| {
                let store = store.clone();
                async move {
                    let keys: Vec<String> = keys?
                        .into_iter()
                        .filter_map(|key| store.addressable(key).ok())
                        .collect();
                    if keys.is_empty() {
                        return Ok(Vec::new());
                    }
                    let found = store.inner.backend.get_many(&keys).await?;
                    Ok(keys.into_iter().zip(found).collect())
                }
            })
            .boxed()
    }

    /// A key from [`key_pages`](Self::key_pages) as text, or the error item of a key whose
    /// id this store refuses (not UTF-8, empty, too long).
    pub(super) fn addressable(&self, key: Bytes) -> Result<String> {
        let refused = |key: &[u8], problem, source: Option<ErrorSource>| Error::Decode {
            key: key_text(key).into_owned(),
            codec: self.inner.codec.name(),
            expected_schema: self.inner.stamp.schema,
            problem,
            source,
        };
        let key = String::from_utf8(key).map_err(|e| {
            let source = ErrorSource::from(e.utf8_error());
            refused(e.as_bytes(), DecodeProblem::IdNotUtf8, Some(source))
        })?;
        match self.inner.keyspace.scanned_id(&key) {
            Ok(_) => Ok(key),
            Err(reason) => Err(refused(
                key.as_bytes(),
                DecodeProblem::InvalidId { reason },
                None,
            )),
        }
    }

    /// The id of a key [`addressable`](Self::addressable) accepted, cut out of the key in
    /// place (an id is the tail of its key).
    pub(super) fn id_from(&self, mut key: String) -> String {
        let id_len = self.inner.keyspace.id_of(&key).map_or(0, str::len);
        key.drain(..key.len() - id_len);
        key
    }

    /// The `(id, value)` items of one page of keys: one `MGET` for the page; a key deleted
    /// since the scan found it is skipped, a value or id that cannot be decoded is an error
    /// item for its key.
    pub(super) async fn page_values(&self, keys: Vec<Bytes>) -> Vec<Result<(String, T)>>
    where
        T: DeserializeOwned,
    {
        let mut items = Vec::new();
        let mut text_keys = Vec::with_capacity(keys.len());
        for key in keys {
            match self.addressable(key) {
                Ok(key) => text_keys.push(key),
                Err(e) => items.push(Err(e)),
            }
        }
        if text_keys.is_empty() {
            return items;
        }
        match self.inner.backend.get_many(&text_keys).await {
            Ok(values) => {
                let pairs = text_keys.into_iter().zip(values);
                items.extend(pairs.filter_map(|(key, bytes)| {
                    // A key deleted since the scan found it has no value: skipped.
                    let bytes = bytes?;
                    Some(match self.decode(&key, &bytes) {
                        Ok(value) => Ok((self.id_from(key), value)),
                        Err(e) => Err(e),
                    })
                }));
            }
            Err(e) => items.push(Err(e)),
        }
        items
    }
}
