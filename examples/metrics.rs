//! Exports the crate's metrics in the Prometheus text format, after a few
//! requests against the in-process api.video double: a login, an outage
//! of the token endpoint served by outage mode, its recovery, and a 401
//! answered by a replay.
//!
//! ```sh
//! cargo run --example metrics --features metrics,test-util
//! ```
//!
//! A real service serves `handle.render()` on its `/metrics` route, or
//! installs the exporter's own HTTP listener.

use std::process::ExitCode;
use std::time::Duration;

use bearer_refresh::testing::ApiVideoDouble;
use bearer_refresh::{Backoff, BearerAuthMiddleware, TokenManager};
use metrics_exporter_prometheus::PrometheusBuilder;

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let handle = PrometheusBuilder::new()
        // Token calls take milliseconds to seconds.
        .set_buckets(&[0.005, 0.025, 0.1, 0.5, 1.0, 2.5, 10.0, 30.0])?
        .install_recorder()?;

    let double = ApiVideoDouble::start().await?;
    double.set_lifetime(Duration::from_secs(2));
    let tokens = TokenManager::builder(double.source())
        .name("videos")
        .backoff(Backoff::default().initial(Duration::from_millis(20)))
        .outage_grace(Duration::from_secs(60))
        .build();
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(BearerAuthMiddleware::new(tokens.clone()))
        .build();
    let videos = double.url("/videos");

    client.get(&videos).send().await?.error_for_status()?;
    // The token endpoint answers 503 for a while, past the token's expiry:
    // the expired token goes on (the double's API refuses it with a 401).
    double.fail_next(3, 503);
    tokio::time::sleep(Duration::from_millis(1600)).await;
    tokens.authorization().await?;
    // The endpoint answers again: the next retry gets a new token.
    double.clear_faults();
    while tokens.stats().generation < 2 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A revoked token: the API answers 401, the request is replayed.
    double.revoke_access_tokens();
    client.get(&videos).send().await?.error_for_status()?;

    print!("{}", handle.render());
    Ok(())
}
