//! Keeps a short-lived bearer access token alive for an HTTP client.
//!
//! `bearer-refresh` logs in with a long-lived credential, attaches
//! `Authorization: Bearer <token>` to every request, refreshes the token
//! before it expires, and answers a 401 by refreshing once and replaying the
//! request. One token state is shared by every clone of the client and every
//! concurrent request: N callers waiting on a token cost one token call.
//!
//! - [`TokenManager`] holds the token: single-flight login and refresh,
//!   backoff, and the hot path every request takes.
//! - A [`TokenSource`] makes the token calls: [`ApiKeySource`] for
//!   api.video's API keys, `oauth2` for OAuth2 token endpoints, or your own.
//! - An adapter puts the token on requests: [`BearerAuthLayer`] for any tower
//!   `Service` (hyper-util, tonic, axum's body types), and
//!   [`BearerAuthMiddleware`] for reqwest-middleware.
//! - A [`TokenStore`] shares one token between processes: `FileStore` on one
//!   machine, `RedisStore` across a fleet.
//!
//! # Example
//!
//! A reqwest client against an in-process api.video (the `test-util`
//! feature's double; in production the source is
//! `ApiKeySource::new(ApiKeySource::PRODUCTION, api_key)?`). The API
//! revokes the token, the next request gets a 401, and the middleware
//! refreshes the token and replays the request: the caller sees a 200.
//!
//! ```
//! use bearer_refresh::testing::ApiVideoDouble;
//! use bearer_refresh::{BearerAuthMiddleware, TokenManager};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let api = ApiVideoDouble::start().await?;
//! let tokens = TokenManager::new(api.source());
//! let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(BearerAuthMiddleware::new(tokens))
//!     .build();
//!
//! assert_eq!(client.get(api.url("/videos")).send().await?.status(), 200);
//!
//! api.revoke_access_tokens();
//! assert_eq!(client.get(api.url("/videos")).send().await?.status(), 200);
//!
//! let calls = api.calls();
//! assert_eq!(calls.unauthorized, 1); // the 401, answered by the middleware
//! assert_eq!((calls.logins, calls.refreshes), (1, 1));
//! # Ok(())
//! # }
//! ```
//!
//! The [README](https://crates.io/crates/bearer-refresh) has the tower and
//! tonic quick starts and the behaviour under failure; its guides cover
//! bodies and gRPC, retry middlewares, OAuth2, stores and the test double.
//!
//! # Where things are
//!
//! - Entry points at the root: [`TokenManager`], the adapters
//!   ([`BearerAuthLayer`], [`BearerAuthMiddleware`]), the sources
//!   ([`ApiKeySource`], [`oauth2`]), the stores (`FileStore`,
//!   `RedisStore`), [`Origin`] and [`Error`] (with [`Error::find`] to get it
//!   back out of a middleware stack).
//! - Writing a token endpoint of your own: [`source`] ([`TokenSource`],
//!   [`TokenResponse`],
//!   [`BoxFuture`]).
//! - Writing a store of your own: [`store`] ([`TokenStore`],
//!   [`StoredBytes`], [`Lease`]).
//!
//! # Compatibility
//!
//! | crate | version |
//! |---|---|
//! | Rust (MSRV) | 1.88 |
//! | `reqwest` / `reqwest-middleware` | 0.13 / 0.5 |
//! | `tower` (`tower-layer`, `tower-service`) | 0.5 (0.3) |
//! | `http`, `http-body`, `hyper` | 1 |
//! | `tonic` | 0.14 |
//! | `axum` (`axum-core`) | 0.8 (0.5) |
//! | `tokio` | 1.38 or later |
//!
//! A `BearerAuthMiddleware: Middleware is not satisfied` error (E0277)
//! means two `reqwest-middleware` versions in one build:
//! `cargo tree -d -i reqwest-middleware` shows them.
//!
//! # Feature flags
//!
//! | feature | default | enables |
//! |---|---|---|
//! | `tower` | yes | [`BearerAuthLayer`] and [`BearerAuth`] |
//! | `reqwest` | yes | [`BearerAuthMiddleware`] |
//! | `api-video` | yes | [`ApiKeySource`] |
//! | `oauth2` | yes | `oauth2`: client credentials, the refresh-token grant, and credentials without a shared secret (`JwtSigningKey`, `ClientAssertion`, `SubjectToken`, `TokenExchange`) |
//! | `dpop` | no | `dpop`: DPoP keys (`DpopKey`), sender-constrained tokens (RFC 9449) |
//! | `file-store` | yes | `FileStore`: one token for the processes of one machine |
//! | `rustls` | yes | rustls for the crate's own token calls |
//! | `native-tls` | no | native-tls for the crate's own token calls |
//! | `redis` | no | `RedisStore`: one token for a fleet |
//! | `tonic`, `axum` | no | replay of those crates' body types |
//! | `test-util` | no | `testing::ApiVideoDouble`, an in-process api.video for your tests |
//! | `metrics` | no | instruments through the `metrics` facade: token calls, waits, replays, expired tokens served, store errors (see `docs/metrics.md`) |
//!
//! A tower-only build (`default-features = false, features = ["tower"]`)
//! compiles neither reqwest nor a TLS stack; bring your own [`TokenSource`].

