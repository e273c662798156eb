//! Reading values stored under an older schema version: one conversion per old version,
//! registered on the builder ([`StoreBuilder::migrate_from`](super::StoreBuilder::migrate_from)),
//! and the optional write-back of converted values.
//!
//! bincode is not self-describing: after a field is added, old bytes cannot be read as the
//! new type. The envelope's schema version says which type wrote a value, so a store can
//! decode old values as the old type and convert them, instead of failing with
//! `SchemaMismatch`. Each conversion also knows its old type's layout fingerprint, so it
//! refuses a value of that schema version written by yet another layout (the type changed
//! once more without a bump), and one schema version can have several conversions, one per
//! layout its values were written with.

use serde::de::DeserializeOwned;

use crate::at_rest::{AtRest, Context};
use crate::codec::Codec;
use crate::envelope::Stamp;
use crate::error::{BoxError, DecodeProblem};
use crate::layout::Layout;

/// Decodes a value of one old schema version with the store's codec and converts it.
type Convert<T, C> = dyn Fn(&C, &AtRest, Context<'_>, &[u8]) -> Result<T, (DecodeProblem, Option<BoxError>)>
    + Send
    + Sync;

/// How values of one old schema version and layout become `T`.
struct Conversion<T, C> {
    schema: u32,
    /// The old type's layout fingerprint (`None`: it cannot be traced).
    layout: Option<Layout>,
    convert: Box<Convert<T, C>>,
}

/// The conversions of one store.
pub(crate) struct Migrations<T, C> {
    from: Vec<Conversion<T, C>>,
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
    /// Reads values of `schema` written by `Old`'s layout as `Old`, converted by `convert`;
    /// replaces an earlier conversion of the same version and layout.
    pub(crate) fn add<Old: DeserializeOwned>(
        &mut self,
        schema: u32,
        convert: impl Fn(Old) -> T + Send + Sync + 'static,
    ) where
        T: 'static,
    {
        let stamp = Stamp::new(schema).with_layout(Layout::of::<Old>());
        self.from
            .retain(|old| (old.schema, old.layout) != (schema, stamp.layout));
        let decode = move |codec: &C, at_rest: &AtRest, context: Context<'_>, bytes: &[u8]| {
            at_rest
                .decode::<C, Old>(codec, stamp, context, bytes)
                .map(&convert)
        };
        self.from.push(Conversion {
            schema,
            layout: stamp.layout,
            convert: Box::new(decode),
        });
    }

    /// `bytes`, stored under the older `schema`, converted by the first conversion of that
    /// version whose layout fits them; `None` if there is no conversion of that version.
    pub(crate) fn convert(
        &self,
        codec: &C,
        at_rest: &AtRest,
        context: Context<'_>,
        schema: u32,
        bytes: &[u8],
    ) -> Option<Result<T, (DecodeProblem, Option<BoxError>)>> {
        let mut outcome = None;
        for old in self.from.iter().filter(|old| old.schema == schema) {
            let converted = (old.convert)(codec, at_rest, context, bytes);
            if !matches!(converted, Err((DecodeProblem::LayoutMismatch { .. }, _))) {
                return Some(converted);
            }
            outcome = Some(converted); // another conversion of this version may fit
        }
        outcome
    }

    pub(crate) fn schemas(&self) -> impl Iterator<Item = u32> + '_ {
        self.from.iter().map(|old| old.schema)
    }
}
