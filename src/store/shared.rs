//! The fleet protocol over a [`TokenStore`]: adopt a fresher shared token,
//! or lead the token call under the lease, or wait for the member that
//! leads it. While the store fails, it is skipped for a while and each
//! process goes on with its own single flight.
//!
//! In outage mode a leader whose token call fails transiently writes the
//! held token back under its own generation, marked "failing until" (wall
//! clock) a backoff step later; until then every member's attempt ends
//! with an error instead of a call, so the fleet makes about one token
//! call per step in all. The mark travels inside the sealed token (see
//! `PlainToken`), so old tokens still read and older readers ignore it.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use secrecy::SecretString;
use tokio::time::Instant;

use super::sealed::{Loaded, Sealed};
use super::{StoredToken, TokenStore};
use crate::error::Error;
use crate::metrics;
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

    /// After this member's token call failed with `error`: how long the
    /// fleet should leave the token endpoint alone, or `None` to tell the
    /// fleet nothing (outage mode off, or a permanent error).
    fn failing_wait(&self, error: &Error) -> Option<Duration>;

    /// The fleet found the token endpoint failing until `until`: the error
    /// this member's attempt ends with instead of a call, or `None` to
    /// ignore the fleet's deadline (outage mode off).
    fn fleet_failing(&self, until: SystemTime) -> Option<Error>;
}

/// A [`TokenStore`] behind its seal, with its health: whether it answers,
/// and until when a failing one is skipped.
pub(crate) struct SharedStore {
    sealed: Sealed,
    /// The metrics' labels: the manager's name, and the store's kind.
    client: metrics::Client,
    label: &'static str,
    down: AtomicBool,
    skip_until: Mutex<Option<Instant>>,
}

