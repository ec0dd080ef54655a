//! [`Grant`]: what a token request asks for, and the parameters each grant
//! writes into the form.

use secrecy::SecretString;

use crate::error::TokenCall;
use crate::source::token_request::TokenRequest;

/// The `grant_type` of RFC 8693 token exchange.
const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

/// The grant a token request asks for.
#[derive(Clone, Copy)]
pub(super) enum Grant<'a> {
    /// §4.4: the client's own credentials, with an optional `scope` and
    /// `audience`.
    ClientCredentials {
        scope: Option<&'a str>,
        audience: Option<&'a str>,
    },
    /// §6: a refresh token, the same for every source that refreshes.
    RefreshToken(&'a SecretString),
    /// RFC 8693 §2.1: a subject token traded for an access token.
    TokenExchange(Exchange<'a>),
}

/// The parameters of a token exchange.
#[derive(Clone, Copy)]
pub(super) struct Exchange<'a> {
    pub(super) subject_token: &'a SecretString,
    pub(super) subject_token_type: &'a str,
    pub(super) audience: Option<&'a str>,
    pub(super) resource: Option<&'a str>,
    pub(super) scope: Option<&'a str>,
    pub(super) requested_token_type: Option<&'a str>,
}

impl Grant<'_> {
    /// The `grant_type` parameter.
    pub(super) fn name(self) -> &'static str {
        match self {
            Grant::ClientCredentials { .. } => "client_credentials",
            Grant::RefreshToken(_) => "refresh_token",
            Grant::TokenExchange(_) => TOKEN_EXCHANGE,
        }
    }

    /// The grant's name in messages: the `grant_type`, or `token-exchange`
    /// for the URN of RFC 8693.
    pub(super) fn label(self) -> &'static str {
        match self {
            Grant::TokenExchange(_) => "token-exchange",
            _ => self.name(),
        }
    }

    /// The engine's name for the call: a client credentials grant or a
    /// token exchange is the login, a refresh-token grant the refresh.
    pub(super) fn call(self) -> TokenCall {
        match self {
            Grant::ClientCredentials { .. } | Grant::TokenExchange(_) => TokenCall::Login,
            Grant::RefreshToken(_) => TokenCall::Refresh,
        }
    }

    /// A form request for this grant, before client authentication.
    pub(super) fn request(self) -> TokenRequest {
        let mut request = TokenRequest::form(self.call());
        request.param("grant_type", self.name());
        let optional = |request: &mut TokenRequest, pairs: &[(&'static str, Option<&str>)]| {
            for (name, value) in pairs {
                if let Some(value) = value {
                    request.param(name, value);
                }
            }
        };
        match self {
            Grant::ClientCredentials { scope, audience } => {
                optional(&mut request, &[("scope", scope), ("audience", audience)]);
            }
            Grant::RefreshToken(refresh_token) => {
                request.secret_param("refresh_token", refresh_token);
            }
            Grant::TokenExchange(exchange) => {
                request.secret_param("subject_token", exchange.subject_token);
                request.param("subject_token_type", exchange.subject_token_type);
                optional(
                    &mut request,
                    &[
                        ("audience", exchange.audience),
                        ("resource", exchange.resource),
                        ("scope", exchange.scope),
                        ("requested_token_type", exchange.requested_token_type),
                    ],
                );
            }
        }
        request
    }
}
