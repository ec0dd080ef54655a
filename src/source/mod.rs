//! Where tokens come from: the [`TokenSource`] trait, the token response
//! wire format, and the sources the crate ships, which all make their HTTP
//! token calls through one `TokenEndpoint`.

use std::future::Future;
use std::pin::Pin;

use secrecy::SecretString;

use crate::error::Error;
use crate::origin::Origin;

#[cfg(feature = "api-video")]
mod api_video;
#[cfg(any(feature = "api-video", feature = "oauth2"))]
mod endpoint;
#[cfg(feature = "oauth2")]
pub mod oauth2;
mod redact;
#[cfg(any(feature = "api-video", feature = "oauth2"))]
mod refusal;
mod response;
#[cfg(any(feature = "api-video", feature = "oauth2"))]
mod token_request;

#[cfg(feature = "api-video")]
pub use api_video::ApiKeySource;
pub(crate) use response::MAX_LIFETIME;
pub use response::{TokenResponse, TokenType};

/// A boxed, `Send` future, as returned by [`TokenSource`] methods.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A token endpoint: log in with a long-lived credential, and refresh with a
/// refresh token.
///
/// [`ApiKeySource`] implements it for api.video. Implement it for another
/// API with the same credential → access/refresh scheme (an OAuth2 refresh
/// grant, say), then hand it to [`TokenManager`](crate::TokenManager).
///
/// Return errors classified the way the manager expects:
/// [`Error::RefreshTokenRejected`] from `refresh` makes it log in again;
/// [`Error::is_transient`] errors are retried with backoff; anything else
/// goes to the callers.
///
/// A source is `'static` (the `Any` bound): the crate recognises the
/// sources it ships by their type, so that a shared store can derive its
/// sealing key from their long-lived credential. Any other source has no
/// such credential for a store: give the store a key of its own.
///
/// ```
/// use bearer_refresh::{BoxFuture, Error, TokenManager, TokenResponse, TokenSource};
/// use secrecy::SecretString;
///
/// struct Fixed;
///
/// impl TokenSource for Fixed {
///     fn login(&self) -> BoxFuture<'_, Result<TokenResponse, Error>> {
///         Box::pin(async { Ok(TokenResponse::new("t0k3n")) })
///     }
///     fn refresh<'a>(&'a self, _: &'a SecretString) -> BoxFuture<'a, Result<TokenResponse, Error>> {
///         self.login()
///     }
/// }
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let tokens = TokenManager::new(Fixed);
/// assert_eq!(tokens.authorization().await.unwrap(), "Bearer t0k3n");
/// # });
/// ```
pub trait TokenSource: std::any::Any + Send + Sync {
    /// Logs in with the long-lived credential.
    fn login(&self) -> BoxFuture<'_, Result<TokenResponse, Error>>;

    /// Exchanges a refresh token for a new access token.
    fn refresh<'a>(
        &'a self,
        refresh_token: &'a SecretString,
    ) -> BoxFuture<'a, Result<TokenResponse, Error>>;

    /// The origin of the API that the tokens are for. The request side sends
    /// the token there and nowhere else unless told otherwise. `None` (the
    /// default) means no origin gets it until one is allowed explicitly.
    fn origin(&self) -> Option<Origin> {
        None
    }

    /// Whether [`login`](Self::login) can mint a token from a long-lived
    /// credential (the default). A source that starts from a refresh token
    /// obtained elsewhere returns `false`: when its refresh token is
    /// rejected, the manager reports [`Error::SignInRequired`] instead of
    /// falling back to a login that cannot exist.
    fn can_login(&self) -> bool {
        true
    }

    /// A refresh token to start from, obtained elsewhere (an authorization
    /// code or device flow, a CLI login). The manager refreshes with it
    /// before anything else. `None` (the default) starts with a login.
    fn initial_refresh_token(&self) -> Option<SecretString> {
        None
    }

    /// The DPoP key the source proves possession of at its token endpoint
    /// (RFC 9449), if any: the OAuth2 sources built with `.dpop(key)`
    /// return it. `None` (the default) for a source without one.
    ///
    /// The manager and the adapters sign the proofs of API requests with
    /// it when the token endpoint answered `token_type: DPoP`
    /// ([`TokenResponse::token_type`]). A source of your own that gets
    /// DPoP-bound tokens returns the key it sent its proofs with.
    #[cfg(feature = "dpop")]
    #[cfg_attr(docsrs, doc(cfg(feature = "dpop")))]
    fn dpop_key(&self) -> Option<&crate::dpop::DpopKey> {
        None
    }
}

/// The long-lived credential of a shipped source (the API key, a client
/// secret), from which a shared store may derive the key that seals tokens
/// at rest: every member of a fleet holds it anyway. `None` for any other
/// source, which then needs an explicit key.
#[cfg_attr(
    not(any(feature = "api-video", feature = "oauth2")),
    allow(unused_variables)
)]
pub(crate) fn long_lived_secret(source: &dyn TokenSource) -> Option<&SecretString> {
    let source: &dyn std::any::Any = source;
    #[cfg(feature = "api-video")]
    if let Some(source) = source.downcast_ref::<ApiKeySource>() {
        return source.long_lived_secret();
    }
    #[cfg(feature = "oauth2")]
    if let Some(source) = source.downcast_ref::<oauth2::ClientCredentials>() {
        return source.long_lived_secret();
    }
    #[cfg(feature = "oauth2")]
    if let Some(source) = source.downcast_ref::<oauth2::RefreshTokenSource>() {
        return source.long_lived_secret();
    }
    #[cfg(feature = "oauth2")]
    if let Some(source) = source.downcast_ref::<oauth2::TokenExchange>() {
        return source.long_lived_secret();
    }
    None
}
