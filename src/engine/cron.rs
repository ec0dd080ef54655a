//! The clock task: moves the current token's phase when its deadlines
//! pass, so that the hot path reads a flag instead of a clock, and in
//! background mode ("cron job") refreshes the token when it turns stale, so
//! an idle client never waits.
//!
//! One task per manager, a plain loop: look at the token and the rounds,
//! then sleep until the next deadline, at most [`WALL_CHECK`] (the wall
//! clock has no timers), or until a round ends. It holds only a weak
//! reference between two looks, and ends when the last clone of the
//! manager is dropped.
//!
//! The phase moves inside the timer's wake-up, not when the task next runs:
//! a caller woken in the same instant (a test that advances paused time, a
//! busy runtime) already sees it. That takes one waker of our own,
//! [`Alarm`], around the task's.

use std::future::{poll_fn, Future};
use std::pin::pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Wake, Waker};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::watch;
use tokio::time::Instant;

use super::clock::WallClock;
use super::flight::{SingleFlight, Trigger};
use super::lifetime::{Cached, Phase};
use super::Shared;

/// How often the wall clock is compared with the deadlines: after a
/// suspend, a token whose wall-clock expiry has passed is expired within
/// this much waking time.
const WALL_CHECK: Duration = Duration::from_secs(1);

/// How long a round runs before outage mode takes it for a failing
/// endpoint, once the token has expired: a token call answers well within
/// it, or hangs.
const HANGS_AFTER: Duration = Duration::from_secs(1);

/// Starts the clock task unless one runs (it may have died with an earlier
/// runtime). Called under the flight's lock, or before the manager is
/// shared.
pub(super) fn ensure(shared: &Arc<Shared>, runtime: &Handle) {
    if shared.ticks.receiver_count() > 0 {
        return;
    }
    let woken = shared.ticks.subscribe();
    runtime.spawn(run(Arc::downgrade(shared), woken));
}

async fn run(weak: Weak<Shared>, mut woken: watch::Receiver<()>) {
    loop {
        let Some(shared) = weak.upgrade() else {
            return;
        };
        let (at, alarm) = tick(&shared, Instant::now());
        drop(shared);
        tokio::select! {
            changed = woken.changed() => if changed.is_err() {
                return;
            },
            () = sleep_until(at, alarm) => {}
        }
    }
}

/// Applies what has come due at `now`, and returns when to look again,
/// with what to apply when that time comes.
fn tick(shared: &Arc<Shared>, now: Instant) -> (Instant, Option<Arc<Alarm>>) {
    let current = shared.current.load_full();
    if let Some(cached) = &current {
        cached.observe(now, shared.wall.now());
    }
    let mut flight = shared.flight.lock();
    let idle = flight.reopen(now);
    let retry_at = flight.retry_at(now);
    let due = current.as_ref().is_none_or(|c| c.phase() != Phase::Fresh);
    // A round that has run for a while when the token is expired hangs
    // (or retries): outage mode serves the token meanwhile.
    let outage_mode = !shared.settings.outage_grace.is_zero();
    let hangs_at = flight.running_since().map(|since| since + HANGS_AFTER);
    let hanging = current.as_ref().is_some_and(|c| {
        outage_mode && c.phase() == Phase::Expired && hangs_at.is_some_and(|at| at <= now)
    });
    // After a rejected credential the background task stops trying: with
    // no caller, it would otherwise log in every backoff step for the life
    // of the process.
    // In outage mode the retries go on at the backoff's pace whatever the
    // request rate: this task starts them, requests need not.
    let outage_retry = outage_mode
        && shared.flight.is_failing()
        && current.as_ref().is_some_and(|c| c.within_grace());
    let wanted = (shared.settings.background && due) || outage_retry;
    if wanted && idle && !flight.failed_for_good() {
        if let Some(cached) = &current {
            tracing::debug!(
                generation = cached.generation,
                "token is stale, refreshing in the background"
            );
        }
        let _ = shared.start_round(&mut flight, Trigger::Ahead);
    }
    drop(flight);
    if hanging && !shared.flight.is_failing() {
        shared.flight.attempt_failed(None);
    }
    if outage_mode
        && current
            .as_ref()
            .is_some_and(|c| c.phase() == Phase::Expired && !c.within_grace())
    {
        shared.outage_over("the outage grace is over");
    }
    let deadlines = current.iter().flat_map(|cached| {
        let at = &cached.deadlines;
        [at.stale, at.expires, at.gone]
    });
    let at = deadlines
        .chain(retry_at)
        .chain(hangs_at.filter(|_| outage_mode))
        .filter(|at| *at > now)
        .fold(now + WALL_CHECK, Instant::min);
    let alarm = current.map(|token| {
        Arc::new(Alarm {
            token,
            flight: Arc::clone(&shared.flight),
            wall: Arc::clone(&shared.wall),
            retry_at,
        })
    });
    (at, alarm)
}

