//! [`Client`]: an OAuth2 client at its token endpoint: its id, how it
//! authenticates, and the exchange of a grant for a token.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};

use super::auth::ClientAuth;
use super::client_assertion::ClientAssertion;
use super::dpop::EndpointDpop;
use super::grant::Grant;
use super::refusal::refusal;
use super::signing_key::JwtSigningKey;
use crate::error::Error;
use crate::source::endpoint::TokenEndpoint;
use crate::source::TokenResponse;

/// A registered client and the token endpoint it talks to.
#[derive(Clone)]
pub(super) struct Client {
    endpoint: TokenEndpoint,
    id: String,
    auth: ClientAuth,
    /// `client_secret_post` was asked for: a secret set later goes in the
    /// form too, whatever the order of the builder calls.
    secret_in_form: bool,
    /// The DPoP key whose proofs go with every token request.
    dpop: Option<EndpointDpop>,
}

impl Client {
    /// A public client `id` at `token_url`. `carried` names the secret a
    /// plain http URL would expose, for the error message.
    pub(super) fn new(token_url: &str, id: String, carried: &str) -> Result<Self, Error> {
        if id.trim().is_empty() {
            return Err(Error::config("the OAuth2 client id is empty"));
        }
        Client::with_auth(token_url, id, ClientAuth::Public, carried)
    }

    /// No client: a token exchange with neither a client id nor client
    /// authentication, until [`set_id`](Self::set_id).
    pub(super) fn anonymous(token_url: &str, carried: &str) -> Result<Self, Error> {
        Client::with_auth(token_url, String::new(), ClientAuth::Anonymous, carried)
    }

    fn with_auth(
        token_url: &str,
        id: String,
        auth: ClientAuth,
        carried: &str,
    ) -> Result<Self, Error> {
        Ok(Client {
            endpoint: TokenEndpoint::new(token_url, "token URL", carried)?,
            id,
            auth,
            secret_in_form: false,
            dpop: None,
        })
    }

    /// Makes the client `id`: a public client until a credential is set.
    pub(super) fn set_id(&mut self, id: String) {
        self.id = id;
        if matches!(self.auth, ClientAuth::Anonymous) {
            self.auth = ClientAuth::Public;
        }
    }

    /// Authenticates the client with assertions signed by `key`
    /// (`private_key_jwt`).
    pub(super) fn set_signing_key(&mut self, key: JwtSigningKey) {
        self.auth = ClientAuth::PrivateKeyJwt(key);
    }

    /// Authenticates the client with assertions from `assertion`.
    pub(super) fn set_assertion(&mut self, assertion: ClientAssertion) {
        self.auth = ClientAuth::Assertion(assertion);
    }

    /// Authenticates the client with `secret`; an empty one leaves it a
    /// public client.
    pub(super) fn set_secret(&mut self, secret: String) {
        let secret = SecretString::from(secret);
        self.auth = if secret.expose_secret().is_empty() {
            ClientAuth::Public
        } else if self.secret_in_form {
            ClientAuth::SecretPost(secret)
        } else {
            ClientAuth::SecretBasic(secret)
        };
    }

    /// The long-lived credential a store may derive its sealing key from.
    pub(super) fn long_lived_secret(&self) -> Option<&SecretString> {
        self.auth.long_lived_secret()
    }

    /// `client_secret_post`: the secret goes in the form, not in Basic.
    pub(super) fn secret_in_form(&mut self) {
        self.secret_in_form = true;
        if let ClientAuth::SecretBasic(secret) = &self.auth {
            self.auth = ClientAuth::SecretPost(secret.clone());
        }
    }

    pub(super) fn set_client(&mut self, client: reqwest::Client) {
        self.endpoint.set_client(client);
    }

    /// Sends a DPoP proof by `key` with every token request.
    #[cfg(feature = "dpop")]
    pub(super) fn set_dpop(&mut self, key: crate::dpop::DpopKey) {
        // `TokenEndpoint::new` parsed this very URL's origin already.
        let origin = crate::origin::Origin::parse(self.endpoint.url().as_str())
            .expect("the token URL's origin was checked when the client was made");
        self.dpop = Some(EndpointDpop::new(key, origin));
    }

