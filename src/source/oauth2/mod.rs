//! OAuth2 token sources (RFC 6749): [`ClientCredentials`] for services,
//! [`RefreshTokenSource`] for tokens a user obtained elsewhere, and
//! [`TokenExchange`] (RFC 8693) to trade a workload's identity token.
//!
//! A client authenticates with a secret, or without a shared secret: with
//! `private_key_jwt` ([`JwtSigningKey`], RFC 7523), or with an assertion
//! minted elsewhere and re-read on every token request
//! ([`ClientAssertion`], such as a Kubernetes projected service-account
//! token). Assertions and subject tokens ([`SubjectToken`]) are made or
//! read afresh for every HTTP request, retries included, and are never
//! stored, logged or shown by `Debug`.
//!
//! They post a form to the provider's token endpoint and read the token
//! response as [`ApiKeySource`](crate::ApiKeySource) does: `expires_in`,
//! or else the access token's JWT `exp`. Errors follow RFC 6749 §5.2:
//!
//! | the endpoint answers | the error | what happens |
//! |---|---|---|
//! | `invalid_grant` to a refresh | [`Error::RefreshTokenRejected`](crate::Error::RefreshTokenRejected) | [`ClientCredentials`]: a new grant; [`RefreshTokenSource`]: [`Error::SignInRequired`](crate::Error::SignInRequired) |
//! | `invalid_client`, or a 401 | [`Error::ClientAuthRejected`](crate::Error::ClientAuthRejected) | permanent: check the client id and secret |
//! | the same, to a client assertion | [`Error::ClientAssertionRejected`](crate::Error::ClientAssertionRejected) | permanent, naming the likely causes: clock skew, a wrong `aud`, an unregistered key |
//! | `unauthorized_client`, `invalid_scope`, `unsupported_grant_type`, `invalid_request`, `invalid_grant` to a client credentials grant or a token exchange (an expired subject token), another 4xx | [`Error::GrantRefused`](crate::Error::GrantRefused) | permanent, naming what to fix |
//! | a missing, unreadable or empty assertion or subject token file | [`Error::InvalidConfig`](crate::Error::InvalidConfig) | permanent, naming the path |
//! | 429 | [`Error::RateLimited`](crate::Error::RateLimited) | retried after the advertised wait |
//! | 5xx, a network failure, a timeout, an undecodable 200 | [`Error::Status`](crate::Error::Status), [`Error::Unreachable`](crate::Error::Unreachable), [`Error::Timeout`](crate::Error::Timeout), [`Error::InvalidResponse`](crate::Error::InvalidResponse) | retried with backoff |
//!
//! No message quotes a secret: the `error` code and the
//! `error_description` are quoted without the client secret, the refresh
//! token, the assertion and the subject token sent, in any form the server
//! may echo them (raw, form-urlencoded, inside the `Basic` credential, in
//! another case), and a refused client authentication quotes no server
//! text at all. A token that would live
//! under 1 s is an invalid answer, retried with backoff.
//!
//! These sources have no API origin: tell the layer or the middleware where
//! the tokens go with `allow_origin`, or they attach nothing.
//!
//! ```no_run
//! # #[cfg(feature = "tower")]
//! # fn main() -> Result<(), bearer_refresh::Error> {
//! use bearer_refresh::oauth2::ClientCredentials;
//! use bearer_refresh::{BearerAuthLayer, Origin, TokenManager};
//!
//! let source = ClientCredentials::new("https://idp.example/oauth/token", "client-id", "client-secret")?
//!     .scope("videos:read videos:write");
//! let tokens = TokenManager::new(source);
//! let layer = BearerAuthLayer::new(tokens).allow_origin(Origin::parse("https://api.example")?);
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "tower"))]
//! # fn main() {}
//! ```
//!
//! # Why a hand-written exchange, not the `oauth2` crate
//!
//! The `oauth2` crate fits through its `AsyncHttpClient` seam without a
//! second reqwest, but it would bring chrono, rand 0.8, sha2, thiserror 1
//! and serde_path_to_error into every default build for two form posts.
//! And it would not spare us much: the capped body read, `Retry-After`, the
//! JWT `exp` fallback and the 5xx/429 classification are the crate's own
//! either way, and they sit on both sides of that seam. What is left, the
//! form encoding, is `form_urlencoded`, which reqwest already compiles.

mod auth;
mod client;
mod client_assertion;
mod client_credentials;
mod credential_file;
mod dpop;
mod external_token;
mod grant;
mod refresh_token;
mod refusal;
mod signing_key;
mod subject_token;
mod token_exchange;

pub use client_assertion::ClientAssertion;
pub use client_credentials::ClientCredentials;
pub use refresh_token::RefreshTokenSource;
pub use signing_key::JwtSigningKey;
pub use subject_token::SubjectToken;
pub use token_exchange::TokenExchange;

#[cfg(test)]
mod tests;
