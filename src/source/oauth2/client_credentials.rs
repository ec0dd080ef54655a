//! [`ClientCredentials`]: the client credentials grant (RFC 6749 §4.4).

use std::fmt;

use secrecy::SecretString;

use super::client::{client_setters, Client};
use super::client_assertion::ClientAssertion;
use super::grant::Grant;
use super::signing_key::JwtSigningKey;
use crate::error::Error;
use crate::source::{BoxFuture, TokenResponse, TokenSource};

/// A service's own tokens: the client credentials grant (RFC 6749 §4.4).
///
/// The client authenticates with a secret ([`new`](Self::new)): HTTP Basic
/// by default (`client_secret_basic`, the id and secret form-urlencoded
/// before base64 as §2.3.1 says), or in the form body after
/// [`client_secret_post`](Self::client_secret_post). Or without a shared
/// secret: with a JWT signed by its own key
/// ([`private_key_jwt`](Self::private_key_jwt)), or with an assertion
/// minted elsewhere ([`assertion`](Self::assertion)). When the endpoint
/// hands out a refresh token too, the manager refreshes with it, and a new
/// grant replaces a rejected one; otherwise every renewal is a new grant.
///
/// The source has no API origin: give the layer or the middleware one with
/// `allow_origin`. `Debug` shows the token URL and the client id only. A
/// token call's timeout is the manager's
/// [`call_timeout`](crate::TokenManagerBuilder::call_timeout).
///
/// ```
/// use bearer_refresh::oauth2::ClientCredentials;
///
/// let source = ClientCredentials::new("https://idp.example/oauth/token", "my-client", "s3cret")?
///     .scope("videos:read videos:write")
///     .audience("https://api.example");
/// assert!(!format!("{source:?}").contains("s3cret"));
///
/// // Plain http is for loopback test servers only.
/// assert!(ClientCredentials::new("http://127.0.0.1:8080/token", "id", "secret").is_ok());
/// assert!(ClientCredentials::new("http://idp.example/token", "id", "secret").is_err());
/// # Ok::<(), bearer_refresh::Error>(())
/// ```
#[derive(Clone)]
pub struct ClientCredentials {
    client: Client,
    scope: Option<String>,
    audience: Option<String>,
}

impl ClientCredentials {
    /// A source for the client `client_id` with `client_secret`, at the
    /// token endpoint `token_url`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] when the URL is malformed, is not `http` or
    /// `https`, carries credentials or a fragment, or is plain `http` to a
    /// host other than loopback (`127.0.0.1`, `[::1]`, `localhost`): the
    /// secret would travel in clear. Also when the id or secret is empty.
    pub fn new(
        token_url: &str,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Result<Self, Error> {
        let client_secret = client_secret.into();
        if client_secret.is_empty() {
            return Err(Error::config("the OAuth2 client secret is empty"));
        }
        let mut client = Client::new(token_url, client_id.into(), "the client secret")?;
        client.set_secret(client_secret);
        Ok(ClientCredentials::with(client))
    }

    /// A source for the client `client_id` that proves itself with
    /// `private_key_jwt` (RFC 7523 §2.2, OpenID Connect Core §9): no shared
    /// secret, but a JWT signed with `key`, a new one (new `jti`) for every
    /// token request and every retry. Its `iss` and `sub` are the client
    /// id, its `aud` the token URL, and it expires 5 minutes after its
    /// `iat`.
    ///
    /// ```
    /// use bearer_refresh::oauth2::{ClientCredentials, JwtSigningKey};
    ///
    /// # let pem = "-----BEGIN PRIVATE KEY-----\n\
    /// #     MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgm9WduimwpSlxZPPF\n\
    /// #     5zb4FWx+qVIVGsOY7hrbd7AOoZWhRANCAATsiz9V85V9koAChodxdrqUDi7SJdEY\n\
    /// #     4EHNbJlosY0+mFVWNcdDmKZagOEjLUgpgi+NvLb5aXJ0eu+nQ1G8Pw0Q\n\
    /// #     -----END PRIVATE KEY-----";
    /// let key = JwtSigningKey::from_pem(pem)?.key_id("2026-11");
    /// let source = ClientCredentials::private_key_jwt("https://idp.example/oauth/token", "my-client", key)?
    ///     .scope("api");
    /// assert!(!format!("{source:?}").contains("PRIVATE"));
    /// # Ok::<(), bearer_refresh::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for the token URLs [`new`](Self::new)
    /// refuses, and when the client id is empty.
    pub fn private_key_jwt(
        token_url: &str,
        client_id: impl Into<String>,
        key: JwtSigningKey,
    ) -> Result<Self, Error> {
        let mut client = Client::new(token_url, client_id.into(), "the client assertion")?;
        client.set_signing_key(key);
        Ok(ClientCredentials::with(client))
    }

    /// A source for the client `client_id` that proves itself with a
    /// client assertion minted elsewhere (RFC 7521 §4.2): a workload
    /// identity token that the platform writes to a file
    /// ([`ClientAssertion::file`]) or hands out over HTTP
    /// ([`ClientAssertion::from_fn`]). It is fetched afresh for every token
    /// request, so a rotated file is picked up at the next renewal, and it
    /// is never stored or logged.
    ///
    /// ```
    /// use bearer_refresh::oauth2::{ClientAssertion, ClientCredentials};
    ///
    /// let source = ClientCredentials::assertion(
    ///     "https://login.example/tenant/oauth2/v2.0/token",
    ///     "my-client",
    ///     ClientAssertion::file("/var/run/secrets/azure/tokens/azure-identity-token"),
    /// )?
    /// .scope("https://graph.example/.default");
    /// # Ok::<(), bearer_refresh::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for the token URLs [`new`](Self::new)
    /// refuses, and when the client id is empty.
    pub fn assertion(
        token_url: &str,
        client_id: impl Into<String>,
        assertion: ClientAssertion,
    ) -> Result<Self, Error> {
        let mut client = Client::new(token_url, client_id.into(), "the client assertion")?;
        client.set_assertion(assertion);
        Ok(ClientCredentials::with(client))
    }

    fn with(client: Client) -> Self {
        ClientCredentials {
            client,
            scope: None,
            audience: None,
        }
    }

    /// The scope to ask for: space-separated, as the `scope` parameter
    /// (§3.3). Without it the endpoint grants its default scope.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// The `audience` parameter: the API the tokens are for, as Auth0 and
    /// other providers require it.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    client_setters!();

    /// The credential a store may derive its sealing key from: the client
    /// secret or the signing key, which every process of a fleet holds
    /// anyway; none for an assertion minted elsewhere.
    pub(crate) fn long_lived_secret(&self) -> Option<&SecretString> {
        self.client.long_lived_secret()
    }
}

impl TokenSource for ClientCredentials {
    fn login(&self) -> BoxFuture<'_, Result<TokenResponse, Error>> {
        Box::pin(self.client.exchange(Grant::ClientCredentials {
            scope: self.scope.as_deref(),
            audience: self.audience.as_deref(),
        }))
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
}

impl fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("client", &self.client)
            .field("scope", &self.scope)
            .field("audience", &self.audience)
            .finish()
    }
}
