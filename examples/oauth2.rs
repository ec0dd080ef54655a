//! Calls an API with OAuth2 client credentials from a real identity
//! provider, through the reqwest middleware.
//!
//! ```sh
//! OAUTH2_TOKEN_URL=https://idp.example/oauth/token \
//! OAUTH2_CLIENT_ID=... OAUTH2_CLIENT_SECRET=... \
//! API_URL=https://api.example/v1/things \
//! cargo run --example oauth2
//! ```
//!
//! Optional: `OAUTH2_SCOPE` (space-separated), `OAUTH2_AUDIENCE`, and
//! `OAUTH2_CLIENT_SECRET_POST=1` for providers that want the secret in the
//! form rather than in HTTP Basic.

use std::process::ExitCode;

use bearer_refresh::oauth2::ClientCredentials;
use bearer_refresh::{BearerAuthMiddleware, Origin, TokenManager};

const USAGE: &str = "usage: OAUTH2_TOKEN_URL=<token endpoint> OAUTH2_CLIENT_ID=<id> \
                     OAUTH2_CLIENT_SECRET=<secret> API_URL=<URL to GET> \
                     [OAUTH2_SCOPE=<scopes>] [OAUTH2_AUDIENCE=<audience>] \
                     cargo run --example oauth2";

struct Config {
    token_url: String,
    client_id: String,
    client_secret: String,
    api_url: String,
}

#[tokio::main]
async fn main() -> ExitCode {
    let var = |name| {
        std::env::var(name)
            .ok()
            .filter(|value: &String| !value.is_empty())
    };
    let (Some(token_url), Some(client_id), Some(client_secret), Some(api_url)) = (
        var("OAUTH2_TOKEN_URL"),
        var("OAUTH2_CLIENT_ID"),
        var("OAUTH2_CLIENT_SECRET"),
        var("API_URL"),
    ) else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let config = Config {
        token_url,
        client_id,
        client_secret,
        api_url,
    };
    match call_api(config, var("OAUTH2_SCOPE"), var("OAUTH2_AUDIENCE")).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn call_api(
    config: Config,
    scope: Option<String>,
    audience: Option<String>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut source =
        ClientCredentials::new(&config.token_url, config.client_id, config.client_secret)?;
    if let Some(scope) = scope {
        source = source.scope(scope);
    }
    if let Some(audience) = audience {
        source = source.audience(audience);
    }
    if std::env::var("OAUTH2_CLIENT_SECRET_POST").is_ok_and(|value| value == "1") {
        source = source.client_secret_post();
    }
    let tokens = TokenManager::new(source);
    // The token endpoint is not the API: say where the tokens may go.
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(
            BearerAuthMiddleware::new(tokens.clone()).allow_origin(Origin::parse(&config.api_url)?),
        )
        .build();
    let response = client.get(&config.api_url).send().await?;
    let status = response.status();
    let body = response.text().await?;
    println!("GET {} -> {status}", config.api_url);
    println!("{}", body.chars().take(2_000).collect::<String>());
    let stats = tokens.stats();
    println!(
        "token calls: {} grant(s), {} refresh(es)",
        stats.logins, stats.refreshes
    );
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("the API answered {status}").into())
    }
}
