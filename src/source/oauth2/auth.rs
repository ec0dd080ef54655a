//! [`ClientAuth`]: how a client proves who it is at the token endpoint
//! (RFC 6749 §2.3).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::header::AUTHORIZATION;
use http::HeaderValue;
use secrecy::{ExposeSecret, SecretString};

use crate::source::token_request::TokenRequest;

/// The client authentication of a token request. Each kind writes what it
/// needs into the request, and declares the secrets it adds.
#[derive(Clone)]
pub(super) enum ClientAuth {
    /// A public client: its id in the form, nothing else (§2.1, §3.2.1).
    Public,
    /// `client_secret_basic`: the id and secret in an HTTP Basic header.
    SecretBasic(SecretString),
    /// `client_secret_post`: the id and secret in the form body.
    SecretPost(SecretString),
}

impl ClientAuth {
    /// Authenticates `request` as the client `client_id`.
    pub(super) fn apply(&self, client_id: &str, request: &mut TokenRequest) {
        match self {
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
        }
    }

    /// The client secret, if the client has one.
    pub(super) fn secret(&self) -> Option<&SecretString> {
        match self {
            ClientAuth::Public => None,
            ClientAuth::SecretBasic(secret) | ClientAuth::SecretPost(secret) => Some(secret),
        }
    }

    /// The name of the method, as OpenID Connect registers it.
    pub(super) fn name(&self) -> &'static str {
        match self {
            ClientAuth::Public => "none (public client)",
            ClientAuth::SecretBasic(_) => "client_secret_basic",
            ClientAuth::SecretPost(_) => "client_secret_post",
        }
    }
}

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
