//! Outage mode against the api.video double: while the token endpoint is
//! down past the token's expiry, requests go on at once with the expired
//! token, and the token calls keep the backoff's pace whatever the request
//! rate. Counts are taken at the server.

mod support;

use std::time::Duration;

use bearer_refresh::testing::ApiVideoDouble;
use bearer_refresh::{Backoff, FileStore, TokenManager, TokenManagerBuilder};
use support::clients::{Client, ADAPTERS};
use support::{builder, eventually, steady_backoff};
use tokio::time::{advance, sleep, Instant};

const SECOND: Duration = Duration::from_secs(1);
const GRACE: Duration = Duration::from_secs(600);

fn token_calls(double: &ApiVideoDouble) -> u64 {
    let calls = double.calls();
    calls.logins + calls.refreshes
}

/// A manager of 4 s tokens (stale at 2 s, expired at 3 s) in outage mode,
/// its first token in hand.
async fn warm(double: &ApiVideoDouble, grace: Duration) -> TokenManager {
    double.set_lifetime(4 * SECOND);
    let tokens = builder(double)
        .backoff(steady_backoff())
        .outage_grace(grace)
        .build();
    tokens.authorization().await.unwrap();
    tokens
}

/// `rate` requests a second for `span`, each through `authorize`; returns
/// how many were sent and how many got a header.
async fn traffic(tokens: &TokenManager, rate: u32, span: Duration) -> (u32, u32) {
    let end = Instant::now() + span;
    let (mut sent, mut served) = (0, 0);
    while Instant::now() < end {
        sleep(SECOND / rate).await;
        sent += 1;
        served += u32::from(tokens.authorize().await.is_ok());
    }
    (sent, served)
}

/// Token calls during a 20 s outage that starts with a warm 4 s token, at
/// `rate` requests a second, and then during the recovery.
async fn outage_at(rate: u32) -> (u64, u64) {
    let double = ApiVideoDouble::start().await.unwrap();
    let tokens = warm(&double, GRACE).await;
    double.fail_next(100_000, 503);
    let (sent, served) = traffic(&tokens, rate, 20 * SECOND).await;
    assert_eq!(served, sent, "every request went on");
    let outage = token_calls(&double) - 1;
    assert!(tokens.stats().expired_served > 0);
    assert_eq!(tokens.stats().generation, 1, "no token came");

    double.clear_faults();
    let before = token_calls(&double);
    eventually(10 * SECOND, || tokens.stats().generation == 2).await;
    advance(SECOND).await;
    let recovery = token_calls(&double) - before;
    assert!(tokens.try_authorize().is_some());
    (outage, recovery)
}

#[tokio::test(start_paused = true)]
async fn token_calls_during_an_outage_do_not_depend_on_the_request_rate() {
    let (slow, slow_recovery) = outage_at(10).await;
    let (fast, fast_recovery) = outage_at(200).await;
    eprintln!("token calls in a 20 s outage: {slow} at 10 req/s, {fast} at 200 req/s");
    assert_eq!(slow, fast);
    assert!(slow > 0 && slow < 30, "the backoff's pace: {slow}");
    assert_eq!((slow_recovery, fast_recovery), (1, 1), "one call recovers");
}

#[tokio::test(start_paused = true)]
async fn a_round_that_hangs_past_the_expiry_makes_nobody_wait() {
    let double = ApiVideoDouble::start().await.unwrap();
    let tokens = warm(&double, GRACE).await;
    double.hang(true);
    advance(2500 * Duration::from_millis(1)).await;
    // The stale window starts the refresh, which hangs.
    let old = tokens.authorization().await.unwrap();
    // Expired at 3 s; the round has run for a second at 3.5 s.
    advance(SECOND).await;
    let asked = Instant::now();
    assert_eq!(tokens.authorization().await.unwrap(), old);
    assert_eq!(asked.elapsed(), Duration::ZERO, "served at once");
    assert!(tokens.try_authorize().is_some(), "on the hot path too");
    assert_eq!(tokens.stats().expired_served, 2);
}

#[tokio::test(start_paused = true)]
async fn an_api_that_rejects_the_expired_token_causes_no_loop() {
    for adapter in ADAPTERS {
        let double = ApiVideoDouble::start().await.unwrap();
        let tokens = warm(&double, GRACE).await;
        double.fail_next(100_000, 503);
        // Past the double's own expiry (4 s): it answers 401.
        advance(5 * SECOND).await;
        let client = Client::new(adapter, &tokens);
        let url = double.url("/videos");
        for _ in 0..20 {
            assert!(client.get(&url).await.is_err(), "{adapter:?}");
        }
        let calls = double.calls();
        assert_eq!(calls.videos, 1, "{adapter:?}: one request, no replay loop");
        assert_eq!(calls.unauthorized, 1, "{adapter:?}");
        assert!(tokens.try_authorize().is_none(), "{adapter:?}: invalidated");
    }
}

