//! The reqwest middleware's own paths, beside the adapter-generic tests of
//! `request_side.rs`: the hot path with replays off, the cold path (no token
//! yet) answered by a 401, and the request's extensions reaching the
//! middlewares after ours on every send.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bearer_refresh::testing::{ApiVideoDouble, VideosMode};
use bearer_refresh::{BearerAuthMiddleware, TokenManager};
use http::Extensions;
use reqwest::StatusCode;
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware, Middleware, Next};

fn client(middleware: BearerAuthMiddleware) -> ClientWithMiddleware {
    ClientBuilder::new(reqwest::Client::new())
        .with(middleware)
        .build()
}

#[tokio::test]
async fn with_replays_off_a_401_is_returned_and_the_next_request_has_a_new_token() {
    let double = ApiVideoDouble::start().await.unwrap();
    let tokens = TokenManager::new(double.source());
    let client = client(BearerAuthMiddleware::new(tokens.clone()).max_replays(0));
    tokens.authorization().await.unwrap();
    double.revoke_access_tokens();

    let first = client.get(double.url("/videos")).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(double.calls().videos, 1, "no replay");
    let second = client.get(double.url("/videos")).send().await.unwrap();
    assert_eq!(second.status(), StatusCode::OK);
    let calls = double.calls();
    assert_eq!((calls.videos, calls.refreshes), (2, 1));
    assert_eq!(tokens.stats().invalidations, 1);
}

#[tokio::test]
async fn a_request_that_waited_for_its_first_token_is_replayed_on_401() {
    let double = ApiVideoDouble::start().await.unwrap();
    double.set_videos_mode(VideosMode::AlwaysUnauthorized);
    let client = client(BearerAuthMiddleware::new(TokenManager::new(
        double.source(),
    )));

    let reply = client.get(double.url("/videos")).send().await.unwrap();
    assert_eq!(reply.status(), StatusCode::UNAUTHORIZED);
    let calls = double.calls();
    assert_eq!(
        (calls.logins, calls.videos, calls.refreshes),
        (1, 2, 1),
        "one login, the send, one refresh and one replay"
    );
}

/// Counts the sends that reach it carrying the caller's extension.
struct SeesExtension(Arc<AtomicUsize>);

#[derive(Clone)]
struct Marker;

#[async_trait::async_trait]
impl Middleware for SeesExtension {
    async fn handle(
        &self,
        request: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        if extensions.get::<Marker>().is_some() {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
        next.run(request, extensions).await
    }
}

#[tokio::test]
async fn the_replay_carries_the_request_s_extensions_to_later_middlewares() {
    let double = ApiVideoDouble::start().await.unwrap();
    let tokens = TokenManager::new(double.source());
    let seen = Arc::new(AtomicUsize::new(0));
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(BearerAuthMiddleware::new(tokens.clone()))
        .with(SeesExtension(seen.clone()))
        .build();
    tokens.authorization().await.unwrap();
    double.revoke_access_tokens();

    let reply = client
        .get(double.url("/videos"))
        .with_extension(Marker)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::OK);
    assert_eq!(double.calls().videos, 2);
    assert_eq!(
        seen.load(Ordering::SeqCst),
        2,
        "both sends saw the extension"
    );
}
