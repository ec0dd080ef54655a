//! The [`TokenStore`] seam: where a fleet of processes shares one token.
//!
//! Each [`TokenManager`](crate::TokenManager) keeps its own in-memory copy
//! for the hot path, and that is all it needs on its own. A shared store is
//! consulted only when the local token is stale, expired or rejected, so
//! that the whole fleet makes one token call at a time.

use std::fmt;
use std::time::{Duration, SystemTime};

use secrecy::SecretString;

use crate::error::Error;
use crate::source::{BoxFuture, TokenSource};

#[cfg(feature = "file-store")]
mod file;
#[cfg(feature = "redis")]
mod redis;
#[cfg(any(feature = "file-store", feature = "redis"))]
mod seal;
mod shared;

#[cfg(feature = "file-store")]
pub use self::file::FileStore;
#[cfg(feature = "redis")]
pub use self::redis::RedisStore;
pub(crate) use self::shared::{Member, SharedStore};

/// A token as a shared store keeps it.
///
/// Expiry is on the wall clock, the only clock processes share. `Debug`
/// shows no token.
#[derive(Clone)]
pub struct StoredToken {
    /// The fleet-wide generation: one more for every new token.
    pub generation: u64,
    /// The access token.
    pub access_token: SecretString,
    /// The refresh token that goes with it, if any.
    pub refresh_token: Option<SecretString>,
    /// When the access token expires.
    pub expires_at: SystemTime,
    /// The token's whole lifetime, from which margins are derived.
    pub lifetime: Duration,
}

impl fmt::Debug for StoredToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredToken")
            .field("generation", &self.generation)
            .field("expires_at", &self.expires_at)
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

/// Proof of holding the refresh lease, handed back on release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease(pub String);

/// A token store shared by several managers, usually in several processes
/// ([`RedisStore`](crate::RedisStore) with the `redis` feature).
///
/// The protocol the manager follows when its local token needs replacing:
/// [`load`](Self::load) and adopt a newer usable token; else take the
/// [lease](Self::try_lease), make the token call, [`store`](Self::store) the
/// result with a compare-and-swap on the generation and
/// [`release`](Self::release) the lease; else
/// [wait](Self::wait_for_change) for the holder's token. Any error makes the
/// manager fall back to its local single flight for that round.
pub trait TokenStore: Send + Sync + 'static {
    /// Called once when the manager is built, with its source, so a store
    /// can derive a sealing key from the long-lived credential.
    fn attach(&mut self, source: &dyn TokenSource) {
        let _ = source;
    }

    /// The shared token, if there is one.
    fn load(&self) -> BoxFuture<'_, Result<Option<StoredToken>, Error>>;

    /// Takes the refresh lease for `ttl`, or `None` if another member holds
    /// it.
    fn try_lease(&self, ttl: Duration) -> BoxFuture<'_, Result<Option<Lease>, Error>>;

    /// Writes `token` if the stored generation is still `expected` (0 for
    /// none), and wakes the waiters. Returns whether it was written: a
    /// stale writer never overwrites a newer token.
    fn store<'a>(
        &'a self,
        expected: u64,
        token: &'a StoredToken,
    ) -> BoxFuture<'a, Result<bool, Error>>;

    /// Gives the lease back, if it is still ours.
    fn release(&self, lease: Lease) -> BoxFuture<'_, Result<(), Error>>;

    /// Returns when a generation newer than `generation` may have been
    /// stored, or after `timeout` at the latest.
    fn wait_for_change(&self, generation: u64, timeout: Duration) -> BoxFuture<'_, ()>;
}
