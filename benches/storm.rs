//! A storm: 10,000 concurrent requests through the layer on a cold manager
//! (and on an expired token), against an auth endpoint with 50 ms of
//! latency. They must cost one token call; the interesting figure is the
//! wall time over the latency (1.0 would be free).

mod support;

use std::time::{Duration, Instant};

use bearer_refresh::testing::ApiVideoDouble;
use bearer_refresh::{BearerAuthLayer, TokenManager};
use criterion::{criterion_group, criterion_main, Criterion};
use futures::stream::{FuturesUnordered, StreamExt};
use support::{noop, request, runtime};
use tower::{ServiceBuilder, ServiceExt};

const CALLERS: usize = 10_000;
const LATENCY: Duration = Duration::from_millis(50);

/// Sends the storm and returns its wall time.
async fn storm(double: &ApiVideoDouble, tokens: &TokenManager) -> Duration {
    let url = double.url("/videos");
    let service = ServiceBuilder::new()
        .layer(BearerAuthLayer::new(tokens.clone()))
        .service(noop());
    let started = Instant::now();
    let mut calls: FuturesUnordered<_> = (0..CALLERS)
        .map(|_| service.clone().oneshot(request(&url)))
        .collect();
    while let Some(result) = calls.next().await {
        assert!(result.is_ok());
    }
    started.elapsed()
}

fn storms(c: &mut Criterion) {
    let runtime = runtime();
    let double = runtime
        .block_on(ApiVideoDouble::start())
        .expect("the double");
    double.set_latency(LATENCY);
    double.set_lifetime(Duration::from_secs(1));

    let mut group = c.benchmark_group("storm");
    group.sample_size(10);
    group.bench_function("cold", |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                let before = double.calls();
                let tokens = TokenManager::new(double.source());
                total += runtime.block_on(storm(&double, &tokens));
                let after = double.calls();
                assert_eq!(after.logins - before.logins, 1, "one login per storm");
                assert_eq!(after.refreshes, before.refreshes);
            }
            total
        })
    });
    group.bench_function("expired", |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                let tokens = TokenManager::new(double.source());
                runtime.block_on(tokens.authorization()).expect("a token");
                // A 1 s token is unusable after 750 ms.
                std::thread::sleep(Duration::from_millis(800));
                let before = double.calls();
                total += runtime.block_on(storm(&double, &tokens));
                let after = double.calls();
                assert_eq!(
                    after.refreshes - before.refreshes,
                    1,
                    "one refresh per storm"
                );
                assert_eq!(after.logins, before.logins);
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, storms);
criterion_main!(benches);
