//! One reqwest-middleware client with reqwest-retry's
//! `RetryTransientMiddleware` outside and `BearerAuthMiddleware` inside:
//! 429s and 5xx from the API are the retry middleware's, 401s are ours.

use std::time::Duration;

use bearer_refresh::testing::{ApiVideoDouble, VideosMode};
use bearer_refresh::{BearerAuthMiddleware, Error, TokenManager};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use reqwest_retry::policies::ExponentialBackoff;
use reqwest_retry::{Jitter, RetryError, RetryTransientMiddleware};

/// The rate limit's window; the retry middleware waits at least as long.
const WINDOW: Duration = Duration::from_secs(10);

fn client(tokens: &TokenManager) -> ClientWithMiddleware {
    let policy = ExponentialBackoff::builder()
        .retry_bounds(WINDOW, 2 * WINDOW)
        .jitter(Jitter::None)
        .build_with_max_retries(3);
    ClientBuilder::new(reqwest::Client::new())
        // Outermost: every attempt passes through the bearer middleware, so
        // a retry carries the token that is current when it is sent.
        .with(RetryTransientMiddleware::new_with_policy(policy))
        .with(BearerAuthMiddleware::new(tokens.clone()))
        .build()
}

fn authorization(request: &bearer_refresh::testing::RecordedRequest) -> String {
    request.headers[http::header::AUTHORIZATION]
        .to_str()
        .unwrap()
        .to_owned()
}

/// The crate's error behind reqwest-retry, which wraps every error it gives
/// up on in a `RetryError` inside `Error::Middleware`.
fn token_error(failure: &reqwest_middleware::Error) -> Option<&Error> {
    let reqwest_middleware::Error::Middleware(outer) = failure else {
        return None;
    };
    let inner = match outer.downcast_ref::<RetryError>()? {
        RetryError::Error(inner) | RetryError::WithRetries { err: inner, .. } => inner,
    };
    match inner {
        reqwest_middleware::Error::Middleware(error) => error.downcast_ref::<Error>(),
        reqwest_middleware::Error::Reqwest(_) => None,
    }
}

#[tokio::test(start_paused = true)]
async fn a_429_is_retried_by_reqwest_retry_and_a_401_is_replayed_by_us() {
    let double = ApiVideoDouble::start().await.unwrap();
    double.set_rate_limit(2, WINDOW);
    let tokens = TokenManager::new(double.source());
    let client = client(&tokens);
    let get = || client.get(double.url("/videos")).send();

    // Two requests use up the window's budget; the third gets a 429, which
    // reqwest-retry waits out and sends again.
    for _ in 0..3 {
        assert_eq!(get().await.unwrap().status(), 200);
    }
    let calls = double.calls();
    assert_eq!((calls.videos, calls.rate_limited), (4, 1));
    assert_eq!((calls.logins, calls.refreshes), (1, 0));

    // A revoked token: the 401 is ours (one refresh, one replay). The replay
    // runs past the budget, and its 429 goes out to reqwest-retry, whose
    // next attempt passes through us again with the new token.
    double.revoke_access_tokens();
    assert_eq!(get().await.unwrap().status(), 200);
    let calls = double.calls();
    assert_eq!((calls.logins, calls.refreshes), (1, 1));
    assert_eq!(calls.unauthorized, 1);
    assert_eq!((calls.videos, calls.rate_limited), (7, 2));
    let requests = double.requests();
    let first = authorization(&requests[0]);
    let last = authorization(requests.last().unwrap());
    assert_ne!(first, last);
    assert!(requests.last().unwrap().authorized);
}

#[tokio::test(start_paused = true)]
async fn a_401_is_never_retried_by_reqwest_retry() {
    let double = ApiVideoDouble::start().await.unwrap();
    double.set_videos_mode(VideosMode::AlwaysUnauthorized);
    let tokens = TokenManager::new(double.source());
    let response = client(&tokens)
        .get(double.url("/videos"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    // The request and our one replay; reqwest-retry takes a 401 as final.
    let calls = double.calls();
    assert_eq!((calls.videos, calls.unauthorized), (2, 2));
    assert_eq!(calls.refreshes, 1);
}

#[tokio::test(start_paused = true)]
async fn a_failing_token_endpoint_is_retried_once_not_by_both_layers() {
    let double = ApiVideoDouble::start().await.unwrap();
    double.fail_next(100, 503);
    let tokens = TokenManager::new(double.source());
    let failure = client(&tokens)
        .get(double.url("/videos"))
        .send()
        .await
        .unwrap_err();
    let error = token_error(&failure).expect("the crate's error");
    assert!(error.is_transient(), "{error:?}");
    // Our own backoff made its five attempts; reqwest-retry takes a
    // middleware error as final and adds none.
    assert_eq!(double.calls().logins, 5);
    assert_eq!(double.calls().videos, 0);
}
