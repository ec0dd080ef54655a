#![doc = include_str!("../README.md")]
#![deny(missing_docs, unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod backoff;
mod error;
mod manager;
#[cfg(feature = "redis")]
mod redis_store;
mod replay;
mod reqwest;
mod scope;
mod snapshot;
mod source;
mod store;
mod token;
pub mod tower;

pub use crate::backoff::Backoff;
pub use crate::error::{Error, TokenCall};
pub use crate::manager::{AuthHeader, Stats, TokenManager, TokenManagerBuilder};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use crate::redis_store::RedisStore;
pub use crate::replay::ReplayBody;
pub use crate::reqwest::BearerAuthMiddleware;
pub use crate::scope::Origin;
pub use crate::source::{ApiKeySource, BoxFuture, TokenSource};
pub use crate::store::{Lease, StoredToken, TokenStore};
pub use crate::token::TokenResponse;
pub use crate::tower::{BearerAuth, BearerAuthLayer};

#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub mod testing;
