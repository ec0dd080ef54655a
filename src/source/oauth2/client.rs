//! [`Client`]: an OAuth2 client at its token endpoint: its id, how it
//! authenticates, and the exchange of a grant for a token.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};

use super::auth::ClientAuth;
use super::grant::Grant;
use super::refusal::refusal;
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
}

impl Client {
    /// A public client `id` at `token_url`. `carried` names the secret a
    /// plain http URL would expose, for the error message.
    pub(super) fn new(token_url: &str, id: String, carried: &str) -> Result<Self, Error> {
        if id.trim().is_empty() {
            return Err(Error::config("the OAuth2 client id is empty"));
        }
        Ok(Client {
            endpoint: TokenEndpoint::new(token_url, "token URL", carried)?,
            id,
            auth: ClientAuth::Public,
            secret_in_form: false,
        })
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

    /// The client secret, if the client has one.
    pub(super) fn secret(&self) -> Option<&SecretString> {
        self.auth.secret()
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

    /// Posts `grant`, authenticated as this client, and reads the token
    /// response.
    pub(super) async fn exchange(&self, grant: Grant<'_>) -> Result<TokenResponse, Error> {
        let mut request = grant.request();
        self.auth.apply(&self.id, &mut request);
        self.endpoint
            .post(request, |refused| refusal(grant, &refused))
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
    };
}
pub(super) use client_setters;

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("token_url", &self.endpoint.url().as_str())
            .field("client_id", &self.id)
            .field("client_auth", &self.auth.name())
            .finish_non_exhaustive()
    }
}