#[tokio::test(start_paused = true)]
async fn a_rejected_credential_serves_nothing() {
    let double = ApiVideoDouble::start().await.unwrap();
    let tokens = warm(&double, GRACE).await;
    double.reject_refresh_tokens(true);
    double.reject_api_key(true);
    advance(2500 * Duration::from_millis(1)).await;
    tokens.authorization().await.unwrap();
    eventually(SECOND, || tokens.stats().failed_rounds == 1).await;
    advance(SECOND).await;
    let error = tokens.authorization().await.unwrap_err();
    assert!(!error.is_transient(), "{error:?}");
    assert!(tokens.try_authorize().is_none());
    assert_eq!(tokens.stats().expired_served, 0);
}

#[tokio::test(start_paused = true)]
async fn past_the_grace_callers_get_the_endpoints_error() {
    let double = ApiVideoDouble::start().await.unwrap();
    let tokens = warm(&double, 10 * SECOND).await;
    double.fail_next(100_000, 503);
    advance(5 * SECOND).await;
    assert!(tokens.authorization().await.is_ok(), "within the grace");
    // The token expired at 4 s: the grace ends at 14 s.
    advance(10 * SECOND).await;
    assert!(tokens.try_authorize().is_none());
    let error = tokens.authorization().await.unwrap_err();
    assert!(error.to_string().contains("503"), "{error}");
}

#[tokio::test(start_paused = true)]
async fn without_a_grace_an_expired_token_is_never_served() {
    let double = ApiVideoDouble::start().await.unwrap();
    let tokens = warm(&double, Duration::ZERO).await;
    double.fail_next(100_000, 503);
    advance(5 * SECOND).await;
    assert!(tokens.try_authorize().is_none());
    assert!(tokens.authorization().await.is_err());
    assert_eq!(tokens.stats().expired_served, 0);
}

/// The backoff of the fleet test: 50 ms doubling to 400 ms.
fn quick_backoff() -> Backoff {
    Backoff::default()
        .jitter(false)
        .initial(Duration::from_millis(50))
        .max(Duration::from_millis(400))
}

fn fleet_member(double: &ApiVideoDouble, path: &std::path::Path) -> TokenManagerBuilder {
    builder(double)
        .backoff(quick_backoff())
        .outage_grace(GRACE)
        .store(FileStore::open(path).unwrap())
}

/// Token calls of `members` managers on one `FileStore` in a 3 s outage,
/// at `rate` requests a second each (real time: the fleet's deadline is on
/// the wall clock).
async fn fleet_outage(members: usize, rate: u32) -> u64 {
    let double = ApiVideoDouble::start().await.unwrap();
    double.set_lifetime(2 * SECOND);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    let fleet: Vec<_> = (0..members)
        .map(|_| fleet_member(&double, &path).build())
        .collect();
    for tokens in &fleet {
        tokens.authorization().await.unwrap();
    }
    assert_eq!(token_calls(&double), 1, "one login for the fleet");
    double.fail_next(100_000, 503);
    let traffic = fleet.iter().map(|tokens| traffic(tokens, rate, 3 * SECOND));
    let served = futures::future::join_all(traffic).await;
    assert!(served.iter().all(|(sent, ok)| sent == ok), "{served:?}");
    token_calls(&double) - 1
}

#[tokio::test]
async fn a_fleet_on_one_file_store_makes_one_call_per_step_in_all() {
    let one = fleet_outage(1, 10).await;
    let slow = fleet_outage(2, 10).await;
    let fast = fleet_outage(2, 200).await;
    eprintln!(
        "token calls in a 3 s outage on one FileStore: {one} for one manager at 10 req/s, \
         {slow} for two at 10 req/s each, {fast} for two at 200 req/s each"
    );
    // The endpoint went down at 0 s, the token expired at 1.5 s: about one
    // call per 400 ms step from the first failure on, for the whole fleet.
    let steps = 3 * SECOND.as_millis() as u64 / 400;
    for calls in [one, slow, fast] {
        assert!(calls > 0 && calls <= steps + 2, "{calls}");
    }
    assert!(slow <= one + 1 && fast <= one + 1, "{one} {slow} {fast}");
}
