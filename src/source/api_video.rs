//! [`ApiKeySource`]: api.video's `POST /auth/api-key` and
//! `POST /auth/refresh`.

use std::fmt;

use http::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use super::endpoint::{TokenEndpoint, USER_AGENT};
use super::refusal::Refusal;
use super::token_request::TokenRequest;
use super::{BoxFuture, TokenResponse, TokenSource};
use crate::error::{Error, TokenCall};
use crate::origin::Origin;

/// api.video's disposable bearer tokens: an API key exchanged at
/// `POST {base}/auth/api-key`, refreshed at `POST {base}/auth/refresh`.
///
/// The API key is kept in a [`SecretString`]; `Debug` shows the base URL
/// only. The default HTTP client follows no redirect, so the API key is
/// never re-posted to another host, and identifies itself with
/// [`USER_AGENT`](Self::USER_AGENT).
///
/// A token call's timeout is the manager's
/// [`call_timeout`](crate::TokenManagerBuilder::call_timeout) (default
/// 30 s); the source sets none of its own.
///
/// # Errors from the token calls
///
/// How api.video's answers reach [`TokenManager`](crate::TokenManager):
///
/// | api.video answers | error | the manager |
/// |---|---|---|
/// | 400 or 401 to `/auth/refresh` | [`Error::RefreshTokenRejected`] | logs in again with the API key |
/// | 400 or 401 to `/auth/api-key` | [`Error::ApiKeyRejected`] | gives the error to every waiter, no retry loop |
/// | 403 to either (a suspended account) | [`Error::AccountSuspended`] | gives the error to every waiter, no retry, no login |
/// | 429, 5xx, a timeout, a broken or undecodable answer, a lifetime under 1 s | transient errors | retries with backoff |
///
/// Errors quote the problem's `title`, with the API key and the refresh
/// token removed in any form the server may echo them.
///
/// An api.video key belongs to one environment: a sandbox key is rejected by
/// [`PRODUCTION`](Self::PRODUCTION) and a production key by
/// [`SANDBOX`](Self::SANDBOX). A rejected key is logged with that reminder
/// (a `tracing` warning naming the base URL, never the key).
///
/// ```
/// use bearer_refresh::ApiKeySource;
///
/// let source = ApiKeySource::new(ApiKeySource::SANDBOX, "my-api-key")?;
/// assert!(!format!("{source:?}").contains("my-api-key"));
///
/// // Plain http is for loopback test servers only.
/// assert!(ApiKeySource::new("http://127.0.0.1:8080", "key").is_ok());
/// assert!(ApiKeySource::new("http://ws.api.video", "key").is_err());
/// # Ok::<(), bearer_refresh::Error>(())
/// ```
#[derive(Clone)]
pub struct ApiKeySource {
    base: reqwest::Url,
    origin: Origin,
    login: TokenEndpoint,
    refresh: TokenEndpoint,
    api_key: SecretString,
}

impl ApiKeySource {
    /// api.video's production base URL.
    pub const PRODUCTION: &'static str = "https://ws.api.video";
    /// api.video's sandbox base URL.
    pub const SANDBOX: &'static str = "https://sandbox.api.video";
    /// The `User-Agent` of the default client's token calls:
    /// `bearer-refresh/<version>`, so the provider can tell this crate's
    /// calls apart, as api.video's own SDKs do.
    pub const USER_AGENT: &'static str = USER_AGENT;

    /// A source for the API at `base_url`, logging in with `api_key`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] when the URL is malformed, is not `http` or
    /// `https`, carries credentials, a query or a fragment, or is plain
    /// `http` to a host other than loopback (`127.0.0.1`, `[::1]`,
    /// `localhost`): the API key would travel in clear. Also when the key is
    /// empty.
    pub fn new(base_url: &str, api_key: impl Into<String>) -> Result<Self, Error> {
        let api_key = SecretString::from(api_key.into());
        if api_key.expose_secret().trim().is_empty() {
            return Err(Error::config("the API key is empty"));
        }
        let root = TokenEndpoint::new(base_url, "base URL", "the API key")?;
        // The endpoints are joined below the base: a query would be lost.
        if root.url().query().is_some() {
            return Err(Error::config(
                "the base URL must not have a query or a fragment",
            ));
        }
        let base = root.below("")?.url().clone();
        Ok(ApiKeySource {
            origin: Origin::of_url(base.as_str())?.0,
            base,
            login: root.below("auth/api-key")?,
            refresh: root.below("auth/refresh")?,
            api_key,
        })
    }

