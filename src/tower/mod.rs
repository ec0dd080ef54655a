//! The tower adapter: [`BearerAuthLayer`] wraps any HTTP
//! [`Service`](tower_service::Service) in a [`BearerAuth`] that attaches the
//! bearer token and answers a 401 with a refresh and a replay.
//!
//! Any request body type goes through: in-memory bodies are copied for a
//! replay, streaming ones recorded as they go out (see [`BearerAuth`]). gRPC
//! works too: `grpc-status: 16` (UNAUTHENTICATED) is gRPC's 401.
//!
//! # Example
//!
//! An API that rejects the first token it sees: the layer refreshes the
//! token and replays the request, and the caller gets the 200.
//!
//! ```
//! use std::convert::Infallible;
//! use std::sync::atomic::{AtomicU32, Ordering};
//!
//! use bearer_refresh::{BearerAuthLayer, BoxFuture, Error, Origin, TokenManager, TokenResponse, TokenSource};
//! use http::{Request, Response, StatusCode};
//! use secrecy::SecretString;
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! /// A token endpoint handing out `token-1`, `token-2`, …
//! struct Numbered(AtomicU32);
//!
//! impl TokenSource for Numbered {
//!     fn login(&self) -> BoxFuture<'_, Result<TokenResponse, Error>> {
//!         let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
//!         Box::pin(async move { Ok(TokenResponse::new(format!("token-{n}"))) })
//!     }
//!
//!     fn refresh<'a>(&'a self, _: &'a SecretString) -> BoxFuture<'a, Result<TokenResponse, Error>> {
//!         self.login()
//!     }
//!
//!     fn origin(&self) -> Option<Origin> {
//!         Origin::parse("https://api.example").ok()
//!     }
//! }
//!
//! // The API: 401 to the first token, an echo of the body to any other.
//! let api = tower::service_fn(|request: Request<String>| async move {
//!     let status = match request.headers()["authorization"].to_str() {
//!         Ok("Bearer token-1") => StatusCode::UNAUTHORIZED,
//!         _ => StatusCode::OK,
//!     };
//!     let response = Response::builder().status(status).body(request.into_body());
//!     Ok::<_, Infallible>(response.expect("a valid response"))
//! });
//!
//! # tokio::runtime::Runtime::new()?.block_on(async {
//! let tokens = TokenManager::new(Numbered(AtomicU32::new(0)));
//! let service = ServiceBuilder::new()
//!     .layer(BearerAuthLayer::new(tokens.clone()))
//!     .service(api);
//!
//! let request = Request::post("https://api.example/videos").body(r#"{"title":"a"}"#.to_owned())?;
//! let response = service.oneshot(request).await?;
//! assert_eq!(response.status(), StatusCode::OK, "replayed with token-2");
//! assert_eq!(response.body(), r#"{"title":"a"}"#, "with the same body");
//! assert_eq!(tokens.authorization().await?, "Bearer token-2");
//! # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
//! ```

mod body;
mod error;
mod future;
mod grpc;
mod layer;
mod policy;
mod record;
mod service;
mod snapshot;

pub use error::BearerAuthError;
pub use future::ResponseFuture;
pub use grpc::GrpcTrailers;
pub use layer::BearerAuthLayer;
pub use service::BearerAuth;
