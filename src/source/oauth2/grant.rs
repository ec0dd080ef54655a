//! [`Grant`]: what a token request asks for, and the parameters each grant
//! writes into the form.

use secrecy::SecretString;

use crate::error::TokenCall;
use crate::source::token_request::TokenRequest;

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
}

impl Grant<'_> {
    /// The `grant_type` parameter.
    pub(super) fn name(self) -> &'static str {
        match self {
            Grant::ClientCredentials { .. } => "client_credentials",
            Grant::RefreshToken(_) => "refresh_token",
        }
    }

    /// The engine's name for the call: a client credentials grant is the
    /// login, a refresh-token grant the refresh.
    pub(super) fn call(self) -> TokenCall {
        match self {
            Grant::ClientCredentials { .. } => TokenCall::Login,
            Grant::RefreshToken(_) => TokenCall::Refresh,
        }
    }

    /// A form request for this grant, before client authentication.
    pub(super) fn request(self) -> TokenRequest {
        let mut request = TokenRequest::form(self.call());
        request.param("grant_type", self.name());
        match self {
            Grant::ClientCredentials { scope, audience } => {
                for (name, value) in [("scope", scope), ("audience", audience)] {
                    if let Some(value) = value {
                        request.param(name, value);
                    }
                }
            }
            Grant::RefreshToken(refresh_token) => {
                request.secret_param("refresh_token", refresh_token);
            }
        }
        request
    }
}
