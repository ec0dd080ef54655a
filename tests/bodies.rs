//! Streaming request bodies through the tower layer: recorded as they go
//! out, replayed after a 401, counted at a real server.

mod support;

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bearer_refresh::testing::ApiVideoDouble;
use bearer_refresh::{BearerAuthLayer, Origin, TokenManager};
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use support::eventually;
use tokio_stream::wrappers::ReceiverStream;
use tower::{Service, ServiceBuilder, ServiceExt};

type Client<B> = hyper_util::client::legacy::Client<HttpConnector, B>;

fn client<B>() -> Client<B>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

/// `len` bytes of a repeating pattern, in chunks of 1 KiB.
fn pattern(len: usize) -> Vec<Bytes> {
    let bytes: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    bytes.chunks(1024).map(Bytes::copy_from_slice).collect()
}

fn axum_stream(chunks: Vec<Bytes>) -> axum::body::Body {
    let chunks: Vec<Result<Bytes, Infallible>> = chunks.into_iter().map(Ok).collect();
    axum::body::Body::from_stream(futures::stream::iter(chunks))
}

async fn warm(double: &ApiVideoDouble) -> TokenManager {
    let tokens = TokenManager::new(double.source());
    tokens.authorization().await.unwrap();
    tokens
}

#[tokio::test]
async fn an_axum_stream_of_10_kib_is_replayed_byte_for_byte() {
    let double = ApiVideoDouble::start().await.unwrap();
    let tokens = warm(&double).await;
    let mut service = ServiceBuilder::new()
        .layer(BearerAuthLayer::new(tokens))
        .service(client::<axum::body::Body>());
    double.revoke_access_tokens();
    let chunks = pattern(10 * 1024);
    let request = Request::post(double.url("/videos"))
        .body(axum_stream(chunks.clone()))
        .unwrap();
    let response = service.ready().await.unwrap().call(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let requests = double.requests();
    assert_eq!(requests.len(), 2, "one send, one replay");
    assert!(!requests[0].authorized && requests[1].authorized);
    assert_eq!(requests[1].body, chunks.concat());
    assert_eq!(double.calls().refreshes, 1);
}

#[tokio::test]
async fn a_1_mib_stream_is_sent_once_and_its_401_returned() {
    let double = ApiVideoDouble::start().await.unwrap();
    let tokens = warm(&double).await;
    let mut service = ServiceBuilder::new()
        .layer(BearerAuthLayer::new(tokens.clone()))
        .service(client::<axum::body::Body>());
    double.revoke_access_tokens();
    let request = Request::post(double.url("/videos"))
        .body(axum_stream(pattern(1024 * 1024)))
        .unwrap();
    let response = service.ready().await.unwrap().call(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(double.calls().videos, 1, "past the cap: no replay");
    assert_eq!(double.requests()[0].body.len(), 1024 * 1024);
    // The 401 still invalidated the token: the next request gets a new one.
    eventually(Duration::from_secs(5), || tokens.stats().generation == 2).await;
    let request = Request::get(double.url("/videos"))
        .body(axum::body::Body::empty())
        .unwrap();
    let response = service.ready().await.unwrap().call(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(double.calls().refreshes, 1);
}

/// An API that answers 401 to the first token it sees at once, without
/// reading the body, and echoes the body's length to any other token.
async fn early_401_api() -> (String, Arc<Mutex<Vec<usize>>>, Arc<AtomicUsize>) {
    let seen: Arc<Mutex<Option<String>>> = Arc::default();
    let lengths: Arc<Mutex<Vec<usize>>> = Arc::default();
    let rejected = Arc::new(AtomicUsize::new(0));
    let app = {
        let (lengths, rejected) = (Arc::clone(&lengths), Arc::clone(&rejected));
        axum::Router::new().route(
            "/upload",
            axum::routing::post(move |headers: http::HeaderMap, body: axum::body::Body| {
                let (seen, lengths, rejected) = (seen.clone(), lengths.clone(), rejected.clone());
                async move {
                    let token = headers["authorization"].to_str().unwrap().to_owned();
                    let first = seen.lock().unwrap().get_or_insert(token.clone()).clone();
                    if token == first {
                        rejected.fetch_add(1, Ordering::SeqCst);
                        return (StatusCode::UNAUTHORIZED, String::new());
                    }
                    let bytes = body.collect().await.unwrap().to_bytes();
                    lengths.lock().unwrap().push(bytes.len());
                    (StatusCode::OK, bytes.len().to_string())
                }
            }),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, lengths, rejected)
}

#[tokio::test]
async fn after_an_early_401_the_replay_sends_the_whole_body() {
    let double = ApiVideoDouble::start().await.unwrap();
    let tokens = warm(&double).await;
    let (api, lengths, rejected) = early_401_api().await;
    let mut service = ServiceBuilder::new()
        .layer(BearerAuthLayer::new(tokens).allow_origin(Origin::parse(&api).unwrap()))
        .service(client::<axum::body::Body>());
    let chunks = pattern(8 * 1024);
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Bytes, Infallible>>(16);
    sender.send(Ok(chunks[0].clone())).await.unwrap();
    // The rest of the body exists only once the server has said 401.
    let rest = chunks[1..].to_vec();
    let producer = {
        let rejected = Arc::clone(&rejected);
        tokio::spawn(async move {
            eventually(Duration::from_secs(5), || {
                rejected.load(Ordering::SeqCst) == 1
            })
            .await;
            for chunk in rest {
                sender.send(Ok(chunk)).await.unwrap();
            }
        })
    };
    let request = Request::post(format!("{api}/upload"))
        .body(axum::body::Body::from_stream(ReceiverStream::new(receiver)))
        .unwrap();
    let response = service.ready().await.unwrap().call(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    producer.await.unwrap();
    assert_eq!(*lengths.lock().unwrap(), [8 * 1024]);
    assert_eq!(double.calls().refreshes, 1);
}

#[tokio::test]
async fn box_bodies_are_recorded_and_replayed() {
    let double = ApiVideoDouble::start().await.unwrap();
    let tokens = warm(&double).await;
    let mut service = ServiceBuilder::new()
        .layer(BearerAuthLayer::new(tokens))
        .service(client::<BoxBody<Bytes, Infallible>>());
    double.revoke_access_tokens();
    let frames: Vec<Result<Frame<Bytes>, Infallible>> = pattern(3000)
        .into_iter()
        .map(|chunk| Ok(Frame::data(chunk)))
        .collect();
    let body = StreamBody::new(futures::stream::iter(frames)).boxed();
    let request = Request::post(double.url("/videos")).body(body).unwrap();
    let response = service.ready().await.unwrap().call(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let requests = double.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[1].body, pattern(3000).concat());
}

#[tokio::test]
async fn with_no_replay_buffer_only_empty_streams_are_replayed() {
    let double = ApiVideoDouble::start().await.unwrap();
    let tokens = warm(&double).await;
    let mut service = ServiceBuilder::new()
        .layer(BearerAuthLayer::new(tokens.clone()).replay_buffer(0))
        .service(client::<BoxBody<Bytes, Infallible>>());
    double.revoke_access_tokens();
    let request = Request::post(double.url("/videos"))
        .body(Full::new(Bytes::from_static(b"{}")).boxed())
        .unwrap();
    let response = service.ready().await.unwrap().call(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    eventually(Duration::from_secs(5), || tokens.stats().generation == 2).await;
    double.revoke_access_tokens();
    let request = Request::get(double.url("/videos"))
        .body(Empty::new().boxed())
        .unwrap();
    let response = service.ready().await.unwrap().call(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let calls = double.calls();
    assert_eq!((calls.videos, calls.unauthorized), (3, 2));
}

/// A body type of the user's own, opted in through the hook.
#[derive(Debug, Clone)]
struct Owned(Full<Bytes>);

impl http_body::Body for Owned {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        std::pin::Pin::new(&mut self.0).poll_frame(cx)
    }
}

#[tokio::test]
async fn a_users_own_body_is_replayed_through_the_hook() {
    let double = ApiVideoDouble::start().await.unwrap();
    let tokens = warm(&double).await;
    let layer = BearerAuthLayer::new(tokens).clone_body(|body: &Owned| Some(body.clone()));
    let service = ServiceBuilder::new()
        .layer(layer)
        .service(client::<Owned>());
    double.revoke_access_tokens();
    let request = Request::post(double.url("/videos"))
        .body(Owned(Full::new(Bytes::from_static(b"mine"))))
        .unwrap();
    let response = service.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(double.requests()[1].body, "mine");
}
