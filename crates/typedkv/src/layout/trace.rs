//! The tracer behind [`Layout::of`](super::Layout::of): a serde `Deserializer` that answers
//! every call with a made-up value and records what was asked for.
//!
//! One pass deserializes one made-up `T`. Each pass explores a variant of every enum it meets
//! that is not traced yet, so passes repeat until every variant of every enum reached is
//! known. Recursion is cut where a type meets itself again: that inner visit is *muted*
//! (nothing recorded, options answered `None`, sequences and maps empty, enums given a
//! variant that ends the recursion where one is known). Depth, calls per pass and passes are
//! bounded, so no type can make tracing run away; a type that hits a bound has no layout.
//!
//! A `Deserialize` that validates (a date parsed from text, a non-zero integer, a 16-byte
//! id) may refuse a made-up value: the tracer then tries the next candidate for the type
//! whose value it made last, and passes again.

use std::any::type_name;
use std::collections::HashMap;
use std::fmt;

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, EnumAccess, IntoDeserializer, MapAccess, SeqAccess,
    VariantAccess, Visitor,
};

use super::{Container, Shape, Variant};

/// Passes before giving up (each explores at least one more enum variant, or one more
/// candidate value).
const MAX_PASSES: usize = 512;
/// Nesting depth of one pass.
const MAX_DEPTH: usize = 96;
/// serde calls in one pass.
const MAX_CALLS: usize = 100_000;

/// Made-up values, tried in turn for a type whose `Deserialize` refuses the one before.
/// Numbers as `bool`s: `From<bool>` gives 0 or 1 in every integer and float type.
const NUMBERS: [bool; 2] = [false, true];
const TEXTS: [&str; 8] = [
    "",
    "1970-01-01T00:00:00Z",
    "1970-01-01",
    "00:00:00",
    "00000000-0000-0000-0000-000000000000",
    "127.0.0.1",
    "http://localhost/",
    "0",
];
const BYTES: [&[u8]; 2] = [&[], &[0; 16]];
/// The longest candidate list.
const CANDIDATES: usize = TEXTS.len();

/// The root shape of `T` and every container it reaches, or `None` if `T` cannot be traced.
pub(super) fn trace<T: DeserializeOwned>() -> Option<(Shape, HashMap<&'static str, Container>)> {
    let mut tracer = Tracer::default();
    for _ in 0..MAX_PASSES {
        tracer.calls = 0;
        tracer.stack.clear();
        tracer.last_leaf = None;
        let mut root = Shape::Unknown;
        let probe = Probe {
            scope: Scope {
                tracer: &mut tracer,
                muted: false,
                depth: 0,
            },
            out: &mut root,
        };
        match T::deserialize(probe) {
            Ok(_made_up) if tracer.complete() => return Some((root, tracer.containers)),
            Ok(_made_up) => {}
            Err(TraceError::Refused(_)) if tracer.next_candidate() => {}
            Err(_) => return None,
        }
    }
    None
}

#[derive(Default)]
struct Tracer {
    containers: HashMap<&'static str, Container>,
    /// Per enum, the variant to visit next once all are traced (round robin, so enums inside
    /// variants keep being reached).
    next_variant: HashMap<&'static str, usize>,
    /// Containers being traced, outermost first: meeting one again is recursion.
    stack: Vec<&'static str>,
    calls: usize,
    /// Per type (of the value a leaf made), the index of the candidate value it gets.
    candidates: HashMap<&'static str, usize>,
    /// The type the last made-up leaf value was for: the likely one to have refused it.
    last_leaf: Option<&'static str>,
}

impl Tracer {
    /// Every enum reached has every variant traced.
    fn complete(&self) -> bool {
        self.containers.values().all(|container| match container {
            Container::Enum(variants) => variants.iter().all(Option::is_some),
            _ => true,
        })
    }

    /// Moves the type that refused its last value on to its next candidate; `false` when
    /// there is none left.
    fn next_candidate(&mut self) -> bool {
        let Some(leaf) = self.last_leaf else {
            return false;
        };
        let next = self.candidates.get(leaf).map_or(1, |index| index + 1);
        self.candidates.insert(leaf, next);
        next < CANDIDATES
    }

    /// The candidate index for a leaf value of type `leaf`.
    fn candidate(&mut self, leaf: &'static str) -> usize {
        self.last_leaf = Some(leaf);
        self.candidates.get(leaf).copied().unwrap_or(0)
    }

