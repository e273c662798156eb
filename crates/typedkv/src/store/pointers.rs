//! `Store<T>` for `Arc<S>`, `Box<S>` and `&S` wherever `S: Store<T>` (`dyn Store<T>`
//! included), as std does for its traits: an `Arc<dyn Store<User>>` can be passed where a
//! `Store<User>` is expected. Every method forwards, defaults too, so an implementation's own
//! `set` is the one called.

use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::BoxStream;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Store;
use super::TransactionPart;
use crate::error::Result;
use crate::index::{RangePage, RangeQuery};
use crate::load::Loader;
use crate::options::{Expiry, SetOptions};
use crate::update::Update;
use crate::version::{Version, Versioned};

macro_rules! forward_store {
    ($(impl<$($lifetime:lifetime)?> for $pointer:ty;)*) => {$(
        #[async_trait]
        impl<$($lifetime,)? T, S> Store<T> for $pointer
        where
            T: Serialize + DeserializeOwned + Send + Sync + 'static,
            S: Store<T> + ?Sized,
        {
            fn namespace(&self) -> &str {
                (**self).namespace()
            }

            async fn get(&self, id: &str) -> Result<Option<T>> {
                (**self).get(id).await
            }

            async fn set(&self, id: &str, value: &T) -> Result<()> {
                (**self).set(id, value).await
            }

            async fn set_opts(&self, id: &str, value: &T, options: SetOptions) -> Result<bool> {
                (**self).set_opts(id, value, options).await
            }

            async fn delete(&self, id: &str) -> Result<bool> {
                (**self).delete(id).await
            }

            async fn exists(&self, id: &str) -> Result<bool> {
                (**self).exists(id).await
            }

            async fn ttl(&self, id: &str) -> Result<Option<Expiry>> {
                (**self).ttl(id).await
            }

            async fn get_many(&self, ids: &[&str]) -> Result<Vec<Option<T>>> {
                (**self).get_many(ids).await
            }

            async fn update(
                &self,
                id: &str,
                f: &mut (dyn FnMut(Option<T>) -> Update<T> + Send),
            ) -> Result<Option<T>> {
                (**self).update(id, f).await
            }

            async fn get_or_load(&self, id: &str, loader: Loader<T>) -> Result<T> {
                (**self).get_or_load(id, loader).await
            }

            async fn get_versioned(&self, id: &str) -> Result<Option<Versioned<T>>> {
                (**self).get_versioned(id).await
            }

            async fn set_if_version(
                &self,
                id: &str,
                value: &T,
                version: &Version,
            ) -> Result<Option<Version>> {
                (**self).set_if_version(id, value, version).await
            }

            fn scan(&self) -> BoxStream<'static, Result<(String, T)>> {
                (**self).scan()
            }

            fn scan_ids(&self) -> BoxStream<'static, Result<String>> {
                (**self).scan_ids()
            }

            async fn count(&self) -> Result<u64> {
                (**self).count().await
            }

            async fn delete_many(&self, ids: &[&str]) -> Result<u64> {
                (**self).delete_many(ids).await
            }

            async fn clear(&self) -> Result<u64> {
                (**self).clear().await
            }

            async fn set_many(&self, entries: &[(&str, &T)]) -> Result<()> {
                (**self).set_many(entries).await
            }

            fn find_by(&self, index: &str, value: &[u8]) -> BoxStream<'static, Result<(String, T)>> {
                (**self).find_by(index, value)
            }

            async fn find_one_by(&self, index: &str, value: &[u8]) -> Result<Option<(String, T)>> {
                (**self).find_one_by(index, value).await
            }

            async fn count_by(&self, index: &str, value: &[u8]) -> Result<u64> {
                (**self).count_by(index, value).await
            }

            async fn find_range(&self, index: &str, query: RangeQuery) -> Result<RangePage<T>> {
                (**self).find_range(index, query).await
            }

            fn transaction_part(&self) -> Option<TransactionPart<'_, T>> {
                (**self).transaction_part()
            }
        }
    )*};
}

forward_store! {
    impl<> for Arc<S>;
    impl<> for Box<S>;
    impl<'a> for &'a S;
}
