//! The token lifecycle against the api.video double, with exact call counts
//! at the server.

mod support;

use std::time::Duration;

use bearer_refresh::testing::ApiVideoDouble;
use bearer_refresh::{Backoff, Error, TokenManager};
use futures::future::join_all;
use support::{builder, eventually, settle, steady_backoff};
use tokio::time::{advance, Instant};

async fn storm(tokens: &TokenManager, n: usize) -> Vec<Result<http::HeaderValue, Error>> {
    join_all((0..n).map(|_| {
        let tokens = tokens.clone();
        tokio::spawn(async move { tokens.authorization().await })
    }))
    .await
    .into_iter()
    .map(|joined| joined.expect("no caller panics"))
    .collect()
}

#[tokio::test(start_paused = true)]
async fn a_cold_storm_makes_one_login() {
    let double = ApiVideoDouble::start().await.unwrap();
    double.set_latency(Duration::from_millis(50));
    let tokens = TokenManager::new(double.source());
    let headers = storm(&tokens, 100).await;
    let first = headers[0].as_ref().unwrap();
    assert!(headers.iter().all(|h| h.as_ref().unwrap() == first));
    assert!(first.is_sensitive());
    assert_eq!(double.calls().logins, 1);
    assert_eq!(tokens.stats().generation, 1);
}

