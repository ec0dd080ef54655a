//! The reqwest adapter: [`BearerAuthMiddleware`] for `reqwest-middleware`.

mod copy;

use std::future::Future;
use std::pin::Pin;

use http::header::AUTHORIZATION;
use http::Extensions;
use reqwest_middleware::{Middleware, Next};

use self::copy::ReplayCopy;
use crate::engine::{is_bound, observe_nonce, prove};
use crate::engine::{AuthHeader, TokenManager};
use crate::error::Error;
use crate::origin::{Origin, Scope};
use crate::request::{decide, Answer, Decision, Sent, TokenAction};

/// The future `reqwest_middleware::Middleware::handle` returns.
type HandleFuture<'a> =
    Pin<Box<dyn Future<Output = reqwest_middleware::Result<reqwest::Response>> + Send + 'a>>;

/// Attaches `Authorization: Bearer <token>` to requests bound for the
/// token's origin, and answers a 401 by refreshing the token and replaying
/// the request.
///
/// The replay uses [`reqwest::Request::try_clone`]: a streaming body is
/// sent once, and its 401 still refreshes the token for the next request.
/// A token failure comes back as `reqwest_middleware::Error::Middleware`
/// wrapping a [`bearer_refresh::Error`](crate::Error): get it back with
/// [`Error::find`](crate::Error::find), behind reqwest-retry too.
///
/// Redirects are reqwest's: its default policy follows up to 10 and drops
/// `Authorization` when the host, port or scheme changes, so the token does
/// not follow a redirect to another origin. A 401 from a host we were
/// redirected to refreshes nothing.
///
/// Put it after a retry middleware such as `reqwest-retry`'s: 429s and
/// 5xx are retried there, 401s here.
///
/// # Example
///
/// Against the api.video double (feature `test-util`): the first token is
/// revoked, the request sent with it gets a 401, and the middleware
/// refreshes the token and replays the request. The caller sees the 200.
///
/// ```
/// use bearer_refresh::testing::ApiVideoDouble;
/// use bearer_refresh::{BearerAuthMiddleware, TokenManager};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let api = ApiVideoDouble::start().await?;
/// let tokens = TokenManager::new(api.source());
/// let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
///     .with(BearerAuthMiddleware::new(tokens.clone()))
///     .build();
///
/// tokens.authorization().await?; // the first token...
/// api.revoke_access_tokens(); // ...which the API now answers with 401
///
/// let response = client.get(api.url("/videos")).send().await?;
/// assert_eq!(response.status(), 200);
/// let calls = api.calls();
/// assert_eq!(calls.unauthorized, 1, "the first token got a 401");
/// assert_eq!(calls.refreshes, 1, "then one refresh");
/// assert_eq!(calls.videos, 2, "and one replay");
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct BearerAuthMiddleware {
    tokens: TokenManager,
    scope: Scope,
    max_replays: u32,
}

impl BearerAuthMiddleware {
    /// A middleware attaching the tokens of `tokens`, to the token
    /// source's origin only, replaying a 401 once.
    pub fn new(tokens: TokenManager) -> Self {
        let scope = Scope::of(tokens.origin());
        BearerAuthMiddleware {
            tokens,
            scope,
            max_replays: 1,
        }
    }

    /// How many times a request is sent again after a 401 (default 1).
    pub fn max_replays(mut self, max_replays: u32) -> Self {
        self.max_replays = max_replays;
        self
    }

    /// Sends the token to `origin` too.
    pub fn allow_origin(mut self, origin: Origin) -> Self {
        self.scope.add(origin);
        self
    }

    /// Sends the token with every request, whatever its destination.
    pub fn allow_any_origin(mut self) -> Self {
        self.scope = Scope::Any;
        self
    }

    /// A copy for the next replay, if one may follow and the body can be
    /// sent twice.
    fn copy(&self, request: &reqwest::Request, replays: u32) -> Option<ReplayCopy> {
        if Sent::may_replay(replays, self.max_replays) {
            ReplayCopy::take(request)
        } else {
            None
        }
    }

