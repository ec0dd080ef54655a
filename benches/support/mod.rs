//! Shared pieces of the benchmarks: the stacks under comparison and the
//! hand-rolled "naive" layer users write before reaching for this crate.
#![allow(dead_code)]

pub(crate) mod warm_layer;

use std::convert::Infallible;
use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bearer_refresh::testing::ApiVideoDouble;
use bearer_refresh::{BearerAuthLayer, TokenManager};
use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::{HeaderValue, Request, Response};
use http_body_util::Full;
use tokio::time::Instant;
use tower::{Service, ServiceBuilder};
use tower_http::set_header::SetRequestHeaderLayer;

pub(crate) type Req = Request<Full<Bytes>>;

/// The runtime every benchmark uses: 2 workers, like the machine.
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
}

/// One request, polled inline with a no-op waker: with a warm token and an
/// uncontended mutex every stack here completes on its first poll.
pub(crate) fn poll_once<S: Service<Req>>(service: &mut S, request: Req) {
    let mut cx = Context::from_waker(futures::task::noop_waker_ref());
    let ready = service.poll_ready(&mut cx);
    assert!(
        matches!(ready, Poll::Ready(Ok(()))),
        "the service is always ready"
    );
    let future = pin!(service.call(request));
    assert!(matches!(future.poll(&mut cx), Poll::Ready(Ok(_))));
}

/// The inner service: an empty 200, at once.
pub(crate) fn noop(
) -> impl Service<Req, Response = Response<Full<Bytes>>, Error = Infallible, Future: Send>
       + Clone
       + Send
       + Sync
       + 'static {
    tower::service_fn(|_request: Req| async { Ok::<_, Infallible>(Response::new(Full::default())) })
}

/// A request like a client sends: absolute URI to the API, a small JSON
/// body, two headers.
pub(crate) fn request(url: &str) -> Req {
    Request::post(url)
        .header("content-type", "application/json")
        .header("x-request-id", "bench")
        .body(Full::new(Bytes::from_static(br#"{"title":"bench"}"#)))
        .expect("a valid request")
}

/// A bearer header as a user would build it from a token string.
pub(crate) fn fixed_header() -> HeaderValue {
    let mut value = HeaderValue::from_str(&format!("Bearer {}", "x".repeat(600))).expect("ascii");
    value.set_sensitive(true);
    value
}

/// A baseline stack: infallible, cloneable, sendable.
pub(crate) trait Baseline:
    Service<Req, Response = Response<Full<Bytes>>, Error = Infallible, Future: Send>
    + Clone
    + Send
    + 'static
{
}

impl<S> Baseline for S where
    S: Service<Req, Response = Response<Full<Bytes>>, Error = Infallible, Future: Send>
        + Clone
        + Send
        + 'static
{
}

/// The floor: tower-http's `SetRequestHeader::overriding` with a fixed header.
pub(crate) fn static_stack() -> impl Baseline {
    ServiceBuilder::new()
        .layer(SetRequestHeaderLayer::overriding(
            AUTHORIZATION,
            fixed_header(),
        ))
        .service(noop())
}

/// The fair floor for a layer that can replay: the static header plus the
/// copy a replay needs (method, URI, version, headers, extensions, body).
pub(crate) fn static_and_copy_stack() -> impl Baseline {
    ServiceBuilder::new()
        .layer(SetRequestHeaderLayer::overriding(
            AUTHORIZATION,
            fixed_header(),
        ))
        .map_request(|request: Req| {
            let mut copy = Request::new(request.body().clone());
            *copy.method_mut() = request.method().clone();
            *copy.uri_mut() = request.uri().clone();
            *copy.version_mut() = request.version();
            *copy.headers_mut() = request.headers().clone();
            *copy.extensions_mut() = request.extensions().clone();
            std::hint::black_box(copy);
            request
        })
        .service(noop())
}

/// Ours, with a warm token from the double.
pub(crate) async fn ours_stack(
    double: &ApiVideoDouble,
) -> (
    TokenManager,
    impl Service<
            Req,
            Response = Response<Full<Bytes>>,
            Error = bearer_refresh::tower::BearerAuthError,
            Future: Send,
        > + Clone
        + Send
        + 'static,
) {
    let tokens = TokenManager::new(double.source());
    tokens.authorization().await.expect("a warm token");
    let service = ServiceBuilder::new()
        .layer(BearerAuthLayer::new(tokens.clone()))
        .service(noop());
    (tokens, service)
}

/// What users write by hand: a `tokio::sync::Mutex` locked per request,
/// with an expiry check.
#[derive(Clone)]
pub(crate) struct Naive<S> {
    inner: S,
    state: Arc<tokio::sync::Mutex<Option<(HeaderValue, Instant)>>>,
}

impl<S> Naive<S> {
    pub(crate) fn new(inner: S) -> Self {
        let expires = Instant::now() + Duration::from_secs(3600);
        Naive {
            inner,
            state: Arc::new(tokio::sync::Mutex::new(Some((fixed_header(), expires)))),
        }
    }
}

impl<S> Service<Req> for Naive<S>
where
    S: Service<Req, Response = Response<Full<Bytes>>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = S::Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Req) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let state = Arc::clone(&self.state);
        Box::pin(async move {
            let header = {
                let guard = state.lock().await;
                match guard.as_ref() {
                    Some((header, expires)) if Instant::now() < *expires => header.clone(),
                    _ => unreachable!("the bench token never expires"),
                }
            };
            request.headers_mut().insert(AUTHORIZATION, header);
            inner.call(request).await
        })
    }
}

pin_project_lite::pin_project! {
    /// The future of [`KeepCopy`]: the inner future, and the copy held until
    /// it resolves.
    pub(crate) struct Kept<F, C> {
        #[pin]
        future: F,
        copy: Option<C>,
    }
}

impl<F: Future, C> Future for Kept<F, C> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let output = std::task::ready!(this.future.poll(cx));
        drop(this.copy.take());
        Poll::Ready(output)
    }
}

/// The replay floor as an outside harness builds it: a plain clone of
/// method, URI, version, headers and body, kept until the response.
#[derive(Clone)]
pub(crate) struct KeepCopy<S>(pub(crate) S);

type Copy = (
    http::Method,
    http::Uri,
    http::Version,
    http::HeaderMap,
    Full<Bytes>,
);

impl<S: Service<Req>> Service<Req> for KeepCopy<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = Kept<S::Future, Copy>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let copy = (
            request.method().clone(),
            request.uri().clone(),
            request.version(),
            request.headers().clone(),
            request.body().clone(),
        );
        Kept {
            future: self.0.call(request),
            copy: Some(copy),
        }
    }
}
