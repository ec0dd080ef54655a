//! The cost of auth per request with a warm token, alone and under
//! contention: the raw inner service, a static header (the floor), the
//! static header plus a replay copy (the fair floor), the naive mutex
//! layer users write by hand, and ours.
//!
//! Requests are built outside the timed section, so the figures are the
//! stacks' own cost. Compare within a group: the ratios are the result.

mod support;

use std::time::{Duration, Instant};

use bearer_refresh::testing::ApiVideoDouble;
use bytes::Bytes;
use criterion::measurement::WallTime;
use criterion::{criterion_group, BatchSize, BenchmarkGroup, BenchmarkId, Criterion, Throughput};
use http::{Request, Uri};
use http_body_util::Full;
use support::{
    noop, ours_stack, poll_once, request, runtime, static_and_copy_stack, static_stack, KeepCopy,
    Naive, Req,
};
use tokio::runtime::Runtime;
use tower::Layer;
use tower::{Service, ServiceExt};

const PER_TASK: u64 = 5_000;

fn single<S: Service<Req>>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    url: &str,
    mut service: S,
) {
    group.bench_function(name, |b| {
        b.iter_batched(
            || request(url),
            |request| poll_once(&mut service, request),
            BatchSize::SmallInput,
        )
    });
}

/// `tasks` tasks on a 2-worker runtime, each sending `PER_TASK` requests
/// through its own clone of the service.
fn contended<S>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    runtime: &tokio::runtime::Runtime,
    name: &str,
    url: &str,
    tasks: u64,
    service: S,
) where
    S: Service<Req> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: std::fmt::Debug,
{
    group.bench_with_input(BenchmarkId::new(name, tasks), &tasks, |b, &tasks| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                let clones: Vec<_> = (0..tasks).map(|_| service.clone()).collect();
                let started = Instant::now();
                runtime.block_on(async {
                    let handles: Vec<_> = clones
                        .into_iter()
                        .map(|mut service| {
                            let url = url.to_owned();
                            tokio::spawn(async move {
                                for _ in 0..PER_TASK {
                                    let ready = service.ready().await.expect("ready");
                                    ready.call(request(&url)).await.expect("a response");
                                }
                            })
                        })
                        .collect();
                    for handle in handles {
                        handle.await.expect("no bench task panics");
                    }
                });
                total += started.elapsed();
            }
            total
        });
    });
}

/// The outside harness's setup: a current-thread runtime, `ready().await;
/// call(req).await` in sequence, a header-less `Request<Full<Bytes>>` whose
/// URI is cloned from one shared `Uri`, built inside the timed loop.
fn harness<S>(c: &mut BenchmarkGroup<'_, WallTime>, rt: &Runtime, name: &str, uri: &Uri, mut svc: S)
where
    S: Service<Req>,
    S::Error: std::fmt::Debug,
{
    let body = Bytes::from_static(br#"{"title":"bench"}"#);
    c.bench_function(name, |b| {
        b.iter_custom(|iterations| {
            rt.block_on(async {
                let started = Instant::now();
                for _ in 0..iterations {
                    let mut request = Request::new(Full::new(body.clone()));
                    *request.uri_mut() = uri.clone();
                    let ready = svc.ready().await.expect("ready");
                    ready.call(request).await.expect("a response");
                }
                started.elapsed()
            })
        })
    });
}

/// The harness's stacks, for an instruction count under callgrind:
/// `HOT_PATH_STACK=static|floor|ours HOT_PATH_N=20000 valgrind --tool=callgrind
/// target/release/deps/hot_path-…` (see `benches/hot_path.sh`).
fn count_instructions(stack: &str, n: usize) {
    let rt = current_thread();
    let double = rt.block_on(ApiVideoDouble::start()).expect("the double");
    let (tokens, ours) = rt.block_on(ours_stack(&double));
    let uri: Uri = double.url("/videos").as_str().parse().expect("a URI");
    let body = Bytes::from_static(br#"{"title":"bench"}"#);
    if stack == "try_authorize" {
        for _ in 0..n {
            std::hint::black_box(tokens.try_authorize());
        }
        return;
    }
    async fn run<S: Service<Req>>(mut svc: S, uri: &Uri, body: &Bytes, n: usize)
    where
        S::Error: std::fmt::Debug,
    {
        for _ in 0..n {
            let mut request = Request::new(Full::new(body.clone()));
            *request.uri_mut() = uri.clone();
            let ready = svc.ready().await.expect("ready");
            ready.call(request).await.expect("a response");
        }
    }
    rt.block_on(async {
        match stack {
            "static" => run(static_stack(), &uri, &body, n).await,
            "floor" => run(KeepCopy(static_stack()), &uri, &body, n).await,
            "ours" => run(ours, &uri, &body, n).await,
            "ours_without_replay" => {
                let layer = bearer_refresh::BearerAuthLayer::new(tokens.clone()).max_replays(0);
                run(layer.layer(noop()), &uri, &body, n).await
            }
            other => panic!("unknown HOT_PATH_STACK {other}"),
        }
    });
}

fn current_thread() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

fn harness_setup(c: &mut Criterion) {
    let rt = current_thread();
    let double = rt.block_on(ApiVideoDouble::start()).expect("the double");
    let (_tokens, ours) = rt.block_on(ours_stack(&double));
    let uri: Uri = double.url("/videos").as_str().parse().expect("a URI");
    let mut group = c.benchmark_group("harness");
    harness(&mut group, &rt, "static", &uri, static_stack());
    harness(&mut group, &rt, "floor", &uri, KeepCopy(static_stack()));
    harness(&mut group, &rt, "ours", &uri, ours);
    // The engine's part of ours: the warm token lookup alone.
    group.bench_function("try_authorize", |b| b.iter(|| _tokens.try_authorize()));
    group.finish();
}

fn hot_path(c: &mut Criterion) {
    let runtime = runtime();
    let _guard = runtime.enter();
    let double = runtime
        .block_on(ApiVideoDouble::start())
        .expect("the double");
    let (_tokens, ours) = runtime.block_on(ours_stack(&double));

    // The API's own URL: ours attaches the token to it.
    let url = double.url("/videos");
    let url = url.as_str();
    let mut group = c.benchmark_group("hot_path");
    single(&mut group, "raw", url, noop());
    single(&mut group, "static", url, static_stack());
    single(&mut group, "static_and_copy", url, static_and_copy_stack());
    single(&mut group, "naive", url, Naive::new(noop()));
    single(&mut group, "ours", url, ours.clone());
    let no_replay = tower::ServiceBuilder::new()
        .layer(bearer_refresh::BearerAuthLayer::new(_tokens.clone()).max_replays(0))
        .service(noop());
    single(&mut group, "ours_without_replay", url, no_replay);
    group.finish();

    let mut group = c.benchmark_group("contention");
    for tasks in [1u64, 2, 4] {
        group.throughput(Throughput::Elements(tasks * PER_TASK));
        contended(&mut group, &runtime, "static", url, tasks, static_stack());
        contended(
            &mut group,
            &runtime,
            "naive",
            url,
            tasks,
            Naive::new(noop()),
        );
        contended(&mut group, &runtime, "ours", url, tasks, ours.clone());
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(3));
    targets = harness_setup, hot_path
}
fn main() {
    if let Ok(stack) = std::env::var("HOT_PATH_STACK") {
        let n = std::env::var("HOT_PATH_N")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        return count_instructions(&stack, n);
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
