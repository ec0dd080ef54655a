//! One attempt: through the fleet's store, or alone with the token calls
//! (refresh with the refresh token, falling back to a login when the
//! endpoint rejects it); then installing the new token and its rotated
//! refresh token.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::HeaderValue;
use secrecy::{ExposeSecret, SecretString};
use tokio::time::Instant;

use super::bound;
use super::lifetime::{self, Cached, Deadlines};
use super::stats::Counters;
use super::Shared;
use crate::error::{Error, TokenCall};
use crate::metrics;
use crate::source::{BoxFuture, TokenResponse, TokenType};
use crate::store::{Member, StoredToken};

/// A token ready to install: validated, with its expiry on our clock.
pub(super) struct Minted {
    pub(super) header: HeaderValue,
    pub(super) refresh_token: Option<SecretString>,
    pub(super) lifetime: Duration,
    pub(super) expiry: Instant,
    /// Whether the token is DPoP-bound (`token_type: DPoP`).
    pub(super) dpop: bool,
}

impl Minted {
    /// Validates a response. Expiry counts from when its request was sent;
    /// `wall` is the wall clock's time now, for a JWT's `exp`.
    fn new(response: TokenResponse, sent: Instant, wall: SystemTime) -> Result<Self, Error> {
        let dpop = response.token_type() == TokenType::Dpop;
        let header = bound::presented(response.header()?, dpop);
        let lifetime = response.lifetime(wall);
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
            dpop,
        })
    }

    /// The shared form, with the expiry moved to the wall clock (`wall`
    /// being its time now). A response without a refresh token keeps
    /// `previous`. `thumbprint` is the source's DPoP key's, if any.
    fn stored(
        &self,
        previous: Option<SecretString>,
        wall: SystemTime,
        thumbprint: Option<String>,
    ) -> StoredToken {
        let remaining = self.expiry.saturating_duration_since(Instant::now());
        let access = bound::access_token(&self.header);
        let mut stored = StoredToken::new(
            SecretString::from(access.to_owned()),
            wall + remaining,
            self.lifetime,
        );
        stored.refresh_token = self.refresh_token.clone().or(previous);
        stored.dpop = self.dpop;
        stored.thumbprint = thumbprint;
        stored
    }
}

/// Whether two secrets are the same token.
pub(super) fn same(a: &SecretString, b: &SecretString) -> bool {
    a.expose_secret() == b.expose_secret()
}

impl Shared {
    /// One attempt, telling the single flight of a transient failure at
    /// once (outage mode serves the expired token from then on).
    pub(super) async fn attempt(&self) -> Result<Arc<Cached>, Error> {
        let outcome = self.attempt_once().await;
        if let Err(error) = &outcome {
            self.flight.attempt_failed(Some(error));
        }
        outcome
    }

