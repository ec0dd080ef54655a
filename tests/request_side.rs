//! The request side, end to end over loopback HTTP, for every adapter:
//! attaching, scoping, 401 → refresh → replay, bodies and errors.

mod support;

use std::time::Duration;

use bearer_refresh::testing::{ApiVideoDouble, VideosMode};
use bearer_refresh::{Error, TokenManager};
use bytes::Bytes;
use futures::future::join_all;
use http::{Method, StatusCode};
use support::clients::{Adapter, Client, ADAPTERS};
use support::eventually;

async fn setup(adapter: Adapter) -> (ApiVideoDouble, TokenManager, Client) {
    let double = ApiVideoDouble::start().await.unwrap();
    let tokens = TokenManager::new(double.source());
    let client = Client::new(adapter, &tokens);
    (double, tokens, client)
}

async fn burst(client: &Client, url: &str, n: usize) -> Vec<StatusCode> {
    join_all((0..n).map(|_| {
        let client = client.clone();
        let url = url.to_owned();
        tokio::spawn(async move { client.get(&url).await.expect("a response").status })
    }))
    .await
    .into_iter()
    .map(|joined| joined.expect("no task panics"))
    .collect()
}

#[tokio::test]
async fn a_cold_burst_makes_one_login() {
    for adapter in ADAPTERS {
        let (double, _tokens, client) = setup(adapter).await;
        double.set_latency(Duration::from_millis(50));
        let statuses = burst(&client, &double.url("/videos"), 100).await;
        assert!(statuses.iter().all(|s| *s == StatusCode::OK), "{adapter:?}");
        let calls = double.calls();
        assert_eq!((calls.logins, calls.videos), (1, 100), "{adapter:?}");
        let sent = double.requests()[0].headers["authorization"].clone();
        assert!(sent.to_str().unwrap().starts_with("Bearer "));
    }
}

#[tokio::test]
async fn clones_and_separate_clients_share_one_store() {
    for adapter in ADAPTERS {
        let (double, tokens, client) = setup(adapter).await;
        let other = Client::new(adapter, &tokens.clone());
        let url = double.url("/videos");
        assert_eq!(
            client.clone().get(&url).await.unwrap().status,
            StatusCode::OK
        );
        assert_eq!(other.get(&url).await.unwrap().status, StatusCode::OK);
        assert_eq!(double.calls().logins, 1, "{adapter:?}");
    }
}

#[tokio::test]
async fn a_revocation_burst_makes_one_refresh_and_every_request_replays() {
    for adapter in ADAPTERS {
        let (double, tokens, client) = setup(adapter).await;
        let url = double.url("/videos");
        client.get(&url).await.unwrap();
        double.revoke_access_tokens();
        let statuses = burst(&client, &url, 50).await;
        assert!(
            statuses.iter().all(|s| *s == StatusCode::OK),
            "{adapter:?}: {statuses:?}"
        );
        let calls = double.calls();
        assert_eq!(calls.refreshes, 1, "{adapter:?}");
        assert_eq!(calls.logins, 1, "{adapter:?}");
        // The first request, then 50 that got a 401, then their 50 replays.
        assert_eq!((calls.videos, calls.unauthorized), (101, 50), "{adapter:?}");
        assert_eq!(tokens.stats().invalidations, 1);
    }
}

