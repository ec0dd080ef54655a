//! [`TokenManager`]: one token shared by every clone, and its lifecycle.
//!
//! - `mod.rs`: the handle, its methods and the hot path; the state every
//!   clone shares, and starting a round;
//! - [`header`]: [`AuthHeader`], a header and its token's generation;
//! - [`cache`]: a per-user cache of the current token, for the tower
//!   service's hot path;
//! - [`builder`]: the settings;
//! - [`flight`]: single flight, the negative cache and the floor between
//!   rounds;
//! - [`retry`]: one round of attempts, through backon;
//! - [`exchange`]: refresh, falling back to a login, and rotation;
//! - [`lifetime`]: margins, skews, jitter, and the token's phase;
//! - [`clock`]: the wall clock, injected;
//! - [`cron`]: the clock task that moves phases and refreshes in the
//!   background;
//! - [`outage`]: outage mode, serving the expired token while the token
//!   endpoint fails;
//! - [`stats`]: the counters;
//! - `bound`: how a token is presented (bearer, or DPoP-bound to the
//!   source's key), and `proof`: the DPoP proof of each send, for both
//!   adapters.
//!
//! The fleet protocol lives with the stores ([`crate::store::SharedStore`]).

mod backoff;
mod bound;
mod builder;
#[cfg(feature = "tower")]
mod cache;
mod clock;
mod cron;
mod exchange;
mod flight;
mod header;
mod lifetime;
mod outage;
#[cfg(any(feature = "tower", feature = "reqwest"))]
mod proof;
mod retry;
mod stats;
#[cfg(test)]
mod test_source;
#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::atomic::AtomicBool;
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
use self::clock::WallClock;
use self::flight::{Flight, Join, SingleFlight, Trigger, Waiter};
pub use self::header::AuthHeader;
use self::lifetime::{Cached, Phase};
#[cfg(feature = "reqwest")]
pub(crate) use self::proof::observe_nonce;
#[cfg(feature = "tower")]
pub(crate) use self::proof::Proved;
#[cfg(any(feature = "tower", feature = "reqwest"))]
pub(crate) use self::proof::{is_bound, prove};
use self::stats::Counters;
pub use self::stats::Stats;
use crate::error::Error;
use crate::origin::Origin;
use crate::source::TokenSource;
use crate::store::SharedStore;

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
/// Rounds of token calls that no 401 forced start at least a second apart,
/// whatever lifetime the endpoint gives its tokens.
///
/// # Which header method
///
/// - [`authorization`](Self::authorization): the header, waiting for a
///   token when there is none yet. For code that sends its own requests.
/// - [`authorize`](Self::authorize): the same with the token's
///   [generation](AuthHeader::generation), for code that handles 401s
///   itself: pass the generation to [`invalidate`](Self::invalidate) when
///   the API rejects the token.
/// - [`try_authorize`](Self::try_authorize): never waits; `None` when no
///   usable token is cached, and the caller then awaits
///   [`authorize`](Self::authorize). For a hand-written `poll` or an
///   adapter's fast path.
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
    /// generation, for [`invalidate`](Self::invalidate).
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
            cached.observe(Instant::now(), self.shared.wall.now());
        }
        if let Some(auth) = self.try_authorize() {
            return Ok(auth);
        }
        if let Some(answer) = self.outage_answer().await {
            return answer;
        }
        let joined = {
            let mut flight = self.shared.flight.lock();
            // A round may have ended between the check above and the lock.
            if let Some(cached) = self.shared.current.load_full() {
                match cached.phase() {
                    Phase::Fresh => return Ok(cached.auth_header()),
                    Phase::Stale => {
                        if flight.reopen(Instant::now()) {
                            let _ = self.shared.start_round(&mut flight, Trigger::Ahead);
                        }
                        return Ok(cached.auth_header());
                    }
                    Phase::Expired => {}
                }
            }
            match flight.join(Instant::now()) {
                Join::Wait(waiter) => {
                    // A background refresh may still wait out its floor.
                    flight.hurry();
                    Ok(waiter)
                }
                Join::Failed(error) => Err(error),
                Join::Idle => self.shared.start_round(&mut flight, Trigger::Needed),
            }
        };
        match joined {
            Ok(waiter) => self.wait(waiter).await,
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

    /// A cache of the current token for one user of this manager (a tower
    /// service clone), read through [`TokenCache::try_authorize`].
    #[cfg(feature = "tower")]
    pub(crate) fn token_cache(&self) -> TokenCache {
        TokenCache::new(Arc::clone(&self.shared))
    }

    /// The hot path's phase logic, for a token loaded here or through a
    /// [`TokenCache`].
    #[inline]
    fn serve(&self, cached: &Cached) -> Option<AuthHeader> {
        if self.shared.ticks.receiver_count() == 0 {
            self.revive_clock(cached);
        }
        match cached.phase() {
            Phase::Fresh => Some(cached.auth_header()),
            Phase::Stale => {
                if self.shared.flight.is_open() {
                    self.refresh_in_background(cached.generation);
                }
                Some(cached.auth_header())
            }
            Phase::Expired => self.serve_expired(cached),
        }
    }

    /// The clock task died with the runtime it ran on (a manager kept
    /// across runtimes, as in tests sharing one): nothing moves the phase
    /// flag any more, so read the clocks here and start the task again on
    /// this runtime.
    #[cold]
    fn revive_clock(&self, cached: &Cached) {
        cached.observe(Instant::now(), self.shared.wall.now());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let _flight = self.shared.flight.lock();
            cron::ensure(&self.shared, &runtime);
        }
    }

    /// The first request in the stale window starts the refresh, unless a
    /// round started since it looked.
    #[cold]
    fn refresh_in_background(&self, generation: u64) {
        let mut flight = self.shared.flight.lock();
        let current = self.shared.current.load();
        let still_current = current.as_ref().is_some_and(|c| c.generation == generation);
        if still_current && flight.reopen(Instant::now()) {
            tracing::debug!(generation, "token is stale, refreshing in the background");
            let _ = self.shared.start_round(&mut flight, Trigger::Ahead);
        }
    }

    /// Declares the token of `generation` rejected (the API answered 401)
    /// and starts getting the next one, at once.
    ///
    /// Only the current generation is invalidated: a late 401 for an older
    /// token changes nothing, so a burst of 401s costs one refresh. Returns
    /// whether the token was invalidated.
    ///
    /// Outside a Tokio runtime the next token is fetched on the next
    /// [`authorize`](Self::authorize) instead of at once.
    pub fn invalidate(&self, generation: u64) -> bool {
        {
            let mut state = self.shared.lock();
            let current = self.shared.current.load();
            let Some(cached) = current.as_ref().filter(|c| c.generation == generation) else {
                return false;
            };
            state.invalidated = Some(cached.header.clone());
            self.shared.current.store(None);
        }
        Counters::bump(&self.shared.counters.invalidations);
        tracing::debug!(generation, "token invalidated by a 401");
        self.shared
            .outage_over("the API rejected the expired token");
        let mut flight = self.shared.flight.lock();
        match flight.join(Instant::now()) {
            // No one may be waiting, but the next request should find a
            // fresh token.
            Join::Idle => drop(self.shared.start_round(&mut flight, Trigger::Needed)),
            // A round that waits out its floor goes now: the 401's replay
            // waits for it.
            Join::Wait(_) => flight.hurry(),
            Join::Failed(_) => {}
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

    /// The manager's name, the metrics' `client` label.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn name(&self) -> &Arc<str> {
        &self.shared.settings.name
    }

    /// The backoff settings, shared with the request side's replays.
    pub(crate) fn backoff(&self) -> &Backoff {
        &self.shared.settings.backoff
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

/// What every clone of a [`TokenManager`] shares.
struct Shared {
    source: Box<dyn TokenSource>,
    /// The fleet's shared store, if any; the hot path never touches it.
    store: Option<SharedStore>,
    origin: Option<Origin>,
    settings: Settings,
    on_refresh_token: Option<RefreshTokenHook>,
    /// The hot path reads only this.
    current: ArcSwapOption<Cached>,
    /// Whether a round runs or backs off, and when the next may start.
    flight: Arc<SingleFlight<Arc<Cached>>>,
    /// The token's other half. Never held across an `.await`, nor taken
    /// while holding the flight's lock.
    state: Mutex<State>,
    counters: Counters,
    /// Whether outage mode serves the expired token now: for its two
    /// warnings.
    serving_expired: AtomicBool,
    wall: Arc<dyn WallClock>,
    /// Wakes the clock task when a round ends; dropped with the last
    /// clone, which ends it.
    ticks: watch::Sender<()>,
    /// The source's DPoP key and the API origins' nonces, if it has a key.
    #[cfg(feature = "dpop")]
    dpop: Option<Arc<crate::dpop::Binding>>,
}

struct State {
    refresh_token: Option<SecretString>,
    /// The last refresh token the endpoint rejected: never sent again.
    rejected_refresh: Option<SecretString>,
    generation: u64,
    /// The header of the last token a 401 rejected: never adopted again
    /// from the shared store.
    invalidated: Option<HeaderValue>,
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

    /// Spawns a round. Runs under the flight's lock, so there is never
    /// more than one.
    fn start_round(
        self: &Arc<Self>,
        flight: &mut Flight<'_, Arc<Cached>>,
        trigger: Trigger,
    ) -> Result<Waiter<Arc<Cached>>, Error> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| Error::config("TokenManager must be used inside a Tokio runtime"))?;
        cron::ensure(self, &runtime);
        let (start, landing, waiter) = flight.start(Instant::now(), trigger);
        let shared = Arc::clone(self);
        runtime.spawn(async move {
            start.delay().await;
            let outcome = retry::round(&shared.settings.backoff, || shared.attempt()).await;
            shared.finish(&outcome);
            landing.send(outcome);
        });
        Ok(waiter)
    }

    /// Ends the round: records a failure for the negative cache and wakes
    /// the clock task. The caller then tells the waiters.
    fn finish(&self, outcome: &Result<Arc<Cached>, Error>) {
        let now = Instant::now();
        let wait = match outcome {
            Ok(_) => Duration::ZERO,
            Err(error) => {
                Counters::bump(&self.counters.failed_rounds);
                if !error.is_transient() {
                    self.outage_over("the token endpoint refused for good");
                }
                let wait = error
                    .retry_after()
                    .unwrap_or(self.settings.backoff.max_delay());
                tracing::warn!(%error, retry_in = ?wait, "token round failed");
                wait
            }
        };
        self.flight.land(outcome, now + wait);
        self.ticks.send_replace(());
    }
}
