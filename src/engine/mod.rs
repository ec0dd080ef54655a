//! [`TokenManager`]: one token shared by every clone, and its lifecycle.
//!
//! - `mod.rs`: the handle and the hot path;
//! - [`cache`]: a per-user cache of the current token, for the tower
//!   service's hot path;
//! - [`builder`]: the settings;
//! - [`flight`]: single flight and the negative cache;
//! - [`retry`]: one round of attempts, through backon;
//! - [`exchange`]: refresh, falling back to a login, and rotation;
//! - [`lifetime`]: margins, skews, jitter, and the token's phase;
//! - [`cron`]: the clock task that moves phases and refreshes in the
//!   background;
//! - [`stats`]: the counters.
//!
//! The fleet protocol lives with the stores ([`crate::store::SharedStore`]).

mod backoff;
mod builder;
#[cfg(feature = "tower")]
mod cache;
mod cron;
mod exchange;
mod flight;
mod lifetime;
mod retry;
mod stats;
#[cfg(test)]
mod test_source;

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use http::HeaderValue;
use secrecy::SecretString;
use tokio::sync::watch;
use tokio::time::Instant;

pub use self::backoff::Backoff;
pub use self::builder::TokenManagerBuilder;
use self::builder::{RefreshTokenHook, Settings};
#[cfg(feature = "tower")]
pub(crate) use self::cache::TokenCache;
use self::flight::{Join, SingleFlight, Waiter};
use self::lifetime::{Cached, Phase};
use self::stats::Counters;
pub use self::stats::Stats;
use crate::error::Error;
use crate::origin::Origin;
use crate::source::TokenSource;
use crate::store::SharedStore;

/// A bearer header together with the generation of the token in it.
///
/// The request side remembers the generation it sent, so that a 401 only
/// invalidates the token it was actually about (see
/// [`TokenManager::invalidate`]).
#[derive(Clone)]
pub struct AuthHeader {
    header: HeaderValue,
    generation: u64,
}

impl AuthHeader {
    /// The `Authorization` value, `Bearer <access token>`, marked sensitive.
    pub fn header(&self) -> &HeaderValue {
        &self.header
    }

    /// The token's generation: 1 for the first token, one more for each
    /// token after it.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Takes the header out.
    pub fn into_header(self) -> HeaderValue {
        self.header
    }
}

impl fmt::Debug for AuthHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthHeader")
            .field("header", &"Bearer [redacted]")
            .field("generation", &self.generation)
            .finish()
    }
}

/// Keeps one bearer token alive and shares it between every clone.
///
/// Cloning is cheap: all clones share one store, one refresh at a time and
/// one set of counters.
///
/// - **Fresh** token: [`authorization`](Self::authorization) returns the
///   cached header without locking or waiting.
/// - **Stale** (less than the refresh margin left, moved earlier by a
///   random part of it): the current token is returned at once and one
///   refresh starts in the background.
/// - **Expired** (less than the expiry skew left, on the monotonic or the
///   wall clock), or no token yet: callers wait for the single token call
///   in flight.
///
/// Token calls run in a spawned task, so a caller that gives up never
/// cancels a refresh the others are waiting on. Transient failures are
/// retried with [`Backoff`]; a rejected refresh token falls back to a login.
///
/// ```
/// use std::time::Duration;
/// use bearer_refresh::{ApiKeySource, TokenManager};
///
/// let source = ApiKeySource::new(ApiKeySource::SANDBOX, "my-api-key")?;
/// let tokens = TokenManager::builder(source)
///     .refresh_margin(Duration::from_secs(300))
///     .build();
/// let clone = tokens.clone(); // the same store
/// assert!(!format!("{clone:?}").contains("my-api-key"));
/// # Ok::<(), bearer_refresh::Error>(())
/// ```
#[derive(Clone)]
pub struct TokenManager {
    shared: Arc<Shared>,
}

struct Shared {
    source: Box<dyn TokenSource>,
    /// The fleet's shared store, if any; the hot path never touches it.
    store: Option<SharedStore>,
    origin: Option<Origin>,
    settings: Settings,
    on_refresh_token: Option<RefreshTokenHook>,
    /// The hot path reads only this.
    current: ArcSwapOption<Cached>,
    /// Everything else. Never held across an `.await`.
    state: Mutex<State>,
    counters: Counters,
    /// Wakes the clock task when a round ends; dropped with the last
    /// clone, which ends it.
    clock: watch::Sender<()>,
}

