//! The tower adapter: [`BearerAuthLayer`] wraps any HTTP
//! [`Service`](tower_service::Service) in a [`BearerAuth`] that attaches the
//! bearer token and answers a 401 with a refresh and a replay.

mod error;
mod future;
mod grpc;
mod layer;
mod service;

pub use error::BearerAuthError;
pub use future::ResponseFuture;
pub use grpc::GrpcTrailers;
pub use layer::BearerAuthLayer;
pub use service::BearerAuth;