    /// A copy for the next replay of a DPoP send, which a nonce challenge
    /// may ask for whatever the count of replays (once a request).
    #[cold]
    fn copy_for_nonce(&self, request: &reqwest::Request, tries: Tries) -> Option<ReplayCopy> {
        let nonce_may_follow = !tries.nonce_replayed && self.max_replays > 0;
        if nonce_may_follow || Sent::may_replay(tries.replays, self.max_replays) {
            ReplayCopy::take(request)
        } else {
            None
        }
    }

    /// The decision about a response to `sent`.
    #[inline]
    fn decide(&self, response: &reqwest::Response, sent: Sent) -> Decision {
        let answer = Answer::Head {
            status: response.status(),
            headers: response.headers(),
            grpc: false,
        };
        decide(answer, sent)
    }

    /// Carries out a decision that acts: hands back the response, or the
    /// request to send again and its replay number.
    #[cold]
    fn act(
        &self,
        response: reqwest::Response,
        decision: Decision,
        copy: Option<ReplayCopy>,
        tries: Tries,
    ) -> Then {
        // After a redirect the answer may come from another origin, whose
        // 401 says nothing about our token.
        if !self.scope.includes_url(response.url()) {
            return Then::Return(response);
        }
        if let TokenAction::Invalidate(generation) = decision.token() {
            self.tokens.invalidate(generation);
        }
        match (decision, copy.and_then(ReplayCopy::restore)) {
            // The 401 is dropped here, before the replay waits for a token.
            (Decision::Replay { replay, nonce, .. }, Some(request)) => crate::metrics::replayed(
                &self.tokens,
                response.status(),
                nonce,
                Then::Replay(
                    request,
                    Tries {
                        replays: replay,
                        nonce_replayed: tries.nonce_replayed || nonce,
                        at_once: nonce,
                    },
                ),
            ),
            _ => Then::Return(response),
        }
    }

    /// The slow road, boxed on its own so that the hot path's future stays
    /// small: waits for a token (backing off before a replay that asks for
    /// it), sends, and replays as the decision says. `tries` tells the
    /// replays before this send.
    fn send_waiting<'a>(
        &'a self,
        mut request: reqwest::Request,
        extensions: &'a mut Extensions,
        next: Next<'a>,
        mut tries: Tries,
    ) -> HandleFuture<'a> {
        Box::pin(async move {
            let tokens = &self.tokens;
            loop {
                let delay = tokens.backoff().replay_delay(tries.replays);
                if !delay.is_zero() && !tries.at_once {
                    tokio::time::sleep(delay).await;
                }
                let auth = tokens.authorize().await.map_err(token_error)?;
                let copy = if is_bound(&auth) {
                    self.copy_for_nonce(&request, tries)
                } else {
                    self.copy(&request, tries.replays)
                };
                let (generation, dpop) = attach(&mut request, auth);
                let response = next.clone().run(request, extensions).await?;
                if dpop {
                    observe_nonce(tokens, response.url().as_str(), response.headers());
                }
                let sent = self.sent(generation, tries, dpop);
                let decision = self.decide(&response, sent);
                if decision == Decision::Return(TokenAction::Keep) {
                    return Ok(response);
                }
                match self.act(response, decision, copy, tries) {
                    Then::Return(response) => return Ok(response),
                    Then::Replay(again, next_tries) => (request, tries) = (again, next_tries),
                }
            }
        })
    }

    #[inline]
    fn sent(&self, generation: u64, tries: Tries, dpop: bool) -> Sent {
        Sent {
            generation,
            replays: tries.replays,
            max_replays: self.max_replays,
            dpop,
            nonce_replayed: tries.nonce_replayed,
        }
    }
}

/// The outcome of a response.
enum Then {
    /// Hand the response to the caller.
    Return(reqwest::Response),
    /// Send this copy of the request again, as `.1` says.
    Replay(reqwest::Request, Tries),
}

/// Where a request is in its sends.
#[derive(Clone, Copy, Debug, Default)]
struct Tries {
    /// The replays before this send, which `max_replays` bounds.
    replays: u32,
    /// Whether a DPoP nonce challenge was answered already (once a
    /// request).
    nonce_replayed: bool,
    /// Whether this send answers a nonce challenge: no backoff before it.
    at_once: bool,
}

