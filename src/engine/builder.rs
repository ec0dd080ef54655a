//! [`TokenManagerBuilder`]: the manager's settings.

use std::fmt;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use secrecy::SecretString;
use tokio::sync::watch;

use super::clock::{SystemClock, WallClock};
use super::flight::SingleFlight;
use super::stats::Counters;
use super::{cron, Backoff, Shared, State, TokenManager};
use crate::source::TokenSource;
use crate::store::{SharedStore, TokenStore};

/// Told about each new refresh token.
pub(super) type RefreshTokenHook = Box<dyn Fn(&SecretString) + Send + Sync>;

/// Settings for a [`TokenManager`]; start with [`TokenManager::builder`].
pub struct TokenManagerBuilder {
    source: Box<dyn TokenSource>,
    store: Option<Box<dyn TokenStore>>,
    on_refresh_token: Option<RefreshTokenHook>,
    settings: Settings,
    wall: Arc<dyn WallClock>,
}

#[derive(Debug, Clone)]
pub(super) struct Settings {
    pub(super) refresh_margin: Duration,
    pub(super) expiry_skew: Duration,
    pub(super) backoff: Backoff,
    pub(super) call_timeout: Duration,
    pub(super) background: bool,
    pub(super) outage_grace: Duration,
    /// The `client` label of the metrics.
    pub(super) name: Arc<str>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            refresh_margin: Duration::from_secs(300),
            expiry_skew: Duration::from_secs(10),
            backoff: Backoff::default(),
            call_timeout: Duration::from_secs(30),
            background: false,
            outage_grace: Duration::ZERO,
            name: Arc::from("default"),
        }
    }
}

impl TokenManagerBuilder {
    pub(super) fn new(source: Box<dyn TokenSource>) -> Self {
        TokenManagerBuilder {
            source,
            store: None,
            on_refresh_token: None,
            settings: Settings::default(),
            wall: Arc::new(SystemClock),
        }
    }

    /// Refresh in the background once less than this is left (default
    /// 5 min). For a token whose whole lifetime is under twice the margin,
    /// half its lifetime is used instead, so short-lived tokens never loop.
    ///
    /// Each token's stale point moves earlier by a random part of the
    /// margin (up to a fifth of it), so that processes sharing no store do
    /// not refresh in lockstep.
    pub fn refresh_margin(mut self, margin: Duration) -> Self {
        self.settings.refresh_margin = margin;
        self
    }

    /// Stop using a token once less than this is left (default 10 s),
    /// covering clock skew and flight time. Capped at a quarter of the
    /// token's lifetime.
    pub fn expiry_skew(mut self, skew: Duration) -> Self {
        self.settings.expiry_skew = skew;
        self
    }

