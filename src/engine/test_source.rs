//! A scripted [`TokenSource`] for the engine's unit tests: a queue of
//! answers, a latency, call counters, and the refresh tokens presented.
//!
//! Unscripted calls mint a new token: `access-N`, with `refresh-N`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use super::{Backoff, TokenManager, TokenManagerBuilder};
use crate::error::{Error, TokenCall};
use crate::source::{BoxFuture, TokenResponse, TokenSource};

/// One scripted answer.
#[derive(Debug)]
pub(super) enum Step {
    /// A new token with a new refresh token.
    Mint,
    /// A new token without a refresh token.
    MintWithoutRefresh,
    /// The call fails.
    Fail(Error),
}

#[derive(Debug, Clone, Default)]
pub(super) struct TestSource(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    script: Mutex<VecDeque<Step>>,
    minted: AtomicU32,
    logins: AtomicU32,
    refreshes: AtomicU32,
    presented: Mutex<Vec<String>>,
    lifetime: Mutex<Option<Duration>>,
    latency: Mutex<Duration>,
    no_login: AtomicBool,
    initial: Mutex<Option<String>>,
}

impl TestSource {
    pub(super) fn new() -> Self {
        Self::default()
    }

    /// The lifetime of minted tokens (default one hour).
    pub(super) fn lifetime(&self, lifetime: Duration) -> &Self {
        *self.0.lifetime.lock().unwrap() = Some(lifetime);
        self
    }

    /// How long each call takes.
    pub(super) fn latency(&self, latency: Duration) -> &Self {
        *self.0.latency.lock().unwrap() = latency;
        self
    }

    /// Queues the answers of the next calls, login or refresh.
    pub(super) fn then(&self, step: Step) -> &Self {
        self.0.script.lock().unwrap().push_back(step);
        self
    }

    /// Makes it a source with no login, starting from `refresh_token`.
    pub(super) fn without_login(&self, refresh_token: &str) -> &Self {
        self.0.no_login.store(true, Ordering::Relaxed);
        *self.0.initial.lock().unwrap() = Some(refresh_token.to_owned());
        self
    }

    pub(super) fn logins(&self) -> u32 {
        self.0.logins.load(Ordering::Relaxed)
    }

    pub(super) fn refreshes(&self) -> u32 {
        self.0.refreshes.load(Ordering::Relaxed)
    }

    /// The refresh tokens presented, in order.
    pub(super) fn presented(&self) -> Vec<String> {
        self.0.presented.lock().unwrap().clone()
    }

    /// A builder over this source with a deterministic backoff.
    pub(super) fn builder(&self) -> TokenManagerBuilder {
        TokenManager::builder(self.clone()).backoff(Backoff::default().jitter(false))
    }

    /// A manager with the defaults and a deterministic backoff.
    pub(super) fn manager(&self) -> TokenManager {
        self.builder().build()
    }
}

impl Inner {
    async fn answer(&self) -> Result<TokenResponse, Error> {
        let step = self
            .script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Step::Mint);
        let latency = *self.latency.lock().unwrap();
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        let lifetime = self
            .lifetime
            .lock()
            .unwrap()
            .unwrap_or(Duration::from_secs(3600));
        let n = match step {
            Step::Fail(error) => return Err(error),
            Step::Mint | Step::MintWithoutRefresh => {
                self.minted.fetch_add(1, Ordering::Relaxed) + 1
            }
        };
        let response = TokenResponse::new(format!("access-{n}")).with_expires_in(lifetime);
        Ok(match step {
            Step::Mint => response.with_refresh_token(format!("refresh-{n}")),
            _ => response,
        })
    }
}

impl TokenSource for TestSource {
    fn login(&self) -> BoxFuture<'_, Result<TokenResponse, Error>> {
        self.0.logins.fetch_add(1, Ordering::Relaxed);
        Box::pin(self.0.answer())
    }

    fn refresh<'a>(
        &'a self,
        refresh_token: &'a SecretString,
    ) -> BoxFuture<'a, Result<TokenResponse, Error>> {
        self.0.refreshes.fetch_add(1, Ordering::Relaxed);
        let presented = refresh_token.expose_secret().to_owned();
        self.0.presented.lock().unwrap().push(presented);
        Box::pin(self.0.answer())
    }

    fn can_login(&self) -> bool {
        !self.0.no_login.load(Ordering::Relaxed)
    }

    fn initial_refresh_token(&self) -> Option<SecretString> {
        self.0
            .initial
            .lock()
            .unwrap()
            .clone()
            .map(SecretString::from)
    }
}

/// A transient failure of a token call.
pub(super) fn server_error(call: TokenCall) -> Error {
    Error::Status {
        call,
        status: 503,
        title: None,
    }
}

/// The endpoint's rejection of a refresh token.
pub(super) fn refresh_rejected() -> Error {
    Error::RefreshTokenRejected {
        status: 400,
        title: None,
    }
}
