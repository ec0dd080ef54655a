//! The clock task: moves the current token's phase when its deadlines pass
//! on the monotonic clock, so the hot path reads a flag instead of the
//! clock, and in background mode ("cron job") refreshes the token when it
//! turns stale, so an idle client never waits.
//!
//! One task per manager. It sleeps until the next deadline or until a
//! round ends, holds only a weak reference between two looks, and ends when
//! the last clone of the manager is dropped.

use std::sync::{Arc, Weak};

use tokio::runtime::Handle;
use tokio::sync::watch;
use tokio::time::Instant;

use super::lifetime::Phase;
use super::{Shared, TokenManager};

/// Starts the clock task unless one runs (it may have died with an earlier
/// runtime). Called under the state lock, or before the manager is shared.
pub(super) fn ensure(shared: &Arc<Shared>, runtime: &Handle) {
    if shared.clock.receiver_count() > 0 {
        return;
    }
    let woken = shared.clock.subscribe();
    runtime.spawn(run(Arc::downgrade(shared), woken));
}

async fn run(weak: Weak<Shared>, mut woken: watch::Receiver<()>) {
    loop {
        let next = match weak.upgrade() {
            Some(shared) => TokenManager { shared }.tick(Instant::now()),
            None => return,
        };
        let alive = match next {
            Some(at) => tokio::select! {
                changed = woken.changed() => changed.is_ok(),
                () = tokio::time::sleep_until(at) => true,
            },
            None => woken.changed().await.is_ok(),
        };
        if !alive {
            return;
        }
    }
}

impl TokenManager {
    /// Applies what has come due at `now`, and returns when to look again
    /// (`None`: only when a round ends).
    fn tick(&self, now: Instant) -> Option<Instant> {
        let background = self.shared.settings.background;
        let mut state = self.shared.lock();
        let retry_at = state.flight.retry_at(now);
        let quiet = state.flight.is_quiet(now);
        let Some(cached) = self.shared.current.load_full() else {
            if background && !quiet {
                let _ = self.start_flight(&mut state);
            }
            return retry_at;
        };
        cached.observe(now);
        if !quiet {
            // A failed round's backoff is over: requests may start the next.
            cached.wake();
            if background && cached.phase() != Phase::Fresh {
                self.on_stale(&mut state, &cached);
            }
        }
        [cached.deadlines.stale, cached.deadlines.expires]
            .into_iter()
            .chain(retry_at)
            .filter(|at| *at > now)
            .min()
    }
}
