//! The token calls of one attempt: refresh with the refresh token, falling
//! back to a login when the endpoint rejects it; the fleet's side of the
//! store protocol.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use secrecy::{ExposeSecret, SecretString};
use tokio::time::Instant;

use super::lifetime::{self, Cached};
use super::stats::Counters;
use super::Shared;
use crate::error::{Error, TokenCall};
use crate::source::{BoxFuture, TokenResponse};
use crate::store::{Member, StoredToken};

/// A token ready to install: validated, with its expiry on our clock.
pub(super) struct Minted {
    pub(super) header: HeaderValue,
    pub(super) refresh_token: Option<SecretString>,
    pub(super) lifetime: Duration,
    pub(super) expiry: Instant,
}

impl Minted {
    /// Validates a response. Expiry counts from when its request was sent.
    fn new(response: TokenResponse, sent: Instant) -> Result<Self, Error> {
        let header = response.header()?;
        let lifetime = response.lifetime(lifetime::wall_now());
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
    fn stored(&self, previous: Option<SecretString>) -> StoredToken {
        let remaining = self.expiry.saturating_duration_since(Instant::now());
        let access = self
            .header
            .to_str()
            .ok()
            .and_then(|value| value.strip_prefix("Bearer "))
            .unwrap_or_default();
        StoredToken {
            generation: 0,
            access_token: SecretString::from(access.to_owned()),
            refresh_token: self.refresh_token.clone().or(previous),
            expires_at: lifetime::wall_now() + remaining,
            lifetime: self.lifetime,
        }
    }
}

/// Whether two secrets are the same token.
pub(super) fn same(a: &SecretString, b: &SecretString) -> bool {
    a.expose_secret() == b.expose_secret()
}

impl Shared {
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
            Ok(response) => return Minted::new(response, sent),
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
        Minted::new(response, sent)
    }

    /// One token call, bounded by the call timeout so no waiter hangs.
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
}

impl Member for Shared {
    type Token = Arc<Cached>;

    fn adopt(&self, token: &StoredToken) -> Option<Arc<Cached>> {
        let remaining = token.expires_at.duration_since(lifetime::wall_now()).ok()?;
        if remaining <= lifetime::margin(self.settings.refresh_margin, token.lifetime) {
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

    fn mint(
        &self,
        fleet_refresh_token: Option<SecretString>,
    ) -> impl Future<Output = Result<(Arc<Cached>, StoredToken), Error>> + Send {
        async move {
            // The fleet's refresh token is the newest one; ours may be spent.
            let presented =
                fleet_refresh_token.or_else(|| self.lock().refresh_token.clone());
            let minted = self.exchange(presented.clone()).await?;
            let stored = minted.stored(presented);
            Ok((self.install(minted), stored))
        }
    }
}
