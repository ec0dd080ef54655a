//! Outage mode ("static stability"): while the token endpoint fails with
//! transient errors, the expired token goes on for up to the grace, at
//! once; with no token to serve, the endpoint's last error, at once.
//!
//! [`SingleFlight`](super::flight) knows whether the endpoint is failing;
//! the token's phase flag whether the grace lasts; the clock task starts
//! the retries at the backoff's pace, whatever the request rate.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::flight::{Flight, Waiter};
use super::lifetime::Cached;
use super::{AuthHeader, Shared, TokenManager};
use crate::error::Error;
use crate::metrics;

impl TokenManager {
    /// Outage mode: the expired token, while the token endpoint fails and
    /// the grace lasts. Reads only flags; the clock task starts the next
    /// round when the backoff allows, so the request rate does not matter.
    #[cold]
    pub(super) fn serve_expired(&self, cached: &Cached) -> Option<AuthHeader> {
        let shared = &self.shared;
        if shared.settings.outage_grace.is_zero()
            || !cached.within_grace()
            || !shared.flight.is_failing()
        {
            return None;
        }
        shared
            .counters
            .expired_served
            .fetch_add(1, Ordering::Relaxed);
        metrics::expired_served(&shared.settings.name);
        if !shared.serving_expired.load(Ordering::Relaxed)
            && !shared.serving_expired.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(
                generation = cached.generation,
                grace = ?shared.settings.outage_grace,
                "the token endpoint is failing: sending the expired token until it answers or the outage grace ends"
            );
        }
        Some(cached.auth_header())
    }

    /// Waits for the round (a wait the metrics count). In outage mode, an `expired` token is served
    /// instead as soon as the round is failing.
    pub(super) async fn wait(
        &self,
        waiter: Waiter<Arc<Cached>>,
        expired: Option<Arc<Cached>>,
    ) -> Result<AuthHeader, Error> {
        metrics::wait(&self.shared.settings.name);
        let mut outcome = std::pin::pin!(waiter.wait());
        if let Some(expired) = expired.filter(|_| !self.shared.settings.outage_grace.is_zero()) {
            tokio::select! {
                biased;
                outcome = &mut outcome => return outcome.map(|cached| cached.auth_header()),
                () = self.shared.flight.troubled() => {}
            }
            if let Some(auth) = self.serve_expired(&expired) {
                return Ok(auth);
            }
        }
        outcome.await.map(|cached| cached.auth_header())
    }

    /// Outage mode, with no token to serve (none yet, a 401 invalidated
    /// it, or the grace is over): the endpoint's last error, at once, while
    /// it is failing.
    pub(super) fn outage_error(&self, flight: &Flight<'_, Arc<Cached>>) -> Option<Error> {
        if self.shared.settings.outage_grace.is_zero() || !self.shared.flight.is_failing() {
            return None;
        }
        flight.failing_error()
    }
}

impl Shared {
    /// Outage mode stops serving the expired token (a new token, a 401,
    /// a permanent error, the grace over): its second warning.
    pub(super) fn outage_over(&self, why: &str) {
        if self.serving_expired.load(Ordering::Relaxed)
            && self.serving_expired.swap(false, Ordering::Relaxed)
        {
            tracing::warn!(
                served = self.counters.expired_served.load(Ordering::Relaxed),
                "stopped sending the expired token: {why}"
            );
        }
    }
}
