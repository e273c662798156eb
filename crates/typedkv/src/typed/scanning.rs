//! Pages of a namespace's ids behind `scan`, `scan_ids`, `count` and `clear`.

use std::collections::HashSet;

use futures::stream::{self, BoxStream, StreamExt};

use super::TypedStore;
use crate::backend::Backend;
use crate::codec::Codec;
use crate::error::Result;

/// Keys asked for per `SCAN` page (Redis' `COUNT` hint).
const SCAN_PAGE: usize = 1000;

impl<T: Send, B: Backend, C: Codec> TypedStore<T, B, C> {
    /// The namespace's ids, page by page, each id once (see [`Store::scan`]).
    pub(super) fn id_pages(&self) -> BoxStream<'_, Result<Vec<String>>> {
        let state = Some((0u64, HashSet::<String>::new()));
        stream::unfold(state, move |state| async move {
            let (cursor, mut seen) = state?;
            let keyspace = &self.inner.keyspace;
            let page = self
                .inner
                .backend
                .scan_page(keyspace.prefix(), cursor, SCAN_PAGE)
                .await;
            Some(match page {
                Ok((next, keys)) => {
                    let ids = keys
                        .iter()
                        .filter_map(|key| keyspace.id_of(key))
                        .filter(|id| seen.insert((*id).to_owned()))
                        .map(str::to_owned)
                        .collect();
                    (Ok(ids), (next != 0).then_some((next, seen)))
                }
                Err(e) => (Err(e), None),
            })
        })
        .boxed()
    }
}
