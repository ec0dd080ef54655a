//! [`Stats`]: counters of what the manager did.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of what the manager did, for dashboards and demos.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Login calls made with the long-lived credential, fallbacks included.
    pub logins: u64,
    /// Refresh calls made with a refresh token.
    pub refreshes: u64,
    /// Logins made because the refresh token was rejected.
    pub fallback_logins: u64,
    /// Rounds of token calls that ended in an error after their retries.
    pub failed_rounds: u64,
    /// Tokens invalidated by a 401.
    pub invalidations: u64,
    /// The generation of the newest token (0 before the first).
    pub generation: u64,
    /// Requests sent with an expired token in outage mode (see
    /// [`TokenManagerBuilder::outage_grace`](crate::TokenManagerBuilder::outage_grace)).
    pub expired_served: u64,
}

/// The live counters behind [`Stats`], bumped without a lock.
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) logins: AtomicU64,
    pub(super) refreshes: AtomicU64,
    pub(super) fallback_logins: AtomicU64,
    pub(super) failed_rounds: AtomicU64,
    pub(super) invalidations: AtomicU64,
    pub(super) generation: AtomicU64,
    pub(super) expired_served: AtomicU64,
}

impl Counters {
    /// Adds one to `counter`.
    pub(super) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn snapshot(&self) -> Stats {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        Stats {
            logins: read(&self.logins),
            refreshes: read(&self.refreshes),
            fallback_logins: read(&self.fallback_logins),
            failed_rounds: read(&self.failed_rounds),
            invalidations: read(&self.invalidations),
            generation: read(&self.generation),
            expired_served: read(&self.expired_served),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_reads_every_counter() {
        let counters = Counters::default();
        Counters::bump(&counters.logins);
        Counters::bump(&counters.refreshes);
        Counters::bump(&counters.refreshes);
        counters.generation.store(7, Ordering::Relaxed);
        let stats = counters.snapshot();
        assert_eq!((stats.logins, stats.refreshes), (1, 2));
        assert_eq!(stats.generation, 7);
        assert_eq!(stats.failed_rounds + stats.invalidations, 0);
    }
}
