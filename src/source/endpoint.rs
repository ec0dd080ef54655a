//! [`TokenEndpoint`]: the one HTTP token call every shipped source makes.
//!
//! It holds what api.video's endpoint and an OAuth2 token endpoint share:
//! the URL checks, the client (no redirects, the crate's `User-Agent`), the
//! send, the wait a 429 asks for, the capped read, and the decoding of the
//! token response. A source keeps only the shape of its requests and the
//! mapping of its endpoint's refusals to errors.
//!
//! A token call has one timeout: the manager's
//! [`call_timeout`](crate::TokenManagerBuilder::call_timeout), which drops
//! the call's future, and with it the request.

use std::time::Duration;

use http::header::ACCEPT;
use http::{HeaderMap, StatusCode};

use super::redact::Redactor;
use super::refusal::Refusal;
use super::token_request::{Body, TokenRequest};
use super::TokenResponse;
use crate::error::{Error, TokenCall};
use crate::origin::Origin;

/// The `User-Agent` of the default client: `bearer-refresh/<version>`.
pub(crate) const USER_AGENT: &str = concat!("bearer-refresh/", env!("CARGO_PKG_VERSION"));

/// The largest token response we read; the rest is never buffered.
pub(crate) const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// The longest 429 wait we honour; a larger one is cut to this, so a
/// misbehaving endpoint cannot park every caller for hours.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// A token endpoint's URL and the client that posts to it.
#[derive(Clone)]
pub(crate) struct TokenEndpoint {
    url: reqwest::Url,
    client: reqwest::Client,
}

impl TokenEndpoint {
    /// The endpoint at `url`, with the default client. `name` is what the
    /// URL is to the user ("base URL", "token URL"), `carried` the secret
    /// that plain http would expose ("the API key"), for the messages.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] when the URL is malformed, is not `http` or
    /// `https`, carries credentials or a fragment, or is plain `http` to a
    /// host other than loopback (`127.0.0.1`, `[::1]`, `localhost`).
    pub(crate) fn new(url: &str, name: &str, carried: &str) -> Result<Self, Error> {
        let parsed = reqwest::Url::parse(url).map_err(|err| {
            // A malformed URL may still hold a password: quote it only when
            // it has no userinfo part.
            let quoted = if url.contains('@') {
                String::new()
            } else {
                format!(" {url:?}")
            };
            Error::config(format!("the {name}{quoted} is malformed: {err}"))
        })?;
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(Error::config(format!(
                "the {name} must not carry credentials; pass {carried} separately"
            )));
        }
        // RFC 6749 §3.2: an endpoint URI may have a query, never a fragment.
        if parsed.fragment().is_some() {
            return Err(Error::config(format!(
                "the {name} must not have a fragment"
            )));
        }
        let (origin, _path) = Origin::of_url(parsed.as_str())?;
        if !origin.is_https() && !origin.is_loopback() {
            return Err(Error::config(format!(
                "plain http to {origin} would send {carried} in clear; use https (plain http is \
                 allowed for 127.0.0.1, [::1] and localhost only)"
            )));
        }
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(USER_AGENT)
            .build()
            .map_err(|err| Error::config(format!("cannot build the HTTP client: {err}")))?;
        Ok(TokenEndpoint {
            url: parsed,
            client,
        })
    }

    /// The endpoint at `path` below this URL, taken as a folder, with the
    /// same client.
    #[cfg_attr(not(feature = "api-video"), allow(dead_code))]
    pub(crate) fn below(&self, path: &str) -> Result<Self, Error> {
        let mut folder = self.url.clone();
        if !folder.path().ends_with('/') {
            let path = format!("{}/", folder.path());
            folder.set_path(&path);
        }
        let url = folder
            .join(path)
            .map_err(|err| Error::config(format!("cannot build the {path} URL: {err}")))?;
        Ok(TokenEndpoint {
            url,
            client: self.client.clone(),
        })
    }

    /// The URL requests go to.
    pub(crate) fn url(&self) -> &reqwest::Url {
        &self.url
    }

    /// Posts with the user's own client from now on.
    pub(crate) fn set_client(&mut self, client: reqwest::Client) {
        self.client = client;
    }

    /// Sends `request` and reads the token response. A 429 becomes
    /// [`Error::RateLimited`] with the wait it asks for; any other answer
    /// that is not a success goes to `refused`, which names the error.
    ///
    /// # Errors
    ///
    /// [`Error::Unreachable`] when the send or the read fails,
    /// [`Error::InvalidResponse`] or [`Error::InvalidToken`] for a success
    /// that is not a usable token, and what `refused` returns.
    #[cfg_attr(not(feature = "api-video"), allow(dead_code))]
    pub(crate) async fn post(
        &self,
        request: TokenRequest,
        refused: impl FnOnce(Refusal) -> Error,
    ) -> Result<TokenResponse, Error> {
        self.post_observing(request, |_| {}, refused).await
    }

    /// [`post`](Self::post), showing `observe` the headers of whatever the
    /// endpoint answers, success or not (a DPoP nonce comes on any answer).
    pub(crate) async fn post_observing(
        &self,
        request: TokenRequest,
        observe: impl FnOnce(&HeaderMap),
        refused: impl FnOnce(Refusal) -> Error,
    ) -> Result<TokenResponse, Error> {
        let TokenRequest {
            call,
            body,
            headers,
            redactor,
        } = request;
        let builder = self
            .client
            .post(self.url.clone())
            .header(ACCEPT, "application/json")
            .headers(headers);
        let builder = match body {
            Body::Json(json) => builder.json(&json),
            #[cfg(feature = "oauth2")]
            Body::Form(pairs) => builder
                .header(
                    http::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .body(
                    form_urlencoded::Serializer::new(String::new())
                        .extend_pairs(pairs)
                        .finish(),
                ),
        };
        let response = builder
            .send()
            .await
            .map_err(|err| transport_error(call, &err, &redactor))?;
        observe(response.headers());
        let status = response.status();
        let wait = retry_after(response.headers());
        let body = read_capped(call, response, &redactor).await?;
        if status.is_success() {
            return TokenResponse::decode(call, &body, &redactor);
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Err(Error::RateLimited {
                call,
                retry_after: wait,
            });
        }
        Err(refused(Refusal::new(call, status, &body, redactor)))
    }
}