struct State {
    refresh_token: Option<SecretString>,
    /// The last refresh token the endpoint rejected: never sent again.
    rejected_refresh: Option<SecretString>,
    generation: u64,
    flight: SingleFlight<Arc<Cached>>,
    /// The header of the last token a 401 rejected: never adopted again
    /// from the shared store.
    invalidated: Option<HeaderValue>,
}

impl TokenManager {
    /// A manager with the default settings.
    pub fn new(source: impl TokenSource) -> Self {
        Self::builder(source).build()
    }

    /// Starts configuring a manager for `source`.
    pub fn builder(source: impl TokenSource) -> TokenManagerBuilder {
        TokenManagerBuilder::new(Box::new(source))
    }

    /// The `Authorization` header value, `Bearer <access token>`, marked
    /// sensitive. Logs in or refreshes first when needed.
    ///
    /// # Errors
    ///
    /// The token call's error when no usable token could be had: a rejected
    /// API key ([`Error::ApiKeyRejected`]), or a transient failure that
    /// outlasted the retries. The error is served to every caller until the
    /// backoff allows the next attempt.
    pub async fn authorization(&self) -> Result<HeaderValue, Error> {
        self.authorize().await.map(AuthHeader::into_header)
    }

    /// Like [`authorization`](Self::authorization), with the token's
    /// generation.
    ///
    /// # Errors
    ///
    /// As for [`authorization`](Self::authorization).
    pub async fn authorize(&self) -> Result<AuthHeader, Error> {
        // The adapters' hot path reads only the phase flag that the clock
        // task's timers move. A caller awaiting a token directly gets a
        // strict answer: read the clocks once, for a runtime that has not
        // fired its timers yet (one driven only by `block_on`, say).
        if let Some(cached) = self.shared.current.load().as_ref() {
            cached.observe(Instant::now(), lifetime::wall_now());
        }
        if let Some(auth) = self.try_authorize() {
            return Ok(auth);
        }
        let joined = {
            let mut state = self.shared.lock();
            // A round may have ended between the check above and the lock.
            // Checked inline: `try_authorize` may take this same lock.
            if let Some(cached) = self.shared.current.load_full() {
                match cached.phase() {
                    Phase::Fresh | Phase::Quiet => return Ok(cached.auth_header()),
                    Phase::Stale => {
                        self.on_stale(&mut state, &cached);
                        return Ok(cached.auth_header());
                    }
                    Phase::Expired => {}
                }
            }
            match state.flight.join(Instant::now()) {
                Join::Wait(waiter) => Ok(waiter),
                Join::Failed(error) => Err(error),
                Join::Idle => self.start_flight(&mut state),
            }
        };
        match joined {
            Ok(waiter) => waiter.wait().await.map(|cached| cached.auth_header()),
            Err(error) => {
                // The negative cache answers without awaiting anything; a
                // caller retrying in a loop must still let the runtime run
                // other tasks (the token endpoint's among them).
                tokio::task::consume_budget().await;
                Err(error)
            }
        }
    }

    /// The current header without waiting, if there is a usable token.
    ///
    /// This is the hot path: one atomic load of the token, one of its phase
    /// flag (moved by the clock task's timers), and one to see that the
    /// clock task lives; no clock read, no lock, no allocation. Inside the
    /// stale window the first caller also starts the background refresh.
    #[inline]
    pub fn try_authorize(&self) -> Option<AuthHeader> {
        let guard = self.shared.current.load();
        self.serve(guard.as_ref()?)
    }

    /// The hot path's phase logic, for a token loaded here or through a
    /// [`TokenCache`].
    #[inline]
    fn serve(&self, cached: &Cached) -> Option<AuthHeader> {
        if self.shared.clock.receiver_count() == 0 {
            self.revive_clock(cached);
        }
        match cached.phase() {
            Phase::Fresh | Phase::Quiet => Some(cached.auth_header()),
            Phase::Stale => {
                self.refresh_in_background(cached.generation);
                Some(cached.auth_header())
            }
            Phase::Expired => None,
        }
    }