/// A token failure, for reqwest-middleware: `Error::Middleware` holding
/// our [`Error`], which downcasts to it as before. Its message is put
/// around it as context, so that the error is also its `source()`: wrappers
/// whose `source()` is transparent (reqwest-retry's `RetryError`, which
/// skips the error it holds) still lead a `source()` walk to ours
/// ([`Error::find`]).
#[cold]
fn token_error(error: Error) -> reqwest_middleware::Error {
    let message = error.to_string();
    match reqwest_middleware::Error::middleware(error) {
        reqwest_middleware::Error::Middleware(error) => {
            reqwest_middleware::Error::Middleware(error.context(message))
        }
        other => other,
    }
}

/// Puts the token (and a DPoP-bound token's proof) in the request;
/// returns its generation, and whether it carries a proof. Only that flag
/// is kept across the send (the warm future stays small): the answer's
/// nonce goes to the origin of its URL.
#[inline]
fn attach(request: &mut reqwest::Request, auth: AuthHeader) -> (u64, bool) {
    let generation = auth.generation();
    let proved = is_bound(&auth) && {
        let (method, url) = (request.method().clone(), request.url().to_string());
        prove(&auth, &method, &url, request.headers_mut()).is_some()
    };
    request
        .headers_mut()
        .insert(AUTHORIZATION, auth.into_header());
    (generation, proved)
}

// Written out rather than through `#[async_trait]`, whose single boxed
// future would hold everything across the send: the scope check, the token,
// the copy and the header are done here before boxing, a request to another
// origin is handed on with no box of ours, and the cold paths (no token
// yet, a 401) are boxed on their own.
impl Middleware for BearerAuthMiddleware {
    fn handle<'s, 'e, 'n, 'f>(
        &'s self,
        mut request: reqwest::Request,
        extensions: &'e mut Extensions,
        next: Next<'n>,
    ) -> HandleFuture<'f>
    where
        's: 'f,
        'e: 'f,
        'n: 'f,
        Self: 'f,
    {
        if !self.scope.allows_url(request.url()) {
            return next.run(request, extensions);
        }
        let Some(auth) = self.tokens.try_authorize() else {
            return self.send_waiting(request, extensions, next, Tries::default());
        };
        let copy = if is_bound(&auth) {
            self.copy_for_nonce(&request, Tries::default())
        } else {
            self.copy(&request, 0)
        };
        let (generation, dpop) = attach(&mut request, auth);
        Box::pin(async move {
            let response = next.clone().run(request, extensions).await?;
            // In a block of its own, and not matched around the await
            // below: what it holds would live across that await, in every
            // request's future.
            let (again, tries) = {
                if dpop {
                    observe_nonce(&self.tokens, response.url().as_str(), response.headers());
                }
                let sent = self.sent(generation, Tries::default(), dpop);
                let decision = self.decide(&response, sent);
                if decision == Decision::Return(TokenAction::Keep) {
                    return Ok(response);
                }
                match self.act(response, decision, copy, Tries::default()) {
                    Then::Return(response) => return Ok(response),
                    Then::Replay(again, tries) => (again, tries),
                }
            };
            self.send_waiting(again, extensions, next, tries).await
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use secrecy::SecretString;

    use super::*;
    use crate::source::{BoxFuture, TokenResponse, TokenSource};

    struct Fixed;

    impl TokenSource for Fixed {
        fn login(&self) -> BoxFuture<'_, Result<TokenResponse, Error>> {
            Box::pin(async { Ok(TokenResponse::new("t0k3n")) })
        }

        fn refresh<'a>(
            &'a self,
            _: &'a SecretString,
        ) -> BoxFuture<'a, Result<TokenResponse, Error>> {
            self.login()
        }

        fn origin(&self) -> Option<Origin> {
            Origin::parse("http://127.0.0.1:9").ok()
        }
    }

