//! The form exchange with an OAuth2 token endpoint: the URL check, client
//! authentication (RFC 6749 §2.3.1), the form body, and the answer.

use std::fmt;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::HeaderValue;
use secrecy::{ExposeSecret, SecretString};

use super::refusal::refusal;
use crate::error::{Error, TokenCall};
use crate::origin::Origin;
use crate::source::http::{read_capped, retry_after, transport_error};
use crate::source::TokenResponse;

/// The default timeout of one token call.
pub(super) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The grant a token request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Grant {
    /// §4.4: the client's own credentials.
    ClientCredentials,
    /// §6: a refresh token.
    RefreshToken,
}

impl Grant {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Grant::ClientCredentials => "client_credentials",
            Grant::RefreshToken => "refresh_token",
        }
    }

    /// The engine's name for the call: a client credentials grant is the
    /// login, a refresh-token grant the refresh.
    pub(super) fn call(self) -> TokenCall {
        match self {
            Grant::ClientCredentials => TokenCall::Login,
            Grant::RefreshToken => TokenCall::Refresh,
        }
    }
}

/// One token endpoint and the client that talks to it.
#[derive(Clone)]
pub(super) struct Endpoint {
    url: reqwest::Url,
    client_id: String,
    secret: Option<SecretString>,
    secret_in_form: bool,
    client: reqwest::Client,
    timeout: Duration,
}

/// A token request ready to send: the form and the Basic credentials.
pub(super) struct Encoded {
    pub(super) form: String,
    pub(super) authorization: Option<HeaderValue>,
}

impl Endpoint {
    /// Checks the token URL and the client id. `carried` names the secret
    /// a plain http URL would expose, for the error message.
    pub(super) fn new(token_url: &str, client_id: String, carried: &str) -> Result<Self, Error> {
        if client_id.trim().is_empty() {
            return Err(Error::config("the OAuth2 client id is empty"));
        }
        let url = reqwest::Url::parse(token_url)
            .map_err(|err| Error::config(format!("token URL {token_url:?} is malformed: {err}")))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Error::config(
                "the token URL must not carry credentials; pass the client id and secret \
                 separately",
            ));
        }
        // RFC 6749 §3.2: the endpoint URI may have a query, never a fragment.
        if url.fragment().is_some() {
            return Err(Error::config("the token URL must not have a fragment"));
        }
        let origin = Origin::parse(url.as_str())?;
        if !origin.is_https() && !origin.is_loopback() {
            return Err(Error::config(format!(
                "plain http to {origin} would send {carried} in clear; use https (plain http is \
                 allowed for 127.0.0.1, [::1] and localhost only)"
            )));
        }
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|err| Error::config(format!("cannot build the HTTP client: {err}")))?;
        Ok(Endpoint {
            url,
            client_id,
            secret: None,
            secret_in_form: false,
            client,
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// Authenticates the client with `secret`; an empty one leaves it a
    /// public client.
    pub(super) fn set_secret(&mut self, secret: String) {
        self.secret = Some(SecretString::from(secret)).filter(|s| !s.expose_secret().is_empty());
    }

    pub(super) fn secret(&self) -> Option<&SecretString> {
        self.secret.as_ref()
    }

    /// `client_secret_post`: the secret goes in the form, not in Basic.
    pub(super) fn secret_in_form(&mut self) {
        self.secret_in_form = true;
    }

    pub(super) fn set_client(&mut self, client: reqwest::Client) {
        self.client = client;
    }

    pub(super) fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// The form for `grant` with `params`, and the client authentication:
    /// Basic by default, the id and secret in the form with
    /// `client_secret_post`, the id alone for a public client (§3.2.1).
    pub(super) fn encode(&self, grant: Grant, params: &[(&str, &str)]) -> Encoded {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", grant.as_str());
        form.extend_pairs(params);
        let authorization = match &self.secret {
            Some(secret) if !self.secret_in_form => Some(basic(&self.client_id, secret)),
            Some(secret) => {
                form.append_pair("client_id", &self.client_id);
                form.append_pair("client_secret", secret.expose_secret());
                None
            }
            None => {
                form.append_pair("client_id", &self.client_id);
                None
            }
        };
        Encoded {
            form: form.finish(),
            authorization,
        }
    }

    /// Posts the grant and reads the token response. `presented` is the
    /// refresh token sent, kept out of any error message.
    pub(super) async fn exchange(
        &self,
        grant: Grant,
        params: &[(&str, &str)],
        presented: Option<&SecretString>,
    ) -> Result<TokenResponse, Error> {
        let call = grant.call();
        let Encoded {
            form,
            authorization,
        } = self.encode(grant, params);
        let mut request = self
            .client
            .post(self.url.clone())
            .header(ACCEPT, "application/json")
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form)
            .timeout(self.timeout);
        if let Some(authorization) = authorization {
            request = request.header(AUTHORIZATION, authorization);
        }
        let response = request
            .send()
            .await
            .map_err(|err| transport_error(call, self.timeout, &err))?;
        let status = response.status();
        let wait = retry_after(response.headers());
        let body = read_capped(call, response)
            .await
            .map_err(|err| err.unwrap_or_else(|err| transport_error(call, self.timeout, &err)))?;
        if status.is_success() {
            return TokenResponse::from_json(call, &body);
        }
        let secrets = [self.secret.as_ref(), presented];
        Err(refusal(
            grant,
            status,
            wait,
            &body,
            secrets.into_iter().flatten(),
        ))
    }
}

/// The builder methods every source on an [`Endpoint`] has, for an impl
/// block of a type with an `endpoint` field: one text for their docs, and
/// public methods rather than a trait the user would have to import.
macro_rules! endpoint_setters {
    () => {
        /// Sends the client id and secret in the form body
        /// (`client_secret_post`) instead of an HTTP Basic `Authorization`
        /// header.
        pub fn client_secret_post(mut self) -> Self {
            self.endpoint.secret_in_form();
            self
        }

        /// Uses your own `reqwest::Client` for the token calls (proxies, TLS
        /// roots, connection pool). Pass a plain client, not one wrapped in
        /// this crate's middleware, and consider disabling redirects on it,
        /// as the default client does.
        pub fn with_client(mut self, client: ::reqwest::Client) -> Self {
            self.endpoint.set_client(client);
            self
        }

        /// The timeout of one token call, reading the body included (default
        /// 30 s).
        pub fn timeout(mut self, timeout: ::std::time::Duration) -> Self {
            self.endpoint.set_timeout(timeout);
            self
        }
    };
}
pub(super) use endpoint_setters;

/// `client_secret_basic`: RFC 6749 §2.3.1 form-urlencodes the id and the
/// secret before they are joined and base64-encoded, so a `:` or a
/// non-ASCII byte in either survives.
pub(super) fn basic(client_id: &str, secret: &SecretString) -> HeaderValue {
    let encode = |text: &str| form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>();
    let credentials = format!("{}:{}", encode(client_id), encode(secret.expose_secret()));
    let mut value = HeaderValue::try_from(format!("Basic {}", STANDARD.encode(credentials)))
        .expect("base64 and form-urlencoding produce only visible ASCII");
    value.set_sensitive(true);
    value
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let auth = match (&self.secret, self.secret_in_form) {
            (None, _) => "none (public client)",
            (Some(_), false) => "client_secret_basic",
            (Some(_), true) => "client_secret_post",
        };
        f.debug_struct("Endpoint")
            .field("token_url", &self.url.as_str())
            .field("client_id", &self.client_id)
            .field("client_auth", &auth)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}