    /// The DPoP key of the token requests, if there is one.
    #[cfg(feature = "dpop")]
    pub(super) fn dpop_key(&self) -> Option<&crate::dpop::DpopKey> {
        self.dpop.as_ref().map(EndpointDpop::key)
    }

    /// Posts `grant`, authenticated as this client, and reads the token
    /// response. Each HTTP request has its own client assertion, if the
    /// client uses them.
    ///
    /// With DPoP, a `use_dpop_nonce` refusal is sent again at once, once,
    /// with the nonce it brought, a new proof and new client
    /// authentication: it is part of this one token call, not a failure
    /// the manager would back off from. A second challenge is an error.
    pub(super) async fn exchange(&self, grant: Grant<'_>) -> Result<TokenResponse, Error> {
        let mut challenged = false;
        let answer = self.send(grant, &mut challenged).await;
        if !challenged {
            return answer;
        }
        tracing::debug!("the token endpoint asked for a DPoP nonce; sending again");
        self.send(grant, &mut challenged).await
    }

    /// One HTTP request for `grant`; `challenged` tells whether the answer
    /// was a DPoP nonce challenge.
    async fn send(&self, grant: Grant<'_>, challenged: &mut bool) -> Result<TokenResponse, Error> {
        let url = self.endpoint.url().as_str();
        let mut request = grant.request();
        self.auth.apply(&self.id, url, &mut request).await?;
        if let Some(dpop) = &self.dpop {
            dpop.add_proof(url, &mut request);
        }
        self.endpoint
            .post_observing(
                request,
                |headers| {
                    if let Some(dpop) = &self.dpop {
                        dpop.observe(headers);
                    }
                },
                |refused| {
                    *challenged = self.dpop.is_some() && EndpointDpop::is_challenge(&refused);
                    refusal(grant, &self.auth, &refused)
                },
            )
            .await
    }
}

/// The builder methods every source on a [`Client`] has, for an impl block
/// of a type with a `client` field: one text for their docs, and public
/// methods rather than a trait the user would have to import.
macro_rules! client_setters {
    () => {
        /// Sends the client id and secret in the form body
        /// (`client_secret_post`) instead of an HTTP Basic `Authorization`
        /// header.
        pub fn client_secret_post(mut self) -> Self {
            self.client.secret_in_form();
            self
        }

        /// Uses your own `reqwest::Client` for the token calls (proxies, TLS
        /// roots, connection pool). Pass a plain client, not one wrapped in
        /// this crate's middleware, and consider disabling redirects on it,
        /// as the default client does.
        pub fn with_client(mut self, client: ::reqwest::Client) -> Self {
            self.client.set_client(client);
            self
        }

        /// Asks for tokens bound to `key` (DPoP, RFC 9449): every token
        /// request carries a fresh proof signed with it, with the token
        /// endpoint's latest nonce. A `use_dpop_nonce` refusal is sent
        /// again at once with the new nonce, once: it is neither a failure
        /// nor a retry. When the endpoint answers `token_type: DPoP`, the
        /// layer and the middleware sign a proof for every API request
        /// with the same key ([`TokenSource::dpop_key`]).
        ///
        /// A fleet that shares one token through a store must share one
        /// key: every member loads the same PEM
        /// ([`DpopKey::from_pem`](crate::dpop::DpopKey::from_pem)).
        ///
        /// [`TokenSource::dpop_key`]: crate::TokenSource::dpop_key
        #[cfg(feature = "dpop")]
        #[cfg_attr(docsrs, doc(cfg(feature = "dpop")))]
        pub fn dpop(mut self, key: crate::dpop::DpopKey) -> Self {
            self.client.set_dpop(key);
            self
        }
    };
}
pub(super) use client_setters;

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("Client");
        debug
            .field("token_url", &self.endpoint.url().as_str())
            .field("client_id", &self.id)
            .field("client_auth", &self.auth.name());
        debug.field("dpop", &self.dpop);
        debug.finish_non_exhaustive()
    }
}
