//! Single flight with a negative cache: at most one token round at a time,
//! and after a failed round, its error until the retry time.
//!
//! [`SingleFlight`] is the one place that knows whether a round runs or the
//! last one failed; it lives under the manager's lock. The round itself
//! runs in a spawned task that holds the [`Landing`], so a waiter that gives
//! up never cancels it.

use tokio::sync::watch;
use tokio::time::Instant;

use crate::error::Error;

type Outcome<T> = Option<Result<T, Error>>;

/// The state of the token rounds.
#[derive(Debug)]
pub(super) struct SingleFlight<T> {
    round: Round<T>,
}

#[derive(Debug)]
enum Round<T> {
    Idle,
    Running(watch::Receiver<Outcome<T>>),
    Failed { error: Error, until: Instant },
}

/// What a caller who needs a token finds.
#[derive(Debug)]
pub(super) enum Join<T> {
    /// A round runs: wait for it.
    Wait(Waiter<T>),
    /// The last round failed and its retry time has not come.
    Failed(Error),
    /// Nothing runs: the caller may [`start`](SingleFlight::start) a round.
    Idle,
}

impl<T: Clone> SingleFlight<T> {
    pub(super) fn new() -> Self {
        SingleFlight { round: Round::Idle }
    }

    pub(super) fn join(&self, now: Instant) -> Join<T> {
        match &self.round {
            // A round lands before it tells its waiters, so a closed channel
            // still running means its task was dropped (its runtime shut
            // down, or a panic): nothing will land it, start another.
            Round::Running(outcome) if outcome.has_changed().is_err() => Join::Idle,
            Round::Running(outcome) => Join::Wait(Waiter(outcome.clone())),
            Round::Failed { error, until } if now < *until => Join::Failed(error.clone()),
            Round::Idle | Round::Failed { .. } => Join::Idle,
        }
    }

    /// Whether no round may start now: one runs, or the last one failed
    /// and its retry time has not come.
    pub(super) fn is_quiet(&self, now: Instant) -> bool {
        !matches!(self.join(now), Join::Idle)
    }

    /// Whether the last round failed with an error that needs a person
    /// (a rejected credential): only a caller, never a timer, tries again.
    pub(super) fn failed_for_good(&self) -> bool {
        matches!(&self.round, Round::Failed { error, .. } if !error.is_transient())
    }

    /// When the negative cache ends, if a failed round holds it now.
    pub(super) fn retry_at(&self, now: Instant) -> Option<Instant> {
        match &self.round {
            Round::Failed { until, .. } if now < *until => Some(*until),
            _ => None,
        }
    }

    /// Starts a round, replacing any ended one. The caller runs it and
    /// ends it with [`land`](Self::land).
    pub(super) fn start(&mut self) -> (Landing<T>, Waiter<T>) {
        let (done, outcome) = watch::channel(None);
        self.round = Round::Running(outcome.clone());
        (Landing(done), Waiter(outcome))
    }

    /// Ends the running round. A failure is served until `until`.
    pub(super) fn land(&mut self, outcome: &Result<T, Error>, until: Instant) {
        self.round = match outcome {
            Ok(_) => Round::Idle,
            Err(error) => Round::Failed {
                error: error.clone(),
                until,
            },
        };
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
    use std::time::Duration;

    use super::*;

    fn unreachable() -> Error {
        Error::Unreachable {
            call: crate::error::TokenCall::Login,
            reason: "refused".into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn every_waiter_gets_the_one_rounds_outcome() {
        let mut flight = SingleFlight::<u32>::new();
        assert!(matches!(flight.join(Instant::now()), Join::Idle));
        let (landing, first) = flight.start();
        let Join::Wait(second) = flight.join(Instant::now()) else {
            panic!("a running round is joined");
        };
        assert!(flight.is_quiet(Instant::now()));
        flight.land(&Ok(7), Instant::now());
        landing.send(Ok(7));
        assert_eq!(first.wait().await.unwrap(), 7);
        assert_eq!(second.wait().await.unwrap(), 7);
        assert!(matches!(flight.join(Instant::now()), Join::Idle));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_round_is_served_until_its_retry_time() {
        let mut flight = SingleFlight::<u32>::new();
        let (landing, waiter) = flight.start();
        let until = Instant::now() + Duration::from_secs(5);
        flight.land(&Err(unreachable()), until);
        landing.send(Err(unreachable()));
        assert!(matches!(
            waiter.wait().await,
            Err(Error::Unreachable { .. })
        ));
        assert!(matches!(flight.join(Instant::now()), Join::Failed(_)));
        assert_eq!(flight.retry_at(Instant::now()), Some(until));
        assert!(matches!(flight.join(until), Join::Idle));
        assert_eq!(flight.retry_at(until), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_round_dropped_without_an_answer_is_abandoned() {
        let mut flight = SingleFlight::<u32>::new();
        let (landing, waiter) = flight.start();
        drop(landing);
        assert!(matches!(waiter.wait().await, Err(Error::Abandoned)));
        assert!(
            matches!(flight.join(Instant::now()), Join::Idle),
            "the next caller starts a new round"
        );
    }
}
