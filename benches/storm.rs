//! A storm: 10,000 concurrent requests through the layer on a cold manager
//! (and on an expired token), against an auth endpoint with 50 ms of
//! latency. They must cost one token call; the interesting figure is the
//! wall time over the latency of one token call alone (1.0 would be free).
//!
//! The bench times that token call too (group `storm`, `login`: one
//! `TokenSource::login` to the same double, no manager, no layer), and ends
//! by printing each storm's median over the login's median, both from this
//! run: on a shared machine a ratio against the nominal 50 ms would carry
//! the loopback and the load in its numerator only.

mod support;

use std::cell::RefCell;
use std::time::{Duration, Instant};

use bearer_refresh::testing::ApiVideoDouble;
use bearer_refresh::{BearerAuthLayer, TokenManager, TokenSource};
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

/// Every timed iteration of one benchmark, for the closing ratios.
#[derive(Default)]
struct Samples(RefCell<Vec<Duration>>);

impl Samples {
    fn record(&self, took: Duration) -> Duration {
        self.0.borrow_mut().push(took);
        took
    }

    fn median(&self) -> Option<Duration> {
        let mut samples = self.0.borrow().clone();
        samples.sort_unstable();
        samples.get(samples.len() / 2).copied()
    }
}

fn storms(c: &mut Criterion) {
    let runtime = runtime();
    let double = runtime
        .block_on(ApiVideoDouble::start())
        .expect("the double");
    double.set_latency(LATENCY);
    // Rounds that no 401 forced start at least a second apart: the expired
    // storm's refresh must come more than a second after the login.
    double.set_lifetime(Duration::from_secs(2));
    let (login, cold, expired) = (Samples::default(), Samples::default(), Samples::default());

    let mut group = c.benchmark_group("storm");
    group.sample_size(10);
    group.bench_function("login", |b| {
        let source = double.source();
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                let started = Instant::now();
                runtime.block_on(source.login()).expect("a login");
                total += login.record(started.elapsed());
            }
            total
        })
    });
    group.bench_function("cold", |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                let before = double.calls();
                let tokens = TokenManager::new(double.source());
                total += cold.record(runtime.block_on(storm(&double, &tokens)));
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
                // A 2 s token is unusable after 1.5 s.
                std::thread::sleep(Duration::from_millis(1600));
                let before = double.calls();
                total += expired.record(runtime.block_on(storm(&double, &tokens)));
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

    if let Some(login) = login.median() {
        println!("storm: one login, median {login:.1?} (configured latency {LATENCY:?})");
        for (name, samples) in [("cold", &cold), ("expired", &expired)] {
            if let Some(storm) = samples.median() {
                println!(
                    "storm/{name}: median {storm:.1?} = {:.2} x the login ({:.2} x {LATENCY:?})",
                    storm.as_secs_f64() / login.as_secs_f64(),
                    storm.as_secs_f64() / LATENCY.as_secs_f64(),
                );
            }
        }
    }
}

criterion_group!(benches, storms);
criterion_main!(benches);
