//! [`ApiKeySource`]: api.video's `POST /auth/api-key` and
//! `POST /auth/refresh`.

use std::fmt;
use std::time::Duration;

use http::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::http::{read_capped, retry_after, transport_error};
use super::{short, BoxFuture, TokenResponse, TokenSource};
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
/// # Errors from the token calls
///
/// How api.video's answers reach [`TokenManager`](crate::TokenManager):
///
/// | api.video answers | error | the manager |
/// |---|---|---|
/// | 400 or 401 to `/auth/refresh` | [`Error::RefreshTokenRejected`] | logs in again with the API key |
/// | 400 or 401 to `/auth/api-key` | [`Error::ApiKeyRejected`] | gives the error to every waiter, no retry loop |
/// | 403 to either (a suspended account) | [`Error::AccountSuspended`] | gives the error to every waiter, no retry, no login |
/// | 429, 5xx, a timeout, a broken or undecodable answer | transient errors | retries with backoff |
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
    login_url: reqwest::Url,
    refresh_url: reqwest::Url,
    api_key: SecretString,
    client: reqwest::Client,
    timeout: Duration,
}

impl ApiKeySource {
    /// api.video's production base URL.
    pub const PRODUCTION: &'static str = "https://ws.api.video";
    /// api.video's sandbox base URL.
    pub const SANDBOX: &'static str = "https://sandbox.api.video";
    /// The default timeout of one token call.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
    /// The `User-Agent` of the default client's token calls:
    /// `bearer-refresh/<version>`, so the provider can tell this crate's
    /// calls apart, as api.video's own SDKs do.
    pub const USER_AGENT: &'static str = concat!("bearer-refresh/", env!("CARGO_PKG_VERSION"));

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
        let mut base = reqwest::Url::parse(base_url)
            .map_err(|err| Error::config(format!("base URL {base_url:?} is malformed: {err}")))?;
        if !base.username().is_empty() || base.password().is_some() {
            return Err(Error::config(
                "the base URL must not carry credentials; pass the API key separately",
            ));
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(Error::config(
                "the base URL must not have a query or a fragment",
            ));
        }
        let origin = Origin::parse(base.as_str())?;
        if !origin.is_https() && !origin.is_loopback() {
            return Err(Error::config(format!(
                "plain http to {origin} would send the API key in clear; use https (plain http \
                 is allowed for 127.0.0.1, [::1] and localhost only)"
            )));
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let join = |path: &str| {
            base.join(path)
                .map_err(|err| Error::config(format!("cannot build the {path} URL: {err}")))
        };
        let login_url = join("auth/api-key")?;
        let refresh_url = join("auth/refresh")?;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(Self::USER_AGENT)
            .build()
            .map_err(|err| Error::config(format!("cannot build the HTTP client: {err}")))?;
        Ok(ApiKeySource {
            base,
            origin,
            login_url,
            refresh_url,
            api_key,
            client,
            timeout: Self::DEFAULT_TIMEOUT,
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
        self.client = client;
        self
    }

    /// The timeout of one token call, reading the body included (default
    /// 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The base URL, normalised to end with `/`.
    pub fn base_url(&self) -> &reqwest::Url {
        &self.base
    }

    async fn post<T: Serialize + Sync>(
        &self,
        call: TokenCall,
        url: &reqwest::Url,
        body: &T,
    ) -> Result<TokenResponse, Error> {
        let response = self
            .client
            .post(url.clone())
            .header(http::header::ACCEPT, "application/json")
            .json(body)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|err| transport_error(call, self.timeout, &err))?;
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let body = read_capped(call, response)
            .await
            .map_err(|err| err.unwrap_or_else(|err| transport_error(call, self.timeout, &err)))?;
        if status.is_success() {
            return TokenResponse::from_json(call, &body);
        }
        Err(self.refusal(call, status, Problem::title_of(&body), retry_after))
    }

    /// The error for an answer that is not a success.
    fn refusal(
        &self,
        call: TokenCall,
        status: StatusCode,
        title: Option<String>,
        retry_after: Option<Duration>,
    ) -> Error {
        let code = status.as_u16();
        match (status, call) {
            (StatusCode::TOO_MANY_REQUESTS, _) => Error::RateLimited { call, retry_after },
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
                    status: code,
                    title,
                }
            }
            (StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED, TokenCall::Refresh) => {
                Error::RefreshTokenRejected {
                    status: code,
                    title,
                }
            }
            _ => Error::Status {
                call,
                status: code,
                title,
            },
        }
    }
}

impl TokenSource for ApiKeySource {
    fn login(&self) -> BoxFuture<'_, Result<TokenResponse, Error>> {
        Box::pin(async move {
            let body = LoginBody {
                api_key: self.api_key.expose_secret(),
            };
            self.post(TokenCall::Login, &self.login_url, &body).await
        })
    }

    fn refresh<'a>(
        &'a self,
        refresh_token: &'a SecretString,
    ) -> BoxFuture<'a, Result<TokenResponse, Error>> {
        Box::pin(async move {
            let body = RefreshBody {
                refresh_token: refresh_token.expose_secret(),
            };
            self.post(TokenCall::Refresh, &self.refresh_url, &body)
                .await
        })
    }

    fn origin(&self) -> Option<Origin> {
        Some(self.origin.clone())
    }

    fn sealing_secret(&self) -> Option<&SecretString> {
        Some(&self.api_key)
    }
}

impl fmt::Debug for ApiKeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeySource")
            .field("base_url", &self.base.as_str())
            .field("api_key", &"[redacted]")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct LoginBody<'a> {
    #[serde(rename = "apiKey")]
    api_key: &'a str,
}

#[derive(Serialize)]
struct RefreshBody<'a> {
    #[serde(rename = "refreshToken")]
    refresh_token: &'a str,
}

/// api.video's problem body. Every field may be missing; only the title is
/// quoted in errors, since `detail` and `problems` may echo request data.
#[derive(Deserialize, Default)]
struct Problem {
    #[serde(default)]
    title: Option<String>,
}

impl Problem {
    fn title_of(body: &[u8]) -> Option<String> {
        serde_json::from_slice::<Problem>(body)
            .unwrap_or_default()
            .title
            .filter(|title| !title.is_empty())
            .map(|title| short(&title))
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
            source.login_url.as_str(),
            "http://localhost:9000/v1/auth/api-key"
        );
        assert_eq!(
            source.refresh_url.as_str(),
            "http://localhost:9000/v1/auth/refresh"
        );
    }

    #[test]
    fn problem_titles_are_read_leniently() {
        let body = br#"{"type":"https://docs.api.video/reference/authentication-invalid-user-credentials","title":"The user credentials were incorrect.","status":400}"#;
        assert_eq!(
            Problem::title_of(body).as_deref(),
            Some("The user credentials were incorrect.")
        );
        assert_eq!(Problem::title_of(b"{}"), None);
        assert_eq!(Problem::title_of(b"<html>"), None);
    }
}
