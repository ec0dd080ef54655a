//! The sealing layer: the one place where tokens become the opaque bytes a
//! [`TokenStore`] keeps, and back. It also keeps what no store can be
//! trusted to: a generation never goes back, and an adopted token lives
//! no longer than a token call's would.
//!
//! The key is the user's (`seal_key` on the store) or it is derived from
//! the source's long-lived credential; [`derived_key`] is the one place
//! that knows about sources, and [`context`] the one that knows the
//! shipped stores.

use std::any::Any;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use secrecy::{ExposeSecret, SecretBox};

use super::seal::{Context, PlainToken, Seal};
use super::{StoredBytes, StoredToken, TokenStore};
use crate::error::Error;
use crate::source::{TokenSource, MAX_LIFETIME};

/// The HKDF salt of the keys that seal a store of the user's (the shipped
/// stores keep their own, so that their tokens already stored still open).
const SEAL_SALT: &[u8] = b"bearer-refresh/store-seal/v1";

/// The furthest a stored "failing until" deadline is believed: a writer of
/// the store cannot hold the fleet off the token endpoint for longer.
const MAX_FAILING: Duration = Duration::from_secs(3600);

/// The places whose token was reported unusable and has not opened since:
/// one warning per place, however many managers of the process read it.
static REPORTED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// What a load found.
#[derive(Debug)]
pub(crate) struct Loaded {
    /// The stored generation (0 for none): the compare-and-swap's
    /// expected value, whether or not the token is usable.
    pub(crate) generation: u64,
    /// The token, if it opened and may be used.
    pub(crate) token: Option<StoredToken>,
    /// Until when the fleet found the token endpoint failing (outage
    /// mode's shared negative cache), written with the token.
    pub(crate) failing_until: Option<SystemTime>,
}

/// A [`TokenStore`] seen through its seal.
pub(crate) struct Sealed {
    store: Box<dyn TokenStore>,
    seal: Option<Seal>,
    context: Context,
    /// The highest generation this store was seen to hold: a lower one is
    /// a rollback.
    highest: AtomicU64,
    warned_unsealed: AtomicBool,
    warned_rollback: AtomicBool,
    /// The thumbprint of the source's DPoP key: a stored token bound to
    /// another key (or to none) is not ours to use.
    thumbprint: Option<String>,
    warned_thumbprint: AtomicBool,
}

impl Sealed {
    /// `store`, sealing with its user key or one derived from `source`.
    pub(crate) fn new(store: Box<dyn TokenStore>, source: &dyn TokenSource) -> Self {
        let context = context(&*store);
        let seal = context.key.clone().or_else(|| {
            derived_key(source).map(|secret| Seal::derive(secret, context.salt, &context.info))
        });
        let mut sealed = Self::with_seal(store, seal, context);
        sealed.thumbprint = thumbprint(source);
        sealed
    }

    fn with_seal(store: Box<dyn TokenStore>, seal: Option<Seal>, context: Context) -> Self {
        Sealed {
            store,
            seal,
            context,
            highest: AtomicU64::new(0),
            warned_unsealed: AtomicBool::new(false),
            warned_rollback: AtomicBool::new(false),
            thumbprint: None,
            warned_thumbprint: AtomicBool::new(false),
        }
    }

    /// The store under the seal, for the lease and the wake-ups.
    pub(crate) fn store(&self) -> &dyn TokenStore {
        &*self.store
    }

