//! [`TokenCache`]: one user's cached view of the current token.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use arc_swap::cache::Cache;
use arc_swap::ArcSwapOption;

use super::lifetime::Cached;
use super::{AuthHeader, Shared, TokenManager};

/// One user's cached view of the current token.
///
/// [`TokenManager::try_authorize`] pays for `ArcSwapOption::load`'s debt
/// slot on every call. A user that has `&mut` access (a tower service, in
/// `call`) can keep the `Arc` it saw last instead, and see that it is still
/// current with one relaxed load of the pointer; only a new token costs a
/// full load. The cached `Arc` keeps the previous token in memory until
/// that user's next request.
#[derive(Clone)]
pub(crate) struct TokenCache {
    cache: Cache<Current, Option<Arc<Cached>>>,
}

impl TokenCache {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        TokenCache {
            cache: Cache::new(Current(shared)),
        }
    }

    /// As [`TokenManager::try_authorize`], for the manager this cache was
    /// made from.
    #[inline]
    pub(crate) fn try_authorize(&mut self, tokens: &TokenManager) -> Option<AuthHeader> {
        debug_assert!(std::ptr::eq(self.cache.arc_swap(), &tokens.shared.current));
        let cached = self.cache.load().as_ref()?;
        tokens.serve(cached)
    }
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCache").finish_non_exhaustive()
    }
}

/// The manager's current token, as `arc_swap::Cache` wants it: an owned
/// handle that dereferences to the swap.
#[derive(Clone)]
struct Current(Arc<Shared>);

impl Deref for Current {
    type Target = ArcSwapOption<Cached>;

    fn deref(&self) -> &Self::Target {
        &self.0.current
    }
}
