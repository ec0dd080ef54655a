//! [`TokenExchange`]: RFC 8693 token exchange, trading a subject token
//! that the platform rotates for an access token.

use std::fmt;

use secrecy::SecretString;

use super::client::{client_setters, Client};
use super::grant::{Exchange, Grant};
use super::subject_token::SubjectToken;
use crate::error::Error;
use crate::source::{BoxFuture, TokenResponse, TokenSource};

/// Tokens got by trading a subject token (RFC 8693 §2.1): a workload's
/// identity token (a Kubernetes service-account token, a CI provider's
/// OIDC token) exchanged at a security token service (GCP STS, Okta,
/// Keycloak) for an access token.
///
/// The form carries `grant_type=urn:ietf:params:oauth:grant-type:token-exchange`,
/// `subject_token`, `subject_token_type`, and the optional
/// [`audience`](Self::audience), [`resource`](Self::resource),
/// [`scope`](Self::scope) and
/// [`requested_token_type`](Self::requested_token_type). Without
/// [`client_secret`](Self::client_secret) the request carries no client
/// authentication: the subject token alone authorises it.
///
/// # Renewal
///
/// An exchange has no refresh token of its own: each renewal is a new
/// exchange with the subject token read afresh, so a file that the
/// platform rewrites is picked up at the next renewal. A refresh token in
/// the answer is dropped, so that the manager never sends a refresh grant
/// for this source. The subject token is never stored or logged.
///
/// # Errors
///
/// As in the [module docs](super); an `invalid_grant` (the subject token
/// expired, or is not trusted) is [`Error::GrantRefused`], permanent: no
/// retry loop, and the next renewal reads the file again.
///
/// ```
/// use bearer_refresh::oauth2::{SubjectToken, TokenExchange};
///
/// let subject = SubjectToken::file("/var/run/secrets/tokens/sts", SubjectToken::JWT);
/// let source = TokenExchange::new("https://sts.example/v1/token", subject)?
///     .audience("https://api.example")
///     .scope("videos:read")
///     .client_secret("my-client", "s3cret");
/// assert!(!format!("{source:?}").contains("s3cret"));
/// # Ok::<(), bearer_refresh::Error>(())
/// ```
#[derive(Clone)]
pub struct TokenExchange {
    client: Client,
    subject: SubjectToken,
    audience: Option<String>,
    resource: Option<String>,
    scope: Option<String>,
    requested_token_type: Option<String>,
}

impl TokenExchange {
    /// A source that trades `subject` at the token endpoint `token_url`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] when the URL is malformed, is not `http` or
    /// `https`, carries credentials or a fragment, or is plain `http` to a
    /// host other than loopback (`127.0.0.1`, `[::1]`, `localhost`): the
    /// subject token would travel in clear.
    pub fn new(token_url: &str, subject: SubjectToken) -> Result<Self, Error> {
        Ok(TokenExchange {
            client: Client::anonymous(token_url, "the subject token")?,
            subject,
            audience: None,
            resource: None,
            scope: None,
            requested_token_type: None,
        })
    }

    /// The `audience` parameter: the logical name of the service the token
    /// is for.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// The `resource` parameter: the URI of the service the token is for.
    pub fn resource(mut self, resource: impl Into<String>) -> Self {
        self.resource = Some(resource.into());
        self
    }

    /// The scope to ask for: space-separated, as the `scope` parameter.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// The `requested_token_type` parameter, such as
    /// `urn:ietf:params:oauth:token-type:access_token`.
    pub fn requested_token_type(mut self, token_type: impl Into<String>) -> Self {
        self.requested_token_type = Some(token_type.into());
        self
    }

    /// Authenticates the exchange as the client `client_id` with
    /// `client_secret`, with HTTP Basic unless
    /// [`client_secret_post`](Self::client_secret_post) is set. An empty
    /// secret sends the client id alone.
    pub fn client_secret(
        mut self,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Self {
        self.client.set_id(client_id.into());
        self.client.set_secret(client_secret.into());
        self
    }

    client_setters!();

    /// The credential a store may derive its sealing key from: the client
    /// secret, if the exchange is authenticated with one.
    pub(crate) fn long_lived_secret(&self) -> Option<&SecretString> {
        self.client.long_lived_secret()
    }

    /// One exchange, with the subject token read now.
    async fn exchange(&self) -> Result<TokenResponse, Error> {
        let subject_token = self.subject.read().await?;
        let grant = Grant::TokenExchange(Exchange {
            subject_token: &subject_token,
            subject_token_type: self.subject.token_type(),
            audience: self.audience.as_deref(),
            resource: self.resource.as_deref(),
            scope: self.scope.as_deref(),
            requested_token_type: self.requested_token_type.as_deref(),
        });
        let mut response = self.client.exchange(grant).await?;
        // Renewal is a new exchange with the current subject token: a
        // refresh token would outlive the subject's rotation or revocation.
        response.refresh_token = None;
        Ok(response)
    }
}

impl TokenSource for TokenExchange {
    fn login(&self) -> BoxFuture<'_, Result<TokenResponse, Error>> {
        Box::pin(self.exchange())
    }

    /// A new exchange: the source never hands out a refresh token, so this
    /// is only reached with one from elsewhere (a store), which is ignored.
    fn refresh<'a>(&'a self, _: &'a SecretString) -> BoxFuture<'a, Result<TokenResponse, Error>> {
        Box::pin(self.exchange())
    }

    #[cfg(feature = "dpop")]
    fn dpop_key(&self) -> Option<&crate::dpop::DpopKey> {
        self.client.dpop_key()
    }
}

impl fmt::Debug for TokenExchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenExchange")
            .field("client", &self.client)
            .field("subject", &self.subject)
            .field("audience", &self.audience)
            .field("resource", &self.resource)
            .field("scope", &self.scope)
            .field("requested_token_type", &self.requested_token_type)
            .finish()
    }
}
