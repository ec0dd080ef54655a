//! Single flight with a negative cache: at most one token round at a time,
//! after a failed round its error until the retry time, and rounds that
//! nobody waits for at least [`FLOOR`] apart.
//!
//! [`SingleFlight`] is the one place that knows whether a round runs or the
//! last one failed. The round itself runs in a spawned task that holds the
//! [`Landing`], so a waiter that gives up never cancels it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use crate::error::Error;

/// The shortest time between the starts of two rounds that nobody waits
/// for (background refreshes of a stale token), whatever lifetime the
/// endpoint gives its tokens, and between two attempts that got an
/// unusable token: a broken or hostile endpoint cannot turn every request
/// into a token call.
///
/// A round that a caller waits for (no token, an expired one, a 401) is
/// not held back: a token lives at least this long (shorter ones are
/// refused), so such rounds cannot come faster than about one a second
/// anyway, and holding them would only add latency to every waiter.
pub(super) const FLOOR: Duration = Duration::from_secs(1);

type Outcome<T> = Option<Result<T, Error>>;

/// The state of the token rounds.
#[derive(Debug)]
pub(super) struct SingleFlight<T> {
    /// Whether a round may start now, for the stale path's look without a
    /// lock: false while one runs or a failure's backoff lasts. Kept by
    /// this type alone; a stale `true` costs one lock, a stale `false` at
    /// most a background refresh until the clock task's next look.
    open: AtomicBool,
    /// Whether the token endpoint is failing: an attempt failed with a
    /// transient error (or hangs past the token's expiry) and no round has
    /// succeeded since. Read by outage mode, on the expired path only.
    failing: AtomicBool,
    /// Wakes the callers waiting for a round once it is [failing](Self::is_failing).
    troubled: Notify,
    rounds: Mutex<Rounds<T>>,
}

#[derive(Debug)]
struct Rounds<T> {
    round: Round<T>,
    /// When the last round started (or will, past its floor).
    last_start: Option<Instant>,
    /// The last transient error of a token call while failing.
    last_error: Option<Error>,
}

#[derive(Debug)]
enum Round<T> {
    Idle,
    Running {
        outcome: watch::Receiver<Outcome<T>>,
        /// Cuts the floor's wait short when a caller needs the round now;
        /// `None` once used, or for a round that never waited: a storm of
        /// waiters pays nothing for it.
        hurry: Option<Arc<Notify>>,
    },
    Failed {
        error: Error,
        until: Instant,
    },
}

/// What a caller who needs a token finds.
#[derive(Debug)]
pub(super) enum Join<T> {
    /// A round runs: wait for it.
    Wait(Waiter<T>),
    /// The last round failed and its retry time has not come.
    Failed(Error),
    /// Nothing runs: the caller may [`start`](Flight::start) a round.
    Idle,
}

/// Why a round starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Trigger {
    /// The token is stale and still in use: the [`FLOOR`] applies.
    Ahead,
    /// A caller waits (no token, an expired one, a 401): at once.
    Needed,
}

impl<T: Clone> SingleFlight<T> {
    pub(super) fn new() -> Self {
        SingleFlight {
            open: AtomicBool::new(true),
            failing: AtomicBool::new(false),
            troubled: Notify::new(),
            rounds: Mutex::new(Rounds {
                round: Round::Idle,
                last_start: None,
                last_error: None,
            }),
        }
    }

    /// Whether a round may start now, without a lock (a hint: confirm it
    /// under [`lock`](Self::lock)).
    #[inline]
    pub(super) fn is_open(&self) -> bool {
        self.open.load(Ordering::Relaxed)
    }

    /// Whether the token endpoint is failing (see the field): a relaxed load.
    #[inline]
    pub(super) fn is_failing(&self) -> bool {
        self.failing.load(Ordering::Relaxed)
    }

    /// An attempt of the running round failed: a transient `error` marks
    /// the endpoint failing (and keeps the error for callers with no token
    /// to serve); `None` says the attempt hangs past the token's expiry.
    pub(super) fn attempt_failed(&self, error: Option<&Error>) {
        let mut flight = self.lock();
        if let Some(error) = error {
            if !error.is_transient() {
                return;
            }
            flight.rounds.last_error = Some(error.clone());
        } else if !matches!(flight.rounds.round, Round::Running { .. }) {
            return;
        }
        self.failing.store(true, Ordering::Relaxed);
        drop(flight);
        self.troubled.notify_waiters();
    }

    /// Returns once the endpoint is [failing](Self::is_failing).
    pub(super) async fn troubled(&self) {
        let mut notified = std::pin::pin!(self.troubled.notified());
        notified.as_mut().enable();
        if !self.is_failing() {
            notified.await;
        }
    }