impl SharedStore {
    /// Wraps `store`, sealing with its key or one derived from `source`.
    /// `client` names the manager in the metrics.
    pub(crate) fn new(
        store: Box<dyn TokenStore>,
        source: &dyn TokenSource,
        client: &metrics::Client,
    ) -> Self {
        SharedStore {
            label: metrics::store_label(&*store),
            client: std::sync::Arc::clone(client),
            sealed: Sealed::new(store, source),
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
        let store = self.sealed.store();
        loop {
            let shared = self.sealed.load().await?;
            if let Some(token) = shared.token.as_ref().and_then(|token| member.adopt(token)) {
                return Ok(Ok(token));
            }
            if let Some(error) = fleet_failing(member, &shared) {
                return Ok(Err(error));
            }
            if let Some(lease) = store.try_lease(lease_ttl).await? {
                let outcome = self.lead(member).await;
                if let Err(error) = store.release(lease).await {
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
            store
                .wait_for_change(shared.generation, STORE_POLL.min(give_up - now))
                .await;
        }
    }

    /// Holding the lease: read the store once more (the previous holder may
    /// have just written), then mint and store the result.
    async fn lead<M: Member>(&self, member: &M) -> Result<Result<M::Token, Error>, Error> {
        let shared = self.sealed.load().await?;
        if let Some(token) = shared.token.as_ref().and_then(|token| member.adopt(token)) {
            return Ok(Ok(token));
        }
        if let Some(error) = fleet_failing(member, &shared) {
            return Ok(Err(error));
        }
        let expected = shared.generation;
        // Before the token call: a store with no generation left is one
        // this process does without.
        let generation = self.sealed.next_generation(expected)?;
        let fleet_refresh_token = shared.token.as_ref().and_then(|t| t.refresh_token.clone());
        let (token, mut stored) = match member.mint(fleet_refresh_token).await {
            Ok(minted) => minted,
            Err(error) => {
                self.mark_failing(member, &error, shared.token.as_ref())
                    .await;
                return Ok(Err(error));
            }
        };
        stored.generation = generation;
        match self.sealed.write(expected, &stored).await {
            Ok(true) => {}
            Ok(false) => tracing::warn!("a newer shared token was stored meanwhile; keeping ours"),
            // Our token is installed locally; the fleet catches up later.
            Err(error) => self.failed(&error),
        }
        Ok(Ok(token))
    }

    /// Outage mode: tells the fleet that the token endpoint fails, on the
    /// token it holds (a store with no token yet learns nothing).
    async fn mark_failing<M: Member>(&self, member: &M, error: &Error, held: Option<&StoredToken>) {
        let (Some(wait), Some(held)) = (member.failing_wait(error), held) else {
            return;
        };
        let Some(until) = SystemTime::now().checked_add(wait) else {
            return;
        };
        match self.sealed.mark_failing(held, until).await {
            Ok(_) => {
                tracing::debug!(retry_in = ?wait, "told the fleet the token endpoint is failing")
            }
            Err(error) => self.failed(&error),
        }
    }

    fn skipped(&self) -> bool {
        // A poisoned lock still holds a whole `Option<Instant>`: keep using it.
        let skip_until = *self.skip_until.lock().unwrap_or_else(|p| p.into_inner());
        skip_until.is_some_and(|until| Instant::now() < until)
    }

    fn failed(&self, error: &Error) {
        metrics::store_error(&self.client, self.label);
        *self.skip_until.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(Instant::now() + STORE_RETRY);
        if !self.down.swap(true, Ordering::Relaxed) {
            tracing::warn!(%error, "the shared token store failed; falling back to this process's own single flight");
        }
    }
}

/// The member's error when the fleet found the token endpoint failing and
/// its deadline has not passed.
fn fleet_failing<M: Member>(member: &M, loaded: &Loaded) -> Option<Error> {
    member.fleet_failing(loaded.failing_until?)
}

impl std::fmt::Debug for SharedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedStore")
            .field("available", &self.is_available())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU32;
    use std::sync::Arc;

    use secrecy::ExposeSecret;

    use super::*;
    use crate::store::memory::{token, Memory, Nothing};

    /// A member that mints `minted-N` tokens and adopts any fresh one.
    #[derive(Default)]
    struct Counting {
        mints: AtomicU32,
        /// Whether the token calls fail.
        failing: AtomicBool,
        presented: Mutex<Vec<Option<String>>>,
    }

    impl Member for Counting {
        type Token = String;

        fn adopt(&self, token: &StoredToken) -> Option<String> {
            let fresh = token.expires_at > SystemTime::now();
            fresh.then(|| token.access_token.expose_secret().to_owned())
        }

        async fn mint(
            &self,
            refresh: Option<SecretString>,
        ) -> Result<(String, StoredToken), Error> {
            let presented = refresh.map(|t| t.expose_secret().to_owned());
            self.presented.lock().unwrap().push(presented);
            let n = self.mints.fetch_add(1, Ordering::Relaxed) + 1;
            if self.failing.load(Ordering::Relaxed) {
                return Err(Error::Store {
                    reason: "endpoint down".into(),
                });
            }
            let stored = token(&format!("minted-{n}"), 0, Duration::from_secs(60));
            Ok((format!("minted-{n}"), stored))
        }

        fn failing_wait(&self, _: &Error) -> Option<Duration> {
            Some(Duration::from_secs(5))
        }

        fn fleet_failing(&self, _: SystemTime) -> Option<Error> {
            Some(Error::Abandoned)
        }
    }

    fn shared(memory: &Arc<Memory>) -> SharedStore {
        SharedStore::new(Box::new(Arc::clone(memory)), &Nothing, &Arc::from("test"))
    }

    const TTL: Duration = Duration::from_secs(31);

    #[tokio::test(start_paused = true)]
    async fn a_fresh_shared_token_is_adopted_without_a_call() {
        let memory = Arc::new(Memory::default());
        memory.put_plain(&token("shared", 4, Duration::from_secs(60)));
        let member = Counting::default();
        let adopted = shared(&memory).fetch(&member, TTL).await;
        assert_eq!(adopted.unwrap().unwrap(), "shared");
        assert_eq!(member.mints.load(Ordering::Relaxed), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn the_lease_holder_mints_from_the_fleets_refresh_token_and_stores_the_next_generation() {
        let memory = Arc::new(Memory::default());
        memory.put_plain(&token("old", 4, Duration::ZERO));
        let member = Counting::default();
        let minted = shared(&memory).fetch(&member, TTL).await;
        assert_eq!(minted.unwrap().unwrap(), "minted-1");
        let stored = memory.plain().unwrap();
        assert_eq!(stored.generation, 5);
        assert_eq!(
            *member.presented.lock().unwrap(),
            [Some("old-refresh".to_owned())]
        );
        assert!(!memory.leased.load(Ordering::Relaxed), "lease released");
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_adopts_the_lease_holders_token() {
        let memory = Arc::new(Memory::default());
        memory.leased.store(true, Ordering::Relaxed);
        let writer = Arc::clone(&memory);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(600)).await;
            writer.put_plain(&token("theirs", 1, Duration::from_secs(60)));
        });
        let member = Counting::default();
        let adopted = shared(&memory).fetch(&member, TTL).await;
        assert_eq!(adopted.unwrap().unwrap(), "theirs");
        assert_eq!(member.mints.load(Ordering::Relaxed), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_store_is_skipped_for_a_while_then_tried_again() {
        let memory = Arc::new(Memory::default());
        memory.broken.store(true, Ordering::Relaxed);
        let store = shared(&memory);
        let member = Counting::default();
        assert!(store.fetch(&member, TTL).await.is_none(), "fall back");
        assert!(!store.is_available());
        memory.broken.store(false, Ordering::Relaxed);
        assert!(store.fetch(&member, TTL).await.is_none(), "still skipped");
        tokio::time::sleep(STORE_RETRY).await;
        assert!(store.fetch(&member, TTL).await.is_some());
        assert!(store.is_available());
    }

    #[tokio::test(start_paused = true)]
    async fn a_generation_at_its_limit_makes_the_store_unusable_without_a_panic() {
        let memory = Arc::new(Memory::default());
        memory.put_plain(&token("old", u64::MAX, Duration::ZERO));
        let store = shared(&memory);
        let member = Counting::default();
        assert!(store.fetch(&member, TTL).await.is_none(), "fall back");
        assert!(!store.is_available());
        assert_eq!(member.mints.load(Ordering::Relaxed), 0, "no call wasted");
        assert_eq!(memory.plain().unwrap().generation, u64::MAX, "no wrap");
    }

    #[tokio::test(start_paused = true)]
    async fn a_rolled_back_token_is_neither_adopted_nor_refreshed_and_the_next_goes_above() {
        let memory = Arc::new(Memory::default());
        memory.put_plain(&token("current", 5, Duration::from_secs(60)));
        let store = shared(&memory);
        let member = Counting::default();
        assert_eq!(store.fetch(&member, TTL).await.unwrap().unwrap(), "current");
        // Someone who can write the store puts an older token back.
        memory.put_plain(&token("revoked", 3, Duration::from_secs(60)));
        let minted = store.fetch(&member, TTL).await.unwrap().unwrap();
        assert_eq!(minted, "minted-1");
        assert_eq!(*member.presented.lock().unwrap(), [None]);
        assert_eq!(memory.plain().unwrap().generation, 6);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_call_holds_the_whole_fleet_off_until_its_deadline() {
        let memory = Arc::new(Memory::default());
        memory.put_plain(&token("old", 4, Duration::ZERO));
        let (first, second) = (shared(&memory), shared(&memory));
        let member = Counting::default();
        member.failing.store(true, Ordering::Relaxed);
        assert!(first.fetch(&member, TTL).await.unwrap().is_err());
        assert_eq!(member.mints.load(Ordering::Relaxed), 1);
        let marked = memory.plain().unwrap();
        assert_eq!(marked.generation, 4, "the same token, marked");
        // Another member, and the first one again: no call until then.
        let other = Counting::default();
        assert!(matches!(
            second.fetch(&other, TTL).await,
            Some(Err(Error::Abandoned))
        ));
        assert!(first.fetch(&member, TTL).await.unwrap().is_err());
        assert_eq!(member.mints.load(Ordering::Relaxed), 1);
        assert_eq!(other.mints.load(Ordering::Relaxed), 0);
    }
}