    /// Uses your own `reqwest::Client` for the token calls (proxies, TLS
    /// roots, connection pool).
    ///
    /// Pass a plain `reqwest::Client`, not one wrapped in this crate's
    /// middleware: token calls must not go through the middleware. Consider
    /// disabling redirects on it, and setting [`USER_AGENT`](Self::USER_AGENT),
    /// as the default client does.
    pub fn with_client(mut self, client: reqwest::Client) -> Self {
        self.login.set_client(client.clone());
        self.refresh.set_client(client);
        self
    }

    /// The base URL, normalised to end with `/`.
    pub fn base_url(&self) -> &reqwest::Url {
        &self.base
    }

    /// The credential a store may derive its sealing key from: the API key,
    /// which every process of a fleet holds anyway.
    pub(crate) fn long_lived_secret(&self) -> Option<&SecretString> {
        Some(&self.api_key)
    }

    /// The error for an answer that is neither a token nor a rate limit.
    fn refusal(&self, refusal: Refusal) -> Error {
        let call = refusal.call();
        let title = refusal.field("title");
        let status = refusal.status();
        match (status, call) {
            (StatusCode::FORBIDDEN, _) => Error::AccountSuspended { call, title },
            (StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED, TokenCall::Login) => {
                tracing::warn!(
                    base_url = %self.base,
                    "api.video rejected the API key: keys belong to one environment, a sandbox \
                     key works only with {} and a production key only with {}",
                    Self::SANDBOX,
                    Self::PRODUCTION,
                );
                Error::ApiKeyRejected {
                    status: status.as_u16(),
                    title,
                }
            }
            (StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED, TokenCall::Refresh) => {
                Error::RefreshTokenRejected {
                    status: status.as_u16(),
                    title,
                }
            }
            _ => Error::Status {
                call,
                status: status.as_u16(),
                title,
            },
        }
    }
}

impl TokenSource for ApiKeySource {
    fn login(&self) -> BoxFuture<'_, Result<TokenResponse, Error>> {
        Box::pin(async move {
            let mut request = TokenRequest::json(
                TokenCall::Login,
                json!({ "apiKey": self.api_key.expose_secret() }),
            );
            request.redact(&self.api_key);
            self.login
                .post(request, |refusal| self.refusal(refusal))
                .await
        })
    }

    fn refresh<'a>(
        &'a self,
        refresh_token: &'a SecretString,
    ) -> BoxFuture<'a, Result<TokenResponse, Error>> {
        Box::pin(async move {
            let mut request = TokenRequest::json(
                TokenCall::Refresh,
                json!({ "refreshToken": refresh_token.expose_secret() }),
            );
            request.redact(refresh_token);
            // A server may echo the API key in a refresh's answer too.
            request.redact(&self.api_key);
            self.refresh
                .post(request, |refusal| self.refusal(refusal))
                .await
        })
    }

    fn origin(&self) -> Option<Origin> {
        Some(self.origin.clone())
    }
}

impl fmt::Debug for ApiKeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeySource")
            .field("base_url", &self.base.as_str())
            .field("api_key", &"[redacted]")
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_checked() {
        for ok in [
            ApiKeySource::PRODUCTION,
            ApiKeySource::SANDBOX,
            "http://127.0.0.1:9000",
            "http://[::1]:9000",
            "http://localhost:9000/prefix",
        ] {
            assert!(ApiKeySource::new(ok, "key").is_ok(), "{ok}");
        }
        for bad in [
            "not a url",
            "http://ws.api.video",
            "ftp://ws.api.video",
            "https://user:pw@ws.api.video",
            "https://ws.api.video/?a=b",
        ] {
            assert!(ApiKeySource::new(bad, "key").is_err(), "{bad}");
        }
        assert!(ApiKeySource::new(ApiKeySource::SANDBOX, " ").is_err());
    }

    #[test]
    fn endpoints_keep_a_path_prefix() {
        let source = ApiKeySource::new("http://localhost:9000/v1", "key").unwrap();
        assert_eq!(
            source.login.url().as_str(),
            "http://localhost:9000/v1/auth/api-key"
        );
        assert_eq!(
            source.refresh.url().as_str(),
            "http://localhost:9000/v1/auth/refresh"
        );
        assert_eq!(source.base_url().as_str(), "http://localhost:9000/v1/");
    }
}
