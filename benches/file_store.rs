//! One machine, one token file: N short-lived processes run one after the
//! other (this bench binary started again as a child, like a command-line
//! tool run N times) cost one token call with a `FileStore` and N without;
//! and the hot path with a `FileStore` against the in-memory store (the hot
//! path never touches the file, so the ratio should be about 1). The
//! double answers token calls in 50 ms, as a real endpoint might.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use bearer_refresh::testing::ApiVideoDouble;
use bearer_refresh::{ApiKeySource, FileStore, TokenManager};
use criterion::{criterion_group, Criterion};
use support::warm_layer::{bench_warm, layered};
use support::{poll_once, request, runtime};

const PROCESSES: u64 = 10;
/// A token endpoint's usual answer time, which a warm file saves.
const LATENCY: Duration = Duration::from_millis(50);
const CHILD_BASE: &str = "FILE_STORE_BENCH_BASE";
const CHILD_FILE: &str = "FILE_STORE_BENCH_FILE";

/// A child: one token through the file (or none), then exit.
fn child(base: &str) {
    let runtime = runtime();
    runtime.block_on(async {
        let source = ApiKeySource::new(base, ApiVideoDouble::API_KEY).expect("the double's URL");
        let builder = TokenManager::builder(source);
        let tokens = match std::env::var_os(CHILD_FILE) {
            Some(path) => builder
                .store(FileStore::open(path).expect("a token file"))
                .build(),
            None => builder.build(),
        };
        tokens.authorization().await.expect("a token");
    });
}

/// Runs `PROCESSES` children one after the other; returns the time taken.
fn sequential(double: &ApiVideoDouble, file: Option<&Path>) -> Duration {
    let me = std::env::current_exe().expect("this bench's path");
    let started = Instant::now();
    for _ in 0..PROCESSES {
        let mut command = std::process::Command::new(&me);
        command.env(CHILD_BASE, double.base_url());
        if let Some(file) = file {
            command.env(CHILD_FILE, file);
        }
        assert!(command.status().expect("a child").success());
    }
    started.elapsed()
}

fn token_calls(double: &ApiVideoDouble) -> u64 {
    let calls = double.calls();
    calls.logins + calls.refreshes
}

fn processes(c: &mut Criterion) {
    let runtime = runtime();
    let double = runtime
        .block_on(ApiVideoDouble::start())
        .expect("the double");
    double.set_latency(LATENCY);
    let dir = tempfile::tempdir().expect("a temporary folder");
    let mut group = c.benchmark_group(format!("sequential_processes_x{PROCESSES}"));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    let mut run = 0;
    for with_file in [true, false] {
        let name = if with_file { "file_store" } else { "memory" };
        let mut calls_per_run = Vec::new();
        group.bench_function(name, |b| {
            b.iter_custom(|iterations| {
                let mut total = Duration::ZERO;
                for _ in 0..iterations {
                    run += 1;
                    let file = dir.path().join(format!("token-{run}"));
                    let before = token_calls(&double);
                    total += sequential(&double, with_file.then_some(file.as_path()));
                    calls_per_run.push(token_calls(&double) - before);
                }
                total
            })
        });
        if calls_per_run.is_empty() {
            // Filtered out on the command line.
            continue;
        }
        let expected = if with_file { 1 } else { PROCESSES };
        assert!(calls_per_run.iter().all(|&calls| calls == expected));
        println!("{PROCESSES} processes, {name}: {expected} token call(s) per run");
    }
    group.finish();
}

/// A warm manager, with a `FileStore` or without.
fn warm(
    runtime: &tokio::runtime::Runtime,
    double: &ApiVideoDouble,
    file: Option<&Path>,
) -> TokenManager {
    let builder = TokenManager::builder(double.source());
    let tokens = match file {
        Some(file) => builder
            .store(FileStore::open(file).expect("a token file"))
            .build(),
        None => builder.build(),
    };
    runtime
        .block_on(tokens.authorization())
        .expect("a warm token");
    tokens
}

fn hot_path(c: &mut Criterion) {
    let runtime = runtime();
    let _guard = runtime.enter();
    let double = runtime
        .block_on(ApiVideoDouble::start())
        .expect("the double");
    let dir = tempfile::tempdir().expect("a temporary folder");
    let url = double.url("/videos");
    let memory = warm(&runtime, &double, None);
    let file = warm(&runtime, &double, Some(&dir.path().join("token")));
    let mut group = c.benchmark_group("file_store_hot_path");
    for (name, tokens) in [("memory", memory), ("file_store", file)] {
        bench_warm(&mut group, name, tokens, &url);
    }
    group.finish();
}

criterion_group!(benches, processes, hot_path);

/// `N` warm requests through the layer, for callgrind to count
/// (`STACK=memory|file_store N=20000 valgrind --tool=callgrind ...`).
fn count_instructions(stack: &str, n: usize) {
    let runtime = runtime();
    let _guard = runtime.enter();
    let double = runtime
        .block_on(ApiVideoDouble::start())
        .expect("the double");
    let dir = tempfile::tempdir().expect("a temporary folder");
    let file = dir.path().join("token");
    let tokens = warm(
        &runtime,
        &double,
        (stack == "file_store").then_some(file.as_path()),
    );
    let mut service = layered(tokens);
    let url = double.url("/videos");
    for _ in 0..n {
        poll_once(&mut service, request(&url));
    }
}

fn main() {
    if let Ok(base) = std::env::var(CHILD_BASE) {
        child(&base);
        return;
    }
    if let (Ok(stack), Ok(n)) = (std::env::var("STACK"), std::env::var("N")) {
        count_instructions(&stack, n.parse().expect("N is a number"));
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