/// Sleeps until `at`; when the timer fires, `alarm` applies at once.
async fn sleep_until(at: Instant, alarm: Option<Arc<Alarm>>) {
    let mut sleep = pin!(tokio::time::sleep_until(at));
    let Some(alarm) = alarm else {
        return sleep.await;
    };
    // The sleep is polled when it starts and when it fires (or a round
    // ends): one small allocation each time, a few per token.
    poll_fn(|cx| {
        let waker = Waker::from(Arc::new(Ringing {
            alarm: Arc::clone(&alarm),
            task: cx.waker().clone(),
        }));
        sleep.as_mut().poll(&mut Context::from_waker(&waker))
    })
    .await;
}

/// What the timer applies the moment it fires: the token's deadlines, and
/// the end of a failed round's backoff.
#[derive(Debug)]
struct Alarm {
    token: Arc<Cached>,
    flight: Arc<SingleFlight<Arc<Cached>>>,
    wall: Arc<dyn WallClock>,
    retry_at: Option<Instant>,
}

/// The timer's waker: applies the [`Alarm`], then wakes the task.
struct Ringing {
    alarm: Arc<Alarm>,
    task: Waker,
}

impl Wake for Ringing {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let now = Instant::now();
        let Alarm {
            token,
            flight,
            wall,
            retry_at,
        } = &*self.alarm;
        token.observe(now, wall.now());
        if retry_at.is_some_and(|retry_at| now >= retry_at) {
            // The flight's lock is never held where a timer fires.
            flight.lock().reopen(now);
        }
        self.task.wake_by_ref();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::time::{advance, sleep};

    use super::super::test_source::{Step, TestSource};
    use super::*;
    use crate::error::Error;

    const SECOND: Duration = Duration::from_secs(1);

    #[tokio::test(start_paused = true)]
    async fn background_mode_logs_in_and_refreshes_an_idle_client() {
        let source = TestSource::new();
        source.lifetime(4 * SECOND);
        let tokens = source.builder().background_refresh(true).build();
        sleep(Duration::from_millis(10)).await;
        assert_eq!(source.logins(), 1, "started by build, no request");
        // Stale at 2 s at the latest (1.6 s at the earliest, with jitter).
        sleep(2 * SECOND).await;
        assert_eq!(source.refreshes(), 1);
        assert_eq!(tokens.try_authorize().unwrap().generation(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn background_mode_stops_after_a_rejected_credential() {
        let source = TestSource::new();
        source.then(Step::Fail(Error::ApiKeyRejected {
            status: 401,
            title: None,
        }));
        let tokens = source.builder().background_refresh(true).build();
        sleep(60 * SECOND).await;
        assert_eq!(source.logins(), 1, "no login loop without callers");
        // A caller still tries again once the backoff is over.
        assert!(tokens.authorize().await.is_ok());
        assert_eq!(source.logins(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn the_clock_task_ends_with_the_last_clone() {
        let source = TestSource::new();
        source.lifetime(4 * SECOND);
        let tokens = source.builder().background_refresh(true).build();
        let clone = tokens.clone();
        sleep(Duration::from_millis(10)).await;
        let tasks = || Handle::current().metrics().num_alive_tasks();
        assert_eq!(tasks(), 1, "the clock task runs");
        let shared = Arc::downgrade(&tokens.shared);
        drop(tokens);
        sleep(10 * SECOND).await;
        assert!(source.refreshes() > 0, "a clone keeps it going");
        drop(clone);
        sleep(Duration::from_millis(10)).await;
        assert!(
            shared.upgrade().is_none(),
            "the task holds no strong reference"
        );
        assert_eq!(tasks(), 0, "the clock task ended");
        let calls = source.logins() + source.refreshes();
        sleep(60 * SECOND).await;
        assert_eq!(source.logins() + source.refreshes(), calls);
    }

    #[tokio::test(start_paused = true)]
    async fn without_background_mode_the_clock_only_moves_phases() {
        let source = TestSource::new();
        source.lifetime(4 * SECOND);
        let tokens = source.manager();
        tokens.authorize().await.unwrap();
        sleep(10 * SECOND).await;
        assert_eq!(source.refreshes(), 0, "an idle client makes no call");
        assert!(tokens.try_authorize().is_none(), "expired");
    }

    #[tokio::test(start_paused = true)]
    async fn a_phase_moves_when_the_timer_fires_before_any_task_runs() {
        let source = TestSource::new();
        source.lifetime(4 * SECOND);
        let tokens = source.manager();
        tokens.authorize().await.unwrap();
        // `advance` resumes this test before the clock task is polled.
        advance(Duration::from_millis(2001)).await;
        let stale = tokens.shared.current.load_full().unwrap();
        assert_eq!(stale.phase(), Phase::Stale);
        advance(SECOND).await;
        assert_eq!(stale.phase(), Phase::Expired);
    }

    #[test]
    fn a_manager_outliving_its_runtime_gets_a_new_clock_task() {
        let source = TestSource::new();
        source.lifetime(4 * SECOND);
        let runtime = || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .start_paused(true)
                .build()
                .unwrap()
        };
        let tokens = runtime().block_on(async {
            let tokens = source.manager();
            tokens.authorize().await.unwrap();
            tokens
        });
        runtime().block_on(async {
            tokens.invalidate(1);
            tokens.authorize().await.unwrap();
            sleep(3500 * Duration::from_millis(1)).await;
            assert!(tokens.try_authorize().is_none(), "the new task expires it");
        });
    }
}
