//! A small REST service: `GET`, `PUT` and `DELETE /users/{id}`, with handlers that take an
//! `Arc<dyn Store<User>>` (see `examples/src/users_api.rs`).
//!
//! ```text
//! cargo run -p typedkv-examples --example axum_service                                  # in memory
//! REDIS_URL=redis://127.0.0.1:6379 cargo run -p typedkv-examples --example axum_service # Redis
//! curl -X PUT localhost:3000/users/42 -H 'content-type: application/json' \
//!      -d '{"name":"Alice","email":"alice@example.com"}'
//! curl localhost:3000/users/42
//! ```
//!
//! `PORT` picks the port (default 3000; 0 for any free one). Stops on Ctrl-C.

use tokio::net::TcpListener;
use typedkv_examples::users_api::{User, router};
use typedkv_examples::{Backend, Failure};

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let backend = Backend::from_env("axum_service").await?;
    let users = backend.store::<User>("user")?;
    let port = std::env::var("PORT").unwrap_or_else(|_| "3000".into());
    let listener = TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, router(users))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
