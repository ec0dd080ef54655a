//! [`TokenManager`]: the shared token store and its lifecycle (single
//! flight, the stale window, generations, backoff, background refresh).

mod backoff;

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;
use http::HeaderValue;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

pub use self::backoff::Backoff;
use crate::error::{Error, TokenCall};
use crate::request::Origin;
use crate::source::TokenResponse;
use crate::source::{BoxFuture, TokenSource};
use crate::store::{StoredToken, TokenStore};

/// How long a failing shared store is skipped before it is tried again.
const STORE_RETRY: Duration = Duration::from_secs(5);
/// The longest wait between two looks at the shared store while another
/// member holds the lease (pub/sub usually wakes us sooner).
const STORE_POLL: Duration = Duration::from_millis(250);

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

/// Counters of what the manager did, for dashboards and demos.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Login calls made with the long-lived credential, fallbacks included.
    pub logins: u64,
    /// Refresh calls made with a refresh token.
    pub refreshes: u64,
    /// Logins made because the refresh token was rejected.
    pub fallback_logins: u64,
    /// Rounds of token calls that ended in an error after their retries.
    pub failed_rounds: u64,
    /// Tokens invalidated by a 401.
    pub invalidations: u64,
    /// The generation of the newest token (0 before the first).
    pub generation: u64,
}

/// Keeps one bearer token alive and shares it between every clone.
///
/// Cloning is cheap: all clones share one store, one refresh at a time and
/// one set of counters.
///
/// - **Fresh** token: [`authorization`](Self::authorization) returns the
///   cached header without locking or waiting.
/// - **Stale** (less than the refresh margin left): the current token is
///   returned at once and one refresh starts in the background.
/// - **Expired** (less than the expiry skew left), or no token yet: callers
///   wait for the single token call in flight.
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

/// Settings for a [`TokenManager`]; start with [`TokenManager::builder`].
pub struct TokenManagerBuilder {
    source: Box<dyn TokenSource>,
    store: Option<Box<dyn TokenStore>>,
    settings: Settings,
}

#[derive(Debug, Clone)]
struct Settings {
    refresh_margin: Duration,
    expiry_skew: Duration,
    backoff: Backoff,
    call_timeout: Duration,
    background: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            refresh_margin: Duration::from_secs(300),
            expiry_skew: Duration::from_secs(10),
            backoff: Backoff::default(),
            call_timeout: Duration::from_secs(30),
            background: false,
        }
    }
}

impl TokenManagerBuilder {
    /// Refresh in the background once less than this is left (default
    /// 5 min). For a token whose whole lifetime is under twice the margin,
    /// half its lifetime is used instead, so short-lived tokens never loop.
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

    /// Shares the token with other managers, usually in other processes,
    /// through `store` (see [`TokenStore`]). Without one, the token lives in
    /// this process only.
    pub fn store(mut self, store: impl TokenStore) -> Self {
        self.store = Some(Box::new(store));
        self
    }

    /// Builds the manager. No token call happens until the first request
    /// (or at once in background mode).
    pub fn build(mut self) -> TokenManager {
        let (stop_cron, cron_stopped) = oneshot::channel();
        let origin = self.source.origin();
        let initial_refresh_token = self.source.initial_refresh_token();
        if let Some(store) = self.store.as_mut() {
            store.attach(&*self.source);
        }
        let manager = TokenManager {
            shared: Arc::new(Shared {
                source: self.source,
                store: self.store,
                store_down: AtomicBool::new(false),
                quiet_until: AtomicU64::new(0),
                epoch: Instant::now(),
                origin,
                settings: self.settings,
                current: ArcSwapOption::empty(),
                state: Mutex::new(State {
                    refresh_token: initial_refresh_token,
                    generation: 0,
                    flight: None,
                    failure: None,
                    invalidated: None,
                    rejected_refresh: None,
                    store_retry_at: None,
                    cron: Some(cron_stopped),
                }),
                counters: Counters::default(),
                _stop_cron: stop_cron,
            }),
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            manager.start_cron();
        }
        manager
    }
}

impl fmt::Debug for TokenManagerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenManagerBuilder")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