#![cfg_attr(docsrs, feature(doc_cfg))]
// Without an adapter the crate is the engine alone; the request side
// then has no caller.
#![cfg_attr(not(any(feature = "tower", feature = "reqwest")), allow(dead_code))]

mod engine;
mod error;
// Only DPoP uses the P-256 JWK, key generation and PEM output.
#[cfg(any(feature = "dpop", feature = "oauth2"))]
#[cfg_attr(not(feature = "dpop"), allow(dead_code, unused_imports))]
mod jose;
mod metrics;
mod origin;
#[cfg(any(feature = "tower", feature = "reqwest"))]
mod request;
pub mod source;
pub mod store;

#[cfg(feature = "dpop")]
#[cfg_attr(docsrs, doc(cfg(feature = "dpop")))]
pub mod dpop;
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
pub use crate::origin::Origin;
#[cfg(feature = "reqwest")]
#[cfg_attr(docsrs, doc(cfg(feature = "reqwest")))]
pub use crate::reqwest::BearerAuthMiddleware;
#[cfg(feature = "oauth2")]
#[cfg_attr(docsrs, doc(cfg(feature = "oauth2")))]
pub use crate::source::oauth2;
#[cfg(feature = "api-video")]
#[cfg_attr(docsrs, doc(cfg(feature = "api-video")))]
pub use crate::source::ApiKeySource;
pub use crate::source::TokenSource;
// What the writer of a source needs lives in `source`; these keep code
// written against 0.1's root paths compiling.
#[doc(hidden)]
pub use crate::source::{BoxFuture, TokenResponse, TokenType};
#[cfg(feature = "file-store")]
#[cfg_attr(docsrs, doc(cfg(feature = "file-store")))]
pub use crate::store::FileStore;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use crate::store::RedisStore;
pub use crate::store::TokenStore;
// What the writer of a store needs lives in `store`, as above.
#[doc(hidden)]
pub use crate::store::{Lease, StoredBytes, StoredToken};
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
#[doc(inline)]
pub use crate::tower::{BearerAuth, BearerAuthLayer};

/// The README's examples, compiled and run with the doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// The examples of the guides in `docs/`, compiled and run with the doc
/// tests.
#[cfg(doctest)]
pub mod guides {
    #[doc = include_str!("../docs/bodies-and-grpc.md")]
    pub struct BodiesAndGrpc;
    #[doc = include_str!("../docs/configuration.md")]
    pub struct Configuration;
    #[doc = include_str!("../docs/metrics.md")]
    pub struct Metrics;
    #[cfg(all(
        feature = "dpop",
        feature = "oauth2",
        feature = "tower",
        feature = "reqwest"
    ))]
    #[doc = include_str!("../docs/dpop.md")]
    pub struct Dpop;
    #[doc = include_str!("../docs/oauth2.md")]
    pub struct OAuth2;
    #[doc = include_str!("../docs/retry.md")]
    pub struct Retry;
    #[doc = include_str!("../docs/stores.md")]
    pub struct Stores;
    #[doc = include_str!("../docs/testing.md")]
    pub struct Testing;
}