    /// One attempt: through the shared store when there is one and it
    /// answers, else alone.
    async fn attempt_once(&self) -> Result<Arc<Cached>, Error> {
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
    pub(super) fn install(&self, minted: Minted) -> Arc<Cached> {
        let margin = lifetime::margin(self.settings.refresh_margin, minted.lifetime);
        let skew = lifetime::skew(self.settings.expiry_skew, minted.lifetime);
        let deadlines = Deadlines::new(
            minted.expiry,
            self.wall.now(),
            margin,
            skew,
            fastrand::f64(),
            self.settings.outage_grace,
        );
        let mut state = self.lock();
        let rotated = minted.refresh_token.filter(|new| {
            state
                .refresh_token
                .as_ref()
                .is_none_or(|old| !same(old, new))
        });
        if let Some(rotated) = &rotated {
            state.refresh_token = Some(rotated.clone());
        }
        state.generation += 1;
        let cached = Cached::new(minted.header, state.generation, deadlines);
        let cached = Arc::new(self.bind(cached, minted.dpop));
        self.current.store(Some(Arc::clone(&cached)));
        self.counters
            .generation
            .store(state.generation, Ordering::Relaxed);
        drop(state);
        tracing::info!(generation = cached.generation, lifetime = ?minted.lifetime, "new token");
        self.outage_over("the token endpoint answered");
        metrics::new_token(
            &self.settings.name,
            minted.expiry.saturating_duration_since(Instant::now()),
        );
        if let (Some(hook), Some(rotated)) = (&self.on_refresh_token, &rotated) {
            hook(rotated);
        }
        cached
    }

    /// Refreshes with `presented` unless it was rejected before, falling
    /// back to a login when the endpoint rejects it; logs in when there is
    /// no refresh token to present.
    ///
    /// # Errors
    ///
    /// [`Error::SignInRequired`] when a login is needed and the source has
    /// none; [`Error::ReloginFailed`] when the fallback login fails; else
    /// the call's own error.
    pub(super) async fn exchange(&self, presented: Option<SecretString>) -> Result<Minted, Error> {
        let presented = {
            let state = self.lock();
            presented.filter(|token| {
                state
                    .rejected_refresh
                    .as_ref()
                    .is_none_or(|dead| !same(dead, token))
            })
        };
        let Some(refresh_token) = presented else {
            if !self.source.can_login() {
                return Err(Error::SignInRequired { status: None });
            }
            return self.login().await;
        };
        Counters::bump(&self.counters.refreshes);
        let sent = Instant::now();
        let refreshed = self
            .call(TokenCall::Refresh, self.source.refresh(&refresh_token))
            .await;
        let status = match refreshed {
            Ok(response) => return Minted::new(response, sent, self.wall.now()),
            Err(Error::RefreshTokenRejected { status, .. }) => status,
            Err(error) => return Err(error),
        };
        // A rejected refresh token is dead: no retry may send it again.
        {
            let mut state = self.lock();
            state.refresh_token = None;
            state.rejected_refresh = Some(refresh_token);
        }
        if !self.source.can_login() {
            tracing::warn!(status, "refresh token rejected and there is no login");
            return Err(Error::SignInRequired {
                status: Some(status),
            });
        }
        tracing::info!(status, "refresh token rejected, logging in again");
        Counters::bump(&self.counters.fallback_logins);
        self.login().await.map_err(|fallback| Error::ReloginFailed {
            fallback: Box::new(fallback),
        })
    }

    async fn login(&self) -> Result<Minted, Error> {
        Counters::bump(&self.counters.logins);
        let sent = Instant::now();
        let response = self.call(TokenCall::Login, self.source.login()).await?;
        Minted::new(response, sent, self.wall.now())
    }

    /// One token call, bounded by the call timeout so no waiter hangs.
    async fn call(
        &self,
        call: TokenCall,
        future: BoxFuture<'_, Result<TokenResponse, Error>>,
    ) -> Result<TokenResponse, Error> {
        let after = self.settings.call_timeout;
        tracing::debug!(%call, "token call");
        let sent = Instant::now();
        let result = tokio::time::timeout(after, future)
            .await
            .unwrap_or(Err(Error::Timeout { call, after }));
        let kind = metrics::Kind::of(call, &*self.source);
        metrics::token_call(&self.settings.name, kind, &result, sent.elapsed());
        let response = result?;
        self.check_token_type(&response)?;
        Ok(response)
    }
}

impl Member for Shared {
    type Token = Arc<Cached>;

    fn adopt(&self, token: &StoredToken) -> Option<Arc<Cached>> {
        let remaining = token.expires_at.duration_since(self.wall.now()).ok()?;
        if remaining <= lifetime::margin(self.settings.refresh_margin, token.lifetime) {
            return None;
        }
        let minted = Minted {
            header: bound::presented(
                TokenResponse::new(token.access_token.expose_secret())
                    .header()
                    .ok()?,
                token.dpop,
            ),
            refresh_token: token.refresh_token.clone(),
            lifetime: token.lifetime,
            expiry: Instant::now() + remaining,
            dpop: token.dpop,
        };
        if self.lock().invalidated.as_ref() == Some(&minted.header) {
            return None;
        }
        // The round was started because this very token is stale or
        // expired: taking it back would only give it a new generation (a
        // 401 for the old one would then look late) and refresh nothing.
        let current = self.current.load();
        if current.as_ref().is_some_and(|c| c.header == minted.header) {
            return None;
        }
        tracing::debug!(generation = token.generation, "adopted the shared token");
        Some(self.install(minted))
    }

    async fn mint(
        &self,
        fleet_refresh_token: Option<SecretString>,
    ) -> Result<(Arc<Cached>, StoredToken), Error> {
        // The fleet's refresh token is the newest one; ours may be spent.
        let presented = fleet_refresh_token.or_else(|| self.lock().refresh_token.clone());
        let minted = self.exchange(presented.clone()).await?;
        // A refresh token the endpoint just rejected (the exchange fell back
        // to a login) must not become the fleet's.
        let previous = presented.filter(|token| {
            let state = self.lock();
            !state
                .rejected_refresh
                .as_ref()
                .is_some_and(|dead| same(dead, token))
        });
        let stored = minted.stored(previous, self.wall.now(), self.thumbprint());
        Ok((self.install(minted), stored))
    }