    /// The clock task died with the runtime it ran on (a manager kept
    /// across runtimes, as in tests sharing one): nothing moves the phase
    /// flag any more, so read the clocks here and start the task again on
    /// this runtime.
    #[cold]
    fn revive_clock(&self, cached: &Cached) {
        cached.observe(Instant::now(), lifetime::wall_now());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let _state = self.shared.lock();
            cron::ensure(&self.shared, &runtime);
        }
    }

    /// Declares the token of `generation` rejected (the API answered 401)
    /// and starts getting the next one.
    ///
    /// Only the current generation is invalidated: a late 401 for an older
    /// token changes nothing, so a burst of 401s costs one refresh. Returns
    /// whether the token was invalidated.
    ///
    /// Outside a Tokio runtime the next token is fetched on the next
    /// [`authorize`](Self::authorize) instead of at once.
    pub fn invalidate(&self, generation: u64) -> bool {
        let mut state = self.shared.lock();
        let current = self.shared.current.load();
        let Some(cached) = current.as_ref().filter(|c| c.generation == generation) else {
            return false;
        };
        state.invalidated = Some(cached.header.clone());
        self.shared.current.store(None);
        Counters::bump(&self.shared.counters.invalidations);
        tracing::debug!(generation, "token invalidated by a 401");
        if !state.flight.is_quiet(Instant::now()) {
            // No one may be waiting, but the next request should find a
            // fresh token.
            let _ = self.start_flight(&mut state);
        }
        true
    }

    /// The origin the token belongs to, from the [`TokenSource`].
    pub fn origin(&self) -> Option<&Origin> {
        self.shared.origin.as_ref()
    }

    /// What the manager has done so far.
    pub fn stats(&self) -> Stats {
        self.shared.counters.snapshot()
    }

    /// Whether a shared store is configured and answering.
    pub fn store_available(&self) -> bool {
        self.shared
            .store
            .as_ref()
            .is_some_and(SharedStore::is_available)
    }

    /// The backoff settings, shared with the request side's replays.
    pub(crate) fn backoff(&self) -> &Backoff {
        &self.shared.settings.backoff
    }

    #[cold]
    fn refresh_in_background(&self, generation: u64) {
        let mut state = self.shared.lock();
        let current = self.shared.current.load_full();
        if let Some(cached) = current.filter(|c| c.generation == generation) {
            self.on_stale(&mut state, &cached);
        }
    }

    /// The current token is stale: start a refresh unless one runs or the
    /// last one's backoff lasts, and quieten the token either way.
    fn on_stale(&self, state: &mut State, cached: &Cached) {
        if !state.flight.is_quiet(Instant::now()) {
            tracing::debug!(
                generation = cached.generation,
                "token is stale, refreshing in the background"
            );
            if self.start_flight(state).is_err() {
                return;
            }
        }
        cached.quiet();
    }

    /// Spawns a round. Runs under the state lock, so there is never more
    /// than one.
    fn start_flight(&self, state: &mut State) -> Result<Waiter<Arc<Cached>>, Error> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| Error::config("TokenManager must be used inside a Tokio runtime"))?;
        cron::ensure(&self.shared, &runtime);
        let (landing, waiter) = state.flight.start();
        let shared = Arc::clone(&self.shared);
        runtime.spawn(async move {
            let outcome = retry::round(&shared.settings.backoff, || shared.attempt()).await;
            shared.finish(&outcome);
            landing.send(outcome);
        });
        Ok(waiter)
    }
}

impl fmt::Debug for TokenManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenManager")
            .field(
                "origin",
                &self.shared.origin.as_ref().map(ToString::to_string),
            )
            .field("settings", &self.shared.settings)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave `State` half-written
        // (every update is a single assignment), so a poisoned lock is safe
        // to keep using.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Ends the round: records a failure for the negative cache and wakes
    /// the clock task. The caller then tells the waiters.
    fn finish(&self, outcome: &Result<Arc<Cached>, Error>) {
        let now = Instant::now();
        let wait = match outcome {
            Ok(_) => Duration::ZERO,
            Err(error) => {
                Counters::bump(&self.counters.failed_rounds);
                let wait = error
                    .retry_after()
                    .unwrap_or(self.settings.backoff.max_value());
                tracing::warn!(%error, retry_in = ?wait, "token round failed");
                wait
            }
        };
        self.lock().flight.land(outcome, now + wait);
        self.clock.send_replace(());
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures::future::join_all;
    use tokio::time::{sleep, Instant};

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
            lifetime::wall_now() + 20 * SECOND,
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
        let tokens = source.manager();
        tokens.authorize().await.unwrap();
        // The monotonic clock stood still; the wall clock moved an hour.
        // The clock task compares the wall clock every second.
        lifetime::suspend(3600 * SECOND);
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
}