    /// The stored token, opened and checked.
    ///
    /// # Errors
    ///
    /// The store's errors, and bytes that do not open in a store where
    /// that is an error (see [`Context::unopenable_is_error`]).
    pub(crate) async fn load(&self) -> Result<Loaded, Error> {
        let Some(entry) = self.store.load().await? else {
            return Ok(Loaded {
                generation: 0,
                token: None,
                failing_until: None,
            });
        };
        let generation = entry.generation;
        let highest = self.highest.load(Ordering::Relaxed);
        if generation < highest {
            if !self.warned_rollback.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    place = %self.context.place,
                    generation,
                    highest,
                    "the shared token went back to an older generation (rolled back, or the store was reset); ignoring it"
                );
            }
            return Ok(Loaded {
                generation,
                token: None,
                failing_until: None,
            });
        }
        let (token, failing_until) = match self.open(&entry) {
            Ok(opened) => opened,
            Err(reason) if self.context.unopenable_is_error => {
                return Err(Error::Store {
                    reason: format!("the stored token {reason}"),
                })
            }
            Err(reason) => {
                if self.reported(true) {
                    tracing::warn!(
                        place = %self.context.place,
                        reason,
                        "the stored token is unusable; treating it as empty, the next token overwrites it"
                    );
                }
                return Ok(Loaded {
                    generation,
                    token: None,
                    failing_until: None,
                });
            }
        };
        self.reported(false);
        self.highest.fetch_max(generation, Ordering::Relaxed);
        if token.thumbprint != self.thumbprint {
            self.other_key();
            return Ok(Loaded {
                generation,
                token: None,
                failing_until: None,
            });
        }
        let now = SystemTime::now();
        Ok(Loaded {
            generation,
            token: Some(clamped(token, now)),
            // A deadline further off than any backoff is not believed.
            failing_until: failing_until.filter(|until| *until > now).map(|until| {
                now.checked_add(MAX_FAILING)
                    .map_or(until, |at| until.min(at))
            }),
        })
    }

    /// The generation of the next token, above both the stored one and any
    /// this store was seen to hold, so that a rolled-back store moves on.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] when the generations are used up: the store is then
    /// unusable, and each process goes on alone.
    pub(crate) fn next_generation(&self, stored: u64) -> Result<u64, Error> {
        stored
            .max(self.highest.load(Ordering::Relaxed))
            .checked_add(1)
            .ok_or_else(|| Error::Store {
                reason: format!(
                    "the stored generation is at its limit ({}); remove the stored token to reset it",
                    u64::MAX
                ),
            })
    }

    /// Seals `token` and writes it if the stored generation is still
    /// `expected`. Returns whether it was written.
    ///
    /// # Errors
    ///
    /// The store's errors, or a token that cannot be encoded.
    pub(crate) async fn write(&self, expected: u64, token: &StoredToken) -> Result<bool, Error> {
        self.write_plain(expected, token, PlainToken::new(token))
            .await
    }

    /// Writes `token` back under its own generation, marked with the
    /// fleet's "failing until" deadline, unless a newer token was stored
    /// meanwhile. Returns whether it was written.
    ///
    /// # Errors
    ///
    /// As for [`write`](Self::write).
    pub(crate) async fn mark_failing(
        &self,
        token: &StoredToken,
        until: SystemTime,
    ) -> Result<bool, Error> {
        let plain = PlainToken::new(token).failing_until(Some(until));
        self.write_plain(token.generation, token, plain).await
    }

    async fn write_plain(
        &self,
        expected: u64,
        token: &StoredToken,
        plain: PlainToken,
    ) -> Result<bool, Error> {
        let entry = StoredBytes::new(token.generation, self.close(token.generation, &plain)?);
        let written = self.store.store(expected, &entry).await?;
        if written {
            self.highest.fetch_max(token.generation, Ordering::Relaxed);
        }
        Ok(written)
    }

    /// A stored token bound to another DPoP key than ours (or stored by
    /// a member with none, or another): neither it nor its refresh token
    /// would work for us.
    #[cold]
    fn other_key(&self) {
        if !self.warned_thumbprint.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                place = %self.context.place,
                "the stored token belongs to another DPoP key (or to none): ignoring it and its refresh token; the members sharing a token must load the same DPoP key"
            );
        }
    }

    /// Marks this store's token as reported unusable (or good again);
    /// returns whether that changed anything.
    fn reported(&self, bad: bool) -> bool {
        let mut reported = REPORTED
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if bad {
            reported.insert(self.context.place.clone())
        } else {
            reported.remove(&self.context.place)
        }
    }

    fn close(&self, generation: u64, token: &PlainToken) -> Result<Vec<u8>, Error> {
        let bytes = match &self.seal {
            Some(seal) => seal.seal_plain(token, &self.context.associated_data(generation)),
            None => {
                if !self.warned_unsealed.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        place = %self.context.place,
                        "writing the token unsealed: the source has no long-lived credential to derive a seal key from; give the store one with {}",
                        self.context.setter
                    );
                }
                token.to_bytes()
            }
        };
        bytes.ok_or_else(|| Error::Store {
            reason: "cannot encode the token".into(),
        })
    }

    /// The token in `entry` and its "failing until" mark, or why it is not
    /// usable.
    fn open(&self, entry: &StoredBytes) -> Result<(StoredToken, Option<SystemTime>), &'static str> {
        let plain = match &self.seal {
            Some(seal) => seal
                .open_plain(&entry.bytes, &self.context.associated_data(entry.generation))
                .ok_or(
                    "does not open with our seal key (another credential or seal key, unsealed, or tampered)",
                )?,
            None => {
                let bytes = SecretBox::new(Box::new(entry.bytes.clone()));
                PlainToken::from_bytes(bytes.expose_secret())
                    .ok_or("is sealed, or not a token, and this store has no seal key")?
            }
        };
        let failing = plain.failing();
        Ok((plain.into_stored(entry.generation), failing))
    }
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealed")
            .field("place", &self.context.place)
            .field("sealed", &self.seal.is_some())
            .finish_non_exhaustive()
    }
}

/// The thumbprint of `source`'s DPoP key, if it has one.
fn thumbprint(source: &dyn TokenSource) -> Option<String> {
    #[cfg(feature = "dpop")]
    return source.dpop_key().map(crate::dpop::DpopKey::thumbprint);
    #[cfg(not(feature = "dpop"))]
    {
        let _ = source;
        None
    }
}

/// The source's long-lived credential, from which the default seal key is
/// derived (the shipped sources' secret; none for a source of the user's).
fn derived_key(source: &dyn TokenSource) -> Option<&[u8]> {
    crate::source::long_lived_secret(source).map(|secret| secret.expose_secret().as_bytes())
}

/// How `store` wants its tokens sealed: the one place that knows the
/// shipped stores.
fn context(store: &dyn TokenStore) -> Context {
    let store: &dyn Any = store;
    #[cfg(feature = "file-store")]
    if let Some(file) = store.downcast_ref::<super::FileStore>() {
        return file.seal_context();
    }
    #[cfg(feature = "redis")]
    if let Some(redis) = store.downcast_ref::<super::RedisStore>() {
        return redis.seal_context();
    }
    let _ = store;
    Context {
        key: None,
        salt: SEAL_SALT,
        info: Vec::new(),
        aad: "bearer-refresh/store:".into(),
        unopenable_is_error: false,
        setter: "a seal key (only FileStore and RedisStore take one)",
        place: "the token store".into(),
    }
}

/// `token` held to what a token call could give: a lifetime of at most
/// the sources' limit (a year), and no more of it left than its whole
/// lifetime. A stored expiry far in the future is not believed.
fn clamped(mut token: StoredToken, now: SystemTime) -> StoredToken {
    token.lifetime = token.lifetime.min(MAX_LIFETIME);
    if let Some(latest) = now.checked_add(token.lifetime) {
        token.expires_at = token.expires_at.min(latest);
    }
    token
}

#[cfg(test)]
mod tests;