    /// Locks the rounds. Never held across an `.await`.
    pub(super) fn lock(&self) -> Flight<'_, T> {
        // Every update under this lock is a single assignment, so a panic
        // cannot leave it half-written: a poisoned lock is safe to keep.
        let rounds = self
            .rounds
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Flight {
            open: &self.open,
            rounds,
        }
    }

    /// Ends the running round. A failure is served until `until`.
    pub(super) fn land(&self, outcome: &Result<T, Error>, until: Instant) {
        let mut flight = self.lock();
        flight.rounds.round = match outcome {
            Ok(_) => Round::Idle,
            Err(error) => Round::Failed {
                error: error.clone(),
                until,
            },
        };
        flight.open.store(outcome.is_ok(), Ordering::Relaxed);
        let failing = outcome.as_ref().is_err_and(Error::is_transient);
        flight.rounds.last_error = outcome.as_ref().err().filter(|_| failing).cloned();
        self.failing.store(failing, Ordering::Relaxed);
        drop(flight);
        if failing {
            self.troubled.notify_waiters();
        }
    }
}

/// The rounds, locked.
#[derive(Debug)]
pub(super) struct Flight<'a, T> {
    open: &'a AtomicBool,
    rounds: MutexGuard<'a, Rounds<T>>,
}

impl<T: Clone> Flight<'_, T> {
    pub(super) fn join(&self, now: Instant) -> Join<T> {
        match &self.rounds.round {
            // A round lands before it tells its waiters, so a closed channel
            // still running means its task was dropped (its runtime shut
            // down, or a panic): nothing will land it, start another.
            Round::Running { outcome, .. } if outcome.has_changed().is_err() => Join::Idle,
            Round::Running { outcome, .. } => Join::Wait(Waiter(outcome.clone())),
            Round::Failed { error, until } if now < *until => Join::Failed(error.clone()),
            Round::Idle | Round::Failed { .. } => Join::Idle,
        }
    }

    /// Whether a round may start now, and the lock-free hint made to say
    /// so: a failure's retry time or a dead round's task ends the wait.
    pub(super) fn reopen(&self, now: Instant) -> bool {
        let idle = matches!(self.join(now), Join::Idle);
        if idle {
            self.open.store(true, Ordering::Relaxed);
        }
        idle
    }

    /// Whether the last round failed with an error that needs a person
    /// (a rejected credential): only a caller, never a timer, tries again.
    pub(super) fn failed_for_good(&self) -> bool {
        matches!(&self.rounds.round, Round::Failed { error, .. } if !error.is_transient())
    }

    /// The token endpoint's last transient error, while it is failing.
    pub(super) fn failing_error(&self) -> Option<Error> {
        self.rounds.last_error.clone()
    }

    /// When the running round started, if one runs.
    pub(super) fn running_since(&self) -> Option<Instant> {
        match self.rounds.round {
            Round::Running { .. } => self.rounds.last_start,
            _ => None,
        }
    }

    /// When the negative cache ends, if a failed round holds it now.
    pub(super) fn retry_at(&self, now: Instant) -> Option<Instant> {
        match &self.rounds.round {
            Round::Failed { until, .. } if now < *until => Some(*until),
            _ => None,
        }
    }

    /// A caller needs the running round now (its token expired, or a 401):
    /// if it still waits for its floor, it starts at once.
    pub(super) fn hurry(&mut self) {
        if let Round::Running { hurry, .. } = &mut self.rounds.round {
            if let Some(hurry) = hurry.take() {
                hurry.notify_one();
            }
        }
    }

    /// Starts a round, replacing any ended one. The caller runs it after
    /// [`Start::delay`], and ends it with [`SingleFlight::land`].
    pub(super) fn start(
        &mut self,
        now: Instant,
        trigger: Trigger,
    ) -> (Start, Landing<T>, Waiter<T>) {
        let not_before = match trigger {
            Trigger::Needed => None,
            Trigger::Ahead => self
                .rounds
                .last_start
                .map(|last| last + FLOOR)
                .filter(|at| *at > now),
        };
        self.rounds.last_start = Some(not_before.unwrap_or(now));
        let hurry = Arc::new(Notify::new());
        let (done, outcome) = watch::channel(None);
        self.rounds.round = Round::Running {
            outcome: outcome.clone(),
            hurry: not_before.map(|_| Arc::clone(&hurry)),
        };
        self.open.store(false, Ordering::Relaxed);
        (Start { not_before, hurry }, Landing(done), Waiter(outcome))
    }
}

/// When a round may make its first call.
#[derive(Debug)]
pub(super) struct Start {
    not_before: Option<Instant>,
    hurry: Arc<Notify>,
}

impl Start {
    /// Waits out the floor, unless a caller [hurries](Flight::hurry) the
    /// round.
    pub(super) async fn delay(self) {
        if let Some(at) = self.not_before {
            tokio::select! {
                () = tokio::time::sleep_until(at) => {}
                () = self.hurry.notified() => {}
            }
        }
    }
}

/// The running round's end: tells every waiter the outcome.
#[derive(Debug)]
pub(super) struct Landing<T>(watch::Sender<Outcome<T>>);

impl<T> Landing<T> {
    /// Wakes every waiter once. Call it after [`SingleFlight::land`], with
    /// no lock held.
    pub(super) fn send(self, outcome: Result<T, Error>) {
        self.0.send_replace(Some(outcome));
    }
}

/// A caller waiting for a round's outcome.
#[derive(Debug)]
pub(super) struct Waiter<T>(watch::Receiver<Outcome<T>>);

