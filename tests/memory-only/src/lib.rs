//! Nothing but its tests: a crate that uses typedkv as a library crate defining its
//! repositories would, with `default-features = false` (see `tests/conventions.rs`).