    /// The variant to visit of enum `id`, of `count`: when exploring, the first not traced
    /// yet (else round robin); when muted, one known to end the recursion (else one that
    /// changes with the depth, so that nested visits try them all).
    fn variant_to_visit(
        &mut self,
        id: &'static str,
        count: usize,
        explore: bool,
        depth: usize,
    ) -> usize {
        let known = match self.containers.get(id) {
            Some(Container::Enum(variants)) if variants.len() == count => Some(variants),
            _ => None,
        };
        if explore {
            if let Some(untraced) = known.map_or(Some(0), |variants| {
                variants.iter().position(Option::is_none)
            }) {
                return untraced;
            }
            let next = self.next_variant.entry(id).or_insert(0);
            let index = *next % count;
            *next = index + 1;
            return index;
        }
        known
            .and_then(|variants| {
                variants.iter().position(|variant| {
                    variant
                        .as_ref()
                        .is_some_and(|(_, variant)| ends_recursion(variant))
                })
            })
            .unwrap_or(depth % count)
    }

    fn record_variant(
        &mut self,
        id: &'static str,
        count: usize,
        index: usize,
        traced: (&'static str, Variant),
    ) {
        let entry = self
            .containers
            .entry(id)
            .or_insert_with(|| Container::Enum(vec![None; count]));
        if let Container::Enum(variants) = entry
            && let Some(slot) = variants.get_mut(index)
        {
            *slot = Some(traced);
        }
    }
}

/// Whether a muted visit of `variant` surely ends: it refers to no container except inside
/// an option, sequence or map (which a muted visit leaves empty).
fn ends_recursion(variant: &Variant) -> bool {
    fn ends(shape: &Shape) -> bool {
        match shape {
            Shape::Primitive(_) | Shape::Option(_) | Shape::Seq(_) | Shape::Map(..) => true,
            Shape::Tuple(items) => items.iter().all(ends),
            Shape::Container(_) | Shape::Unknown => false,
        }
    }
    match variant {
        Variant::Unit => true,
        Variant::Newtype(shape) => ends(shape),
        Variant::Tuple(items) => items.iter().all(ends),
        Variant::Struct(fields) => fields.iter().all(|(_, shape)| ends(shape)),
    }
}

/// Why a pass stopped.
#[derive(Debug)]
enum TraceError {
    /// The type refused a made-up value (another candidate may do).
    Refused(String),
    /// The type cannot be traced: it needs `deserialize_any`, or hit a bound.
    Untraceable(&'static str),
}

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TraceError::Refused(why) => write!(f, "refused a made-up value: {why}"),
            TraceError::Untraceable(why) => write!(f, "cannot be traced: {why}"),
        }
    }
}

impl std::error::Error for TraceError {}

impl de::Error for TraceError {
    fn custom<M: fmt::Display>(message: M) -> Self {
        TraceError::Refused(message.to_string())
    }
}

/// Where a value is deserialized: the tracer, whether inside a recursion, how deep.
struct Scope<'t> {
    tracer: &'t mut Tracer,
    /// Inside a recursion: record nothing, make the smallest value.
    muted: bool,
    depth: usize,
}

impl<'t> Scope<'t> {
    /// A probe for a value one level down, recording its shape in `out`.
    fn probe<'c>(&'c mut self, out: &'c mut Shape) -> Probe<'c> {
        Probe {
            scope: Scope {
                tracer: &mut *self.tracer,
                muted: self.muted,
                depth: self.depth + 1,
            },
            out,
        }
    }

    /// Visits `count` elements (struct fields, tuple or sequence items) with `visitor` and
    /// returns their shapes.
    fn elements<'de, V: Visitor<'de>>(
        self,
        count: usize,
        visitor: V,
    ) -> Result<(V::Value, Vec<Shape>), TraceError> {
        let mut elements = Elements {
            scope: self,
            shapes: vec![Shape::Unknown; count],
            next: 0,
        };
        let value = visitor.visit_seq(&mut elements)?;
        Ok((value, elements.shapes))
    }
}

/// Deserializes one value, recording its shape in `out`.
struct Probe<'t> {
    scope: Scope<'t>,
    out: &'t mut Shape,
}

impl<'t> Probe<'t> {
    /// Counts the call against the pass' bounds.
    fn enter(&mut self) -> Result<(), TraceError> {
        let tracer = &mut *self.scope.tracer;
        tracer.calls += 1;
        if tracer.calls > MAX_CALLS {
            return Err(TraceError::Untraceable("too many serde calls"));
        }
        if self.scope.depth > MAX_DEPTH {
            return Err(TraceError::Untraceable("nested too deep"));
        }
        Ok(())
    }

    /// Records a primitive and returns the candidate index for a value of type `V`.
    fn leaf<V>(&mut self, name: &'static str) -> Result<usize, TraceError> {
        self.enter()?;
        *self.out = Shape::Primitive(name);
        Ok(self.scope.tracer.candidate(type_name::<V>()))
    }

