//! The first lesson, typed: store "Alice" under `name`, read it back, see that a missing key
//! is `None` rather than an error, then do the same with a struct.
//!
//! ```text
//! cargo run -p typedkv-examples --example quickstart                                # in memory
//! REDIS_URL=redis://127.0.0.1:6379 cargo run -p typedkv-examples --example quickstart  # Redis
//! ```

use serde::{Deserialize, Serialize};
use typedkv_examples::{Backend, Failure};

/// A domain object: nothing typedkv-specific is derived or implemented on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct User {
    name: String,
    email: String,
    languages: Vec<String>,
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let backend = Backend::from_env("quickstart").await?;

    // A store of Strings under the namespace "lesson": id "name" is the Redis key "lesson:name".
    let strings = backend.store::<String>("lesson")?;
    strings.set("name", &"Alice".to_owned()).await?;
    let name: Option<String> = strings.get("name").await?;
    println!("lesson:name  -> {name:?}");

    // A missing key is Ok(None), not an error and not an empty string.
    let missing = strings.get("no-such-name").await?;
    println!("lesson:no-such-name -> {missing:?}");

    // The same with a struct: encoded on the way in, decoded on the way out.
    let users = backend.store::<User>("user")?;
    let alice = User {
        name: "Alice".into(),
        email: "alice@example.com".into(),
        languages: vec!["en".into(), "fr".into()],
    };
    users.set("alice", &alice).await?;
    let back = users.get("alice").await?;
    println!("user:alice   -> {back:?}");
    println!("same as stored: {}", back.as_ref() == Some(&alice));

    // Clean up, so a run against a real Redis leaves nothing behind.
    strings.delete("name").await?;
    users.delete("alice").await?;
    println!("after delete -> {:?}", users.get("alice").await?);
    Ok(())
}
