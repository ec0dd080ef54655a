//! [`TokenManager`]: one token shared by every clone, and its lifecycle.
//!
//! - `mod.rs`: the handle and the hot path;
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
use self::builder::{RefreshTokenHook, Settings};
pub use self::builder::TokenManagerBuilder;
use self::exchange::Minted;
use self::flight::{Join, SingleFlight, Waiter};
use self::lifetime::{Cached, Deadlines, Phase};
use self::stats::Counters;
pub use self::stats::Stats;
use crate::error::Error;
use crate::request::Origin;
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
    /// flag (moved by a timer on the monotonic clock), and one wall-clock
    /// read; no lock, no allocation. Inside the stale window the first
    /// caller also starts the background refresh.
    #[inline]
    pub fn try_authorize(&self) -> Option<AuthHeader> {
        let guard = self.shared.current.load();
        let cached = guard.as_ref()?;
        match cached.phase() {
            Phase::Fresh | Phase::Quiet => Some(cached.auth_header()),
            Phase::Stale => {
                self.refresh_in_background(cached.generation);
                Some(cached.auth_header())
            }
            Phase::Expired => None,
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

    /// One attempt: through the shared store when there is one and it
    /// answers, else alone.
    async fn attempt(&self) -> Result<Arc<Cached>, Error> {
        if let Some(store) = &self.store {
            let lease_ttl = self.settings.call_timeout + Duration::from_secs(1);
            if let Some(outcome) = store.fetch(self, lease_ttl).await {
                return outcome;
            }
        }
        let refresh_token = self.lock().refresh_token.clone();
        let minted = self.exchange(refresh_token).await?;
        Ok(self.install(minted))
    }

    /// Makes `minted` the current token: the hot-path header, the rotated
    /// refresh token and the next generation, in one critical section. Then,
    /// with no lock held, tells the hook about a new refresh token.
    fn install(&self, minted: Minted) -> Arc<Cached> {
        let margin = lifetime::margin(self.settings.refresh_margin, minted.lifetime);
        let skew = lifetime::skew(self.settings.expiry_skew, minted.lifetime);
        let deadlines = Deadlines::new(minted.expiry, margin, skew, fastrand::f64());
        let mut state = self.lock();
        let rotated = minted.refresh_token.filter(|new| {
            state
                .refresh_token
                .as_ref()
                .is_none_or(|old| !exchange::same(old, new))
        });
        if let Some(rotated) = &rotated {
            state.refresh_token = Some(rotated.clone());
        }
        state.generation += 1;
        let cached = Arc::new(Cached::new(minted.header, state.generation, deadlines));
        self.current.store(Some(Arc::clone(&cached)));
        self.counters.generation.store(state.generation, std::sync::atomic::Ordering::Relaxed);
        drop(state);
        tracing::info!(generation = cached.generation, lifetime = ?minted.lifetime, "new token");
        if let (Some(hook), Some(rotated)) = (&self.on_refresh_token, &rotated) {
            hook(rotated);
        }
        cached
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
