//! The Rust snippets of README.md, compiled: `tests/build.rs` extracts them into functions
//! (and modules) here, after the context the README's prose gives them. A snippet that no
//! longer compiles against the API fails this test binary's build.

#![allow(unused, dead_code, unreachable_pub, missing_docs, clippy::all)]

use prelude::*;

/// What the README's snippets refer to without defining it.
mod prelude {
    pub use std::sync::Arc;
    pub use std::time::Duration;

    pub use serde::{Deserialize, Serialize};
    pub use typedkv::redis::RedisPool;
    pub use typedkv::{BoxError, RedisStore, Store, StoreExt};

    /// The README's running example type (as of its migration snippet: version 2).
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct User {
        pub name: String,
        pub email: Option<String>,
    }

    /// Version 1 of [`User`], for the migration snippet.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct UserV1 {
        pub name: String,
    }

    #[derive(Debug, Clone, Default, Serialize, Deserialize)]
    pub struct Doc {
        pub text: String,
    }

    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct Session {
        pub user: String,
    }

    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct Profile {
        pub bio: String,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("database unavailable")]
    pub struct MyError;

    pub async fn fetch_profile_from_db(_id: u64) -> Result<Profile, MyError> {
        Ok(Profile { bio: String::new() })
    }

    /// An encryption key from the application's secret manager.
    pub fn load_key(_id: u32) -> Result<[u8; 32], BoxError> {
        Ok([0; 32])
    }

    /// A backend of one's own, for the snippet that runs the conformance suite on it.
    pub type MyBackend = typedkv::MemoryBackend;
}

include!(concat!(env!("OUT_DIR"), "/readme_snippets.rs"));

#[test]
fn every_readme_snippet_was_compiled() {
    assert!(
        SNIPPETS >= 10,
        "found only {SNIPPETS} Rust snippets in README.md"
    );
}
