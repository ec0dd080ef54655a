//! The whole token lifecycle in one run, against the in-process api.video
//! double: no account, no network, under half a minute.
//!
//! ```sh
//! cargo run -p demo
//! ```
//!
//! Every stage checks what it shows (call counts at the double), and the
//! demo exits non-zero if any check fails.

use std::process::ExitCode;
use std::time::Duration;

use bearer_refresh::testing::ApiVideoDouble;
use bearer_refresh::{Backoff, BearerAuthMiddleware, Stats, TokenManager};
use futures_util::future::join_all;
use tracing::info;

struct Checks {
    failed: Vec<String>,
}

impl Checks {
    fn expect(&mut self, ok: bool, what: &str) {
        if ok {
            info!(target: "demo", "  ok: {what}");
        } else {
            tracing::error!(target: "demo", "  FAILED: {what}");
            self.failed.push(what.to_owned());
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_timer(tracing_subscriber::fmt::time::uptime())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,bearer_refresh=debug".into()),
        )
        .init();
    match run().await {
        Ok(checks) if checks.failed.is_empty() => {
            info!(target: "demo", "all checks passed");
            ExitCode::SUCCESS
        }
        Ok(checks) => {
            tracing::error!(target: "demo", failed = ?checks.failed, "some checks failed");
            ExitCode::FAILURE
        }
        Err(error) => {
            tracing::error!(target: "demo", %error, "the demo could not run");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<Checks, Box<dyn std::error::Error + Send + Sync>> {
    let mut checks = Checks { failed: Vec::new() };
    let double = ApiVideoDouble::start().await?;
    // 6 s tokens: stale after 3 s (half the lifetime), unusable after 4.5 s.
    double.set_lifetime(Duration::from_secs(6));
    let tokens = TokenManager::builder(double.source())
        .backoff(Backoff::default().initial(Duration::from_millis(200)))
        .build();
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(BearerAuthMiddleware::new(tokens.clone()))
        .build();
    let videos = double.url("/videos");
    info!(target: "demo", "api.video double listening on {}", double.base_url());

    info!(target: "demo", "1. first login");
    let status = client.get(&videos).send().await?.status();
    checks.expect(status == 200, "the first request succeeds");
    checks.expect(double.calls().logins == 1, "it made exactly 1 login");

    info!(target: "demo", "2. a burst of 50 concurrent requests");
    let statuses = join_all((0..50).map(|_| client.get(&videos).send())).await;
    let ok = statuses
        .iter()
        .filter(|r| r.as_ref().is_ok_and(|r| r.status() == 200))
        .count();
    checks.expect(ok == 50, "all 50 succeed");
    checks.expect(
        double.calls().logins == 1,
        "the burst shared the login (still exactly 1)",
    );

    info!(target: "demo", "3. the stale window: a slow background refresh while requests go on");
    tokio::time::sleep(Duration::from_millis(3200)).await;
    double.set_latency(Duration::from_millis(800));
    let generation = tokens.stats().generation;
    let started = tokio::time::Instant::now();
    for _ in 0..5 {
        client.get(&videos).send().await?;
    }
    info!(target: "demo", "  5 requests served in {:?} while the refresh takes 800 ms", started.elapsed());
    checks.expect(
        tokens.stats().generation == generation,
        "requests went on with the current token",
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    double.set_latency(Duration::ZERO);
    checks.expect(
        double.calls().refreshes == 1,
        "exactly 1 background refresh",
    );
    checks.expect(
        tokens.stats().generation == generation + 1,
        "a new token is in use",
    );

    info!(target: "demo", "4. server-side revocation: 401, refresh, replay");
    double.revoke_access_tokens();
    let status = client.get(&videos).send().await?.status();
    checks.expect(status == 200, "the request succeeds after a replay");
    checks.expect(double.calls().refreshes == 2, "exactly 1 more refresh");
    checks.expect(tokens.stats().invalidations == 1, "1 token invalidated");

    info!(target: "demo", "5. a rejected refresh token: fallback login");
    double.reject_refresh_tokens(true);
    double.revoke_access_tokens();
    let status = client.get(&videos).send().await?.status();
    checks.expect(status == 200, "the request succeeds");
    checks.expect(
        tokens.stats().fallback_logins == 1,
        "exactly 1 fallback login",
    );
    checks.expect(
        double.calls().logins == 2,
        "the API key was used again, once",
    );
    double.reject_refresh_tokens(false);

    info!(target: "demo", "6. an outage of the token endpoint: backoff, then recovery");
    double.fail_next(3, 503);
    double.revoke_access_tokens();
    let before = double.calls();
    let started = tokio::time::Instant::now();
    let status = client.get(&videos).send().await?.status();
    let after = double.calls();
    info!(target: "demo", "  recovered after {:?}", started.elapsed());
    checks.expect(
        status == 200,
        "the request succeeds once the endpoint is back",
    );
    let outage_calls = (after.refreshes + after.logins) - (before.refreshes + before.logins);
    checks.expect(
        outage_calls == 4,
        "3 failed token calls, then 1 that worked",
    );
    checks.expect(
        after.refresh_reuses == 0,
        "no refresh token was ever presented twice",
    );

    info!(target: "demo", "7. stats");
    print_stats(&tokens.stats(), outage_calls.saturating_sub(1));
    Ok(checks)
}

/// The manager's counters. A round is one refresh or login with its
/// retries: the outage's 3 failed calls were retried within a round that
/// then worked, so no round failed.
fn print_stats(stats: &Stats, retried_calls: u64) {
    let rows = [
        ("logins", stats.logins),
        ("refreshes", stats.refreshes),
        ("fallback logins", stats.fallback_logins),
        ("calls retried", retried_calls),
        ("rounds given up", stats.failed_rounds),
        ("invalidations (401)", stats.invalidations),
        ("token generation", stats.generation),
    ];
    info!(target: "demo", "  +---------------------+-------+");
    for (name, value) in rows {
        info!(target: "demo", "  | {name:<19} | {value:>5} |");
    }
    info!(target: "demo", "  +---------------------+-------+");
}
