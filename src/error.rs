//! The crate's error type: what failed, and what to do about it.
//!
//! No variant carries a credential. Messages quote only what the token
//! endpoint said about itself (status, problem title, OAuth2 error code and
//! description), with every secret the request carried removed in any form
//! the server may echo it, and cut to a short length, so a hostile or
//! verbose server can neither leak a secret nor flood a log line.

use std::time::Duration;

use thiserror::Error as ThisError;

/// Which token call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TokenCall {
    /// Exchanging the long-lived credential (api.video: `POST /auth/api-key`).
    Login,
    /// Exchanging the refresh token (api.video: `POST /auth/refresh`).
    Refresh,
}

impl std::fmt::Display for TokenCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TokenCall::Login => "login",
            TokenCall::Refresh => "refresh",
        })
    }
}

/// Everything that can go wrong while getting or using a token.
///
/// Errors are `Clone` because one token call answers every caller waiting
/// on it. Use [`Error::is_transient`] to tell a failure worth retrying later
/// from one that needs a human.
///
/// ```
/// use bearer_refresh::{ApiKeySource, Error};
///
/// let err = ApiKeySource::new("http://api.example.com", "key").unwrap_err();
/// assert!(matches!(err, Error::InvalidConfig { .. }));
/// assert!(!err.is_transient());
/// ```
#[derive(Debug, Clone, ThisError)]
#[non_exhaustive]
pub enum Error {
    /// The token endpoint rejected the API key (HTTP 400 or 401).
    #[error(
        "the API key was rejected by the token endpoint (HTTP {status}{}): check that the key is \
         valid for this base URL",
        title_suffix(.title)
    )]
    ApiKeyRejected {
        /// The HTTP status the endpoint answered.
        status: u16,
        /// The problem body's `title`, if it had one.
        title: Option<String>,
    },

    /// The token endpoint rejected the refresh token (HTTP 400 or 401).
    ///
    /// [`TokenManager`](crate::TokenManager) reacts by logging in again, so
    /// callers only see this from a [`TokenSource`](crate::TokenSource) used
    /// directly.
    #[error(
        "the refresh token was rejected by the token endpoint (HTTP {status}{}): log in again \
         with the source's long-lived credential, or sign in again if it has none",
        title_suffix(.title)
    )]
    RefreshTokenRejected {
        /// The HTTP status the endpoint answered.
        status: u16,
        /// The problem body's `title`, if it had one.
        title: Option<String>,
    },

    /// The token endpoint refused a token call because the account is
    /// suspended (api.video: HTTP 403 from an auth endpoint). No credential
    /// will work until the provider lifts the suspension, so it is never
    /// retried and never falls back to a login.
    #[error(
        "the token endpoint refused the {call} for a suspended account (HTTP 403{}): the \
         account's owner must have the provider lift the suspension; retrying will not help",
        title_suffix(.title)
    )]
    AccountSuspended {
        /// The call that was refused.
        call: TokenCall,
        /// The problem body's `title`, if it had one.
        title: Option<String>,
    },

    /// The refresh token was rejected (or there is none), and the source has
    /// no long-lived credential to log in with: a person must sign in again
    /// and hand the new refresh token to a new source.
    #[error(
        "the refresh token is no longer accepted and this source has no credential to log in \
         with: the user must sign in again to obtain a new refresh token"
    )]
    SignInRequired {
        /// The HTTP status of the rejection, when the endpoint answered.
        status: Option<u16>,
    },

    /// The OAuth2 token endpoint refused the client's authentication
    /// (`invalid_client`, or a 401 without an OAuth2 error body).
    ///
    /// The shipped sources quote no server text here (`description` is
    /// `None`): an answer about the credentials is where a server is most
    /// likely to echo them.
    #[error(
        "the OAuth2 token endpoint refused the client authentication (HTTP {status}{}): check \
         the client id and secret, and whether the endpoint expects them in the Authorization \
         header (the default) or in the form body (client_secret_post)",
        title_suffix(.description)
    )]
    ClientAuthRejected {
        /// The HTTP status the endpoint answered.
        status: u16,
        /// The endpoint's `error_description`, if a custom source quotes one.
        description: Option<String>,
    },

    /// The OAuth2 token endpoint refused the client's assertion
    /// (`private_key_jwt`, or a client assertion minted elsewhere):
    /// `invalid_client`, or a 401 without an OAuth2 error body.
    ///
    /// No server text is quoted: an answer about the credentials is where a
    /// server is most likely to echo them.
    #[error(
        "the OAuth2 token endpoint refused the client assertion (HTTP {status}): the likely \
         causes are clock skew (this host's clock against the provider's: the assertion's iat \
         and exp), a wrong audience (the provider must accept the token URL as the aud), and a \
         key or issuer the provider has not registered for this client (check the key id, \
         or for a federated assertion that it has not expired and its issuer is trusted)"
    )]
    ClientAssertionRejected {
        /// The HTTP status the endpoint answered.
        status: u16,
    },

    /// The OAuth2 token endpoint refused a grant for a reason that retrying
    /// will not fix (RFC 6749 §5.2): `unauthorized_client`,
    /// `invalid_scope`, `unsupported_grant_type`, `invalid_request`, an
    /// `invalid_grant` on a client credentials grant, or another 4xx. The
    /// message names what to fix.
    #[error(
        "the OAuth2 token endpoint refused the {grant} grant (HTTP {status}{}{}): {}",
        code_suffix(.error),
        title_suffix(.description),
        grant_advice(.grant, .error.as_deref(), *.status)
    )]
    GrantRefused {
        /// The grant type: `client_credentials`, `refresh_token` or
        /// `token-exchange`.
        grant: &'static str,
        /// The HTTP status the endpoint answered.
        status: u16,
        /// The OAuth2 error code (`invalid_scope`, ...), if the body had one.
        error: Option<String>,
        /// The endpoint's `error_description`, if it gave one.
        description: Option<String>,
    },

    /// The refresh token was rejected, and logging in again failed too.
    #[error("the refresh token was rejected, and logging in again failed: {fallback}")]
    ReloginFailed {
        /// Why the fallback login failed.
        fallback: Box<Error>,
    },

    /// The token endpoint could not be reached (connection refused, DNS,
    /// TLS, or the connection broke mid-response).
    #[error(
        "the token endpoint could not be reached during {call}: {reason}; check the base URL \
         and the network, the call is retried with backoff"
    )]
    Unreachable {
        /// The call that failed.
        call: TokenCall,
        /// What the transport said, without the request body.
        reason: String,
    },

    /// A token call took longer than its timeout.
    #[error(
        "the token endpoint did not answer the {call} within {after:?}; it is retried with \
         backoff, raise the token call timeout if the endpoint is slow"
    )]
    Timeout {
        /// The call that timed out.
        call: TokenCall,
        /// The timeout that expired.
        after: Duration,
    },

    /// The token endpoint answered with an unexpected status: 5xx (transient)
    /// or another 4xx (permanent, often a wrong base URL).
    #[error(
        "the token endpoint answered the {call} with HTTP {status}{}: {}",
        title_suffix(.title),
        status_advice(*.status)
    )]
    Status {
        /// The call that failed.
        call: TokenCall,
        /// The HTTP status.
        status: u16,
        /// The problem body's `title`, if it had one.
        title: Option<String>,
    },

    /// The token endpoint is rate limiting us (HTTP 429).
    #[error(
        "the token endpoint is rate limiting the {call} (HTTP 429){}: lower the request rate; \
         the call is retried after the advertised wait",
        retry_suffix(.retry_after)
    )]
    RateLimited {
        /// The call that was limited.
        call: TokenCall,
        /// How long the endpoint asked us to wait, from
        /// `X-RateLimit-Retry-After` or `Retry-After`.
        retry_after: Option<Duration>,
    },

    /// The token response could not be read or decoded.
    #[error(
        "the token endpoint's answer to the {call} could not be decoded: {reason}; check that \
         the base URL points at the token API"
    )]
    InvalidResponse {
        /// The call whose answer was bad.
        call: TokenCall,
        /// What was wrong with it (never the body itself).
        reason: String,
    },

    /// The token response decoded, but the token in it is unusable: not a
    /// valid header value, or living under 1 s (which would cost a token
    /// call per request). Retried, no sooner than a second later.
    #[error("the token endpoint returned an unusable token: {reason}")]
    InvalidToken {
        /// What was wrong with the token (never the token itself).
        reason: String,
    },

    /// The configuration is invalid.
    #[error("invalid configuration: {reason}")]
    InvalidConfig {
        /// What is wrong and how to fix it.
        reason: String,
    },

    /// The shared token store (Redis) failed. The manager logs it once and
    /// goes on with its own single flight, so callers see this only from
    /// the store's own API.
    #[error(
        "the shared token store failed: {reason}; each process falls back to its own token \
         cache until the store is back"
    )]
    Store {
        /// What failed, without any token.
        reason: String,
    },

    /// The task running the token call ended without an answer, which only
    /// happens while the Tokio runtime shuts down.
    #[error("the token call was abandoned because the Tokio runtime is shutting down")]
    Abandoned,
}

