//! Helpers shared by the integration tests. The api.video double itself is
//! the crate's `testing` module, so users test with the same server we do.
#![allow(dead_code)]

pub(crate) mod clients;
pub(crate) mod fleet;
pub(crate) mod npm;
#[cfg(feature = "oauth2")]
pub(crate) mod oauth2;
#[cfg(feature = "oauth2")]
pub(crate) mod oidc;
#[cfg(feature = "redis")]
pub(crate) mod redis;
#[cfg(all(feature = "dpop", feature = "oauth2"))]
pub(crate) mod resource;

use std::time::Duration;

use bearer_refresh::testing::ApiVideoDouble;
use bearer_refresh::{Backoff, TokenManager, TokenManagerBuilder};

/// A manager builder for the double, with the default settings.
pub(crate) fn builder(double: &ApiVideoDouble) -> TokenManagerBuilder {
    TokenManager::builder(double.source())
}

/// A backoff without jitter, for exact timings under paused time.
pub(crate) fn steady_backoff() -> Backoff {
    Backoff::default().jitter(false)
}

/// Lets spawned tasks and the loopback server make progress. Under paused
/// time this costs no real time.
pub(crate) async fn settle() {
    tokio::time::sleep(Duration::from_millis(1)).await;
}

/// Waits (in Tokio time) until `done` holds, failing after `limit`.
pub(crate) async fn eventually(limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not reached within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
