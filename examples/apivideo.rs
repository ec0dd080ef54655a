//! Lists the videos of a real api.video account through the reqwest
//! middleware.
//!
//! ```sh
//! APIVIDEO_API_KEY=... cargo run --example apivideo
//! ```
//!
//! The sandbox is the default; set `APIVIDEO_BASE_URL=https://ws.api.video`
//! for production.

use std::process::ExitCode;

use bearer_refresh::{ApiKeySource, BearerAuthMiddleware, TokenManager};

#[tokio::main]
async fn main() -> ExitCode {
    let Ok(api_key) = std::env::var("APIVIDEO_API_KEY") else {
        eprintln!(
            "APIVIDEO_API_KEY is not set.\n\
             Get a free sandbox API key at https://dashboard.api.video (Settings > API keys),\n\
             then run: APIVIDEO_API_KEY=<key> cargo run --example apivideo"
        );
        return ExitCode::from(2);
    };
    let base = std::env::var("APIVIDEO_BASE_URL").unwrap_or_else(|_| ApiKeySource::SANDBOX.into());
    match list_videos(&base, api_key).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn list_videos(base: &str, api_key: String) -> Result<(), Box<dyn std::error::Error>> {
    let tokens = TokenManager::new(ApiKeySource::new(base, api_key)?);
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(BearerAuthMiddleware::new(tokens))
        .build();
    let response = client
        .get(format!("{}/videos", base.trim_end_matches('/')))
        .send()
        .await?;
    let status = response.status();
    let page: serde_json::Value = response.json().await?;
    if !status.is_success() {
        return Err(format!("the API answered {status}: {}", page["title"]).into());
    }
    let videos = page["data"].as_array().cloned().unwrap_or_default();
    println!("{} video(s):", videos.len());
    for video in videos {
        println!(
            "  {}  {}",
            video["videoId"].as_str().unwrap_or("?"),
            video["title"].as_str().unwrap_or("")
        );
    }
    Ok(())
}
