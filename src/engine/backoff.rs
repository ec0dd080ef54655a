//! Backoff settings for token calls and replays, built on `backon`.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

/// How failed token calls are retried: exponential backoff with jitter.
///
/// One *round* is up to [`max_attempts`](Backoff::max_attempts) calls; the
/// delay before the second call starts near [`initial`](Backoff::initial)
/// and doubles up to [`max`](Backoff::max). A 429's advertised wait replaces
/// the computed delay. The same settings space out 401 replays after the
/// first one.
///
/// ```
/// use std::time::Duration;
/// use bearer_refresh::Backoff;
///
/// let backoff = Backoff::default()
///     .initial(Duration::from_millis(100))
///     .max(Duration::from_secs(2))
///     .max_attempts(3);
/// assert_eq!(backoff.attempts(), 3);
/// assert_eq!(backoff.max_delay(), Duration::from_secs(2));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    max_attempts: u32,
    jitter: bool,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(200),
            max: Duration::from_secs(5),
            max_attempts: 5,
            jitter: true,
        }
    }
}

impl Backoff {
    /// The delay before the first retry (default 200 ms).
    pub fn initial(mut self, initial: Duration) -> Self {
        self.initial = initial;
        self
    }

    /// The longest delay between two attempts (default 5 s).
    pub fn max(mut self, max: Duration) -> Self {
        self.max = max;
        self
    }

    /// Attempts per round, the first call included (default 5, at least 1).
    pub fn max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = max_attempts.max(1);
        self
    }

    /// Whether delays are randomised (default on). Turn it off only for
    /// deterministic tests: jitter is what keeps a fleet from retrying in
    /// lockstep.
    pub fn jitter(mut self, jitter: bool) -> Self {
        self.jitter = jitter;
        self
    }

    /// The delay before the first retry.
    pub fn initial_delay(&self) -> Duration {
        self.initial
    }

    /// The longest delay between two attempts.
    pub fn max_delay(&self) -> Duration {
        self.max
    }

    /// Attempts per round, the first call included.
    pub fn attempts(&self) -> u32 {
        self.max_attempts
    }

    /// Whether delays are randomised.
    pub fn has_jitter(&self) -> bool {
        self.jitter
    }

    /// Attempts per round; the same as [`attempts`](Self::attempts).
    pub fn max_attempts_value(&self) -> u32 {
        self.max_attempts
    }

    /// The longest delay; the same as [`max_delay`](Self::max_delay).
    pub fn max_value(&self) -> Duration {
        self.max
    }

    /// The delays between the attempts of one round: `max_attempts - 1` of
    /// them.
    pub(crate) fn delays(&self) -> impl Iterator<Item = Duration> {
        let mut builder = ExponentialBuilder::default()
            .with_min_delay(self.initial)
            .with_max_delay(self.max)
            .with_max_times(self.max_attempts.saturating_sub(1) as usize);
        if self.jitter {
            builder = builder.with_jitter();
        }
        // backon's jitter adds up to one more delay; keep the promise that
        // no wait exceeds `max`.
        let max = self.max;
        builder.build().map(move |delay| delay.min(max))
    }

    /// The delay before replay number `replay` (1-based). The first replay
    /// goes at once; later ones back off.
    pub(crate) fn replay_delay(&self, replay: u32) -> Duration {
        if replay <= 1 {
            return Duration::ZERO;
        }
        self.delays().nth(replay as usize - 2).unwrap_or(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap() {
        let backoff = Backoff::default().jitter(false).max_attempts(6);
        let delays: Vec<_> = backoff.delays().collect();
        let ms: Vec<_> = delays.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, vec![200, 400, 800, 1600, 3200]);
    }

    #[test]
    fn jitter_stays_within_the_cap() {
        let backoff = Backoff::default().max_attempts(20);
        assert_eq!(backoff.delays().count(), 19);
        assert!(backoff.delays().all(|d| d <= backoff.max_delay()));
        assert!(backoff.delays().all(|d| d >= Duration::from_millis(200)));
    }

    #[test]
    fn the_getters_read_what_the_setters_set() {
        let backoff = Backoff::default()
            .initial(Duration::from_millis(50))
            .max(Duration::from_secs(1))
            .max_attempts(0)
            .jitter(false);
        assert_eq!(backoff.initial_delay(), Duration::from_millis(50));
        assert_eq!(backoff.max_delay(), Duration::from_secs(1));
        assert_eq!(backoff.attempts(), 1, "at least one");
        assert!(!backoff.has_jitter());
    }

    #[test]
    fn one_attempt_means_no_retry() {
        assert_eq!(Backoff::default().max_attempts(0).delays().count(), 0);
    }

    #[test]
    fn the_first_replay_is_immediate() {
        let backoff = Backoff::default().jitter(false);
        assert_eq!(backoff.replay_delay(1), Duration::ZERO);
        assert_eq!(backoff.replay_delay(2).as_millis(), 200);
        assert_eq!(backoff.replay_delay(3).as_millis(), 400);
    }
}
