//! The reqwest adapter: [`BearerAuthMiddleware`] for `reqwest-middleware`.

use http::header::AUTHORIZATION;
use http::Extensions;
use reqwest_middleware::{Middleware, Next};

use crate::manager::TokenManager;
use crate::replay::{wants_new_token, Policy};
use crate::scope::Origin;

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
                request.try_clone()
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
            let Some(copy) = copy else {
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
