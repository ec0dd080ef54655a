//! Where a token is in its life: fresh, then stale (refreshed in the
//! background), then expired (callers wait).
//!
//! The two points between those phases come from the token's lifetime. The
//! margin and the skew shrink for short tokens, and the stale point moves
//! earlier by a random part of the margin, so that processes sharing no
//! store do not refresh in lockstep.
//!
//! Both points are kept on two clocks: tokio's monotonic clock (so tests
//! can pause it), and the wall clock, because the monotonic clock stops
//! while a laptop or VM sleeps (rust-lang/rust#87906): a token whose
//! wall-clock expiry has passed is expired, whatever the monotonic clock
//! says. Neither is read per request. The clock task's timers
//! [observe](Cached::observe) the deadlines and move the token's phase
//! flag; the hot path reads the flag (one relaxed load). Whether a refresh
//! runs is not the token's business: [`SingleFlight`](super::flight) knows. A clock read costs
//! 60 to 70 ns on the 2-core VM we measure on, as much as the rest of the
//! hot path.

use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, SystemTime};

use http::HeaderValue;
use tokio::time::Instant;

use super::AuthHeader;

/// The stale point moves earlier by up to this share of the margin.
const MAX_JITTER: f64 = 0.2;

/// The refresh margin for a token of `lifetime`: half the lifetime when the
/// setting is more than that, so short tokens never refresh in a loop.
pub(super) fn margin(setting: Duration, lifetime: Duration) -> Duration {
    if lifetime < setting * 2 {
        lifetime / 2
    } else {
        setting
    }
}

/// The expiry skew for a token of `lifetime`: at most a quarter of it, so a
/// 4 s token is usable for 3 s.
pub(super) fn skew(setting: Duration, lifetime: Duration) -> Duration {
    setting.min(lifetime / 4)
}

/// When a token turns stale, when it stops being usable, and when outage
/// mode stops serving it, on both clocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Deadlines {
    pub(super) stale: Instant,
    pub(super) expires: Instant,
    /// The end of the outage grace: `expires` itself when the grace is off.
    pub(super) gone: Instant,
    wall_stale: SystemTime,
    wall_expires: SystemTime,
    wall_gone: SystemTime,
}

impl Deadlines {
    /// The deadlines of a token that expires at `expiry` on the monotonic
    /// clock, `wall` being the wall clock's time now. `jitter`, in `[0, 1]`,
    /// is the share of the largest jitter (a fifth of the margin) by which
    /// the stale point moves earlier. `grace` is the outage grace, counted
    /// from the expiry itself.
    pub(super) fn new(
        expiry: Instant,
        wall: SystemTime,
        margin: Duration,
        skew: Duration,
        jitter: f64,
        grace: Duration,
    ) -> Self {
        let now = Instant::now();
        let early = margin.mul_f64(MAX_JITTER * jitter.clamp(0.0, 1.0));
        let stale = expiry.checked_sub(margin + early).unwrap_or(now);
        let expires = expiry.checked_sub(skew).unwrap_or(now);
        let gone = if grace.is_zero() {
            expires
        } else {
            expiry.checked_add(grace).unwrap_or(expiry).max(expires)
        };
        // Past SystemTime's range the token counts as expired at once.
        let on_wall = |at: Instant| {
            wall.checked_add(at.saturating_duration_since(now))
                .unwrap_or(wall)
        };
        Deadlines {
            stale,
            expires,
            gone,
            wall_stale: on_wall(stale),
            wall_expires: on_wall(expires),
            wall_gone: on_wall(gone),
        }
    }
}

/// What a request may do with a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Use it.
    Fresh,
    /// Use it, and start a refresh unless one runs or backs off.
    Stale,
    /// Wait for the next one (or, in outage mode and within the grace,
    /// use it while the token endpoint fails).
    Expired,
}

// The phase flag's values. The flag only goes up.
const FRESH: u8 = 0;
const STALE: u8 = 1;
const EXPIRED: u8 = 2;
/// Expired, and past the outage grace too (at once when it is off).
const GONE: u8 = 3;

/// A token as the hot path reads it: the header, its generation, its
/// deadlines and its phase flag.
#[derive(Debug)]
pub(super) struct Cached {
    pub(super) header: HeaderValue,
    pub(super) generation: u64,
    pub(super) deadlines: Deadlines,
    flag: AtomicU8,
    /// The key and nonces of a DPoP-bound token.
    #[cfg(feature = "dpop")]
    pub(super) dpop: Option<std::sync::Arc<crate::dpop::Binding>>,
}

impl Cached {
    pub(super) fn new(header: HeaderValue, generation: u64, deadlines: Deadlines) -> Self {
        Cached {
            header,
            generation,
            deadlines,
            flag: AtomicU8::new(FRESH),
            #[cfg(feature = "dpop")]
            dpop: None,
        }
    }

    /// The phase: one relaxed load.
    #[inline]
    pub(super) fn phase(&self) -> Phase {
        match self.flag.load(Ordering::Relaxed) {
            FRESH => Phase::Fresh,
            STALE => Phase::Stale,
            _ => Phase::Expired,
        }
    }

    /// Whether the token is expired but still within the outage grace:
    /// read on the expired path only.
    #[inline]
    pub(super) fn within_grace(&self) -> bool {
        self.flag.load(Ordering::Relaxed) == EXPIRED
    }

