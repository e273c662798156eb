//! The one load per key behind `get_or_load`.

use std::sync::Arc;

use futures::FutureExt;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::TypedStore;
use crate::backend::Backend;
use crate::backend::Write;
use crate::codec::Codec;
use crate::error::ErrorSource;
use crate::load::{Flight, Landing, LoadFailure, Loader};
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
            let store_failed = LoadFailure::Store;
            // A value may have been stored since the caller's read missed.
            if let Some(bytes) = store.inner.backend.get(&key).await.map_err(store_failed)? {
                return Ok(Arc::new(bytes));
            }
            let loaded = loader().await.map_err(|e| LoadFailure::Loader(e.into()))?;
            let bytes = store.encode(&key, &loaded.value).map_err(store_failed)?;
            let Some(policy) = loaded.cache else {
                return Ok(Arc::new(bytes)); // the loader said: do not store
            };
            let write = Write::new(
                store.expiry(policy).map_err(store_failed)?,
                Condition::Always,
            );
            store
                .write(&key, &loaded.value, bytes.clone(), write)
                .await
                .map_err(store_failed)?;
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
                    let failure = ErrorSource::from(what);
                    Err(LoadFailure::Loader(failure))
                }
            }
        }
        .boxed()
        .shared()
    }
}
