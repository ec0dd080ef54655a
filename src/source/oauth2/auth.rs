//! [`ClientAuth`]: how a client proves who it is at the token endpoint
//! (RFC 6749 §2.3, RFC 7523 §2.2).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::header::AUTHORIZATION;
use http::HeaderValue;
use secrecy::{ExposeSecret, SecretString};

use super::client_assertion::{ClientAssertion, JWT_BEARER};
use super::signing_key::JwtSigningKey;
use crate::error::Error;
use crate::source::token_request::TokenRequest;

/// The client authentication of a token request. Each kind writes what it
/// needs into the request, and declares the secrets it adds.
#[derive(Clone)]
pub(super) enum ClientAuth {
    /// No client at all: neither an id nor a credential (a token exchange
    /// that the subject token alone authorises).
    Anonymous,
    /// A public client: its id in the form, nothing else (§2.1, §3.2.1).
    Public,
    /// `client_secret_basic`: the id and secret in an HTTP Basic header.
    SecretBasic(SecretString),
    /// `client_secret_post`: the id and secret in the form body.
    SecretPost(SecretString),
    /// `private_key_jwt`: an assertion signed with the client's key, a new
    /// one for every request.
    PrivateKeyJwt(JwtSigningKey),
    /// A client assertion minted elsewhere, fetched for every request.
    Assertion(ClientAssertion),
}

impl ClientAuth {
    /// Authenticates `request` as the client `client_id` at `token_url`
    /// (an assertion's audience). An assertion is made or read here, so
    /// each HTTP request has its own.
    ///
    /// # Errors
    ///
    /// What reading a [`ClientAssertion`] fails with.
    pub(super) async fn apply(
        &self,
        client_id: &str,
        token_url: &str,
        request: &mut TokenRequest,
    ) -> Result<(), Error> {
        match self {
            ClientAuth::Anonymous => {}
            ClientAuth::Public => request.param("client_id", client_id),
            ClientAuth::SecretBasic(secret) => {
                request.header(AUTHORIZATION, basic(client_id, secret));
                // Redacted apart from the header too: a server may quote the
                // decoded secret.
                request.redact(secret);
            }
            ClientAuth::SecretPost(secret) => {
                request.param("client_id", client_id);
                request.secret_param("client_secret", secret);
            }
            ClientAuth::PrivateKeyJwt(key) => {
                let assertion = SecretString::from(key.assertion(client_id, token_url));
                add_assertion(request, client_id, &assertion);
            }
            ClientAuth::Assertion(source) => {
                add_assertion(request, client_id, &source.read().await?);
            }
        }
        Ok(())
    }

    /// The long-lived credential a store may derive its sealing key from:
    /// the client secret, or the signing key's seal secret. An assertion
    /// minted elsewhere rotates, so it is none.
    pub(super) fn long_lived_secret(&self) -> Option<&SecretString> {
        match self {
            ClientAuth::SecretBasic(secret) | ClientAuth::SecretPost(secret) => Some(secret),
            ClientAuth::PrivateKeyJwt(key) => Some(key.seal_secret()),
            ClientAuth::Anonymous | ClientAuth::Public | ClientAuth::Assertion(_) => None,
        }
    }

    /// Whether the client proves itself with an assertion, whose refusal
    /// has other causes than a wrong secret.
    pub(super) fn is_assertion(&self) -> bool {
        matches!(
            self,
            ClientAuth::PrivateKeyJwt(_) | ClientAuth::Assertion(_)
        )
    }

    /// The name of the method, as OpenID Connect registers it.
    pub(super) fn name(&self) -> &'static str {
        match self {
            ClientAuth::Anonymous => "none (no client)",
            ClientAuth::Public => "none (public client)",
            ClientAuth::SecretBasic(_) => "client_secret_basic",
            ClientAuth::SecretPost(_) => "client_secret_post",
            ClientAuth::PrivateKeyJwt(_) => "private_key_jwt",
            ClientAuth::Assertion(_) => "client assertion (jwt-bearer)",
        }
    }
}

/// RFC 7521 §4.2: the assertion and its type in the form, with the client
/// id, which some providers require beside it.
fn add_assertion(request: &mut TokenRequest, client_id: &str, assertion: &SecretString) {
    request.param("client_id", client_id);
    request.param("client_assertion_type", JWT_BEARER);
    request.secret_param("client_assertion", assertion);
}

/// `client_secret_basic`: RFC 6749 §2.3.1 form-urlencodes the id and the
/// secret before they are joined and base64-encoded, so a `:` or a
/// non-ASCII byte in either survives.
pub(super) fn basic(client_id: &str, secret: &SecretString) -> HeaderValue {
    let encode = |text: &str| form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>();
    let credentials = format!("{}:{}", encode(client_id), encode(secret.expose_secret()));
    // "Basic " and base64 are visible ASCII, always a valid header value.
    let mut value = HeaderValue::try_from(format!("Basic {}", STANDARD.encode(credentials)))
        .expect("base64 and form-urlencoding produce only visible ASCII");
    value.set_sensitive(true);
    value
}
