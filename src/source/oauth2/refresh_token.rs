//! [`RefreshTokenSource`]: the refresh-token grant (RFC 6749 §6) for a
//! refresh token obtained elsewhere.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};

use super::client::{client_setters, Client};
use super::grant::Grant;
use super::signing_key::JwtSigningKey;
use crate::error::Error;
use crate::source::{BoxFuture, TokenResponse, TokenSource};

/// Tokens a user obtained elsewhere (an authorization code or device flow,
/// a CLI login), kept alive with the refresh-token grant (RFC 6749 §6).
///
/// The source starts from the refresh token handed to it. A public client
/// sends its id in the form; a confidential one adds
/// [`client_secret`](Self::client_secret), sent with HTTP Basic unless
/// [`client_secret_post`](Self::client_secret_post) is set, or signs its
/// requests with [`private_key_jwt`](Self::private_key_jwt).
///
/// A token call's timeout is the manager's
/// [`call_timeout`](crate::TokenManagerBuilder::call_timeout).
///
/// There is no long-lived credential to fall back on: when the endpoint
/// rejects the refresh token (`invalid_grant`), the manager answers
/// [`Error::SignInRequired`], a permanent error saying that the user must
/// sign in again.
///
/// # Persisting the rotated refresh token
///
/// Most providers rotate the refresh token on every refresh and refuse the
/// old one, so the token handed to `new` is spent after the first refresh.
/// Two ways to survive a restart:
///
/// - a persistent [`TokenStore`](crate::TokenStore) (`FileStore` on one
///   machine, `RedisStore` for a fleet): each new refresh token is stored
///   there with its access token, and the next process refreshes with it
///   instead of presenting the spent one, even when it is built with the
///   spent one;
/// - [`TokenManagerBuilder::on_refresh_token`](crate::TokenManagerBuilder::on_refresh_token):
///   the manager tells you each new refresh token; keep it where your
///   application keeps secrets, and build the next source from it.
///
/// ```
/// use bearer_refresh::oauth2::RefreshTokenSource;
///
/// let source = RefreshTokenSource::new("https://idp.example/oauth/token", "my-cli", "r3fresh")?;
/// let confidential = RefreshTokenSource::new("https://idp.example/oauth/token", "my-app", "r3fresh")?
///     .client_secret("s3cret");
/// assert!(!format!("{source:?} {confidential:?}").contains("r3fresh"));
/// assert!(!format!("{confidential:?}").contains("s3cret"));
/// # Ok::<(), bearer_refresh::Error>(())
/// ```
#[derive(Clone)]
pub struct RefreshTokenSource {
    client: Client,
    refresh_token: SecretString,
}

impl RefreshTokenSource {
    /// A source that refreshes `refresh_token` for the client `client_id`
    /// at the token endpoint `token_url`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] when the URL is malformed, is not `http` or
    /// `https`, carries credentials or a fragment, or is plain `http` to a
    /// host other than loopback (`127.0.0.1`, `[::1]`, `localhost`): the
    /// refresh token would travel in clear. Also when the client id or the
    /// refresh token is empty.
    pub fn new(
        token_url: &str,
        client_id: impl Into<String>,
        refresh_token: impl Into<String>,
    ) -> Result<Self, Error> {
        let refresh_token = SecretString::from(refresh_token.into());
        if refresh_token.expose_secret().trim().is_empty() {
            return Err(Error::config("the refresh token is empty"));
        }
        let client = Client::new(token_url, client_id.into(), "the refresh token")?;
        Ok(RefreshTokenSource {
            client,
            refresh_token,
        })
    }

    /// Authenticates as a confidential client with this secret, with HTTP
    /// Basic unless [`client_secret_post`](Self::client_secret_post) is
    /// set. An empty secret leaves the client public.
    pub fn client_secret(mut self, client_secret: impl Into<String>) -> Self {
        self.client.set_secret(client_secret.into());
        self
    }

    /// Authenticates as a confidential client with `private_key_jwt`: a
    /// JWT signed with `key`, a new one for every refresh and every retry
    /// (see [`ClientCredentials::private_key_jwt`](super::ClientCredentials::private_key_jwt)).
    /// It replaces a secret set before.
    pub fn private_key_jwt(mut self, key: JwtSigningKey) -> Self {
        self.client.set_signing_key(key);
        self
    }

    client_setters!();

    /// The credential a store may derive its sealing key from: the client
    /// secret or signing key of a confidential client; a public client has
    /// none.
    pub(crate) fn long_lived_secret(&self) -> Option<&SecretString> {
        self.client.long_lived_secret()
    }
}

impl TokenSource for RefreshTokenSource {
    /// There is no login: the manager never calls it, since
    /// [`can_login`](TokenSource::can_login) is `false`.
    fn login(&self) -> BoxFuture<'_, Result<TokenResponse, Error>> {
        Box::pin(async { Err(Error::SignInRequired { status: None }) })
    }

    fn refresh<'a>(
        &'a self,
        refresh_token: &'a SecretString,
    ) -> BoxFuture<'a, Result<TokenResponse, Error>> {
        Box::pin(self.client.exchange(Grant::RefreshToken(refresh_token)))
    }

    #[cfg(feature = "dpop")]
    fn dpop_key(&self) -> Option<&crate::dpop::DpopKey> {
        self.client.dpop_key()
    }

    fn can_login(&self) -> bool {
        false
    }

    fn initial_refresh_token(&self) -> Option<SecretString> {
        Some(self.refresh_token.clone())
    }
}

impl fmt::Debug for RefreshTokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshTokenSource")
            .field("client", &self.client)
            .field("refresh_token", &"[redacted]")
            .finish()
    }
}
