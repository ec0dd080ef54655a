//! The chaos soak: 16 tasks send requests through both adapters while the
//! double fails, rate-limits, slows down, revokes and rejects at random,
//! and callers drop out mid-request. Then the faults stop and everything
//! must recover without a rebuild.
//!
//! The short profile runs in CI (about 15 s). The long one:
//! `SOAK_SECS=300 cargo test --all-features --test soak -- --nocapture`.
//! `SOAK_SEED` replays a run.

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bearer_refresh::testing::ApiVideoDouble;
use bearer_refresh::{Backoff, TokenManager};
use support::clients::{Adapter, Client};
use tokio::time::{sleep, timeout, Instant};

/// No request that is not dropped may take longer than this: the token
/// call timeout (3 s) times the attempts (3), plus backoff and latency.
const DEADLINE: Duration = Duration::from_secs(20);
const TASKS: usize = 16;

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        // xorshift64*: plenty for choosing faults.
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

#[derive(Default)]
struct Tally {
    requests: AtomicU64,
    succeeded: AtomicU64,
    other_status: AtomicU64,
    token_errors: AtomicU64,
    transport_errors: AtomicU64,
    dropped: AtomicU64,
    raced: AtomicU64,
    hung: AtomicU64,
    max_latency_ms: AtomicU64,
}

async fn load(client: Client, url: String, tally: Arc<Tally>, stop: Arc<AtomicBool>, seed: u64) {
    let mut rng = Rng(seed | 1);
    while !stop.load(Ordering::Relaxed) {
        tally.requests.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        if rng.below(5) == 0 {
            // A caller that gives up: a timeout or a losing `select!` arm.
            let patience = Duration::from_millis(rng.below(300));
            tokio::select! {
                _ = client.get(&url) => { tally.raced.fetch_add(1, Ordering::Relaxed); }
                () = sleep(patience) => { tally.dropped.fetch_add(1, Ordering::Relaxed); }
            }
            continue;
        }
        match timeout(DEADLINE, client.get(&url)).await {
            Err(_) => tally.hung.fetch_add(1, Ordering::Relaxed),
            Ok(Ok(reply)) if reply.status == 200 => tally.succeeded.fetch_add(1, Ordering::Relaxed),
            Ok(Ok(_)) => tally.other_status.fetch_add(1, Ordering::Relaxed),
            Ok(Err(failure)) if failure.token_error().is_some() => {
                // A real client backs off after an error too.
                sleep(Duration::from_millis(20)).await;
                tally.token_errors.fetch_add(1, Ordering::Relaxed)
            }
            Ok(Err(_)) => tally.transport_errors.fetch_add(1, Ordering::Relaxed),
        };
        let elapsed = started.elapsed().as_millis() as u64;
        tally.max_latency_ms.fetch_max(elapsed, Ordering::Relaxed);
    }
}

/// One random fault every 300 ms; returns how many it injected.
async fn chaos(double: &ApiVideoDouble, seconds: u64, seed: u64) -> u64 {
    let mut rng = Rng(seed.rotate_left(17) | 1);
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut events = 0;
    while Instant::now() < end {
        events += 1;
        // Faults are served in order; drop the unserved ones so they do not
        // pile up while the endpoint is quiet.
        double.clear_faults();
        match rng.below(6) {
            0 => double.fail_next(1 + rng.below(3) as usize, 500),
            1 => double.rate_limit_next(1, 1),
            2 => double.set_latency(Duration::from_millis(rng.below(2000))),
            3 => double.revoke_access_tokens(),
            4 => double.expire_refresh_tokens(),
            _ => double.set_latency(Duration::ZERO),
        }
        sleep(Duration::from_millis(300)).await;
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_soak() {
    let seconds: u64 = std::env::var("SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let seed: u64 = std::env::var("SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::process::id() as u64 * 0x9e37_79b9);
    println!("soak: {seconds} s, seed {seed}");

    let double = ApiVideoDouble::start().await.unwrap();
    double.set_lifetime(Duration::from_secs(2));
    let tokens = TokenManager::builder(double.source())
        .call_timeout(Duration::from_secs(3))
        .backoff(
            Backoff::default()
                .initial(Duration::from_millis(100))
                .max(Duration::from_secs(1))
                .max_attempts(3),
        )
        .build();
    let url = double.url("/videos");
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let adapters = [Adapter::Tower, Adapter::Reqwest];
    let workers: Vec<_> = (0..TASKS)
        .map(|i| {
            let client = Client::new(adapters[i % 2], &tokens);
            let seed = seed.wrapping_add(i as u64 * 7919);
            tokio::spawn(load(
                client,
                url.clone(),
                Arc::clone(&tally),
                Arc::clone(&stop),
                seed,
            ))
        })
        .collect();

    let events = chaos(&double, seconds, seed).await;

    // The faults stop; every adapter must recover with the same manager.
    double.clear_faults();
    double.set_latency(Duration::ZERO);
    let recovered_at = Instant::now();
    for adapter in adapters {
        let client = Client::new(adapter, &tokens);
        let mut ok = 0;
        while ok < 10 {
            assert!(
                recovered_at.elapsed() < Duration::from_secs(15),
                "{adapter:?} did not recover"
            );
            match client.get(&url).await {
                Ok(reply) if reply.status == 200 => ok += 1,
                _ => sleep(Duration::from_millis(100)).await,
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.expect("no load task panics");
    }

    let calls = double.calls();
    let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
    let token_calls = calls.logins + calls.refreshes;
    println!(
        "soak summary: requests {} | succeeded {} | other status {} | typed token errors {} | \
         transport errors {} | dropped {} | beat their drop timer {} | hung {} | 401s (each replayed unless its caller dropped) {} | token calls {} ({} logins, \
         {} refreshes) | chaos events {} | expired tokens seen {} | max latency {} ms",
        get(&tally.requests),
        get(&tally.succeeded),
        get(&tally.other_status),
        get(&tally.token_errors),
        get(&tally.transport_errors),
        get(&tally.dropped),
        get(&tally.raced),
        get(&tally.hung),
        calls.unauthorized,
        token_calls,
        calls.logins,
        calls.refreshes,
        events,
        calls.expired_tokens_seen,
        get(&tally.max_latency_ms),
    );

    assert_eq!(get(&tally.hung), 0, "a request outlived its deadline");
    assert_eq!(
        get(&tally.transport_errors),
        0,
        "the API itself never failed"
    );
    assert_eq!(
        calls.refresh_reuses, 0,
        "a refresh token was presented twice"
    );
    assert!(
        get(&tally.succeeded) > get(&tally.requests) / 4,
        "too few successes"
    );
    // A refresh about every second (stale at half of 2 s), plus at most
    // three calls for each injected fault, plus recovery.
    let bound = 2 * seconds + 3 * events + 20;
    assert!(token_calls <= bound, "{token_calls} token calls > {bound}");
    // A token is dropped 0.5 s before it expires, so the API sees an expired
    // one only when a request is delayed that long after its header went on
    // (a loaded machine); each such 401 is replayed with a fresh token.
    let slack = 5 + get(&tally.requests) / 100;
    assert!(
        calls.expired_tokens_seen <= slack,
        "{} expired tokens seen",
        calls.expired_tokens_seen
    );
}