impl Error {
    /// Whether retrying later may succeed without changing anything.
    ///
    /// Connection failures, timeouts, 5xx, 429 and undecodable answers are
    /// transient. A rejected credential or a bad configuration is not.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Unreachable { .. }
            | Error::Timeout { .. }
            | Error::RateLimited { .. }
            | Error::InvalidResponse { .. }
            | Error::InvalidToken { .. }
            | Error::Store { .. }
            | Error::Abandoned => true,
            Error::Status { status, .. } => *status >= 500,
            Error::ReloginFailed { fallback } => fallback.is_transient(),
            Error::ApiKeyRejected { .. }
            | Error::RefreshTokenRejected { .. }
            | Error::AccountSuspended { .. }
            | Error::SignInRequired { .. }
            | Error::ClientAuthRejected { .. }
            | Error::ClientAssertionRejected { .. }
            | Error::GrantRefused { .. }
            | Error::InvalidConfig { .. } => false,
        }
    }

    /// How long the token endpoint asked us to wait, for a 429.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::RateLimited { retry_after, .. } => *retry_after,
            Error::ReloginFailed { fallback } => fallback.retry_after(),
            _ => None,
        }
    }

    /// Finds the crate's error inside another error: the error itself, one
    /// of its [`source`](std::error::Error::source)s, or (feature
    /// `reqwest`) the error a `reqwest_middleware::Error::Middleware`
    /// holds, behind reqwest-retry's `RetryError` too.
    ///
    /// ```
    /// use bearer_refresh::Error;
    ///
    /// fn explain(err: &reqwest_middleware::Error) -> String {
    ///     match Error::find(err) {
    ///         Some(token) if !token.is_transient() => format!("fix the credentials: {token}"),
    ///         Some(token) => format!("no token for now: {token}"),
    ///         None => format!("the request failed: {err}"),
    ///     }
    /// }
    /// # let _ = explain;
    /// ```
    pub fn find<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a Error> {
        let mut next = Some(err);
        while let Some(err) = next {
            if let Some(ours) = err.downcast_ref::<Error>() {
                return Some(ours);
            }
            // Its `source()` skips what it holds: reach in.
            #[cfg(feature = "reqwest")]
            if let Some(reqwest_middleware::Error::Middleware(inner)) =
                err.downcast_ref::<reqwest_middleware::Error>()
            {
                if let Some(ours) = inner.downcast_ref::<Error>() {
                    return Some(ours);
                }
                next = Some(inner.as_ref());
                continue;
            }
            next = err.source();
        }
        None
    }

    pub(crate) fn config(reason: impl Into<String>) -> Self {
        Error::InvalidConfig {
            reason: reason.into(),
        }
    }

    pub(crate) fn invalid_token(reason: impl Into<String>) -> Self {
        Error::InvalidToken {
            reason: reason.into(),
        }
    }
}