    /// How failed token calls are retried (default: 5 attempts, 200 ms
    /// doubling to 5 s, with jitter).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.settings.backoff = backoff;
        self
    }

    /// The timeout of one token call (default 30 s), so no waiter hangs for
    /// ever.
    pub fn call_timeout(mut self, timeout: Duration) -> Self {
        self.settings.call_timeout = timeout;
        self
    }

    /// The "cron job" mode: a background task refreshes the token when it
    /// turns stale, so an idle client never waits (default off).
    ///
    /// The task holds only a weak reference and ends when the last clone of
    /// the manager is dropped. It starts in [`build`](Self::build) when
    /// called inside a Tokio runtime, else on first use.
    pub fn background_refresh(mut self, enabled: bool) -> Self {
        self.settings.background = enabled;
        self
    }

    /// Outage mode ("static stability"): while the token endpoint fails
    /// with transient errors, keep sending the last token for up to
    /// `grace` past its expiry, and let the API decide (default zero: off).
    ///
    /// - Requests go on at once with the expired token: none waits on the
    ///   failing endpoint, also while a round that already failed once
    ///   retries or hangs. One warning when this starts, one when it ends;
    ///   [`Stats::expired_served`](crate::Stats::expired_served) counts
    ///   those requests.
    /// - The retries go on in the background with the usual backoff, one
    ///   token call per step whatever the request rate; the first success
    ///   ends the outage.
    /// - A 401 from the API invalidates the token as always: later
    ///   requests get the endpoint's last error at once, with no replay
    ///   loop.
    /// - A permanent error (a rejected credential, a suspended account, a
    ///   sign-in required) serves nothing, and past the grace callers get
    ///   the endpoint's error.
    /// - Through a shared store, members adopt each other's "failing until"
    ///   deadline, so a fleet makes about one token call per step in all.
    ///
    /// ```
    /// use std::time::Duration;
    /// use bearer_refresh::{ApiKeySource, TokenManager};
    ///
    /// let source = ApiKeySource::new(ApiKeySource::SANDBOX, "my-api-key")?;
    /// let tokens = TokenManager::builder(source)
    ///     .outage_grace(Duration::from_secs(900))
    ///     .build();
    /// assert_eq!(tokens.stats().expired_served, 0);
    /// # Ok::<(), bearer_refresh::Error>(())
    /// ```
    pub fn outage_grace(mut self, grace: Duration) -> Self {
        self.settings.outage_grace = grace;
        self
    }

    /// The manager's name: the `client` label of its metrics (cargo
    /// feature `metrics`; default `"default"`). Name each manager of a
    /// process differently; never put a secret in it.
    pub fn name(mut self, name: &str) -> Self {
        self.settings.name = Arc::from(name);
        self
    }

    /// Shares the token with other managers, usually in other processes,
    /// through `store` (see [`TokenStore`]). Without one, the token lives in
    /// this process only.
    pub fn store(mut self, store: impl TokenStore) -> Self {
        self.store = Some(Box::new(store));
        self
    }

    /// Calls `hook` with each new refresh token, once it is in use, so that
    /// a rotated refresh token can be persisted and survive a restart.
    ///
    /// The hook runs in the task that made the token call, with no lock
    /// held; keep it short (hand slow work to a channel). It is not called
    /// for the source's [initial](TokenSource::initial_refresh_token)
    /// refresh token, nor for a response that keeps the old one.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use bearer_refresh::{BoxFuture, Error, TokenManager, TokenResponse, TokenSource};
    /// use secrecy::{ExposeSecret, SecretString};
    ///
    /// struct Rotating;
    ///
    /// impl TokenSource for Rotating {
    ///     fn login(&self) -> BoxFuture<'_, Result<TokenResponse, Error>> {
    ///         Box::pin(async { Ok(TokenResponse::new("access").with_refresh_token("refresh-1")) })
    ///     }
    ///     fn refresh<'a>(&'a self, _: &'a SecretString) -> BoxFuture<'a, Result<TokenResponse, Error>> {
    ///         self.login()
    ///     }
    /// }
    ///
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let saved = Arc::new(Mutex::new(None));
    /// let sink = Arc::clone(&saved);
    /// let tokens = TokenManager::builder(Rotating)
    ///     .on_refresh_token(move |token: &SecretString| {
    ///         // Persist it somewhere safe; here, a variable.
    ///         *sink.lock().unwrap() = Some(token.expose_secret().to_owned());
    ///     })
    ///     .build();
    /// tokens.authorization().await.unwrap();
    /// assert_eq!(saved.lock().unwrap().as_deref(), Some("refresh-1"));
    /// # });
    /// ```
    pub fn on_refresh_token(
        mut self,
        hook: impl Fn(&SecretString) + Send + Sync + 'static,
    ) -> Self {
        self.on_refresh_token = Some(Box::new(hook));
        self
    }

    /// Reads the wall clock from `clock` instead of the system's, so that a
    /// test can simulate a suspend.
    #[cfg(test)]
    pub(crate) fn wall_clock(mut self, clock: impl WallClock) -> Self {
        self.wall = Arc::new(clock);
        self
    }

    /// Builds the manager. No token call happens until the first request
    /// (or at once in background mode).
    pub fn build(self) -> TokenManager {
        let origin = self.source.origin();
        let refresh_token = self.source.initial_refresh_token();
        let store = self
            .store
            .map(|store| SharedStore::new(store, &*self.source, &self.settings.name));
        #[cfg(feature = "dpop")]
        let dpop = self
            .source
            .dpop_key()
            .map(|key| Arc::new(crate::dpop::Binding::new(key.clone())));
        let manager = TokenManager {
            shared: Arc::new(Shared {
                source: self.source,
                store,
                origin,
                settings: self.settings,
                on_refresh_token: self.on_refresh_token,
                current: ArcSwapOption::empty(),
                flight: Arc::new(SingleFlight::new()),
                state: Mutex::new(State {
                    refresh_token,
                    rejected_refresh: None,
                    generation: 0,
                    invalidated: None,
                }),
                counters: Counters::default(),
                serving_expired: AtomicBool::new(false),
                wall: self.wall,
                ticks: watch::channel(()).0,
                #[cfg(feature = "dpop")]
                dpop,
            }),
        };
        if manager.shared.settings.background {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                let _flight = manager.shared.flight.lock();
                cron::ensure(&manager.shared, &runtime);
            }
        }
        manager
    }
}

impl fmt::Debug for TokenManagerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenManagerBuilder")
            .field("settings", &self.settings)
            .field("on_refresh_token", &self.on_refresh_token.is_some())
            .finish_non_exhaustive()
    }
}