    fn failing_wait(&self, error: &Error) -> Option<Duration> {
        let outage_mode = !self.settings.outage_grace.is_zero();
        (outage_mode && error.is_transient()).then(|| {
            error
                .retry_after()
                .unwrap_or(self.settings.backoff.max_delay())
        })
    }

    fn fleet_failing(&self, until: SystemTime) -> Option<Error> {
        if self.settings.outage_grace.is_zero() {
            return None;
        }
        let wait = until.duration_since(self.wall.now()).ok()?;
        // The endpoint's own error if this member saw one; the fleet's
        // deadline otherwise.
        let seen = self.flight.lock().failing_error();
        Some(seen.unwrap_or_else(|| {
            let call = if self.lock().refresh_token.is_some() {
                TokenCall::Refresh
            } else {
                TokenCall::Login
            };
            Error::Unreachable {
                call,
                reason: format!(
                    "another member of the fleet found the token endpoint failing; it tries again in {wait:?}"
                ),
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use futures::future::join_all;
    use secrecy::ExposeSecret;
    use tokio::time::sleep;

    use super::super::test_source::{refresh_rejected, server_error, Step, TestSource};
    use super::super::TokenManager;
    use crate::error::{Error, TokenCall};

    const SECOND: Duration = Duration::from_secs(1);

    /// A manager with 4 s tokens, its first token in hand.
    async fn warm(source: &TestSource) -> TokenManager {
        source.lifetime(4 * SECOND);
        let tokens = source.manager();
        tokens.authorize().await.unwrap();
        tokens
    }

    #[tokio::test(start_paused = true)]
    async fn a_rejected_refresh_token_falls_back_to_one_login() {
        let source = TestSource::new();
        let tokens = warm(&source).await;
        source.then(Step::Fail(refresh_rejected()));
        sleep(4 * SECOND).await;
        assert_eq!(tokens.authorize().await.unwrap().generation(), 2);
        assert_eq!((source.refreshes(), source.logins()), (1, 2));
        assert_eq!(tokens.stats().fallback_logins, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_rejected_refresh_token_is_never_sent_again() {
        let source = TestSource::new();
        let tokens = warm(&source).await;
        // Rejected, then the fallback login fails for a while: every retry
        // logs in, none presents the dead refresh token again.
        source.then(Step::Fail(refresh_rejected()));
        for _ in 0..3 {
            source.then(Step::Fail(server_error(TokenCall::Login)));
        }
        sleep(4 * SECOND).await;
        tokens.authorize().await.unwrap();
        assert_eq!(source.presented(), ["refresh-1"]);
        assert_eq!(source.logins(), 1 + 4);
    }

    #[tokio::test(start_paused = true)]
    async fn a_rejected_api_key_after_a_rejected_refresh_names_both() {
        let source = TestSource::new();
        let tokens = warm(&source).await;
        source.then(Step::Fail(refresh_rejected()));
        source.then(Step::Fail(Error::ApiKeyRejected {
            status: 401,
            title: None,
        }));
        sleep(4 * SECOND).await;
        let err = tokens.authorize().await.unwrap_err();
        assert!(matches!(err, Error::ReloginFailed { .. }), "{err:?}");
        assert!(!err.is_transient(), "never retried in a loop");
        assert_eq!((source.refreshes(), source.logins()), (1, 2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_rotated_refresh_token_replaces_the_old_one() {
        let source = TestSource::new();
        let tokens = warm(&source).await;
        for _ in 0..3 {
            sleep(4 * SECOND).await;
            tokens.authorize().await.unwrap();
        }
        assert_eq!(source.presented(), ["refresh-1", "refresh-2", "refresh-3"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_response_without_a_refresh_token_keeps_the_old_one() {
        let source = TestSource::new();
        let tokens = warm(&source).await;
        source.then(Step::MintWithoutRefresh);
        sleep(4 * SECOND).await;
        tokens.authorize().await.unwrap();
        sleep(4 * SECOND).await;
        tokens.authorize().await.unwrap();
        assert_eq!(source.presented(), ["refresh-1", "refresh-1"]);
        assert_eq!(source.logins(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_refreshes_never_present_the_same_refresh_token() {
        let source = TestSource::new();
        let tokens = warm(&source).await;
        source.latency(Duration::from_millis(100));
        for _ in 0..5 {
            sleep(4 * SECOND).await;
            // Waiters, a stale-window refresh and 401s, all at once.
            let generation = tokens.stats().generation;
            let callers = (0..20).map(|i| {
                let tokens = tokens.clone();
                tokio::spawn(async move {
                    if i % 5 == 0 {
                        tokens.invalidate(generation);
                    }
                    tokens.authorize().await.map(|auth| auth.generation())
                })
            });
            for joined in join_all(callers).await {
                joined.unwrap().unwrap();
            }
        }
        let presented = source.presented();
        let mut unique = presented.clone();
        unique.dedup();
        assert_eq!(presented, unique, "no refresh token presented twice");
        assert_eq!(source.refreshes(), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_login_a_rejected_refresh_token_requires_a_sign_in() {
        let source = TestSource::new();
        source.without_login("handed-over");
        source.then(Step::Fail(refresh_rejected()));
        let tokens = source.manager();
        let err = tokens.authorize().await.unwrap_err();
        assert!(
            matches!(err, Error::SignInRequired { status: Some(400) }),
            "{err:?}"
        );
        assert!(!err.to_string().contains("API key"));
        assert_eq!((source.refreshes(), source.logins()), (1, 0));
        // Later rounds do not "fall back" to a login that cannot exist.
        sleep(10 * SECOND).await;
        let err = tokens.authorize().await.unwrap_err();
        assert!(
            matches!(err, Error::SignInRequired { status: None }),
            "{err:?}"
        );
        assert_eq!((source.refreshes(), source.logins()), (1, 0));
    }

    fn shared_token(access: &str) -> crate::store::StoredToken {
        crate::store::StoredToken::new(
            access.to_owned().into(),
            std::time::SystemTime::now() + 3600 * SECOND,
            3600 * SECOND,
        )
        .with_refresh_token("fleet-refresh".to_owned().into())
        .with_generation(7)
    }

    #[tokio::test(start_paused = true)]
    async fn a_round_never_adopts_the_token_it_is_replacing() {
        use crate::store::Member;
        let source = TestSource::new();
        let tokens = warm(&source).await;
        let held = tokens.try_authorize().unwrap();
        let access = held
            .header()
            .to_str()
            .unwrap()
            .strip_prefix("Bearer ")
            .unwrap();
        assert!(tokens.shared.adopt(&shared_token(access)).is_none());
        let newer = tokens
            .shared
            .adopt(&shared_token("another-access"))
            .unwrap();
        assert_eq!(newer.generation, held.generation() + 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_refresh_token_rejected_in_a_fleet_round_is_not_handed_to_the_fleet() {
        use crate::store::Member;
        let source = TestSource::new();
        let tokens = warm(&source).await;
        source.then(Step::Fail(refresh_rejected()));
        source.then(Step::MintWithoutRefresh);
        let (_, stored) = tokens
            .shared
            .mint(Some("dead-refresh".to_owned().into()))
            .await
            .unwrap();
        assert_eq!(source.presented(), ["dead-refresh"]);
        assert!(
            stored.refresh_token.is_none(),
            "the dead token is not shared"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_initial_refresh_token_is_refreshed_before_any_login() {
        let source = TestSource::new();
        source.without_login("handed-over");
        let tokens = source.manager();
        tokens.authorize().await.unwrap();
        assert_eq!(source.presented(), ["handed-over"]);
        assert_eq!(source.logins(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn the_hook_hears_of_each_new_refresh_token_once() {
        let source = TestSource::new();
        source.lifetime(4 * SECOND);
        let heard = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&heard);
        let tokens = source
            .builder()
            .on_refresh_token(move |token| {
                sink.lock().unwrap().push(token.expose_secret().to_owned());
            })
            .build();
        tokens.authorize().await.unwrap();
        source.then(Step::MintWithoutRefresh);
        for _ in 0..2 {
            sleep(4 * SECOND).await;
            tokens.authorize().await.unwrap();
        }
        assert_eq!(*heard.lock().unwrap(), ["refresh-1", "refresh-3"]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_hook_is_not_told_of_the_initial_refresh_token() {
        let source = TestSource::new();
        source.without_login("handed-over");
        source.then(Step::MintWithoutRefresh);
        let heard = Arc::new(Mutex::new(0));
        let sink = Arc::clone(&heard);
        let tokens = source
            .builder()
            .on_refresh_token(move |_| *sink.lock().unwrap() += 1)
            .build();
        tokens.authorize().await.unwrap();
        assert_eq!(*heard.lock().unwrap(), 0);
    }
}
