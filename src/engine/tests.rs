//! [`TokenManager`]'s tests, with a scripted source and tokio's paused time.

use std::time::Duration;

use futures::future::join_all;
use tokio::time::{sleep, Instant};

use super::clock::TestClock;
use super::test_source::{server_error, Step, TestSource};
use super::*;
use crate::error::TokenCall;

const SECOND: Duration = Duration::from_secs(1);

fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap()
}

#[test]
fn a_round_dropped_with_its_runtime_does_not_block_the_next_one() {
    let source = TestSource::new();
    source.latency(10 * SECOND);
    let tokens = source.builder().build();
    paused_runtime().block_on(async {
        let waiting = tokio::spawn({
            let tokens = tokens.clone();
            async move { tokens.authorize().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "the login is slow");
    });
    // The runtime, and the round's task with it, are gone mid-login.
    source.latency(Duration::ZERO);
    paused_runtime().block_on(async {
        assert_eq!(tokens.authorize().await.unwrap().generation(), 1);
        assert_eq!(source.logins(), 2, "a new round, not the dead one's error");
    });
}

#[test]
fn authorize_reads_the_clock_when_the_runtime_fired_no_timer() {
    let source = TestSource::new();
    source.lifetime(2 * SECOND);
    let tokens = source.builder().build();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async { tokens.authorize().await.unwrap() });
    // Expired after 1.5 s (a quarter of the lifetime is the skew); the
    // runtime is not driven meanwhile, so no timer has fired.
    std::thread::sleep(Duration::from_millis(1600));
    let auth = runtime.block_on(async { tokens.authorize().await.unwrap() });
    assert_eq!(auth.generation(), 2);
}

#[test]
fn a_manager_kept_across_runtimes_still_sees_its_token_expire() {
    let source = TestSource::new();
    source.lifetime(4 * SECOND);
    let tokens = source.builder().build();
    paused_runtime().block_on(async {
        tokens.authorize().await.unwrap();
    });
    // The first runtime is gone, and its clock task with it.
    paused_runtime().block_on(async {
        assert!(tokens.try_authorize().is_some(), "still fresh");
        tokio::time::advance(5 * SECOND).await;
        assert!(tokens.try_authorize().is_none(), "expired");
        assert_eq!(tokens.authorize().await.unwrap().generation(), 2);
        assert_eq!(source.logins() + source.refreshes(), 2);
    });
}

async fn storm(tokens: &TokenManager, n: usize) -> Vec<Result<AuthHeader, Error>> {
    join_all((0..n).map(|_| {
        let tokens = tokens.clone();
        tokio::spawn(async move { tokens.authorize().await })
    }))
    .await
    .into_iter()
    .map(|joined| joined.expect("no caller panics"))
    .collect()
}

#[tokio::test(start_paused = true)]
async fn concurrent_cold_callers_share_one_login() {
    let source = TestSource::new();
    source.latency(Duration::from_millis(50));
    let tokens = source.manager();
    let headers = storm(&tokens, 50).await;
    assert!(headers
        .iter()
        .all(|h| h.as_ref().unwrap().generation() == 1));
    assert_eq!((source.logins(), source.refreshes()), (1, 0));
}

#[tokio::test(start_paused = true)]
async fn a_fresh_token_is_served_without_a_call() {
    let source = TestSource::new();
    let tokens = source.manager();
    let first = tokens.authorization().await.unwrap();
    sleep(1000 * SECOND).await;
    assert_eq!(tokens.try_authorize().unwrap().header(), &first);
    assert!(first.is_sensitive());
    assert_eq!(source.logins() + source.refreshes(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_stale_window_serves_at_once_and_refreshes_once_in_the_background() {
    let source = TestSource::new();
    source.lifetime(20 * SECOND);
    let tokens = source.manager();
    let old = tokens.authorize().await.unwrap();
    // Margin 10 s, moved up to 2 s earlier; skew 5 s: stale at 11 s.
    tokio::time::advance(11 * SECOND).await;
    source.latency(2 * SECOND);
    let started = Instant::now();
    for _ in 0..50 {
        let auth = tokens.try_authorize().expect("stale, still usable");
        assert_eq!(auth.generation(), old.generation());
    }
    assert_eq!(started.elapsed(), Duration::ZERO, "callers must not wait");
    sleep(3 * SECOND).await;
    assert_eq!(source.refreshes(), 1);
    assert_eq!(tokens.try_authorize().unwrap().generation(), 2);
    assert_eq!(source.presented(), ["refresh-1"]);
}

#[cfg(feature = "tower")]
#[tokio::test(start_paused = true)]
async fn a_token_cache_follows_the_current_token_through_its_phases() {
    let source = TestSource::new();
    source.lifetime(20 * SECOND);
    let tokens = source.manager();
    let mut cache = tokens.token_cache();
    assert!(cache.try_authorize(&tokens).is_none(), "no token yet");
    tokens.authorize().await.unwrap();
    assert_eq!(cache.try_authorize(&tokens).unwrap().generation(), 1);
    assert!(tokens.invalidate(1));
    assert!(cache.try_authorize(&tokens).is_none(), "invalidated");
    tokens.authorize().await.unwrap();
    assert_eq!(cache.try_authorize(&tokens).unwrap().generation(), 2);
    // Stale at 11 s (see the stale window's test): served, and the
    // cache's caller starts the background refresh.
    tokio::time::advance(11 * SECOND).await;
    assert_eq!(cache.try_authorize(&tokens).unwrap().generation(), 2);
    sleep(SECOND).await;
    assert_eq!(source.refreshes(), 2);
    assert_eq!(cache.try_authorize(&tokens).unwrap().generation(), 3);
    tokens.shared.current.load_full().unwrap().observe(
        Instant::now() + 20 * SECOND,
        std::time::SystemTime::now() + 20 * SECOND,
    );
    assert!(cache.try_authorize(&tokens).is_none(), "expired");
}

#[tokio::test(start_paused = true)]
async fn an_expired_token_makes_callers_wait_for_one_refresh() {
    let source = TestSource::new();
    source.lifetime(4 * SECOND);
    let tokens = source.manager();
    tokens.authorize().await.unwrap();
    sleep(Duration::from_millis(2900)).await;
    let first = tokens.shared.current.load_full().unwrap();
    assert_eq!(first.phase(), Phase::Stale, "usable for 3 s");
    sleep(Duration::from_millis(600)).await;
    assert!(tokens.try_authorize().is_none(), "past the skew");
    source.latency(Duration::from_millis(50));
    let headers = storm(&tokens, 30).await;
    assert!(headers
        .iter()
        .all(|h| h.as_ref().unwrap().generation() == 2));
    assert_eq!((source.logins(), source.refreshes()), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn a_flood_after_a_failed_round_makes_no_call_until_the_retry_time() {
    let source = TestSource::new();
    for _ in 0..5 {
        source.then(Step::Fail(server_error(TokenCall::Login)));
    }
    let tokens = source.manager();
    assert!(tokens.authorization().await.is_err());
    assert_eq!(source.logins(), 5);
    for _ in 0..100 {
        let err = tokens.authorization().await.unwrap_err();
        assert!(matches!(err, Error::Status { status: 503, .. }));
    }
    assert_eq!(source.logins(), 5, "the negative cache answers");
    assert_eq!(tokens.stats().failed_rounds, 1);
    // The default backoff's longest delay is 5 s.
    sleep(5 * SECOND).await;
    tokens.authorization().await.unwrap();
    assert_eq!(source.logins(), 6);
}

#[tokio::test(start_paused = true)]
async fn a_rate_limits_wait_sets_the_negative_cache() {
    let source = TestSource::new();
    let limited = Error::RateLimited {
        call: TokenCall::Login,
        retry_after: Some(30 * SECOND),
    };
    source.then(Step::Fail(limited));
    let tokens = source
        .builder()
        .backoff(Backoff::default().max_attempts(1))
        .build();
    assert!(tokens.authorization().await.is_err());
    sleep(29 * SECOND).await;
    assert!(matches!(
        tokens.authorization().await,
        Err(Error::RateLimited { .. })
    ));
    assert_eq!(source.logins(), 1);
    sleep(SECOND).await;
    tokens.authorization().await.unwrap();
    assert_eq!(source.logins(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_failed_background_refresh_keeps_the_token_until_the_backoff_ends() {
    let source = TestSource::new();
    source.lifetime(60 * SECOND);
    let tokens = source.manager();
    let old = tokens.authorize().await.unwrap();
    for _ in 0..5 {
        source.then(Step::Fail(server_error(TokenCall::Refresh)));
    }
    sleep(31 * SECOND).await;
    assert_eq!(tokens.try_authorize().unwrap().generation(), 1);
    // One round: 200 + 400 + 800 + 1600 ms between its five attempts.
    sleep(4 * SECOND).await;
    assert_eq!(source.refreshes(), 5);
    for _ in 0..100 {
        assert_eq!(tokens.try_authorize().unwrap().generation(), 1);
    }
    assert_eq!(source.refreshes(), 5, "no call during the backoff");
    sleep(5 * SECOND).await;
    assert_eq!(
        tokens.try_authorize().unwrap().generation(),
        old.generation()
    );
    sleep(SECOND).await;
    assert_eq!(tokens.try_authorize().unwrap().generation(), 2);
    assert_eq!(source.refreshes(), 6);
}

#[tokio::test(start_paused = true)]
async fn invalidating_the_current_generation_gets_the_next_token() {
    let source = TestSource::new();
    let tokens = source.manager();
    let first = tokens.authorize().await.unwrap();
    assert!(tokens.invalidate(first.generation()));
    assert!(tokens.try_authorize().is_none());
    let second = tokens.authorize().await.unwrap();
    assert_eq!(second.generation(), 2);
    assert_eq!(source.refreshes(), 1);
    assert_eq!(tokens.stats().invalidations, 1);
}

#[tokio::test(start_paused = true)]
async fn a_tiny_lifetime_costs_at_most_one_call_a_second() {
    let source = TestSource::new();
    // Under the 1 s floor: every answer is an unusable token.
    source.lifetime(Duration::from_millis(1));
    let tokens = source.manager();
    let started = Instant::now();
    // 200 callers over one second, all waiting on the one round.
    let callers = (0..200u32).map(|i| {
        let tokens = tokens.clone();
        tokio::spawn(async move {
            sleep(Duration::from_millis(5) * i).await;
            tokens.authorization().await
        })
    });
    for joined in join_all(callers).await {
        let err = joined.unwrap().unwrap_err();
        assert!(matches!(err, Error::InvalidToken { .. }), "{err:?}");
    }
    let calls = source.logins() + source.refreshes();
    assert_eq!(calls, 5, "one round of 5 attempts, not one call per caller");
    // The attempts were a second apart, not the backoff's 200 ms onwards.
    assert!(started.elapsed() >= 4 * SECOND, "{:?}", started.elapsed());
}

#[tokio::test(start_paused = true)]
async fn a_401_is_not_held_back_by_the_floor() {
    let source = TestSource::new();
    let tokens = source.manager();
    let started = Instant::now();
    let first = tokens.authorize().await.unwrap();
    assert!(tokens.invalidate(first.generation()));
    assert_eq!(tokens.authorize().await.unwrap().generation(), 2);
    assert_eq!(started.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn a_background_refresh_waits_for_the_floor_until_a_caller_needs_it() {
    let source = TestSource::new();
    // Stale after at most 0.5 s, expired after 0.75 s.
    source.lifetime(SECOND);
    let tokens = source.manager();
    let started = Instant::now();
    tokens.authorize().await.unwrap();
    sleep(Duration::from_millis(600)).await;
    // Stale: served at once, and the background round waits for the floor.
    assert_eq!(tokens.authorize().await.unwrap().generation(), 1);
    tokio::task::yield_now().await;
    assert_eq!(source.refreshes(), 0, "held until 1 s after the login");
    sleep(Duration::from_millis(200)).await;
    // Expired at 0.8 s: this caller needs the round, which goes now.
    assert_eq!(tokens.authorize().await.unwrap().generation(), 2);
    assert_eq!(started.elapsed(), Duration::from_millis(800));
    assert_eq!(source.logins() + source.refreshes(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_late_401_for_an_older_generation_refreshes_nothing() {
    let source = TestSource::new();
    let tokens = source.manager();
    let first = tokens.authorize().await.unwrap();
    assert!(tokens.invalidate(first.generation()));
    let second = tokens.authorize().await.unwrap();
    assert!(!tokens.invalidate(first.generation()), "late");
    assert!(!tokens.invalidate(first.generation()), "still late");
    sleep(SECOND).await;
    assert_eq!(source.refreshes(), 1);
    assert_eq!(
        tokens.try_authorize().unwrap().generation(),
        second.generation()
    );
}

#[tokio::test(start_paused = true)]
async fn a_suspend_past_expiry_makes_callers_wait_for_a_new_token() {
    let source = TestSource::new();
    let wall = TestClock::default();
    let tokens = source.builder().wall_clock(wall.clone()).build();
    tokens.authorize().await.unwrap();
    // The monotonic clock stood still; the wall clock moved an hour.
    // The clock task compares the wall clock every second.
    wall.suspend(3600 * SECOND);
    tokio::time::advance(SECOND).await;
    assert!(tokens.try_authorize().is_none());
    assert_eq!(tokens.authorize().await.unwrap().generation(), 2);
    assert_eq!(source.refreshes(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_caller_does_not_cancel_the_round() {
    let source = TestSource::new();
    source.lifetime(4 * SECOND);
    let tokens = source.manager();
    tokens.authorize().await.unwrap();
    sleep(4 * SECOND).await;
    source.latency(Duration::from_millis(500));
    let gave_up = tokio::time::timeout(Duration::from_millis(100), tokens.authorize()).await;
    assert!(gave_up.is_err());
    sleep(SECOND).await;
    assert_eq!(tokens.stats().generation, 2, "installed with no waiter");
    // The rotated refresh token was kept: the next refresh presents it.
    source.latency(Duration::ZERO);
    sleep(4 * SECOND).await;
    tokens.authorize().await.unwrap();
    assert_eq!(source.presented(), ["refresh-1", "refresh-2"]);
}

#[tokio::test(start_paused = true)]
async fn a_hanging_call_times_out() {
    let source = TestSource::new();
    source.latency(3600 * SECOND);
    let tokens = source
        .builder()
        .call_timeout(2 * SECOND)
        .backoff(Backoff::default().max_attempts(2))
        .build();
    let started = Instant::now();
    let err = tokens.authorization().await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Timeout {
                call: TokenCall::Login,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(started.elapsed() < 5 * SECOND);
    assert_eq!(source.logins(), 2);
}
