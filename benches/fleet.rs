//! The fleet: 8 managers sharing one token through Redis, 1,000 concurrent
//! requests each on an expired token (one refresh for all), and the hot
//! path with the Redis store against the in-memory one (the hot path never
//! touches Redis, so the ratio should be about 1). Needs `redis-server` on
//! the PATH and `--features redis`.

#[path = "../tests/support/redis.rs"]
mod redis_server;
mod support;

use std::time::{Duration, Instant};

use bearer_refresh::testing::ApiVideoDouble;
use bearer_refresh::{RedisStore, TokenManager};
use criterion::{criterion_group, criterion_main, Criterion};
use futures::future::join_all;
use redis_server::RedisServer;
use support::runtime;
use support::warm_layer::bench_warm;

const MEMBERS: usize = 8;
const PER_MEMBER: usize = 1_000;
const LATENCY: Duration = Duration::from_millis(50);

fn fleet(c: &mut Criterion) {
    let runtime = runtime();
    let _guard = runtime.enter();
    let redis = RedisServer::start();
    let double = runtime
        .block_on(ApiVideoDouble::start())
        .expect("the double");
    double.set_lifetime(Duration::from_secs(1));
    double.set_latency(LATENCY);

    let mut group = c.benchmark_group("fleet");
    group.sample_size(10);
    let mut prefix = 0;
    group.bench_function("storm_expired_8x1000", |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                prefix += 1;
                let members: Vec<TokenManager> = runtime.block_on(async {
                    let mut members = Vec::new();
                    for _ in 0..MEMBERS {
                        let store = RedisStore::connect(&redis.url(), &format!("bench-{prefix}"))
                            .await
                            .expect("redis");
                        members.push(TokenManager::builder(double.source()).store(store).build());
                    }
                    members[0].authorization().await.expect("a token");
                    members
                });
                // A 1 s token is unusable after 750 ms.
                std::thread::sleep(Duration::from_millis(800));
                let before = double.calls();
                let started = Instant::now();
                runtime.block_on(join_all(
                    members
                        .iter()
                        .flat_map(|tokens| (0..PER_MEMBER).map(move |_| tokens.authorization())),
                ));
                total += started.elapsed();
                let after = double.calls();
                let calls = after.logins + after.refreshes - before.logins - before.refreshes;
                assert_eq!(calls, 1, "one token call for the whole fleet");
            }
            total
        })
    });
    group.finish();

    double.set_lifetime(Duration::from_secs(3600));
    double.set_latency(Duration::ZERO);
    let url = double.url("/videos");
    let mut group = c.benchmark_group("fleet_hot_path");
    let memory = TokenManager::new(double.source());
    let shared = runtime.block_on(async {
        let store = RedisStore::connect(&redis.url(), "bench-hot")
            .await
            .expect("redis");
        TokenManager::builder(double.source()).store(store).build()
    });
    for (name, tokens) in [("memory", memory), ("redis", shared)] {
        runtime
            .block_on(tokens.authorization())
            .expect("a warm token");
        bench_warm(&mut group, name, tokens, &url);
    }
    group.finish();
}

criterion_group!(benches, fleet);
criterion_main!(benches);
