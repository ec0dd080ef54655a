//! One round of token calls: attempts spaced by the [`Backoff`], through
//! backon.

use std::future::Future;
use std::time::Duration;

use backon::Retryable;

use super::flight::FLOOR;
use super::Backoff;
use crate::error::Error;

/// Runs `attempt` until it succeeds, fails permanently, or the round's
/// attempts are spent. A rate-limited endpoint's own wait
/// ([`Error::retry_after`]) replaces the computed delay, and an endpoint
/// that answered with an unusable token (one living under a second, say)
/// is asked again no sooner than [`FLOOR`] later: however fast it answers,
/// it gets at most one call a second.
///
/// # Errors
///
/// The last attempt's error.
pub(super) async fn round<T, F, Fut>(backoff: &Backoff, attempt: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    attempt
        .retry(backoff.delays())
        .when(Error::is_transient)
        .adjust(|error, delay| delay.map(|delay| next_delay(error, delay)))
        .notify(|error, delay| {
            tracing::warn!(%error, retry_in = ?delay, "token call failed, retrying");
        })
        .await
}

/// The wait before the next attempt after `error`, `computed` by the
/// backoff.
fn next_delay(error: &Error, computed: Duration) -> Duration {
    match error {
        Error::InvalidToken { .. } => computed.max(FLOOR),
        _ => error.retry_after().unwrap_or(computed),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    use tokio::time::Instant;

    use super::*;
    use crate::error::TokenCall;

    fn server_error() -> Error {
        Error::Status {
            call: TokenCall::Login,
            status: 503,
            title: None,
        }
    }

    /// An attempt that fails with the errors of `script`, then succeeds.
    async fn run(backoff: Backoff, script: Vec<Error>) -> (Result<u32, Error>, u32, Duration) {
        let calls = AtomicU32::new(0);
        let started = Instant::now();
        let result = round(&backoff, || async {
            let call = calls.fetch_add(1, Ordering::Relaxed) as usize;
            script.get(call).cloned().map_or(Ok(call as u32), Err)
        })
        .await;
        (result, calls.load(Ordering::Relaxed), started.elapsed())
    }

    #[tokio::test(start_paused = true)]
    async fn transient_failures_are_retried_with_growing_delays() {
        let backoff = Backoff::default().jitter(false);
        let (result, calls, elapsed) = run(backoff, vec![server_error(), server_error()]).await;
        assert_eq!(result.unwrap(), 2);
        assert_eq!(calls, 3);
        // Tokio's timer rounds each deadline up to the next millisecond.
        assert!(elapsed >= Duration::from_millis(600), "{elapsed:?}");
        assert!(elapsed < Duration::from_millis(610), "{elapsed:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn an_unusable_token_is_asked_for_again_no_sooner_than_a_second_later() {
        let short_lived = Error::InvalidToken {
            reason: "expires_in is 0.001 s".into(),
        };
        let backoff = Backoff::default().jitter(false);
        let (result, calls, elapsed) = run(backoff, vec![short_lived.clone(), short_lived]).await;
        assert_eq!(result.unwrap(), 2);
        assert_eq!(calls, 3);
        // Two waits of a second, not the backoff's 200 and 400 ms.
        assert!(elapsed >= 2 * FLOOR, "{elapsed:?}");
        assert!(
            elapsed < 2 * FLOOR + Duration::from_millis(10),
            "{elapsed:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_permanent_failure_is_not_retried() {
        let rejected = Error::ApiKeyRejected {
            status: 400,
            title: None,
        };
        let (result, calls, elapsed) = run(Backoff::default(), vec![rejected]).await;
        assert!(matches!(result, Err(Error::ApiKeyRejected { .. })));
        assert_eq!((calls, elapsed), (1, Duration::ZERO));
    }

    #[tokio::test(start_paused = true)]
    async fn a_rate_limits_wait_replaces_the_computed_delay() {
        let limited = Error::RateLimited {
            call: TokenCall::Refresh,
            retry_after: Some(Duration::from_secs(3)),
        };
        let backoff = Backoff::default().jitter(false);
        let (result, calls, elapsed) = run(backoff, vec![limited]).await;
        assert_eq!((result.unwrap(), calls), (1, 2));
        assert!(elapsed >= Duration::from_secs(3), "{elapsed:?}");
        assert!(elapsed < Duration::from_millis(3010), "{elapsed:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn the_last_error_comes_back_when_the_attempts_are_spent() {
        let backoff = Backoff::default().jitter(false).max_attempts(3);
        let (result, calls, _) = run(backoff, vec![server_error(); 5]).await;
        assert!(matches!(result, Err(Error::Status { status: 503, .. })));
        assert_eq!(calls, 3);
    }
}
