//! [`TokenManager`]: one token shared by every clone, and its lifecycle.
//!
//! - `mod.rs`: the state every clone shares, and starting a round;
//! - [`manager`]: the handle, its methods and the hot path;
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
//! - [`stats`]: the counters.
//!
//! The fleet protocol lives with the stores ([`crate::store::SharedStore`]).

mod backoff;
mod builder;
#[cfg(feature = "tower")]
mod cache;
mod clock;
mod cron;
mod exchange;
mod flight;
mod lifetime;
mod manager;
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
use self::clock::WallClock;
use self::flight::{Flight, SingleFlight, Trigger, Waiter};
use self::lifetime::Cached;
pub use self::manager::TokenManager;
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
    wall: Arc<dyn WallClock>,
    /// Wakes the clock task when a round ends; dropped with the last
    /// clone, which ends it.
    ticks: watch::Sender<()>,
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
