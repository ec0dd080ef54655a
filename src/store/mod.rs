//! The [`TokenStore`] seam: where a fleet of processes shares one token.
//!
//! Each [`TokenManager`](crate::TokenManager) keeps its own in-memory copy
//! for the hot path, and that is all it needs on its own. A shared store is
//! consulted only when the local token is stale, expired or rejected, so
//! that the whole fleet makes one token call at a time.
//!
//! A store keeps opaque bytes under a generation. The tokens are sealed
//! into those bytes, and opened from them, in one place above every store
//! (`sealed.rs`), so a store never sees a token in clear.

use std::any::Any;
use std::fmt;
use std::time::{Duration, SystemTime};

use secrecy::SecretString;

use crate::error::Error;
use crate::source::BoxFuture;

#[cfg(feature = "file-store")]
mod file;
#[cfg(test)]
mod memory;
#[cfg(feature = "redis")]
mod redis;
mod seal;
mod sealed;
mod shared;

#[cfg(feature = "file-store")]
pub use self::file::FileStore;
#[cfg(feature = "redis")]
pub use self::redis::RedisStore;
pub(crate) use self::shared::{Member, SharedStore};

/// A token as the managers of a fleet share it.
///
/// Expiry is on the wall clock, the only clock processes share. `Debug`
/// shows no token.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use bearer_refresh::StoredToken;
/// use secrecy::SecretString;
///
/// let token = StoredToken::new(
///     SecretString::from("access"),
///     SystemTime::now() + Duration::from_secs(60),
///     Duration::from_secs(60),
/// )
/// .with_refresh_token(SecretString::from("refresh"))
/// .with_generation(3);
/// assert_eq!(token.generation, 3);
/// ```
#[derive(Clone)]
#[non_exhaustive]
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
    /// Whether the access token is DPoP-bound (`token_type: DPoP`).
    pub(crate) dpop: bool,
    /// The RFC 7638 thumbprint of the DPoP key of the source that stored
    /// the token: a member whose key differs uses neither the token nor
    /// its refresh token.
    pub(crate) thumbprint: Option<String>,
}

impl StoredToken {
    /// An access token expiring at `expires_at`, out of a whole `lifetime`;
    /// generation 0 and no refresh token until set.
    pub fn new(access_token: SecretString, expires_at: SystemTime, lifetime: Duration) -> Self {
        StoredToken {
            generation: 0,
            access_token,
            refresh_token: None,
            expires_at,
            lifetime,
            dpop: false,
            thumbprint: None,
        }
    }

    /// The refresh token that goes with the access token.
    #[must_use]
    pub fn with_refresh_token(mut self, refresh_token: SecretString) -> Self {
        self.refresh_token = Some(refresh_token);
        self
    }

    /// The fleet-wide generation.
    #[must_use]
    pub fn with_generation(mut self, generation: u64) -> Self {
        self.generation = generation;
        self
    }
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

/// What a [`TokenStore`] keeps: a token sealed into opaque bytes, and its
/// generation in clear for the compare-and-swap.
///
/// The bytes may hold the token in clear when there is no seal key (see
/// the stores' docs), so `Debug` shows only their length.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoredBytes {
    /// The fleet-wide generation of the token inside.
    pub generation: u64,
    /// The sealed token.
    pub bytes: Vec<u8>,
}

impl StoredBytes {
    /// The bytes of the token of `generation`.
    pub fn new(generation: u64, bytes: Vec<u8>) -> Self {
        StoredBytes { generation, bytes }
    }
}

impl fmt::Debug for StoredBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredBytes")
            .field("generation", &self.generation)
            .field("len", &self.bytes.len())
            .finish()
    }
}

/// Proof of holding the refresh lease, handed back on release.
///
/// A store makes one with [`Lease::new`] from an id of its choosing, and
/// reads the id back with [`Lease::id`] when the lease is released.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease(String);

impl Lease {
    /// A lease known to its store by `id`.
    pub fn new(id: impl Into<String>) -> Self {
        Lease(id.into())
    }

    /// The id the store gave the lease.
    pub fn id(&self) -> &str {
        &self.0
    }
}

/// A token store shared by several managers, usually in several processes
/// (`FileStore` on one machine,
/// `RedisStore` across machines).
///
/// A store keeps opaque bytes with a generation; it never sees a token in
/// clear (the manager seals tokens before they reach it).
///
/// The protocol the manager follows when its local token needs replacing:
/// [`load`](Self::load) and adopt a newer usable token; else take the
/// [lease](Self::try_lease), make the token call, [`store`](Self::store) the
/// result with a compare-and-swap on the generation and
/// [`release`](Self::release) the lease; else
/// [wait](Self::wait_for_change) for the holder's token. Any error makes the
/// manager fall back to its local single flight for that round.
pub trait TokenStore: Any + Send + Sync {
    /// The stored bytes, if there are any.
    fn load(&self) -> BoxFuture<'_, Result<Option<StoredBytes>, Error>>;

    /// Takes the refresh lease for `ttl`, or `None` if another member holds
    /// it.
    fn try_lease(&self, ttl: Duration) -> BoxFuture<'_, Result<Option<Lease>, Error>>;

    /// Writes `entry` if the stored generation is still `expected` (0 for
    /// none), and wakes the waiters. Returns whether it was written: a
    /// stale writer never overwrites a newer token.
    fn store<'a>(
        &'a self,
        expected: u64,
        entry: &'a StoredBytes,
    ) -> BoxFuture<'a, Result<bool, Error>>;

    /// Gives the lease back, if it is still ours.
    fn release(&self, lease: Lease) -> BoxFuture<'_, Result<(), Error>>;

    /// Returns when a generation newer than `generation` may have been
    /// stored, or after `timeout` at the latest.
    fn wait_for_change(&self, generation: u64, timeout: Duration) -> BoxFuture<'_, ()>;
}
