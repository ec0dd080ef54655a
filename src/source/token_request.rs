//! [`TokenRequest`]: what a source sends to its token endpoint: a JSON or
//! form body, extra headers, and the secrets they carry.

use http::{HeaderMap, HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};

use super::redact::Redactor;
use crate::error::TokenCall;

/// One token request, ready for the endpoint's `post`.
///
/// Each secret it carries is declared, so that none comes back in an error
/// or a log: [`secret_param`](Self::secret_param) for form fields,
/// [`redact`](Self::redact) for a secret in a JSON body, and every header
/// marked sensitive is redacted on its own.
pub(crate) struct TokenRequest {
    pub(super) call: TokenCall,
    pub(super) body: Body,
    pub(super) headers: HeaderMap,
    pub(super) redactor: Redactor,
}

/// The body of a token request.
pub(super) enum Body {
    /// A JSON document (api.video).
    #[cfg_attr(not(feature = "api-video"), allow(dead_code))]
    Json(serde_json::Value),
    /// `application/x-www-form-urlencoded` pairs (OAuth2, RFC 6749 §4).
    #[cfg(feature = "oauth2")]
    Form(Vec<(&'static str, String)>),
}

impl TokenRequest {
    /// A request with a JSON body. Declare the secrets in it with
    /// [`redact`](Self::redact).
    #[cfg_attr(not(feature = "api-video"), allow(dead_code))]
    pub(crate) fn json(call: TokenCall, body: serde_json::Value) -> Self {
        Self::new(call, Body::Json(body))
    }

    /// A request with an empty form body, for [`param`](Self::param) and
    /// [`secret_param`](Self::secret_param).
    #[cfg(feature = "oauth2")]
    pub(crate) fn form(call: TokenCall) -> Self {
        Self::new(call, Body::Form(Vec::new()))
    }

    fn new(call: TokenCall, body: Body) -> Self {
        TokenRequest {
            call,
            body,
            headers: HeaderMap::new(),
            redactor: Redactor::default(),
        }
    }

    /// Adds a form field that is not a secret. Does nothing to a JSON body.
    #[cfg(feature = "oauth2")]
    pub(crate) fn param(&mut self, name: &'static str, value: &str) {
        if let Body::Form(pairs) = &mut self.body {
            pairs.push((name, value.to_owned()));
        }
    }

    /// Adds a form field that is a secret: it is kept out of every error
    /// and log, in any form the server may echo it.
    #[cfg(feature = "oauth2")]
    pub(crate) fn secret_param(&mut self, name: &'static str, value: &SecretString) {
        self.param(name, value.expose_secret());
        self.redact(value);
    }

    /// Declares a secret the body carries.
    pub(crate) fn redact(&mut self, secret: &SecretString) {
        self.redactor.secret(secret.expose_secret());
    }

    /// Adds a header. A value marked sensitive (a `Basic` credential, an
    /// assertion) is kept out of every error and log, whole and after its
    /// scheme.
    #[cfg_attr(not(feature = "oauth2"), allow(dead_code))]
    pub(crate) fn header(&mut self, name: HeaderName, value: HeaderValue) {
        if value.is_sensitive() {
            self.redactor.header(&value);
        }
        self.headers.append(name, value);
    }
}