impl std::fmt::Debug for TokenEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenEndpoint")
            .field("url", &self.url.as_str())
            .finish_non_exhaustive()
    }
}

/// The 429 wait: api.video's `X-RateLimit-Retry-After` first, then the
/// standard `Retry-After`, both in seconds.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    ["x-ratelimit-retry-after", "retry-after"]
        .iter()
        .filter_map(|name| {
            headers
                .get(*name)?
                .to_str()
                .ok()?
                .trim()
                .parse::<f64>()
                .ok()
        })
        .find(|secs| secs.is_finite() && *secs >= 0.0)
        .map(|secs| Duration::from_secs_f64(secs.min(MAX_RETRY_AFTER.as_secs_f64())))
}

/// Reads the body up to [`MAX_RESPONSE_BYTES`]; what is past the cap is
/// never buffered.
async fn read_capped(
    call: TokenCall,
    mut response: reqwest::Response,
    redactor: &Redactor,
) -> Result<Vec<u8>, Error> {
    let too_large = || Error::InvalidResponse {
        call,
        reason: format!(
            "the response is larger than {} KiB",
            MAX_RESPONSE_BYTES / 1024
        ),
    };
    if response
        .content_length()
        .is_some_and(|len| len > MAX_RESPONSE_BYTES as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|err| transport_error(call, &err, redactor))?
    {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A failed send or read, with the transport's cause chain. reqwest's own
/// message is generic; the chain says what broke. A timeout here can only
/// be the user's own client's: the crate sets none of its own.
fn transport_error(call: TokenCall, err: &reqwest::Error, redactor: &Redactor) -> Error {
    let mut reason = err.to_string();
    let mut cause = std::error::Error::source(err);
    while let Some(inner) = cause {
        reason.push_str(": ");
        reason.push_str(&inner.to_string());
        cause = inner.source();
    }
    // None of it should hold the request's secrets; make sure.
    let reason = redactor
        .scrub(&reason)
        .unwrap_or_else(|| "the transport failed (its message held a secret)".to_owned());
    Error::Unreachable { call, reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_prefers_the_rate_limit_header() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", "7".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        headers.insert("x-ratelimit-retry-after", "2".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
        headers.insert("x-ratelimit-retry-after", "soon".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        headers.insert("retry-after", "99999".parse().unwrap());
        headers.remove("x-ratelimit-retry-after");
        assert_eq!(retry_after(&headers), Some(MAX_RETRY_AFTER));
    }

    #[test]
    fn urls_are_checked_once_for_every_source() {
        for ok in [
            "https://idp.example/oauth/token",
            "https://idp.example/token?tenant=a",
            "http://127.0.0.1:9000/token",
            "http://[::1]:9000/token",
            "http://localhost:9000/token",
        ] {
            assert!(
                TokenEndpoint::new(ok, "token URL", "the secret").is_ok(),
                "{ok}"
            );
        }
        for (bad, says) in [
            ("not a url", "malformed"),
            ("http://idp.example/token", "the secret in clear"),
            ("ftp://idp.example/token", ""),
            (
                "https://id:pw@idp.example/token",
                "must not carry credentials",
            ),
            ("https://id:pw@[::1/token", "malformed"),
            ("https://idp.example/token#frag", "fragment"),
        ] {
            let err = TokenEndpoint::new(bad, "token URL", "the secret").unwrap_err();
            let text = err.to_string();
            assert!(matches!(err, Error::InvalidConfig { .. }), "{bad}");
            assert!(text.contains(says), "{bad}: {text}");
            assert!(!text.contains("pw"), "{text}");
        }
    }

    #[test]
    fn paths_below_keep_the_prefix_and_the_client() {
        let root = TokenEndpoint::new("http://localhost:9000/v1", "base URL", "the key").unwrap();
        let login = root.below("auth/api-key").unwrap();
        assert_eq!(
            login.url().as_str(),
            "http://localhost:9000/v1/auth/api-key"
        );
        assert_eq!(
            root.below("").unwrap().url().as_str(),
            "http://localhost:9000/v1/"
        );
    }
}
