//! Outage mode ("static stability"): while the token endpoint fails with
//! transient errors, the expired token goes on for up to the grace, at
//! once; with no token to serve, the endpoint's last error, at once.
//!
//! [`SingleFlight`](super::flight) knows whether the endpoint is failing;
//! the token's phase flag whether the grace lasts; the clock task starts
//! the retries at the backoff's pace, whatever the request rate.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::time::Instant;

use super::flight::{Trigger, Waiter};
use super::lifetime::{Cached, Phase};
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

    /// Outage mode, for a caller with no usable token: while the endpoint
    /// is failing, the expired token within the grace, else the endpoint's
    /// last error, at once (the retries go on). `None` when outage mode has
    /// nothing to say: the caller joins the rounds as usual.
    pub(super) async fn outage_answer(&self) -> Option<Result<AuthHeader, Error>> {
        let shared = &self.shared;
        if shared.settings.outage_grace.is_zero() || !shared.flight.is_failing() {
            return None;
        }
        if let Some(cached) = shared.current.load_full() {
            if cached.phase() != Phase::Expired {
                return None;
            }
            if let Some(auth) = self.serve_expired(&cached) {
                return Some(Ok(auth));
            }
        }
        let error = {
            let mut flight = shared.flight.lock();
            let error = flight.failing_error()?;
            if flight.reopen(Instant::now()) {
                let _ = shared.start_round(&mut flight, Trigger::Needed);
            }
            error
        };
        // As for the negative cache: a caller retrying in a loop must
        // still let the runtime run other tasks.
        tokio::task::consume_budget().await;
        Some(Err(error))
    }

    /// Waits for the round (a wait the metrics count). In outage mode, once
    /// the round is failing, answers as [`outage_answer`](Self::outage_answer)
    /// does instead.
    pub(super) async fn wait(&self, waiter: Waiter<Arc<Cached>>) -> Result<AuthHeader, Error> {
        metrics::wait(&self.shared.settings.name);
        let mut outcome = std::pin::pin!(waiter.wait());
        if !self.shared.settings.outage_grace.is_zero() {
            tokio::select! {
                biased;
                outcome = &mut outcome => return outcome.map(|cached| cached.auth_header()),
                () = self.shared.flight.troubled() => {}
            }
            if let Some(answer) = self.outage_answer().await {
                return answer;
            }
        }
        outcome.await.map(|cached| cached.auth_header())
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