fn title_suffix(title: &Option<String>) -> String {
    match title {
        Some(title) => format!(", \"{title}\""),
        None => String::new(),
    }
}

fn code_suffix(code: &Option<String>) -> String {
    match code {
        Some(code) => format!(", {code}"),
        None => String::new(),
    }
}

/// What to fix for an OAuth2 error code (RFC 6749 §5.2) on `grant`.
fn grant_advice(grant: &str, code: Option<&str>, status: u16) -> &'static str {
    match code {
        Some("invalid_grant") if grant == "token-exchange" => {
            "the subject token was refused: it has expired, was revoked, or its issuer or \
             audience is not trusted for this exchange; each exchange reads it again, so check \
             that the platform keeps the token file fresh"
        }
        Some("unauthorized_client") => {
            "this client may not use this grant type; allow it for the client at the identity \
             provider"
        }
        Some("invalid_scope") => {
            "the requested scope is unknown or not granted to this client; fix the scope the \
             source asks for, or grant it to the client at the identity provider"
        }
        Some("unsupported_grant_type") => {
            "the endpoint does not support this grant type; check the token URL and the \
             identity provider's settings"
        }
        Some("invalid_request") => {
            "the request lacks a parameter the endpoint requires or repeats one; check the token \
             URL, the scope and the audience the identity provider expects"
        }
        Some("invalid_grant") => {
            "the grant itself was refused; check the client's settings at the identity provider \
             (allowed grants, audience)"
        }
        _ if status == 404 || status == 405 => {
            "check the token URL: it should be the identity provider's token endpoint"
        }
        _ => {
            "check the token URL, the client id and the client's settings at the identity provider"
        }
    }
}

