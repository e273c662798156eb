//! The one load per key behind `get_or_load`.

use std::sync::Arc;

use futures::FutureExt;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::TypedStore;
use crate::backend::Backend;
use crate::backend::Write;
use crate::codec::Codec;
use crate::error::{BoxError, Error};
use crate::load::{Flight, Landing, LoadFailure, Loader, SharedError};
use crate::options::Condition;

impl<T, B, C> TypedStore<T, B, C>
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
    B: Backend,
    C: Codec,
{
    /// Starts the one load of `key` that every caller missing it meanwhile awaits.
    pub(super) fn launch(&self, key: String, loader: Loader<T>) -> Flight {
        let store = self.clone();
        let task = tokio::spawn(async move {
            let _landing = Landing {
                flights: &store.inner.flights,
                key: &key,
            };
            let shared = |e: Error| LoadFailure::Store(Arc::new(e));
            // A value may have been stored since the caller's read missed.
            if let Some(bytes) = store.inner.backend.get(&key).await.map_err(shared)? {
                return Ok(Arc::new(bytes));
            }
            let loaded = loader()
                .await
                .map_err(|e| LoadFailure::Loader(SharedError(Arc::from(e))))?;
            let bytes = store.encode(&key, &loaded.value).map_err(shared)?;
            let Some(policy) = loaded.cache else {
                return Ok(Arc::new(bytes)); // the loader said: do not store
            };
            let write = Write::new(store.expiry(policy).map_err(shared)?, Condition::Always);
            store
                .write(&key, &loaded.value, bytes.clone(), write)
                .await
                .map_err(shared)?;
            Ok(Arc::new(bytes))
        });
        async move {
            match task.await {
                Ok(outcome) => outcome,
                Err(join) => {
                    let what = if join.is_panic() {
                        "the loader panicked"
                    } else {
                        "the load was cancelled"
                    };
                    let failure = SharedError(Arc::from(BoxError::from(what)));
                    Err(LoadFailure::Loader(failure))
                }
            }
        }
        .boxed()
        .shared()
    }
}