#[tokio::test(start_paused = true)]
async fn a_late_401_for_an_old_token_causes_no_second_refresh() {
    for adapter in ADAPTERS {
        let (double, tokens, client) = setup(adapter).await;
        let url = double.url("/videos");
        client.get(&url).await.unwrap();
        double.set_videos_latency(Duration::from_secs(1));
        double.revoke_access_tokens();
        // Both go out with generation 1; the second 401 lands after the
        // first one's refresh installed generation 2.
        let first = tokio::spawn({
            let (client, url) = (client.clone(), url.clone());
            async move { client.get(&url).await.unwrap().status }
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        let second = client.get(&url).await.unwrap().status;
        assert_eq!(first.await.unwrap(), StatusCode::OK, "{adapter:?}");
        assert_eq!(second, StatusCode::OK, "{adapter:?}");
        assert_eq!(double.calls().refreshes, 1, "{adapter:?}");
        assert_eq!(tokens.stats().generation, 2);
    }
}

#[tokio::test]
async fn a_permanent_401_is_replayed_once_then_returned() {
    for adapter in ADAPTERS {
        let (double, _tokens, client) = setup(adapter).await;
        double.set_videos_mode(VideosMode::AlwaysUnauthorized);
        let reply = client.get(&double.url("/videos")).await.unwrap();
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{adapter:?}");
        assert!(reply.body.contains("access token"), "{}", reply.body);
        let calls = double.calls();
        assert_eq!((calls.videos, calls.refreshes), (2, 1), "{adapter:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn more_replays_back_off_between_them() {
    for adapter in ADAPTERS {
        let double = ApiVideoDouble::start().await.unwrap();
        let tokens = TokenManager::new(double.source());
        let client = Client::with_layer(
            adapter,
            &tokens,
            |layer| layer.max_replays(3),
            |middleware| middleware.max_replays(3),
        );
        double.set_videos_mode(VideosMode::AlwaysUnauthorized);
        let started = tokio::time::Instant::now();
        let reply = client.get(&double.url("/videos")).await.unwrap();
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        assert_eq!(double.calls().videos, 4, "{adapter:?}");
        // Replays 2 and 3 wait at least the initial backoff each.
        assert!(
            started.elapsed() >= Duration::from_millis(400),
            "{adapter:?}"
        );
        // Only the request's first 401 invalidated its token.
        assert_eq!(double.calls().refreshes, 1, "{adapter:?}");
    }
}

#[tokio::test]
async fn forbidden_and_insufficient_scope_cause_no_refresh() {
    for adapter in ADAPTERS {
        let (double, _tokens, client) = setup(adapter).await;
        let url = double.url("/videos");
        double.set_videos_mode(VideosMode::Forbidden);
        assert_eq!(
            client.get(&url).await.unwrap().status,
            StatusCode::FORBIDDEN
        );
        double.set_videos_mode(VideosMode::InsufficientScope);
        assert_eq!(
            client.get(&url).await.unwrap().status,
            StatusCode::UNAUTHORIZED
        );
        let calls = double.calls();
        assert_eq!(
            (calls.videos, calls.refreshes, calls.logins),
            (2, 0, 1),
            "{adapter:?}"
        );
    }
}

#[tokio::test]
async fn a_json_post_is_replayed_byte_identical_with_its_headers() {
    for adapter in ADAPTERS {
        let (double, _tokens, client) = setup(adapter).await;
        let url = double.url("/videos");
        client.get(&url).await.unwrap();
        double.revoke_access_tokens();
        let body = Bytes::from_static(br#"{"title":"Maths","tags":["a","b"]}"#);
        let headers = [
            ("content-type", "application/json"),
            ("x-request-id", "r-42"),
        ];
        let reply = client
            .send(Method::POST, &url, &headers, body.clone())
            .await
            .unwrap();
        assert_eq!(reply.status, StatusCode::OK, "{adapter:?}");
        assert!(reply.body.contains("Maths"));
        let requests = double.requests();
        let (rejected, replayed) = (&requests[1], &requests[2]);
        assert!(!rejected.authorized && replayed.authorized, "{adapter:?}");
        for request in [rejected, replayed] {
            assert_eq!(request.method, Method::POST);
            assert_eq!(request.body, body);
            assert_eq!(request.headers["x-request-id"], "r-42");
            assert_eq!(request.headers["content-type"], "application/json");
        }
        assert_ne!(
            rejected.headers["authorization"],
            replayed.headers["authorization"]
        );
    }
}

#[tokio::test]
async fn other_origins_get_no_token_and_their_401_refreshes_nothing() {
    for adapter in ADAPTERS {
        let (double, _tokens, client) = setup(adapter).await;
        let third_party = ApiVideoDouble::start().await.unwrap();
        let reply = client.get(&third_party.url("/videos")).await.unwrap();
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        let seen = third_party.requests();
        assert_eq!(seen.len(), 1);
        assert!(
            !seen[0].headers.contains_key("authorization"),
            "{adapter:?}"
        );
        let calls = double.calls();
        assert_eq!((calls.logins, calls.refreshes), (0, 0), "{adapter:?}");
    }
}

#[tokio::test]
async fn allowed_origins_get_the_token() {
    for adapter in ADAPTERS {
        let double = ApiVideoDouble::start().await.unwrap();
        let tokens = TokenManager::new(double.source());
        let other = ApiVideoDouble::start().await.unwrap();
        let origin = bearer_refresh::Origin::parse(&other.base_url()).unwrap();
        let client = Client::with_layer(
            adapter,
            &tokens,
            |layer| layer.allow_origin(origin.clone()),
            |middleware| middleware.allow_origin(origin.clone()),
        );
        client.get(&other.url("/videos")).await.unwrap();
        assert!(other.requests()[0].headers.contains_key("authorization"));
    }
}

#[tokio::test]
async fn a_token_failure_is_a_typed_error_and_nothing_is_sent() {
    for adapter in ADAPTERS {
        let (double, _tokens, client) = setup(adapter).await;
        double.reject_api_key(true);
        let failure = client.get(&double.url("/videos")).await.unwrap_err();
        let error = failure.token_error().expect("a token error");
        assert!(
            matches!(error, Error::ApiKeyRejected { .. }),
            "{adapter:?}: {error:?}"
        );
        assert_eq!(double.calls().videos, 0, "{adapter:?}");
    }
}

#[tokio::test]
async fn an_inner_error_passes_through() {
    for adapter in ADAPTERS {
        // A loopback port with nothing listening, in scope.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", closed.local_addr().unwrap());
        drop(closed);
        let double = ApiVideoDouble::start().await.unwrap();
        let tokens = TokenManager::new(double.source());
        let origin = bearer_refresh::Origin::parse(&base).unwrap();
        let client = Client::with_layer(
            adapter,
            &tokens,
            |layer| layer.allow_origin(origin.clone()),
            |middleware| middleware.allow_origin(origin.clone()),
        );
        let failure = client.get(&format!("{base}/videos")).await.unwrap_err();
        assert!(failure.token_error().is_none(), "{adapter:?}: {failure:?}");
        match failure {
            support::clients::Failure::Tower(error) => {
                let ours = error
                    .downcast_ref::<bearer_refresh::tower::BearerAuthError>()
                    .expect("our error type");
                let inner = ours.inner().expect("the inner error");
                assert!(inner.is::<hyper_util::client::legacy::Error>(), "{inner:?}");
            }
            support::clients::Failure::Reqwest(error) => {
                assert!(
                    matches!(error, reqwest_middleware::Error::Reqwest(_)),
                    "{error:?}"
                );
            }
        }
    }
}

#[tokio::test]
async fn a_streaming_reqwest_body_is_sent_once_and_the_next_request_succeeds() {
    let (double, tokens, client) = setup(Adapter::Reqwest).await;
    let url = double.url("/videos");
    client.get(&url).await.unwrap();
    double.revoke_access_tokens();
    let Client::Reqwest(inner) = &client else {
        unreachable!()
    };
    let chunks: Vec<Result<Bytes, std::io::Error>> = vec![Ok(Bytes::from_static(b"{\"a\":1}"))];
    let body = reqwest::Body::wrap_stream(futures::stream::iter(chunks));
    let response = inner.post(&url).body(body).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    eventually(Duration::from_secs(5), || tokens.stats().generation == 2).await;
    assert_eq!(client.get(&url).await.unwrap().status, StatusCode::OK);
    let calls = double.calls();
    assert_eq!((calls.videos, calls.refreshes), (3, 1));
}

#[tokio::test]
async fn an_unrecorded_streaming_tower_body_is_sent_once_and_the_next_request_succeeds() {
    use bearer_refresh::BearerAuthLayer;
    use http_body_util::combinators::BoxBody;
    use http_body_util::{BodyExt, Full};
    use tower::{ServiceBuilder, ServiceExt};

    let double = ApiVideoDouble::start().await.unwrap();
    let tokens = TokenManager::new(double.source());
    let hyper = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build::<_, BoxBody<Bytes, std::convert::Infallible>>(
        hyper_util::client::legacy::connect::HttpConnector::new(),
    );
    // With no room to record, a streaming body is sent once.
    let service = ServiceBuilder::new()
        .layer(BearerAuthLayer::new(tokens.clone()).replay_buffer(0))
        .service(hyper);
    let request = |body: &'static [u8]| {
        http::Request::post(double.url("/videos"))
            .body(Full::new(Bytes::from_static(body)).boxed())
            .unwrap()
    };
    service.clone().oneshot(request(b"warm-up")).await.unwrap();
    double.revoke_access_tokens();
    let response = service.clone().oneshot(request(b"streamed")).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    eventually(Duration::from_secs(5), || tokens.stats().generation == 2).await;
    let response = service.clone().oneshot(request(b"next")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let calls = double.calls();
    assert_eq!((calls.videos, calls.refreshes), (3, 1));
}

#[tokio::test]
async fn works_over_service_fn_behind_boxed_clone() {
    use bearer_refresh::BearerAuthLayer;
    use http_body_util::Full;
    use tower::{ServiceBuilder, ServiceExt};

    let double = ApiVideoDouble::start().await.unwrap();
    let tokens = TokenManager::new(double.source());
    // An inner service that answers 401 to its first call and echoes the
    // header it got after that, as a custom client might.
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let inner = tower::service_fn(move |request: http::Request<String>| {
        let call = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async move {
            let status = if call == 0 { 401 } else { 200 };
            let seen = request.headers()["authorization"]
                .to_str()
                .unwrap()
                .to_owned();
            let body = format!("{seen} {}", request.body());
            Ok::<_, std::convert::Infallible>(
                http::Response::builder()
                    .status(status)
                    .body(Full::new(Bytes::from(body)))
                    .unwrap(),
            )
        }
    });
    let service = ServiceBuilder::new()
        .layer(BearerAuthLayer::new(tokens.clone()))
        .service(inner)
        .boxed_clone();
    let request = http::Request::post(double.url("/anything"))
        .body(String::from("payload"))
        .unwrap();
    let response = service.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(double.calls().refreshes, 1, "the 401 refreshed the token");
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert!(
        text.starts_with("Bearer ") && text.ends_with(" payload"),
        "{text}"
    );
    assert_eq!(
        tokens.stats().generation,
        2,
        "the replay carried the new token"
    );
}