struct Shared {
    source: Box<dyn TokenSource>,
    /// The fleet's shared store, if any; the hot path never touches it.
    store: Option<Box<dyn TokenStore>>,
    /// Whether the store is failing, so an outage is logged once.
    store_down: AtomicBool,
    /// Until when (nanoseconds after `epoch`) a stale token need not check
    /// for a background refresh: a flight runs, or the last one failed and
    /// its backoff is not over. Read without the lock on the hot path.
    quiet_until: AtomicU64,
    epoch: Instant,
    origin: Option<Origin>,
    settings: Settings,
    /// The hot path reads only this.
    current: ArcSwapOption<Cached>,
    /// Everything else. Never held across an `.await`.
    state: Mutex<State>,
    counters: Counters,
    /// Dropped with the last clone, which tells the background task to end.
    _stop_cron: oneshot::Sender<()>,
}

struct Cached {
    header: HeaderValue,
    generation: u64,
    stale_at: Instant,
    expires_at: Instant,
}

type Outcome = Option<Result<Arc<Cached>, Error>>;

struct State {
    refresh_token: Option<SecretString>,
    generation: u64,
    /// The token call in flight; every waiter subscribes to it.
    flight: Option<watch::Receiver<Outcome>>,
    /// The last round's error, served until its retry time, so a flood of
    /// requests against a failing endpoint costs no extra calls.
    failure: Option<Failure>,
    /// The header of the last token a 401 rejected: never adopted again
    /// from the shared store.
    invalidated: Option<HeaderValue>,
    /// The last refresh token the endpoint rejected: never sent again.
    rejected_refresh: Option<SecretString>,
    /// While the shared store is failing, it is skipped until then.
    store_retry_at: Option<Instant>,
    /// Taken by the background task when it starts.
    cron: Option<oneshot::Receiver<()>>,
}

struct Failure {
    error: Error,
    retry_at: Instant,
}

#[derive(Default)]
struct Counters {
    logins: AtomicU64,
    refreshes: AtomicU64,
    fallback_logins: AtomicU64,
    failed_rounds: AtomicU64,
    invalidations: AtomicU64,
}

impl TokenManager {
    /// A manager with the default settings.
    pub fn new(source: impl TokenSource) -> Self {
        Self::builder(source).build()
    }

    /// Starts configuring a manager for `source`.
    pub fn builder(source: impl TokenSource) -> TokenManagerBuilder {
        TokenManagerBuilder {
            source: Box::new(source),
            store: None,
            settings: Settings::default(),
        }
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
        self.start_cron();
        let flight = {
            let mut state = self.shared.lock();
            // A flight may have finished between the check above and the lock.
            // Checked inline: `try_authorize` may take this same lock to start
            // a background refresh.
            let now = Instant::now();
            let current = self.shared.current.load();
            if let Some(cached) = current.as_ref().filter(|c| now < c.expires_at) {
                if now >= cached.stale_at && state.flight.is_none() && !state.failing() {
                    let _ = self.start_flight(&mut state);
                }
                return Ok(cached.auth_header());
            }
            match (&state.flight, &state.failure) {
                (Some(flight), _) => Ok(flight.clone()),
                (None, Some(failure)) if now < failure.retry_at => Err(failure.error.clone()),
                (None, _) => self.start_flight(&mut state),
            }
        };
        match flight {
            Ok(mut flight) => wait(&mut flight).await.map(|cached| cached.auth_header()),
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
    /// This is the hot path: one atomic load and one clock read, no lock.
    /// Inside the stale window it also starts the background refresh.
    pub fn try_authorize(&self) -> Option<AuthHeader> {
        let guard = self.shared.current.load();
        let cached = guard.as_ref()?;
        let now = Instant::now();
        if now < cached.stale_at {
            return Some(cached.auth_header());
        }
        if now < cached.expires_at {
            if self.shared.since_epoch(now) >= self.shared.quiet_until.load(Ordering::Relaxed) {
                self.refresh_in_background(cached.generation);
            }
            return Some(cached.auth_header());
        }
        None
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
        match current.as_ref() {
            Some(cached) if cached.generation == generation => {
                state.invalidated = Some(cached.header.clone());
                self.shared.current.store(None);
                self.shared
                    .counters
                    .invalidations
                    .fetch_add(1, Ordering::Relaxed);
                tracing::debug!(generation, "token invalidated by a 401");
                if state.flight.is_none() && !state.failing() {
                    // No one may be waiting, but the next request should
                    // find a fresh token.
                    let _ = self.start_flight(&mut state);
                }
                true
            }
            _ => false,
        }
    }

    /// The origin the token belongs to, from the [`TokenSource`].
    pub fn origin(&self) -> Option<&Origin> {
        self.shared.origin.as_ref()
    }

    /// What the manager has done so far.
    pub fn stats(&self) -> Stats {
        let counters = &self.shared.counters;
        Stats {
            logins: counters.logins.load(Ordering::Relaxed),
            refreshes: counters.refreshes.load(Ordering::Relaxed),
            fallback_logins: counters.fallback_logins.load(Ordering::Relaxed),
            failed_rounds: counters.failed_rounds.load(Ordering::Relaxed),
            invalidations: counters.invalidations.load(Ordering::Relaxed),
            generation: self.shared.lock().generation,
        }
    }

    /// Whether a shared store is configured and answering.
    pub fn store_available(&self) -> bool {
        self.shared.store.is_some() && !self.shared.store_down.load(Ordering::Relaxed)
    }

    /// The backoff settings, shared with the request side's replays.
    pub(crate) fn backoff(&self) -> &Backoff {
        &self.shared.settings.backoff
    }

    fn refresh_in_background(&self, generation: u64) {
        let mut state = self.shared.lock();
        let still_current = self
            .shared
            .current
            .load()
            .as_ref()
            .is_some_and(|cached| cached.generation == generation);
        if still_current && state.flight.is_none() && !state.failing() {
            tracing::debug!(generation, "token is stale, refreshing in the background");
            let _ = self.start_flight(&mut state);
        }
    }

    /// Spawns the token call. Runs under the state lock, so there is never
    /// more than one flight.
    fn start_flight(&self, state: &mut State) -> Result<watch::Receiver<Outcome>, Error> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| Error::config("TokenManager must be used inside a Tokio runtime"))?;
        let (done, flight) = watch::channel(None);
        state.flight = Some(flight.clone());
        state.failure = None;
        self.shared.quiet_until.store(u64::MAX, Ordering::Relaxed);
        let shared = Arc::clone(&self.shared);
        runtime.spawn(async move {
            let outcome = shared.round().await;
            shared.finish(outcome, &done);
        });
        Ok(flight)
    }