fn retry_suffix(retry_after: &Option<Duration>) -> String {
    match retry_after {
        Some(wait) => format!(", asked to wait {}s", wait.as_secs_f64()),
        None => String::new(),
    }
}

fn status_advice(status: u16) -> &'static str {
    if status >= 500 {
        "the endpoint is failing, the call is retried with backoff"
    } else if status == 404 || status == 405 {
        "check the base URL: it should be the root of the token API"
    } else {
        "the request was refused; check the base URL and the credentials"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_and_permanent_are_told_apart() {
        let server = Error::Status {
            call: TokenCall::Login,
            status: 503,
            title: None,
        };
        let not_found = Error::Status {
            call: TokenCall::Login,
            status: 404,
            title: None,
        };
        let rejected = Error::ApiKeyRejected {
            status: 400,
            title: None,
        };
        assert!(server.is_transient());
        assert!(!not_found.is_transient());
        assert!(!rejected.is_transient());
        let relogin = Error::ReloginFailed {
            fallback: Box::new(rejected),
        };
        assert!(!relogin.is_transient());
    }

    #[test]
    fn a_refused_assertion_names_the_likely_causes() {
        let err = Error::ClientAssertionRejected { status: 401 };
        assert!(!err.is_transient());
        let text = err.to_string();
        for cause in ["clock skew", "aud", "not registered for this client"] {
            assert!(text.contains(cause), "{text}");
        }
        assert!(!text.contains("secret"), "{text}");
    }

    #[test]
    fn messages_say_what_to_do() {
        let err = Error::ApiKeyRejected {
            status: 400,
            title: Some("Invalid credentials".into()),
        };
        let text = err.to_string();
        assert!(text.contains("API key"), "{text}");
        assert!(text.contains("Invalid credentials"), "{text}");
        // Provider-specific advice belongs to the source, not to this type.
        assert!(!text.contains("sandbox"), "{text}");
        let suspended = Error::AccountSuspended {
            call: TokenCall::Login,
            title: None,
        }
        .to_string();
        assert!(suspended.contains("suspended account"), "{suspended}");
        assert!(!suspended.contains("key"), "{suspended}");
        let limited = Error::RateLimited {
            call: TokenCall::Refresh,
            retry_after: Some(Duration::from_secs(2)),
        };
        assert!(limited.to_string().contains("wait 2s"));
        assert_eq!(limited.retry_after(), Some(Duration::from_secs(2)));
    }
}
