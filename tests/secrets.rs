//! Secret hygiene: a full scenario traced at TRACE, and the `Debug` and
//! `Display` of every public type, contain neither the API key nor any
//! token the double issued. The token also never follows a redirect to
//! another host.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bearer_refresh::testing::{ApiVideoDouble, VideosMode};
use bearer_refresh::{
    Backoff, BearerAuthLayer, BearerAuthMiddleware, Error, Origin, TokenManager, TokenResponse,
};
use support::clients::{Adapter, Client, ADAPTERS};
use tracing_subscriber::fmt::MakeWriter;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

fn assert_clean(what: &str, text: &str, secrets: &[String]) {
    for secret in secrets {
        assert!(
            !text.contains(secret.as_str()),
            "{what} leaks a secret: {text}"
        );
    }
}

#[tokio::test(flavor = "current_thread")]
async fn no_secret_reaches_traces_debug_or_errors() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(capture.clone())
        .with_ansi(false)
        .finish();
    // Global, not per thread: a thread-local default races with the other
    // tests of this binary over tracing's per-callsite interest cache, and
    // lost events now and then. The other tests' events land here too,
    // and must be as clean.
    tracing::subscriber::set_global_default(subscriber).expect("the only global subscriber");

    let double = ApiVideoDouble::start().await.unwrap();
    double.set_lifetime(Duration::from_secs(2));
    let tokens = TokenManager::builder(double.source())
        .backoff(
            Backoff::default()
                .initial(Duration::from_millis(10))
                .max(Duration::from_millis(50)),
        )
        .build();
    let mut printed = Vec::new();
    for adapter in ADAPTERS {
        let client = Client::new(adapter, &tokens);
        let url = double.url("/videos");
        // Login, then a 401 replay, then an expiry refresh, then a fallback.
        client.get(&url).await.unwrap();
        double.revoke_access_tokens();
        client.get(&url).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1600)).await;
        client.get(&url).await.unwrap();
        double.reject_refresh_tokens(true);
        double.revoke_access_tokens();
        client.get(&url).await.unwrap();
        double.reject_refresh_tokens(false);
        double.fail_next(1, 503);
        double.revoke_access_tokens();
        client.get(&url).await.unwrap();
        double.set_videos_mode(VideosMode::AlwaysUnauthorized);
        printed.push(format!("{:?}", client.get(&url).await.unwrap()));
        double.set_videos_mode(VideosMode::Normal);
    }
    // Errors: a rejected key, a rejected refresh with a failed fallback.
    let bad = TokenManager::new(double.source_with_key("not-the-key-but-secret-too"));
    let rejected = bad.authorization().await.unwrap_err();
    double.reject_api_key(true);
    double.reject_refresh_tokens(true);
    double.revoke_access_tokens();
    let failure = Client::new(Adapter::Tower, &tokens)
        .get(&double.url("/videos"))
        .await
        .unwrap_err();
    let relogin = failure.token_error().cloned().unwrap();
    assert!(
        matches!(relogin, Error::ReloginFailed { .. }),
        "{relogin:?}"
    );

    let auth = tokens.authorize().await;
    let source = double.source();
    let response = TokenResponse::new(double.issued_secrets()[0].clone()).with_refresh_token("x");
    printed.extend([
        format!("{rejected:?} {rejected}"),
        format!("{relogin:?} {relogin}"),
        format!("{failure:?}"),
        format!("{auth:?}"),
        format!("{source:?}"),
        format!("{tokens:?} {:?}", tokens.stats()),
        format!("{:?}", TokenManager::builder(double.source())),
        format!("{response:?}"),
        format!("{:?}", BearerAuthLayer::new(tokens.clone())),
        format!("{:?}", BearerAuthMiddleware::new(tokens.clone())),
        format!("{double:?}"),
    ]);

    let mut secrets = double.issued_secrets();
    assert!(
        secrets.len() >= 10,
        "the scenario issued {} secrets",
        secrets.len()
    );
    secrets.push(ApiVideoDouble::API_KEY.to_owned());
    secrets.push("not-the-key-but-secret-too".to_owned());
    for text in &printed {
        assert_clean("Debug/Display", text, &secrets);
    }
    let traces = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(traces.contains("new token"), "the scenario was traced");
    assert_clean("the TRACE output", &traces, &secrets);
}

/// A server on another port whose `/go` answers 307 to `target`; returns
/// its base URL.
async fn redirect_to(target: String) -> String {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().route(
        "/go",
        axum::routing::get(move || async move { axum::response::Redirect::temporary(&target) }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

/// reqwest's redirect policy drops `Authorization` (and cookies) when a
/// redirect changes the host, port or scheme. Check it holds for the
/// middleware's header.
#[tokio::test]
async fn reqwest_drops_the_token_on_a_cross_origin_redirect() {
    let double = ApiVideoDouble::start().await.unwrap();
    let elsewhere = ApiVideoDouble::start().await.unwrap();
    let redirector = redirect_to(elsewhere.url("/videos")).await;

    let tokens = TokenManager::new(double.source());
    let client = Client::with_layer(
        Adapter::Reqwest,
        &tokens,
        |layer| layer,
        |middleware| middleware.allow_origin(Origin::parse(&redirector).unwrap()),
    );
    let reply = client.get(&format!("{redirector}/go")).await.unwrap();
    assert_eq!(reply.status, 401, "the other host saw no token");
    let seen = elsewhere.requests();
    assert_eq!(seen.len(), 1);
    assert!(!seen[0].headers.contains_key("authorization"));
    assert_eq!(
        double.calls().logins,
        1,
        "the token was attached to the first hop"
    );
    // The other host's 401 says nothing about our token.
    assert_eq!(double.calls().refreshes, 0);
    assert_eq!(tokens.stats().invalidations, 0);
}

/// On the tower side a redirect-following layer outside ours sends each hop
/// through our scope check, so the next host gets no token.
#[tokio::test]
async fn tower_follow_redirect_outside_the_layer_keeps_the_token_home() {
    use bytes::Bytes;
    use http_body_util::Full;
    use tower::{ServiceBuilder, ServiceExt};
    use tower_http::follow_redirect::FollowRedirectLayer;

    let double = ApiVideoDouble::start().await.unwrap();
    let elsewhere = ApiVideoDouble::start().await.unwrap();
    let redirector = redirect_to(elsewhere.url("/videos")).await;

    let tokens = TokenManager::new(double.source());
    let hyper = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build::<_, Full<Bytes>>(hyper_util::client::legacy::connect::HttpConnector::new());
    let service = ServiceBuilder::new()
        .layer(FollowRedirectLayer::new())
        .layer(
            BearerAuthLayer::new(tokens.clone()).allow_origin(Origin::parse(&redirector).unwrap()),
        )
        .service(hyper);
    let request = http::Request::get(format!("{redirector}/go"))
        .body(Full::default())
        .unwrap();
    let response = service.oneshot(request).await.unwrap();
    assert_eq!(response.status(), 401);
    assert!(!elsewhere.requests()[0]
        .headers
        .contains_key("authorization"));
    assert_eq!(double.calls().logins, 1);
}
