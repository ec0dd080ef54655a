//! The reqwest adapter: [`BearerAuthMiddleware`] for `reqwest-middleware`.

use std::time::Duration;

use http::header::AUTHORIZATION;
use http::{Extensions, Method, Version};
use reqwest_middleware::{Middleware, Next};

use crate::engine::TokenManager;
use crate::request::Origin;
use crate::request::{read_headers, Flat};
use crate::request::{wants_new_token, Policy};

/// Attaches `Authorization: Bearer <token>` to requests bound for the
/// token's origin, and answers a 401 by refreshing the token and replaying
/// the request.
///
/// The replay uses [`reqwest::Request::try_clone`]: a streaming body is
/// sent once, and its 401 still refreshes the token for the next request.
/// A token failure comes back as `reqwest_middleware::Error::Middleware`
/// wrapping a [`bearer_refresh::Error`](crate::Error).
///
/// Redirects are reqwest's: its default policy follows up to 10 and drops
/// `Authorization` when the host, port or scheme changes, so the token does
/// not follow a redirect to another origin. A 401 from a host we were
/// redirected to refreshes nothing.
///
/// ```
/// use bearer_refresh::{ApiKeySource, BearerAuthMiddleware, TokenManager};
///
/// let tokens = TokenManager::new(ApiKeySource::new(ApiKeySource::SANDBOX, "key")?);
/// let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
///     .with(BearerAuthMiddleware::new(tokens))
///     .build();
/// # let _ = client;
/// # Ok::<(), bearer_refresh::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct BearerAuthMiddleware {
    policy: Policy,
}

impl BearerAuthMiddleware {
    /// A middleware attaching the tokens of `tokens`, to the token
    /// source's origin only, replaying a 401 once.
    pub fn new(tokens: TokenManager) -> Self {
        BearerAuthMiddleware {
            policy: Policy::new(tokens),
        }
    }

    /// How many times a request is sent again after a 401 (default 1).
    pub fn max_replays(mut self, max_replays: u32) -> Self {
        self.policy.max_replays = max_replays;
        self
    }

    /// Sends the token to `origin` too.
    pub fn allow_origin(mut self, origin: Origin) -> Self {
        self.policy.allow_origin(origin);
        self
    }

    /// Sends the token with every request, whatever its destination.
    pub fn allow_any_origin(mut self) -> Self {
        self.policy.allow_any_origin();
        self
    }
}

#[async_trait::async_trait]
impl Middleware for BearerAuthMiddleware {
    async fn handle(
        &self,
        mut request: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        if !self.policy.scope.allows_url(request.url()) {
            return next.run(request, extensions).await;
        }
        let tokens = &self.policy.tokens;
        let mut auth = tokens
            .authorize()
            .await
            .map_err(reqwest_middleware::Error::middleware)?;
        let mut replays = 0;
        loop {
            // Copied before our header goes in, so the copy never holds a
            // token that may be rejected.
            let copy = if replays < self.policy.max_replays {
                ReplayCopy::take(&request)
            } else {
                None
            };
            let generation = auth.generation();
            request
                .headers_mut()
                .insert(AUTHORIZATION, auth.into_header());
            let response = next.clone().run(request, extensions).await?;
            // After a redirect the answer may come from another origin,
            // whose 401 says nothing about our token.
            if !wants_new_token(response.status(), response.headers())
                || !self.policy.scope.allows_url(response.url())
            {
                return Ok(response);
            }
            if replays == 0 {
                // See the tower future: only a request's first 401 speaks for
                // its token.
                tokens.invalidate(generation);
            }
            let Some(copy) = copy.and_then(ReplayCopy::restore) else {
                return Ok(response);
            };
            replays += 1;
            let delay = tokens.backoff().replay_delay(replays);
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            auth = tokens
                .authorize()
                .await
                .map_err(reqwest_middleware::Error::middleware)?;
            request = copy;
        }
    }
}

/// What a replay of a reqwest request needs.
enum ReplayCopy {
    /// A request with a body: reqwest's own copy, which shares a buffered
    /// body and refuses a streaming one.
    Cloned(reqwest::Request),
    /// A request without a body: method, version, timeout, and the URL and
    /// headers flattened into one inline buffer (no allocation, where
    /// `try_clone` makes one for the URL and one per header value).
    Bodiless {
        method: Method,
        version: Version,
        timeout: Option<Duration>,
        flat: Flat,
        url_len: usize,
    },
}

impl ReplayCopy {
    fn take(request: &reqwest::Request) -> Option<Self> {
        if request.body().is_some() {
            return request.try_clone().map(ReplayCopy::Cloned);
        }
        let mut flat = Flat::new();
        flat.push(request.url().as_str().as_bytes());
        let url_len = flat.len();
        flat.push_headers(request.headers())?;
        Some(ReplayCopy::Bodiless {
            method: request.method().clone(),
            version: request.version(),
            timeout: request.timeout().copied(),
            flat,
            url_len,
        })
    }

    /// The request again; `None` only if the copy no longer parses, which
    /// cannot happen for one taken from a valid request.
    fn restore(self) -> Option<reqwest::Request> {
        match self {
            ReplayCopy::Cloned(request) => Some(request),
            ReplayCopy::Bodiless {
                method,
                version,
                timeout,
                flat,
                url_len,
            } => {
                let (url, headers) = flat.as_slice().split_at(url_len);
                let url = reqwest::Url::parse(std::str::from_utf8(url).ok()?).ok()?;
                let mut request = reqwest::Request::new(method, url);
                *request.version_mut() = version;
                *request.timeout_mut() = timeout;
                read_headers(headers, request.headers_mut())?;
                Some(request)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodiless_copies_keep_everything_a_replay_needs() {
        let client = reqwest::Client::new();
        let mut request = client
            .delete("https://api.example/videos/v1?force=true")
            .header("x-trace", "42")
            .header("accept", "a")
            .timeout(Duration::from_secs(3))
            .build()
            .unwrap();
        request
            .headers_mut()
            .append("accept", http::HeaderValue::from_static("b"));
        let copy = ReplayCopy::take(&request).unwrap();
        assert!(matches!(copy, ReplayCopy::Bodiless { .. }));
        let again = copy.restore().unwrap();
        assert_eq!(again.method(), request.method());
        assert_eq!(again.url(), request.url());
        assert_eq!(again.headers(), request.headers());
        assert_eq!(again.timeout(), Some(&Duration::from_secs(3)));
        assert_eq!(again.version(), request.version());
    }

    #[test]
    fn requests_with_a_body_use_reqwest_s_copy() {
        let request = reqwest::Client::new()
            .post("https://api.example/videos")
            .body("{}")
            .build()
            .unwrap();
        let copy = ReplayCopy::take(&request).unwrap().restore().unwrap();
        assert_eq!(
            copy.body().and_then(reqwest::Body::as_bytes),
            Some(&b"{}"[..])
        );
    }
}