impl<T: Clone> Waiter<T> {
    /// Waits for the outcome: one wake-up, no polling.
    ///
    /// # Errors
    ///
    /// The round's error, or [`Error::Abandoned`] when the round's task
    /// was dropped without an answer (the runtime shuts down).
    pub(super) async fn wait(mut self) -> Result<T, Error> {
        match self.0.wait_for(Option::is_some).await {
            Ok(outcome) => outcome.clone().unwrap_or(Err(Error::Abandoned)),
            Err(_) => Err(Error::Abandoned),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unreachable() -> Error {
        Error::Unreachable {
            call: crate::error::TokenCall::Login,
            reason: "refused".into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn every_waiter_gets_the_one_rounds_outcome() {
        let flight = SingleFlight::<u32>::new();
        let now = Instant::now();
        assert!(matches!(flight.lock().join(now), Join::Idle));
        let (_, landing, first) = flight.lock().start(now, Trigger::Ahead);
        let Join::Wait(second) = flight.lock().join(now) else {
            panic!("a running round is joined");
        };
        assert!(!flight.is_open());
        flight.land(&Ok(7), now);
        landing.send(Ok(7));
        assert_eq!(first.wait().await.unwrap(), 7);
        assert_eq!(second.wait().await.unwrap(), 7);
        assert!(matches!(flight.lock().join(now), Join::Idle));
        assert!(flight.is_open());
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_round_is_served_until_its_retry_time() {
        let flight = SingleFlight::<u32>::new();
        let (_, landing, waiter) = flight.lock().start(Instant::now(), Trigger::Ahead);
        let until = Instant::now() + Duration::from_secs(5);
        flight.land(&Err(unreachable()), until);
        landing.send(Err(unreachable()));
        assert!(matches!(
            waiter.wait().await,
            Err(Error::Unreachable { .. })
        ));
        let locked = flight.lock();
        assert!(matches!(locked.join(Instant::now()), Join::Failed(_)));
        assert_eq!(locked.retry_at(Instant::now()), Some(until));
        assert!(!locked.reopen(Instant::now()));
        assert!(!flight.is_open(), "closed during the backoff");
        assert!(matches!(locked.join(until), Join::Idle));
        assert_eq!(locked.retry_at(until), None);
        assert!(locked.reopen(until));
        assert!(flight.is_open());
    }

    #[tokio::test(start_paused = true)]
    async fn a_transient_failure_marks_the_endpoint_failing_until_a_success() {
        let flight = Arc::new(SingleFlight::<u32>::new());
        let waiting = Arc::clone(&flight);
        let troubled = tokio::spawn(async move { waiting.troubled().await });
        tokio::task::yield_now().await;
        assert!(!troubled.is_finished());
        let permanent = Error::ApiKeyRejected {
            status: 401,
            title: None,
        };
        flight.attempt_failed(Some(&permanent));
        assert!(!flight.is_failing(), "a rejected credential is no outage");
        flight.attempt_failed(Some(&unreachable()));
        assert!(flight.is_failing());
        troubled.await.unwrap();
        assert!(flight.lock().failing_error().is_some());
        flight.land(&Ok(1), Instant::now());
        assert!(!flight.is_failing());
        assert!(flight.lock().failing_error().is_none());
        flight.land(&Err(unreachable()), Instant::now());
        assert!(flight.is_failing(), "a round that failed transiently");
        flight.land(&Err(permanent), Instant::now());
        assert!(!flight.is_failing(), "a permanent error ends it");
    }

    #[tokio::test(start_paused = true)]
    async fn a_round_dropped_without_an_answer_is_abandoned() {
        let flight = SingleFlight::<u32>::new();
        let (_, landing, waiter) = flight.lock().start(Instant::now(), Trigger::Ahead);
        drop(landing);
        assert!(matches!(waiter.wait().await, Err(Error::Abandoned)));
        assert!(
            matches!(flight.lock().join(Instant::now()), Join::Idle),
            "the next caller starts a new round"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn rounds_that_no_401_forced_start_a_floor_apart() {
        let flight = SingleFlight::<u32>::new();
        let started = Instant::now();
        let (first, ..) = flight.lock().start(started, Trigger::Ahead);
        first.delay().await;
        assert_eq!(started.elapsed(), Duration::ZERO, "the first goes at once");
        let (second, ..) = flight.lock().start(Instant::now(), Trigger::Ahead);
        second.delay().await;
        assert_eq!(started.elapsed(), FLOOR);
        let (rejected, ..) = flight.lock().start(Instant::now(), Trigger::Needed);
        rejected.delay().await;
        assert_eq!(started.elapsed(), FLOOR, "a 401's round goes at once");
    }

    #[tokio::test(start_paused = true)]
    async fn a_401_hurries_a_round_waiting_for_its_floor() {
        let flight = SingleFlight::<u32>::new();
        let started = Instant::now();
        drop(flight.lock().start(started, Trigger::Ahead));
        let (delayed, ..) = flight.lock().start(started, Trigger::Ahead);
        flight.lock().hurry();
        delayed.delay().await;
        assert_eq!(started.elapsed(), Duration::ZERO);
    }
}
