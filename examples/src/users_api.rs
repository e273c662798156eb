//! The REST service of the `axum_service` example: `GET`, `PUT` and `DELETE /users/{id}` over
//! any `Arc<dyn Store<User>>`, so the same handlers run on Redis in production and on the
//! in-memory store in tests.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use typedkv::{Error, Store};

/// What the service stores under `user:{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// Display name.
    pub name: String,
    /// Contact address.
    pub email: String,
}

/// The handlers' shared state: the store, as the trait object application code takes.
pub type Users = Arc<dyn Store<User>>;

/// The routes, over `users`.
pub fn router(users: Users) -> Router {
    Router::new()
        .route(
            "/users/{id}",
            get(get_user).put(put_user).delete(delete_user),
        )
        .with_state(users)
}

async fn get_user(
    State(users): State<Users>,
    Path(id): Path<String>,
) -> Result<Json<User>, ApiError> {
    users.get(&id).await?.map(Json).ok_or(ApiError::NotFound)
}

async fn put_user(
    State(users): State<Users>,
    Path(id): Path<String>,
    Json(user): Json<User>,
) -> Result<StatusCode, ApiError> {
    users.set(&id, &user).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn delete_user(
    State(users): State<Users>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    match users.delete(&id).await? {
        true => Ok(StatusCode::NO_CONTENT),
        false => Err(ApiError::NotFound),
    }
}

/// How a request fails. Store errors are logged in full and answered with a status and a
/// short message: clients learn neither keys nor server details.
#[derive(Debug)]
pub enum ApiError {
    /// No user with that id.
    NotFound,
    /// The store failed.
    Store(Error),
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        ApiError::Store(error)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match &self {
            ApiError::NotFound => (StatusCode::NOT_FOUND, "no such user"),
            ApiError::Store(Error::InvalidId { .. }) => (StatusCode::BAD_REQUEST, "invalid id"),
            // Worth retrying later: timeouts, lost connections, a server still loading, ...
            ApiError::Store(error) if error.is_transient() => {
                (StatusCode::SERVICE_UNAVAILABLE, "storage unavailable")
            }
            ApiError::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
        };
        if let ApiError::Store(error) = &self {
            eprintln!("request failed: {error} ({})", error.kind());
        }
        (status, message).into_response()
    }
}