    /// Records `shape` (made from the elements' shapes) after visiting `count` elements.
    fn elements<'de, V: Visitor<'de>>(
        mut self,
        count: usize,
        visitor: V,
        shape: impl FnOnce(Vec<Shape>) -> Shape,
    ) -> Result<V::Value, TraceError> {
        self.enter()?;
        let (value, shapes) = self.scope.elements(count, visitor)?;
        *self.out = shape(shapes);
        Ok(value)
    }

    /// A named struct (`V::Value` is its type): traced by `visit` and recorded, unless muted
    /// or met inside itself, in which case it is visited muted and not recorded.
    fn container<'de, V: Visitor<'de>>(
        mut self,
        visitor: V,
        visit: impl FnOnce(Scope<'_>, V) -> Result<(V::Value, Container), TraceError>,
    ) -> Result<V::Value, TraceError> {
        self.enter()?;
        let id = type_name::<V::Value>();
        *self.out = Shape::Container(id);
        let tracer = self.scope.tracer;
        let muted = self.scope.muted || tracer.stack.contains(&id);
        if !muted {
            tracer.stack.push(id);
        }
        let scope = Scope {
            tracer: &mut *tracer,
            muted,
            depth: self.scope.depth,
        };
        let (value, traced) = visit(scope, visitor)?;
        if !muted {
            tracer.stack.pop();
            tracer.containers.insert(id, traced);
        }
        Ok(value)
    }
}

macro_rules! numbers {
    ($($method:ident => $visit:ident($ty:ty), $name:literal;)*) => {$(
        fn $method<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, TraceError> {
            let index = self.leaf::<V::Value>($name)?;
            visitor.$visit(<$ty>::from(NUMBERS[index.min(NUMBERS.len() - 1)]))
        }
    )*};
}

impl<'de> de::Deserializer<'de> for Probe<'_> {
    type Error = TraceError;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, TraceError> {
        Err(TraceError::Untraceable(
            "needs a self-describing format (deserialize_any)",
        ))
    }

    fn deserialize_bool<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, TraceError> {
        self.leaf::<V::Value>("bool")?;
        visitor.visit_bool(false)
    }

    numbers! {
        deserialize_i8 => visit_i8(i8), "i8";
        deserialize_i16 => visit_i16(i16), "i16";
        deserialize_i32 => visit_i32(i32), "i32";
        deserialize_i64 => visit_i64(i64), "i64";
        deserialize_i128 => visit_i128(i128), "i128";
        deserialize_u8 => visit_u8(u8), "u8";
        deserialize_u16 => visit_u16(u16), "u16";
        deserialize_u32 => visit_u32(u32), "u32";
        deserialize_u64 => visit_u64(u64), "u64";
        deserialize_u128 => visit_u128(u128), "u128";
        deserialize_f32 => visit_f32(f32), "f32";
        deserialize_f64 => visit_f64(f64), "f64";
    }

    fn deserialize_char<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, TraceError> {
        self.leaf::<V::Value>("char")?;
        visitor.visit_char('a')
    }