#[tokio::test(start_paused = true)]
async fn a_storm_after_expiry_makes_one_refresh() {
    let double = ApiVideoDouble::start().await.unwrap();
    double.set_lifetime(Duration::from_secs(4));
    let tokens = TokenManager::new(double.source());
    let old = tokens.authorization().await.unwrap();
    // A 4 s token is usable for 3 s (the skew is a quarter of it).
    advance(Duration::from_millis(3500)).await;
    double.set_latency(Duration::from_millis(50));
    let headers = storm(&tokens, 100).await;
    let new = headers[0].as_ref().unwrap();
    assert_ne!(new, old);
    assert!(headers.iter().all(|h| h.as_ref().unwrap() == new));
    let calls = double.calls();
    assert_eq!((calls.logins, calls.refreshes), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn the_stale_window_serves_at_once_while_one_refresh_runs() {
    let double = ApiVideoDouble::start().await.unwrap();
    double.set_lifetime(Duration::from_secs(20));
    let tokens = TokenManager::new(double.source());
    let old = tokens.authorization().await.unwrap();
    // Margin 10 s (half the lifetime), skew 5 s: at 12 s the token is stale.
    advance(Duration::from_secs(12)).await;
    double.set_latency(Duration::from_secs(2));
    let started = Instant::now();
    for _ in 0..50 {
        assert_eq!(tokens.authorization().await.unwrap(), old);
    }
    assert_eq!(started.elapsed(), Duration::ZERO, "callers must not wait");
    eventually(Duration::from_secs(5), || double.calls().refreshes == 1).await;
    eventually(Duration::from_secs(5), || tokens.stats().generation == 2).await;
    assert_ne!(tokens.authorization().await.unwrap(), old);
    assert_eq!(double.calls().refreshes, 1);
    assert_eq!(double.calls().logins, 1);
}

#[tokio::test(start_paused = true)]
async fn a_rejected_refresh_token_falls_back_to_one_login() {
    let double = ApiVideoDouble::start().await.unwrap();
    double.set_lifetime(Duration::from_secs(4));
    let tokens = TokenManager::new(double.source());
    tokens.authorization().await.unwrap();
    double.reject_refresh_tokens(true);
    advance(Duration::from_secs(4)).await;
    let headers = storm(&tokens, 20).await;
    assert!(headers.iter().all(Result::is_ok));
    let calls = double.calls();
    assert_eq!((calls.refreshes, calls.logins), (1, 2));
    assert_eq!(tokens.stats().fallback_logins, 1);
}

#[tokio::test(start_paused = true)]
async fn a_rejected_api_key_is_a_permanent_error_without_a_loop() {
    let double = ApiVideoDouble::start().await.unwrap();
    let tokens = TokenManager::new(double.source_with_key("wrong-key"));
    for _ in 0..20 {
        let err = tokens.authorization().await.unwrap_err();
        assert!(
            matches!(err, Error::ApiKeyRejected { status: 400, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("API key"));
        assert!(!err.is_transient());
    }
    assert_eq!(double.calls().logins, 1);
}

#[tokio::test(start_paused = true)]
async fn a_rejected_key_after_a_rejected_refresh_names_both() {
    let double = ApiVideoDouble::start().await.unwrap();
    double.set_lifetime(Duration::from_secs(4));
    let tokens = TokenManager::new(double.source());
    tokens.authorization().await.unwrap();
    double.reject_refresh_tokens(true);
    double.reject_api_key(true);
    advance(Duration::from_secs(4)).await;
    let err = tokens.authorization().await.unwrap_err();
    assert!(matches!(err, Error::ReloginFailed { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("refresh token") && text.contains("API key"),
        "{text}"
    );
    let calls = double.calls();
    assert_eq!((calls.refreshes, calls.logins), (1, 2));
}

#[tokio::test(start_paused = true)]
async fn server_errors_are_retried_until_success() {
    let double = ApiVideoDouble::start().await.unwrap();
    double.fail_next(2, 500);
    let tokens = builder(&double).backoff(steady_backoff()).build();
    let started = Instant::now();
    tokens.authorization().await.unwrap();
    assert_eq!(double.calls().logins, 3);
    // 200 ms, then 400 ms.
    assert!(started.elapsed() >= Duration::from_millis(600));
}

#[tokio::test(start_paused = true)]
async fn a_429_waits_for_the_advertised_time() {
    let double = ApiVideoDouble::start().await.unwrap();
    double.rate_limit_next(1, 1);
    let tokens = TokenManager::new(double.source());
    tokens.authorization().await.unwrap();
    let times = double.auth_call_times();
    assert_eq!(times.len(), 2);
    assert!(
        times[1] - times[0] >= Duration::from_secs(1),
        "{:?}",
        times[1] - times[0]
    );
}

#[tokio::test(start_paused = true)]
async fn a_flood_during_an_outage_is_bounded_and_recovers() {
    let double = ApiVideoDouble::start().await.unwrap();
    double.fail_next(10_000, 503);
    let tokens = TokenManager::new(double.source());
    let mut errors = 0;
    // 30 s of a flood: 20 callers every 100 ms.
    for _ in 0..300 {
        for result in storm(&tokens, 20).await {
            errors += usize::from(result.is_err());
        }
        advance(Duration::from_millis(100)).await;
    }
    let calls = double.calls().logins;
    // A round is at most 5 calls spread over ~3 s, then 5 s of negative
    // caching: about 4 rounds in 30 s, whatever the flood.
    assert!((5..=30).contains(&calls), "{calls} token calls");
    assert!(errors > 0);
    double.clear_faults();
    advance(Duration::from_secs(6)).await;
    tokens.authorization().await.unwrap();
    assert_eq!(double.calls().logins, calls + 1);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_caller_does_not_cancel_the_login() {
    let double = ApiVideoDouble::start().await.unwrap();
    double.set_latency(Duration::from_secs(1));
    let tokens = TokenManager::new(double.source());
    let first = tokio::spawn({
        let tokens = tokens.clone();
        async move { tokens.authorization().await }
    });
    eventually(Duration::from_secs(1), || double.calls().logins == 1).await;
    first.abort();
    assert!(first.await.unwrap_err().is_cancelled());
    let timed_out = tokio::time::timeout(Duration::from_millis(10), tokens.authorization()).await;
    assert!(timed_out.is_err());
    tokens.authorization().await.unwrap();
    assert_eq!(double.calls().logins, 1);
}

#[tokio::test(start_paused = true)]
async fn a_rotated_refresh_token_is_never_presented_twice() {
    let double = ApiVideoDouble::start().await.unwrap();
    double.set_lifetime(Duration::from_secs(4));
    let tokens = TokenManager::new(double.source());
    tokens.authorization().await.unwrap();
    for round in 1..=10 {
        advance(Duration::from_secs(4)).await;
        let headers = storm(&tokens, 20).await;
        assert!(headers.iter().all(Result::is_ok), "round {round}");
    }
    let calls = double.calls();
    assert_eq!(calls.refreshes, 10);
    assert_eq!(calls.refresh_reuses, 0);
    assert_eq!(calls.logins, 1);
}

#[tokio::test(start_paused = true)]
async fn a_rotated_refresh_token_is_stored_when_nobody_waits() {
    let double = ApiVideoDouble::start().await.unwrap();
    double.set_lifetime(Duration::from_secs(4));
    let tokens = TokenManager::new(double.source());
    tokens.authorization().await.unwrap();
    advance(Duration::from_secs(4)).await;
    double.set_latency(Duration::from_millis(500));
    // Every waiter gives up before the refresh answers.
    let gave_up = tokio::time::timeout(Duration::from_millis(100), tokens.authorization()).await;
    assert!(gave_up.is_err());
    eventually(Duration::from_secs(2), || tokens.stats().generation == 2).await;
    double.set_latency(Duration::ZERO);
    advance(Duration::from_secs(4)).await;
    tokens.authorization().await.unwrap();
    let calls = double.calls();
    assert_eq!(
        (calls.refreshes, calls.logins, calls.refresh_reuses),
        (2, 1, 0)
    );
}

#[tokio::test(start_paused = true)]
async fn malformed_responses_give_a_clear_error_then_recover() {
    let double = ApiVideoDouble::start().await.unwrap();
    double.malformed_next(5, "{not json");
    let tokens = TokenManager::new(double.source());
    let err = tokens.authorization().await.unwrap_err();
    assert!(matches!(err, Error::InvalidResponse { .. }), "{err:?}");
    assert!(err.to_string().contains("could not be decoded"));
    advance(Duration::from_secs(6)).await;
    tokens.authorization().await.unwrap();
    assert_eq!(double.calls().logins, 6);
}

#[tokio::test(start_paused = true)]
async fn a_missing_expires_in_falls_back_to_the_jwt_exp() {
    let double = ApiVideoDouble::start().await.unwrap();
    double.send_expires_in(false);
    double.set_lifetime(Duration::from_secs(600));
    let tokens = TokenManager::new(double.source());
    let first = tokens.authorization().await.unwrap();
    // The short default (60 s) would have expired by now; the JWT says 600 s.
    advance(Duration::from_secs(100)).await;
    assert_eq!(tokens.authorization().await.unwrap(), first);
    settle().await;
    assert_eq!(double.calls().refreshes, 0);
    // Past the margin (300 s left), it refreshes in the background.
    advance(Duration::from_secs(250)).await;
    tokens.authorization().await.unwrap();
    eventually(Duration::from_secs(1), || double.calls().refreshes == 1).await;
}

#[tokio::test(start_paused = true)]
async fn a_hanging_endpoint_times_out() {
    let double = ApiVideoDouble::start().await.unwrap();
    double.hang(true);
    let tokens = builder(&double)
        .call_timeout(Duration::from_secs(2))
        .backoff(Backoff::default().max_attempts(2))
        .build();
    let err = tokens.authorization().await.unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert_eq!(double.calls().logins, 2);
}

#[tokio::test(start_paused = true)]
async fn invalidation_checks_the_generation() {
    let double = ApiVideoDouble::start().await.unwrap();
    let tokens = TokenManager::new(double.source());
    let first = tokens.authorize().await.unwrap();
    assert_eq!(first.generation(), 1);
    assert!(!tokens.invalidate(0), "an older generation changes nothing");
    assert!(tokens.invalidate(1));
    assert!(
        !tokens.invalidate(1),
        "a second 401 for the same token is late"
    );
    let second = tokens.authorize().await.unwrap();
    assert_eq!(second.generation(), 2);
    assert_ne!(second.header(), first.header());
    assert_eq!(double.calls().refreshes, 1);
    assert_eq!(tokens.stats().invalidations, 1);
}

#[tokio::test(start_paused = true)]
async fn background_mode_refreshes_an_idle_client_and_stops_with_it() {
    let double = ApiVideoDouble::start().await.unwrap();
    double.set_lifetime(Duration::from_secs(4));
    let tokens = builder(&double).background_refresh(true).build();
    eventually(Duration::from_secs(1), || double.calls().logins == 1).await;
    // Stale at 2 s: the task refreshes with no request at all.
    advance(Duration::from_millis(2100)).await;
    eventually(Duration::from_secs(1), || double.calls().refreshes == 1).await;
    let started = Instant::now();
    tokens.authorization().await.unwrap();
    assert_eq!(started.elapsed(), Duration::ZERO);
    drop(tokens);
    let before = double.calls();
    advance(Duration::from_secs(20)).await;
    settle().await;
    assert_eq!(double.calls(), before, "the task ends with the last clone");
}

#[tokio::test(start_paused = true)]
async fn debug_output_shows_no_secret() {
    let double = ApiVideoDouble::start().await.unwrap();
    let source = double.source();
    let tokens = TokenManager::new(source.clone());
    let auth = tokens.authorize().await.unwrap();
    let printed = format!("{source:?} {tokens:?} {auth:?} {:?}", auth.header());
    assert!(!printed.contains(ApiVideoDouble::API_KEY), "{printed}");
    for secret in double.issued_secrets() {
        assert!(!printed.contains(&secret), "{printed}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_failed_background_refresh_keeps_the_token_and_waits_for_the_backoff() {
    let double = ApiVideoDouble::start().await.unwrap();
    double.set_lifetime(Duration::from_secs(60));
    let tokens = builder(&double).backoff(steady_backoff()).build();
    let old = tokens.authorization().await.unwrap();
    // Stale after 30 s, usable until 45 s.
    advance(Duration::from_secs(31)).await;
    double.fail_next(1_000, 503);
    assert_eq!(tokens.authorization().await.unwrap(), old);
    // One round: 5 attempts over 200 + 400 + 800 + 1600 ms.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(double.calls().refreshes, 5);
    assert_eq!(tokens.stats().failed_rounds, 1);
    // During the backoff every request is served with the current token and
    // no request starts another call.
    for _ in 0..100 {
        assert_eq!(tokens.authorization().await.unwrap(), old);
    }
    settle().await;
    assert_eq!(double.calls().refreshes, 5);
    // After it, the next request starts the next round, which succeeds.
    double.clear_faults();
    advance(Duration::from_secs(5)).await;
    assert_eq!(tokens.authorization().await.unwrap(), old);
    eventually(Duration::from_secs(1), || tokens.stats().generation == 2).await;
    assert_ne!(tokens.authorization().await.unwrap(), old);
    assert_eq!(double.calls().refreshes, 6);
}