    /// Sits before ours: measures the future ours boxes, then drops it
    /// unpolled, so nothing is sent.
    struct Probe(Arc<AtomicUsize>);

    impl Middleware for Probe {
        fn handle<'s, 'e, 'n, 'f>(
            &'s self,
            request: reqwest::Request,
            extensions: &'e mut Extensions,
            next: Next<'n>,
        ) -> HandleFuture<'f>
        where
            's: 'f,
            'e: 'f,
            'n: 'f,
            Self: 'f,
        {
            let ours = next.run(request, extensions);
            self.0
                .store(std::mem::size_of_val(&*ours), Ordering::Relaxed);
            Box::pin(async {
                Err(reqwest_middleware::Error::middleware(Error::config(
                    "probed",
                )))
            })
        }
    }

    /// Every warm request pays for this future's size: what lives across
    /// its await. It was 736 bytes when the 401 handling moved out of it.
    #[tokio::test]
    async fn the_warm_future_stays_small() {
        let tokens = TokenManager::new(Fixed);
        tokens.authorization().await.unwrap();
        let size = Arc::new(AtomicUsize::new(0));
        let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
            .with(Probe(Arc::clone(&size)))
            .with(BearerAuthMiddleware::new(tokens))
            .build();
        assert!(client
            .get("http://127.0.0.1:9/videos")
            .send()
            .await
            .is_err());
        let size = size.load(Ordering::Relaxed);
        println!("the warm future: {size} bytes");
        assert!((1..=736).contains(&size), "{size} bytes");
    }

    /// A source whose every call fails for good.
    struct Refused;

    impl TokenSource for Refused {
        fn login(&self) -> BoxFuture<'_, Result<TokenResponse, Error>> {
            Box::pin(async { Err(Error::config("refused")) })
        }

        fn refresh<'a>(
            &'a self,
            _: &'a SecretString,
        ) -> BoxFuture<'a, Result<TokenResponse, Error>> {
            self.login()
        }

        fn origin(&self) -> Option<Origin> {
            Origin::parse("http://127.0.0.1:9").ok()
        }
    }

    fn is_ours(found: Option<&Error>) -> bool {
        matches!(found, Some(Error::InvalidConfig { reason }) if reason == "refused")
    }

    #[tokio::test]
    async fn our_error_is_found_behind_reqwest_retry() {
        let retry = reqwest_retry::RetryTransientMiddleware::new_with_policy(
            reqwest_retry::policies::ExponentialBackoff::builder().build_with_max_retries(2),
        );
        let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
            .with(retry)
            .with(BearerAuthMiddleware::new(TokenManager::new(Refused)))
            .build();
        let failure = client
            .get("http://127.0.0.1:9/videos")
            .send()
            .await
            .unwrap_err();
        assert!(is_ours(Error::find(&failure)), "{failure:?}");
        // A plain walk of `source()` reaches it too.
        let mut walk: Option<&(dyn std::error::Error + 'static)> = Some(&failure);
        let mut walked = std::iter::from_fn(|| {
            let current = walk?;
            walk = current.source();
            Some(current)
        });
        assert!(is_ours(walked.find_map(|err| err.downcast_ref::<Error>())));
        assert_eq!(failure.to_string(), "invalid configuration: refused");
    }

    #[test]
    fn our_error_is_found_in_every_wrapping() {
        use reqwest_retry::RetryError;

        let ours = || token_error(Error::config("refused"));
        let reqwest_middleware::Error::Middleware(plain) = ours() else {
            panic!("a middleware error");
        };
        assert!(
            is_ours(plain.downcast_ref::<Error>()),
            "downcasts as before"
        );
        assert!(is_ours(Error::find(&ours())));
        let retried = reqwest_middleware::Error::middleware(RetryError::WithRetries {
            retries: 2,
            err: ours(),
        });
        assert!(is_ours(Error::find(&retried)));
        let once = reqwest_middleware::Error::middleware(RetryError::Error(ours()));
        assert!(is_ours(Error::find(&once)));
        let io = std::io::Error::other("unrelated");
        assert!(Error::find(&io).is_none());
    }
}
