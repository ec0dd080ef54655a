//! A command-line tool that keeps its token in a `FileStore`, so that
//! running it again costs no login.
//!
//! Against the in-process api.video double (no account, no network): the
//! example hosts one double and runs itself twice as child processes, the
//! way a user runs a tool twice, then checks the double's call counts.
//!
//! ```sh
//! cargo run --example cli
//! ```
//!
//! Against a real account, run it twice yourself; the second run prints
//! `logins: 0`:
//!
//! ```sh
//! APIVIDEO_API_KEY=... cargo run --example cli -- run
//! APIVIDEO_API_KEY=... cargo run --example cli -- run
//! ```
//!
//! `APIVIDEO_BASE_URL` picks the API (sandbox by default) and
//! `TOKEN_FILE` the token file (a file in the temporary folder by default).

use std::path::PathBuf;
use std::process::ExitCode;

use bearer_refresh::testing::ApiVideoDouble;
use bearer_refresh::{ApiKeySource, FileStore, TokenManager};

#[tokio::main]
async fn main() -> ExitCode {
    let outcome = match std::env::args().nth(1).as_deref() {
        Some("run") => run().await,
        None => twice_against_the_double().await,
        Some(other) => Err(format!("unknown command {other:?}; use `run` or nothing").into()),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// One run of the tool: get a token through the file, print the stats.
async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let api_key = std::env::var("APIVIDEO_API_KEY").map_err(|_| {
        "APIVIDEO_API_KEY is not set; get a sandbox key at https://dashboard.api.video, or run \
         the example without arguments to use the double"
    })?;
    let base = std::env::var("APIVIDEO_BASE_URL").unwrap_or_else(|_| ApiKeySource::SANDBOX.into());
    let path = std::env::var_os("TOKEN_FILE").map_or_else(
        || {
            std::env::temp_dir()
                .join("bearer-refresh-cli")
                .join("token")
        },
        PathBuf::from,
    );
    let store = FileStore::open(&path)?;
    let tokens = TokenManager::builder(ApiKeySource::new(&base, api_key)?)
        .store(store)
        .build();
    tokens.authorization().await?;
    let stats = tokens.stats();
    println!(
        "token file {}: logins: {}, refreshes: {}",
        path.display(),
        stats.logins,
        stats.refreshes
    );
    println!("{stats:?}");
    if stats.logins + stats.refreshes == 0 {
        println!("the token came from the file: no token call");
    }
    Ok(())
}

/// Hosts a double and runs this example twice against it, as two
/// processes sharing one token file.
async fn twice_against_the_double() -> Result<(), Box<dyn std::error::Error>> {
    let double = ApiVideoDouble::start().await?;
    let folder = std::env::temp_dir().join(format!("bearer-refresh-cli-{}", std::process::id()));
    let path = folder.join("token");
    let me = std::env::current_exe()?;
    for round in 1..=2 {
        println!("run {round}:");
        let status = tokio::process::Command::new(&me)
            .arg("run")
            .env("APIVIDEO_API_KEY", ApiVideoDouble::API_KEY)
            .env("APIVIDEO_BASE_URL", double.base_url())
            .env("TOKEN_FILE", &path)
            .status()
            .await?;
        if !status.success() {
            return Err(format!("run {round} failed: {status}").into());
        }
        let calls = double.calls();
        println!(
            "  the double saw {} login(s) and {} refresh(es) so far",
            calls.logins, calls.refreshes
        );
    }
    let _ = std::fs::remove_dir_all(&folder);
    let calls = double.calls();
    if (calls.logins, calls.refreshes) != (1, 0) {
        return Err("the second run should have reused the first run's token".into());
    }
    println!("ok: two runs, one login");
    Ok(())
}
