//! End to end over loopback HTTP, 64 requests in flight, against a minimal
//! axum server: `BearerAuthMiddleware` against a static-header middleware
//! on the same reqwest-middleware stack (`static_middleware`), the ratio of
//! the two being the result. Two more clients show what the stack itself
//! costs: plain reqwest with the header as a default header (`static`), and
//! reqwest-middleware with no middleware and that default header
//! (`middleware_stack`).
//!
//! The peer libraries, on reqwest 0.12, are compared in their own crate,
//! `benches/peers`, with an instruction count beside the wall clock.

mod support;

use std::time::{Duration, Instant};

use bearer_refresh::testing::ApiVideoDouble;
use bearer_refresh::{BearerAuthMiddleware, Origin, TokenManager};
use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use futures::stream::{self, StreamExt};
use http::{Extensions, HeaderValue};
use reqwest_middleware::{Middleware, Next};

const REQUESTS: u64 = 2_000;
const IN_FLIGHT: usize = 64;

async fn api() -> String {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .expect("a loopback port");
    let addr = listener.local_addr().expect("an address");
    let app = axum::Router::new().route("/videos", axum::routing::get(|| async { "[]" }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/videos")
}

/// A fixed header put in by a middleware, written the way users write one.
struct StaticHeader(HeaderValue);

#[async_trait::async_trait]
impl Middleware for StaticHeader {
    async fn handle(
        &self,
        mut request: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        request
            .headers_mut()
            .insert(reqwest::header::AUTHORIZATION, self.0.clone());
        next.run(request, extensions).await
    }
}

/// Sends `REQUESTS` requests, `IN_FLIGHT` at a time, per iteration.
fn measure<F, Fut>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    runtime: &tokio::runtime::Runtime,
    name: &str,
    send: F,
) where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<reqwest::Response, String>>,
{
    group.bench_function(name, |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                let started = Instant::now();
                runtime.block_on(
                    stream::iter(0..REQUESTS).for_each_concurrent(IN_FLIGHT, |_| {
                        let response = send();
                        async move { assert_eq!(response.await.expect("a response").status(), 200) }
                    }),
                );
                total += started.elapsed();
            }
            total
        })
    });
}

fn end_to_end(c: &mut Criterion) {
    let runtime = support::runtime();
    let url = runtime.block_on(api());
    let double = runtime
        .block_on(ApiVideoDouble::start())
        .expect("the double");
    let tokens = TokenManager::new(double.source());
    let header = runtime.block_on(tokens.authorization()).expect("a token");

    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::AUTHORIZATION, header.clone());
    let fixed = reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("a client");
    let origin = Origin::parse(&url).expect("the API's origin");
    let bare = reqwest_middleware::ClientBuilder::new(fixed.clone()).build();
    let static_middleware = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(StaticHeader(header))
        .build();
    let ours = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(BearerAuthMiddleware::new(tokens).allow_origin(origin))
        .build();

    let mut group = c.benchmark_group("end_to_end");
    group.throughput(Throughput::Elements(REQUESTS));
    group.sample_size(20);
    measure(&mut group, &runtime, "static", || {
        let request = fixed.get(&url).send();
        async move { request.await.map_err(|err| err.to_string()) }
    });
    for (name, client) in [
        ("middleware_stack", &bare),
        ("static_middleware", &static_middleware),
        ("ours", &ours),
    ] {
        measure(&mut group, &runtime, name, || {
            let request = client.get(&url).send();
            async move { request.await.map_err(|err| err.to_string()) }
        });
    }
    group.finish();
}

criterion_group!(benches, end_to_end);
criterion_main!(benches);
