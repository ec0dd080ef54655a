//! Test fixtures for the layers above a store: one process's store in
//! memory, and sources with and without a long-lived credential.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use secrecy::SecretString;

use super::seal::PlainToken;
use super::{Lease, StoredBytes, StoredToken, TokenStore};
use crate::error::Error;
use crate::source::{BoxFuture, TokenSource};
use crate::TokenResponse;

/// A store in memory: the bytes, a lease flag, and an outage switch.
#[derive(Default)]
pub(crate) struct Memory {
    pub(crate) entry: Mutex<Option<StoredBytes>>,
    pub(crate) leased: AtomicBool,
    pub(crate) broken: AtomicBool,
}

impl Memory {
    /// Puts `token` in, unsealed, as a store without a key would.
    pub(crate) fn put_plain(&self, token: &StoredToken) {
        let bytes = PlainToken::new(token).to_bytes().unwrap();
        *self.entry.lock().unwrap() = Some(StoredBytes::new(token.generation, bytes));
    }

    /// The unsealed token in the store.
    pub(crate) fn plain(&self) -> Option<StoredToken> {
        let entry = self.entry.lock().unwrap().clone()?;
        Some(PlainToken::from_bytes(&entry.bytes)?.into_stored(entry.generation))
    }

    fn check(&self) -> Result<(), Error> {
        if self.broken.load(Ordering::Relaxed) {
            return Err(Error::Store {
                reason: "down".into(),
            });
        }
        Ok(())
    }
}

impl TokenStore for Arc<Memory> {
    fn load(&self) -> BoxFuture<'_, Result<Option<StoredBytes>, Error>> {
        Box::pin(async { self.check().map(|()| self.entry.lock().unwrap().clone()) })
    }

    fn try_lease(&self, _: Duration) -> BoxFuture<'_, Result<Option<Lease>, Error>> {
        Box::pin(async {
            self.check()?;
            let taken = self.leased.swap(true, Ordering::Relaxed);
            Ok((!taken).then(|| Lease::new("mine")))
        })
    }

    fn store<'a>(
        &'a self,
        expected: u64,
        entry: &'a StoredBytes,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(async move {
            self.check()?;
            let mut stored = self.entry.lock().unwrap();
            let current = stored.as_ref().map_or(0, |e| e.generation);
            let written = current == expected;
            if written {
                *stored = Some(entry.clone());
            }
            Ok(written)
        })
    }

    fn release(&self, _: Lease) -> BoxFuture<'_, Result<(), Error>> {
        self.leased.store(false, Ordering::Relaxed);
        Box::pin(async { Ok(()) })
    }

    fn wait_for_change(&self, _: u64, timeout: Duration) -> BoxFuture<'_, ()> {
        Box::pin(tokio::time::sleep(timeout))
    }
}

/// A token with `left` to live out of 60 s, and a refresh token named
/// after it.
pub(crate) fn token(access: &str, generation: u64, left: Duration) -> StoredToken {
    StoredToken::new(
        SecretString::from(access.to_owned()),
        SystemTime::now() + left,
        Duration::from_secs(60),
    )
    .with_refresh_token(SecretString::from(format!("{access}-refresh")))
    .with_generation(generation)
}

/// A source with no long-lived credential, and no token calls.
pub(crate) struct Nothing;

impl TokenSource for Nothing {
    fn login(&self) -> BoxFuture<'_, Result<TokenResponse, Error>> {
        Box::pin(async { Err(Error::config("unused")) })
    }

    fn refresh<'a>(&'a self, _: &'a SecretString) -> BoxFuture<'a, Result<TokenResponse, Error>> {
        self.login()
    }
}
