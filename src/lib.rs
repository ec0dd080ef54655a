#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
// Without an adapter the crate is the engine alone; the request side
// then has no caller.
#![cfg_attr(not(any(feature = "tower", feature = "reqwest")), allow(dead_code))]

mod engine;
mod error;
mod request;
mod source;
mod store;

#[cfg(feature = "reqwest")]
mod reqwest;
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub mod tower;

#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub mod testing;

pub use crate::engine::{AuthHeader, Backoff, Stats, TokenManager, TokenManagerBuilder};
pub use crate::error::{Error, TokenCall};
pub use crate::request::Origin;
#[cfg(feature = "reqwest")]
#[cfg_attr(docsrs, doc(cfg(feature = "reqwest")))]
pub use crate::reqwest::BearerAuthMiddleware;
#[cfg(feature = "api-video")]
#[cfg_attr(docsrs, doc(cfg(feature = "api-video")))]
pub use crate::source::ApiKeySource;
pub use crate::source::{BoxFuture, TokenResponse, TokenSource};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use crate::store::RedisStore;
pub use crate::store::{Lease, StoredToken, TokenStore};
#[cfg(feature = "tower")]
pub use crate::tower::{BearerAuth, BearerAuthLayer};