    fn deserialize_str<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, TraceError> {
        let index = self.leaf::<V::Value>("str")?;
        visitor.visit_str(TEXTS[index.min(TEXTS.len() - 1)])
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, TraceError> {
        let index = self.leaf::<V::Value>("bytes")?;
        visitor.visit_bytes(BYTES[index.min(BYTES.len() - 1)])
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, TraceError> {
        self.enter()?;
        if self.scope.muted {
            *self.out = Shape::Option(Box::new(Shape::Unknown));
            return visitor.visit_none();
        }
        let mut inner = Shape::Unknown;
        let value = visitor.visit_some(self.scope.probe(&mut inner))?;
        *self.out = Shape::Option(Box::new(inner));
        Ok(value)
    }

    fn deserialize_unit<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, TraceError> {
        self.leaf::<V::Value>("unit")?;
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, TraceError> {
        self.container(visitor, |_, visitor| {
            Ok((visitor.visit_unit()?, Container::UnitStruct))
        })
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, TraceError> {
        self.container(visitor, |mut scope, visitor| {
            let mut inner = Shape::Unknown;
            let value = visitor.visit_newtype_struct(scope.probe(&mut inner))?;
            Ok((value, Container::Newtype(inner)))
        })
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        // One element describes them all; a muted sequence is empty.
        let count = usize::from(!self.scope.muted);
        self.elements(count, visitor, |mut shapes| {
            Shape::Seq(Box::new(shapes.pop().unwrap_or(Shape::Unknown)))
        })
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, TraceError> {
        self.elements(len, visitor, Shape::Tuple)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, TraceError> {
        self.container(visitor, |scope, visitor| {
            let (value, shapes) = scope.elements(len, visitor)?;
            Ok((value, Container::TupleStruct(shapes)))
        })
    }

    fn deserialize_map<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, TraceError> {
        self.enter()?;
        let remaining = usize::from(!self.scope.muted);
        let mut entries = Entries {
            scope: self.scope,
            key: Shape::Unknown,
            value: Shape::Unknown,
            remaining,
        };
        let value = visitor.visit_map(&mut entries)?;
        *self.out = Shape::Map(Box::new(entries.key), Box::new(entries.value));
        Ok(value)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, TraceError> {
        self.container(visitor, |scope, visitor| {
            let (value, shapes) = scope.elements(fields.len(), visitor)?;
            let named = fields.iter().copied().zip(shapes).collect();
            Ok((value, Container::Struct(named)))
        })
    }

    fn deserialize_enum<V: Visitor<'de>>(
        mut self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, TraceError> {
        self.enter()?;
        let id = type_name::<V::Value>();
        *self.out = Shape::Container(id);
        let count = variants.len();
        if count == 0 {
            return Err(TraceError::Untraceable("an enum without variants"));
        }
        let Scope {
            tracer,
            muted,
            depth,
        } = self.scope;
        let explore = !muted && !tracer.stack.contains(&id);
        let index = tracer.variant_to_visit(id, count, explore, depth);
        if explore {
            tracer.stack.push(id);
        }
        let mut traced = Variant::Unit;
        let access = VariantProbe {
            scope: Scope {
                tracer: &mut *tracer,
                muted: !explore,
                depth,
            },
            index,
            out: &mut traced,
        };
        let value = visitor.visit_enum(access)?;
        if explore {
            tracer.stack.pop();
            let name = variants.get(index).copied().unwrap_or("?");
            tracer.record_variant(id, count, index, (name, traced));
        }
        Ok(value)
    }

    fn deserialize_identifier<V: Visitor<'de>>(
        mut self,
        visitor: V,
    ) -> Result<V::Value, TraceError> {
        self.enter()?;
        visitor.visit_u64(0)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(
        mut self,
        visitor: V,
    ) -> Result<V::Value, TraceError> {
        self.enter()?;
        visitor.visit_unit()
    }

    /// Like bincode: types with a compact binary form (ids, addresses, times) choose it.
    fn is_human_readable(&self) -> bool {
        false
    }
}

/// The elements of a sequence, tuple or struct, each recorded in its own slot.
struct Elements<'t> {
    scope: Scope<'t>,
    shapes: Vec<Shape>,
    next: usize,
}

impl<'de> SeqAccess<'de> for Elements<'_> {
    type Error = TraceError;

    fn next_element_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, TraceError> {
        let Some(slot) = self.shapes.get_mut(self.next) else {
            return Ok(None);
        };
        self.next += 1;
        seed.deserialize(self.scope.probe(slot)).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.shapes.len() - self.next)
    }
}

/// The entries of a map: one (describing them all), or none when muted.
struct Entries<'t> {
    scope: Scope<'t>,
    key: Shape,
    value: Shape,
    remaining: usize,
}

impl<'de> MapAccess<'de> for Entries<'_> {
    type Error = TraceError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, TraceError> {
        if self.remaining == 0 {
            return Ok(None);
        }
        seed.deserialize(self.scope.probe(&mut self.key)).map(Some)
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<S::Value, TraceError> {
        self.remaining = self.remaining.saturating_sub(1);
        seed.deserialize(self.scope.probe(&mut self.value))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.remaining)
    }
}

/// The variant of an enum the tracer chose, and its payload.
struct VariantProbe<'t> {
    scope: Scope<'t>,
    index: usize,
    out: &'t mut Variant,
}

impl<'de> EnumAccess<'de> for VariantProbe<'_> {
    type Error = TraceError;
    type Variant = Self;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Self), TraceError> {
        // Variants are named by index, as bincode does.
        let index: de::value::U64Deserializer<TraceError> = (self.index as u64).into_deserializer();
        Ok((seed.deserialize(index)?, self))
    }
}

impl<'de> VariantAccess<'de> for VariantProbe<'_> {
    type Error = TraceError;

    fn unit_variant(self) -> Result<(), TraceError> {
        *self.out = Variant::Unit;
        Ok(())
    }

    fn newtype_variant_seed<S: DeserializeSeed<'de>>(
        mut self,
        seed: S,
    ) -> Result<S::Value, TraceError> {
        let mut inner = Shape::Unknown;
        let value = seed.deserialize(self.scope.probe(&mut inner))?;
        *self.out = Variant::Newtype(inner);
        Ok(value)
    }

    fn tuple_variant<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, TraceError> {
        let (value, shapes) = self.scope.elements(len, visitor)?;
        *self.out = Variant::Tuple(shapes);
        Ok(value)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, TraceError> {
        let (value, shapes) = self.scope.elements(fields.len(), visitor)?;
        *self.out = Variant::Struct(fields.iter().copied().zip(shapes).collect());
        Ok(value)
    }
}