    /// Applies the deadlines that `now` (monotonic) or `wall` have passed.
    /// Called by the clock task's timers, the moment they fire.
    pub(super) fn observe(&self, now: Instant, wall: SystemTime) {
        let at = &self.deadlines;
        let phase = if now >= at.gone || wall >= at.wall_gone {
            GONE
        } else if now >= at.expires || wall >= at.wall_expires {
            EXPIRED
        } else if now >= at.stale || wall >= at.wall_stale {
            STALE
        } else {
            return;
        };
        if self.flag.load(Ordering::Relaxed) < phase {
            self.flag.fetch_max(phase, Ordering::Relaxed);
        }
    }

    pub(super) fn auth_header(&self) -> AuthHeader {
        let auth = AuthHeader::new(self.header.clone(), self.generation);
        // A bearer token's `None` is copied, not counted.
        #[cfg(feature = "dpop")]
        let auth = auth.bound(self.dpop.clone());
        auth
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn deadlines(lifetime: Duration, jitter: f64) -> (Duration, Duration) {
        let now = Instant::now();
        let margin = margin(Duration::from_secs(300), lifetime);
        let skew = skew(Duration::from_secs(10), lifetime);
        let at = Deadlines::new(
            now + lifetime,
            SystemTime::now(),
            margin,
            skew,
            jitter,
            Duration::ZERO,
        );
        (at.stale - now, at.expires - now)
    }

    #[tokio::test(start_paused = true)]
    async fn a_four_second_token_is_stale_at_two_and_usable_for_three() {
        let (stale, expires) = deadlines(4 * SECOND, 0.0);
        assert_eq!(stale, 2 * SECOND);
        assert_eq!(expires, 3 * SECOND);
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_token_keeps_the_configured_margin_and_skew() {
        let (stale, expires) = deadlines(3600 * SECOND, 0.0);
        assert_eq!(stale, 3300 * SECOND);
        assert_eq!(expires, 3590 * SECOND);
    }

    #[tokio::test(start_paused = true)]
    async fn jitter_moves_the_stale_point_by_at_most_a_fifth_of_the_margin() {
        let (earliest, _) = deadlines(3600 * SECOND, 1.0);
        assert_eq!(earliest, 3240 * SECOND);
        // Out-of-range draws are clamped, never past the bound.
        assert_eq!(deadlines(3600 * SECOND, 7.0).0, 3240 * SECOND);
        assert_eq!(deadlines(3600 * SECOND, -1.0).0, 3300 * SECOND);
        for _ in 0..200 {
            let (stale, expires) = deadlines(4 * SECOND, fastrand::f64());
            assert!(stale >= Duration::from_millis(1600) && stale <= 2 * SECOND);
            assert_eq!(expires, 3 * SECOND);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_phase_follows_the_monotonic_deadlines_through_the_flag() {
        let now = Instant::now();
        let wall = SystemTime::now();
        let at = Deadlines::new(
            now + 4 * SECOND,
            wall,
            2 * SECOND,
            SECOND,
            0.0,
            Duration::ZERO,
        );
        let token = Cached::new(HeaderValue::from_static("Bearer t"), 1, at);
        assert_eq!(token.phase(), Phase::Fresh);
        token.observe(now + SECOND, wall);
        assert_eq!(token.phase(), Phase::Fresh);
        token.observe(now + 2 * SECOND, wall);
        assert_eq!(token.phase(), Phase::Stale);
        token.observe(now + SECOND, wall);
        assert_eq!(token.phase(), Phase::Stale, "never back to fresh");
        token.observe(now + 3 * SECOND, wall);
        assert_eq!(token.phase(), Phase::Expired);
        token.observe(now + 2 * SECOND, wall);
        assert_eq!(token.phase(), Phase::Expired, "nothing moves it back");
    }

    #[tokio::test(start_paused = true)]
    async fn a_suspend_past_the_wall_clock_expiry_expires_the_token() {
        let now = Instant::now();
        let wall = SystemTime::now();
        let at = Deadlines::new(
            now + 3600 * SECOND,
            wall,
            300 * SECOND,
            10 * SECOND,
            0.0,
            Duration::ZERO,
        );
        let token = Cached::new(HeaderValue::from_static("Bearer t"), 1, at);
        token.observe(now, wall + 3400 * SECOND);
        assert_eq!(token.phase(), Phase::Stale, "stale on the wall clock");
        token.observe(now, wall + 3700 * SECOND);
        assert_eq!(token.phase(), Phase::Expired, "expired on the wall clock");
    }

    #[tokio::test(start_paused = true)]
    async fn the_outage_grace_counts_from_the_expiry_and_ends_for_good() {
        let now = Instant::now();
        let wall = SystemTime::now();
        let at = Deadlines::new(now + 4 * SECOND, wall, 2 * SECOND, SECOND, 0.0, 10 * SECOND);
        assert_eq!(at.gone - now, 14 * SECOND);
        let token = Cached::new(HeaderValue::from_static("Bearer t"), 1, at);
        token.observe(now + 3 * SECOND, wall);
        assert_eq!(token.phase(), Phase::Expired);
        assert!(token.within_grace());
        token.observe(now + 14 * SECOND, wall);
        assert_eq!(token.phase(), Phase::Expired);
        assert!(!token.within_grace(), "past the grace");
        token.observe(now + 3 * SECOND, wall);
        assert!(!token.within_grace(), "nothing moves it back");
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_grace_an_expired_token_is_never_within_it() {
        let now = Instant::now();
        let wall = SystemTime::now();
        let at = Deadlines::new(
            now + 4 * SECOND,
            wall,
            2 * SECOND,
            SECOND,
            0.0,
            Duration::ZERO,
        );
        assert_eq!(at.gone, at.expires);
        let token = Cached::new(HeaderValue::from_static("Bearer t"), 1, at);
        token.observe(now + 3 * SECOND, wall);
        assert_eq!(token.phase(), Phase::Expired);
        assert!(!token.within_grace());
    }
}
