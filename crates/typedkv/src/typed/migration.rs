//! Reading values stored under an older schema version: one conversion per old version,
//! registered on the builder ([`StoreBuilder::migrate_from`](super::StoreBuilder::migrate_from)),
//! and the optional write-back of converted values.
//!
//! bincode is not self-describing: after a field is added, old bytes cannot be read as the
//! new type. The envelope's schema version says which type wrote a value, so a store can
//! decode old values as the old type and convert them, instead of failing with
//! `SchemaMismatch`.

use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::codec::Codec;
use crate::envelope;
use crate::error::{BoxError, DecodeProblem};

/// Decodes a value of one old schema version with the store's codec and converts it.
type Convert<T, C> =
    dyn Fn(&C, &[u8]) -> Result<T, (DecodeProblem, Option<BoxError>)> + Send + Sync;

/// The conversions of one store.
pub(crate) struct Migrations<T, C> {
    from: Vec<(u32, Arc<Convert<T, C>>)>,
    /// Whether `get` stores a converted value back in the current schema.
    pub(crate) write_back: bool,
}

impl<T, C> Default for Migrations<T, C> {
    fn default() -> Self {
        Migrations {
            from: Vec::new(),
            write_back: false,
        }
    }
}

impl<T, C: Codec> Migrations<T, C> {
    /// Reads values of `schema` as `Old`, converted by `convert`; replaces an earlier
    /// conversion of the same version.
    pub(crate) fn add<Old: DeserializeOwned>(
        &mut self,
        schema: u32,
        convert: impl Fn(Old) -> T + Send + Sync + 'static,
    ) where
        T: 'static,
    {
        self.from.retain(|(from, _)| *from != schema);
        let decode = move |codec: &C, bytes: &[u8]| {
            envelope::decode::<C, Old>(codec, schema, bytes).map(&convert)
        };
        self.from.push((schema, Arc::new(decode)));
    }

    /// The conversion of values stored under `schema`, if one is registered.
    pub(crate) fn from(&self, schema: u32) -> Option<&Convert<T, C>> {
        self.from
            .iter()
            .find(|(from, _)| *from == schema)
            .map(|(_, convert)| &**convert)
    }

    pub(crate) fn schemas(&self) -> impl Iterator<Item = u32> + '_ {
        self.from.iter().map(|(schema, _)| *schema)
    }
}
