//! The wall clock, injected.
//!
//! Deadlines live on tokio's monotonic clock, which tests pause and
//! advance. The wall clock is read only for what the monotonic one cannot
//! see: a suspend (the monotonic clock stops while a laptop or VM sleeps,
//! rust-lang/rust#87906), a JWT's `exp`, and the expiry a shared store
//! keeps. It comes through [`WallClock`], like smithy-rs's `TimeSource`, so
//! that a test can make it jump.

use std::fmt;
use std::time::SystemTime;

/// Where the engine reads the wall clock.
pub(crate) trait WallClock: fmt::Debug + Send + Sync + 'static {
    /// The time now.
    fn now(&self) -> SystemTime;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SystemClock;

impl WallClock for SystemClock {
    #[inline]
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

#[cfg(test)]
pub(crate) use self::test_clock::TestClock;

#[cfg(test)]
mod test_clock {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, SystemTime};

    use super::WallClock;

    /// The system's wall clock, moved on by [`suspend`](Self::suspend);
    /// clones share the jump.
    #[derive(Debug, Clone, Default)]
    pub(crate) struct TestClock {
        slept_ms: Arc<AtomicU64>,
    }

    impl TestClock {
        /// Simulates a suspend of `slept`: the wall clock jumps, tokio's
        /// clock does not.
        pub(crate) fn suspend(&self, slept: Duration) {
            let ms = u64::try_from(slept.as_millis()).unwrap_or(u64::MAX);
            self.slept_ms.fetch_add(ms, Ordering::Relaxed);
        }
    }

    impl WallClock for TestClock {
        fn now(&self) -> SystemTime {
            SystemTime::now() + Duration::from_millis(self.slept_ms.load(Ordering::Relaxed))
        }
    }
}
