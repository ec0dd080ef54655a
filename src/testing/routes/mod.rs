//! The double's HTTP routes.

mod auth;
mod videos;

use axum::routing::{any, post};
use axum::Router;

use super::state::Shared;

pub(super) fn router(state: Shared) -> Router {
    Router::new()
        .route("/auth/api-key", post(auth::login))
        .route("/auth/refresh", post(auth::refresh))
        .route("/videos", any(videos::videos))
        .with_state(state)
}
