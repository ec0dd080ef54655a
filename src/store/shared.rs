//! The fleet protocol over a [`TokenStore`]: adopt a fresher shared token,
//! or lead the token call under the lease, or wait for the member that
//! leads it. While the store fails, it is skipped for a while and each
//! process goes on with its own single flight.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use secrecy::SecretString;
use tokio::time::Instant;

use super::{StoredToken, TokenStore};
use crate::error::Error;
use crate::source::TokenSource;

/// How long a failing store is skipped before it is tried again.
const STORE_RETRY: Duration = Duration::from_secs(5);
/// The longest wait between two looks at the store while another member
/// holds the lease (the store's wake-ups usually come sooner).
const STORE_POLL: Duration = Duration::from_millis(250);

/// The manager's side of the protocol.
pub(crate) trait Member: Sync {
    /// A token installed in the member's own cache.
    type Token: Send;

    /// Installs `token` if it is still fresh and not one this member saw
    /// rejected.
    fn adopt(&self, token: &StoredToken) -> Option<Self::Token>;

    /// Makes the token call, starting from the fleet's refresh token when
    /// it has one, and installs the result. Returns it in the shared form
    /// too; its generation is set by the protocol.
    fn mint(
        &self,
        fleet_refresh_token: Option<SecretString>,
    ) -> impl Future<Output = Result<(Self::Token, StoredToken), Error>> + Send;
}

/// A [`TokenStore`] with its health: whether it answers, and until when a
/// failing one is skipped.
pub(crate) struct SharedStore {
    store: Box<dyn TokenStore>,
    down: AtomicBool,
    skip_until: Mutex<Option<Instant>>,
}

impl SharedStore {
    /// Wraps `store`, letting it derive its sealing key from `source`.
    pub(crate) fn new(mut store: Box<dyn TokenStore>, source: &dyn TokenSource) -> Self {
        store.attach(source);
        SharedStore {
            store,
            down: AtomicBool::new(false),
            skip_until: Mutex::new(None),
        }
    }

    /// Whether the store answered last time.
    pub(crate) fn is_available(&self) -> bool {
        !self.down.load(Ordering::Relaxed)
    }

    /// One attempt through the fleet. `None` when the store is failing (or
    /// skipped after a recent failure): the caller then makes the token
    /// call alone. `lease_ttl` bounds how long one member may lead.
    pub(crate) async fn fetch<M: Member>(
        &self,
        member: &M,
        lease_ttl: Duration,
    ) -> Option<Result<M::Token, Error>> {
        if self.skipped() {
            return None;
        }
        match self.protocol(member, lease_ttl).await {
            Ok(outcome) => {
                if self.down.swap(false, Ordering::Relaxed) {
                    tracing::info!("the shared token store is back");
                }
                Some(outcome)
            }
            Err(error) => {
                self.failed(&error);
                None
            }
        }
    }

    /// The outer `Err` is a store failure; the inner result is the
    /// attempt's answer.
    async fn protocol<M: Member>(
        &self,
        member: &M,
        lease_ttl: Duration,
    ) -> Result<Result<M::Token, Error>, Error> {
        // A live holder finishes within its lease; a dead one's lease
        // expires. Past twice that, something is wrong with the store.
        let give_up = Instant::now() + lease_ttl * 2;
        loop {
            let shared = self.store.load().await?;
            if let Some(token) = shared.as_ref().and_then(|token| member.adopt(token)) {
                return Ok(Ok(token));
            }
            let seen = shared.as_ref().map_or(0, |token| token.generation);
            if let Some(lease) = self.store.try_lease(lease_ttl).await? {
                let outcome = self.lead(member).await;
                if let Err(error) = self.store.release(lease).await {
                    // The lease expires on its own; the others wait at most
                    // its TTL.
                    tracing::debug!(%error, "could not release the refresh lease");
                }
                return outcome;
            }
            let now = Instant::now();
            if now >= give_up {
                return Err(Error::Store {
                    reason: "the member holding the refresh lease never stored a token".into(),
                });
            }
            self.store
                .wait_for_change(seen, STORE_POLL.min(give_up - now))
                .await;
        }
    }

    /// Holding the lease: read the store once more (the previous holder may
    /// have just written), then mint and store the result.
    async fn lead<M: Member>(&self, member: &M) -> Result<Result<M::Token, Error>, Error> {
        let shared = self.store.load().await?;
        if let Some(token) = shared.as_ref().and_then(|token| member.adopt(token)) {
            return Ok(Ok(token));
        }
        let expected = shared.as_ref().map_or(0, |token| token.generation);
        let fleet_refresh_token = shared.and_then(|token| token.refresh_token);
        let (token, mut stored) = match member.mint(fleet_refresh_token).await {
            Ok(minted) => minted,
            Err(error) => return Ok(Err(error)),
        };
        stored.generation = expected + 1;
        match self.store.store(expected, &stored).await {
            Ok(true) => {}
            Ok(false) => tracing::warn!("a newer shared token was stored meanwhile; keeping ours"),
            // Our token is installed locally; the fleet catches up later.
            Err(error) => self.failed(&error),
        }
        Ok(Ok(token))
    }

    fn skipped(&self) -> bool {
        // A poisoned lock still holds a whole `Option<Instant>`: keep using it.
        let skip_until = *self.skip_until.lock().unwrap_or_else(|p| p.into_inner());
        skip_until.is_some_and(|until| Instant::now() < until)
    }

    fn failed(&self, error: &Error) {
        *self.skip_until.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(Instant::now() + STORE_RETRY);
        if !self.down.swap(true, Ordering::Relaxed) {
            tracing::warn!(%error, "the shared token store failed; falling back to this process's own single flight");
        }
    }
}

impl std::fmt::Debug for SharedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedStore")
            .field("available", &self.is_available())
            .finish_non_exhaustive()
    }
}