    fn start_cron(&self) {
        if !self.shared.settings.background {
            return;
        }
        let Some(stopped) = self.shared.lock().cron.take() else {
            return;
        };
        let weak = Arc::downgrade(&self.shared);
        tokio::spawn(cron(weak, stopped));
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

impl Cached {
    fn auth_header(&self) -> AuthHeader {
        AuthHeader {
            header: self.header.clone(),
            generation: self.generation,
        }
    }
}

impl State {
    fn failing(&self) -> bool {
        self.failure
            .as_ref()
            .is_some_and(|failure| Instant::now() < failure.retry_at)
    }
}

impl Shared {
    fn since_epoch(&self, instant: Instant) -> u64 {
        let nanos = instant.saturating_duration_since(self.epoch).as_nanos();
        u64::try_from(nanos).unwrap_or(u64::MAX)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave `State` half-written
        // (every update is a single assignment), so a poisoned lock is safe
        // to keep using.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// One round: up to `max_attempts` token calls, spaced by the backoff.
    async fn round(&self) -> Result<Arc<Cached>, Error> {
        let mut delays = self.settings.backoff.delays();
        loop {
            let error = match self.attempt().await {
                Ok(cached) => return Ok(cached),
                Err(error) => error,
            };
            if !error.is_transient() {
                return Err(error);
            }
            let Some(delay) = delays.next() else {
                return Err(error);
            };
            let delay = error.retry_after().unwrap_or(delay);
            tracing::warn!(error = %error, retry_in = ?delay, "token call failed, retrying");
            tokio::time::sleep(delay).await;
        }
    }

    /// One attempt: through the shared store when there is one and it
    /// answers, else locally.
    async fn attempt(&self) -> Result<Arc<Cached>, Error> {
        if let Some(store) = self.usable_store() {
            match self.attempt_shared(store).await {
                Ok(outcome) => {
                    self.store_recovered();
                    return outcome;
                }
                Err(error) => self.store_failed(&error),
            }
        }
        let refresh_token = self.lock().refresh_token.clone();
        let (response, sent) = self.call_source(refresh_token).await?;
        let minted = Minted::new(response, sent)?;
        Ok(self.install(minted))
    }

    /// The fleet protocol: adopt a fresher shared token, or lead the refresh
    /// under the lease, or wait for the member that leads it. The outer
    /// `Err` is a store failure (the caller falls back to the local single
    /// flight); the inner result is the round's answer.
    async fn attempt_shared(
        &self,
        store: &dyn TokenStore,
    ) -> Result<Result<Arc<Cached>, Error>, Error> {
        let lease_ttl = self.settings.call_timeout + Duration::from_secs(1);
        // A live holder finishes within its lease; a dead one's lease
        // expires. Past twice that, something is wrong with the store.
        let give_up = Instant::now() + lease_ttl * 2;
        loop {
            let shared = store.load().await?;
            if let Some(cached) = shared.as_ref().and_then(|token| self.adopt(token)) {
                return Ok(Ok(cached));
            }
            let seen = shared.as_ref().map_or(0, |token| token.generation);
            if let Some(lease) = store.try_lease(lease_ttl).await? {
                let outcome = self.lead(store).await;
                if let Err(error) = store.release(lease).await {
                    // The lease expires on its own; the others wait at most
                    // its TTL.
                    tracing::debug!(%error, "could not release the refresh lease");
                }
                return outcome;
            }
            if Instant::now() >= give_up {
                return Err(Error::Store {
                    reason: "the member holding the refresh lease never stored a token".into(),
                });
            }
            let wait = STORE_POLL.min(give_up - Instant::now());
            store.wait_for_change(seen, wait).await;
        }
    }

    /// Holding the lease: read the store once more (the previous holder may
    /// have just written), then make the token call and store the result.
    async fn lead(&self, store: &dyn TokenStore) -> Result<Result<Arc<Cached>, Error>, Error> {
        let shared = store.load().await?;
        if let Some(cached) = shared.as_ref().and_then(|token| self.adopt(token)) {
            return Ok(Ok(cached));
        }
        let expected = shared.as_ref().map_or(0, |token| token.generation);
        // The fleet's refresh token is the newest one; ours may be rotated.
        let refresh_token = shared
            .and_then(|token| token.refresh_token)
            .or_else(|| self.lock().refresh_token.clone());
        let used = refresh_token.clone();
        let minted = match self.call_source(refresh_token).await {
            Ok((response, sent)) => Minted::new(response, sent),
            Err(error) => Err(error),
        };
        let minted = match minted {
            Ok(minted) => minted,
            Err(error) => return Ok(Err(error)),
        };
        let stored = minted.stored(expected + 1, used);
        let cached = self.install(minted);
        match store.store(expected, &stored).await {
            Ok(true) => {}
            Ok(false) => tracing::warn!("a newer shared token was stored meanwhile; keeping ours"),
            Err(error) => self.store_failed(&error),
        }
        Ok(Ok(cached))
    }

    /// Installs a shared token if it is fresh (not stale) and not the one a
    /// 401 rejected.
    fn adopt(&self, token: &StoredToken) -> Option<Arc<Cached>> {
        let remaining = token.expires_at.duration_since(SystemTime::now()).ok()?;
        if remaining <= self.margin(token.lifetime) {
            return None;
        }
        let minted = Minted {
            header: TokenResponse::new(token.access_token.expose_secret())
                .header()
                .ok()?,
            refresh_token: token.refresh_token.clone(),
            lifetime: token.lifetime,
            expiry: Instant::now() + remaining,
        };
        if self.lock().invalidated.as_ref() == Some(&minted.header) {
            return None;
        }
        tracing::debug!(generation = token.generation, "adopted the shared token");
        Some(self.install(minted))
    }

    fn usable_store(&self) -> Option<&dyn TokenStore> {
        let store = self.store.as_deref()?;
        match self.lock().store_retry_at {
            Some(retry_at) if Instant::now() < retry_at => None,
            _ => Some(store),
        }
    }

    fn store_failed(&self, error: &Error) {
        self.lock().store_retry_at = Some(Instant::now() + STORE_RETRY);
        if !self.store_down.swap(true, Ordering::Relaxed) {
            tracing::warn!(%error, "the shared token store failed; falling back to this process's own single flight");
        }
    }

    fn store_recovered(&self) {
        if self.store_down.swap(false, Ordering::Relaxed) {
            tracing::info!("the shared token store is back");
        }
    }

    /// The token call: refresh if there is a refresh token, falling back to
    /// a login when it is rejected; else log in. Returns the response and
    /// when its request was sent.
    async fn call_source(
        &self,
        refresh_token: Option<SecretString>,
    ) -> Result<(TokenResponse, Instant), Error> {
        let rejected = self.lock().rejected_refresh.clone();
        let refresh_token = refresh_token.filter(|token| {
            rejected
                .as_ref()
                .is_none_or(|dead| dead.expose_secret() != token.expose_secret())
        });
        let sent = Instant::now();
        let Some(refresh_token) = refresh_token else {
            if !self.source.can_login() {
                return Err(Error::SignInRequired { status: None });
            }
            return Ok((self.login().await?, sent));
        };
        self.counters.refreshes.fetch_add(1, Ordering::Relaxed);
        let refreshed = self
            .call(TokenCall::Refresh, self.source.refresh(&refresh_token))
            .await;
        match refreshed {
            Ok(response) => Ok((response, sent)),
            Err(Error::RefreshTokenRejected { status, .. }) if !self.source.can_login() => {
                tracing::warn!(status, "refresh token rejected and there is no login");
                {
                    let mut state = self.lock();
                    state.refresh_token = None;
                    state.rejected_refresh = Some(refresh_token);
                }
                Err(Error::SignInRequired {
                    status: Some(status),
                })
            }
            Err(Error::RefreshTokenRejected { status, .. }) => {
                tracing::info!(status, "refresh token rejected, logging in again");
                // A rejected refresh token is dead: no retry may send it again.
                {
                    let mut state = self.lock();
                    state.refresh_token = None;
                    state.rejected_refresh = Some(refresh_token);
                }
                self.counters
                    .fallback_logins
                    .fetch_add(1, Ordering::Relaxed);
                let sent = Instant::now();
                match self.login().await {
                    Ok(response) => Ok((response, sent)),
                    Err(fallback) => Err(Error::ReloginFailed {
                        fallback: Box::new(fallback),
                    }),
                }
            }
            Err(error) => Err(error),
        }
    }

    async fn login(&self) -> Result<TokenResponse, Error> {
        self.counters.logins.fetch_add(1, Ordering::Relaxed);
        self.call(TokenCall::Login, self.source.login()).await
    }

    async fn call(
        &self,
        call: TokenCall,
        future: BoxFuture<'_, Result<TokenResponse, Error>>,
    ) -> Result<TokenResponse, Error> {
        let after = self.settings.call_timeout;
        tracing::debug!(%call, "token call");
        tokio::time::timeout(after, future)
            .await
            .unwrap_or(Err(Error::Timeout { call, after }))
    }

    /// The refresh margin for a token of `lifetime`: halved for short-lived
    /// tokens, so they never refresh in a loop.
    fn margin(&self, lifetime: Duration) -> Duration {
        if lifetime < self.settings.refresh_margin * 2 {
            lifetime / 2
        } else {
            self.settings.refresh_margin
        }
    }

    /// Stores a new token: the hot-path header, the rotated refresh token
    /// and the next generation, in one critical section.
    fn install(&self, minted: Minted) -> Arc<Cached> {
        let margin = self.margin(minted.lifetime);
        let skew = self.settings.expiry_skew.min(minted.lifetime / 4);
        let now = Instant::now();
        let stale_at = minted.expiry.checked_sub(margin).unwrap_or(now);
        let expires_at = minted.expiry.checked_sub(skew).unwrap_or(now);
        let mut state = self.lock();
        if let Some(rotated) = minted.refresh_token {
            state.refresh_token = Some(rotated);
        }
        state.generation += 1;
        let cached = Arc::new(Cached {
            header: minted.header,
            generation: state.generation,
            stale_at,
            expires_at,
        });
        self.current.store(Some(Arc::clone(&cached)));
        drop(state);
        tracing::info!(generation = cached.generation, lifetime = ?minted.lifetime, "new token");
        cached
    }

    /// Ends the flight: records a failure for the negative cache, then wakes
    /// every waiter once.
    fn finish(&self, outcome: Result<Arc<Cached>, Error>, done: &watch::Sender<Outcome>) {
        let mut state = self.lock();
        state.flight = None;
        if let Err(error) = &outcome {
            self.counters.failed_rounds.fetch_add(1, Ordering::Relaxed);
            let wait = error
                .retry_after()
                .unwrap_or(self.settings.backoff.max_value());
            tracing::warn!(error = %error, retry_in = ?wait, "token round failed");
            let retry_at = Instant::now() + wait;
            state.failure = Some(Failure {
                error: error.clone(),
                retry_at,
            });
            self.quiet_until
                .store(self.since_epoch(retry_at), Ordering::Relaxed);
        } else {
            self.quiet_until.store(0, Ordering::Relaxed);
        }
        drop(state);
        done.send_replace(Some(outcome));
    }
}

/// A token ready to install: validated, with its expiry on our clock.
struct Minted {
    header: HeaderValue,
    refresh_token: Option<SecretString>,
    lifetime: Duration,
    expiry: Instant,
}

impl Minted {
    /// Validates a response. Expiry counts from when its request was sent.
    fn new(response: TokenResponse, sent: Instant) -> Result<Self, Error> {
        let header = response.header()?;
        let lifetime = response.lifetime(SystemTime::now());
        if lifetime.is_zero() {
            return Err(Error::invalid_token("the token's JWT exp is already past"));
        }
        // `lifetime` is clamped to a year, far from `Instant`'s limits; the
        // fallback only guards against a clock we cannot reason about.
        let expiry = sent.checked_add(lifetime).unwrap_or(sent);
        Ok(Minted {
            header,
            refresh_token: response.refresh_token,
            lifetime,
            expiry,
        })
    }

    /// The shared form, with the expiry moved to the wall clock. A response
    /// without a refresh token keeps `previous`.
    fn stored(&self, generation: u64, previous: Option<SecretString>) -> StoredToken {
        let remaining = self.expiry.saturating_duration_since(Instant::now());
        let access = self
            .header
            .to_str()
            .ok()
            .and_then(|value| value.strip_prefix("Bearer "))
            .unwrap_or_default();
        StoredToken {
            generation,
            access_token: SecretString::from(access.to_owned()),
            refresh_token: self.refresh_token.clone().or(previous),
            expires_at: SystemTime::now() + remaining,
            lifetime: self.lifetime,
        }
    }
}

/// Waits for a flight's outcome: one wake-up per waiter, no polling.
async fn wait(flight: &mut watch::Receiver<Outcome>) -> Result<Arc<Cached>, Error> {
    match flight.wait_for(Option::is_some).await {
        Ok(outcome) => match outcome.as_ref() {
            Some(Ok(cached)) => Ok(Arc::clone(cached)),
            Some(Err(error)) => Err(error.clone()),
            None => Err(Error::Abandoned),
        },
        // The flight task was dropped without an answer: runtime shutdown.
        Err(_) => Err(Error::Abandoned),
    }
}

/// The background refresher: sleeps until the token turns stale, then
/// refreshes it. Holds only a weak reference between runs.
async fn cron(weak: Weak<Shared>, mut stopped: oneshot::Receiver<()>) {
    loop {
        let (wake_at, flight) = {
            let Some(shared) = weak.upgrade() else {
                return;
            };
            let manager = TokenManager { shared };
            let next = manager.next_background_step();
            (next.0, next.1)
        };
        if let Some(mut flight) = flight {
            // The outcome is for the callers; the loop only needs the wait.
            let _ = wait(&mut flight).await;
            continue;
        }
        tokio::select! {
            _ = &mut stopped => return,
            () = tokio::time::sleep_until(wake_at) => {}
        }
    }
}

impl TokenManager {
    /// What the background task does next: join or start a flight now, or
    /// sleep until the given instant.
    fn next_background_step(&self) -> (Instant, Option<watch::Receiver<Outcome>>) {
        let now = Instant::now();
        let mut state = self.shared.lock();
        if let Some(flight) = &state.flight {
            return (now, Some(flight.clone()));
        }
        if let Some(failure) = state.failure.as_ref().filter(|f| now < f.retry_at) {
            return (failure.retry_at, None);
        }
        let stale_at = self.shared.current.load().as_ref().map(|c| c.stale_at);
        match stale_at {
            Some(stale_at) if now < stale_at => (stale_at, None),
            _ => match self.start_flight(&mut state) {
                Ok(flight) => (now, Some(flight)),
                Err(_) => (now + self.shared.settings.backoff.max_value(), None),
            },
        }
    }
}
