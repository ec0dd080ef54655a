//! Calls an API with DPoP-bound tokens (RFC 9449) from a real
//! authorization server, through the reqwest middleware: OAuth2 client
//! credentials with a DPoP proof on every token request and every API
//! request.
//!
//! ```sh
//! OAUTH2_TOKEN_URL=https://idp.example/oauth/token \
//! OAUTH2_CLIENT_ID=... OAUTH2_CLIENT_SECRET=... \
//! API_URL=https://api.example/v1/things \
//! cargo run --example dpop --features dpop
//! ```
//!
//! Optional: `DPOP_KEY_FILE`, a PKCS#8 PEM of a P-256 key to keep one key
//! across runs (`openssl genpkey -algorithm EC -pkeyopt
//! ec_paramgen_curve:P-256`); without it a new key is made for this run.
//! `OAUTH2_SCOPE` (space-separated).

use std::process::ExitCode;

use bearer_refresh::dpop::DpopKey;
use bearer_refresh::oauth2::ClientCredentials;
use bearer_refresh::{BearerAuthMiddleware, Origin, TokenManager};

const USAGE: &str = "usage: OAUTH2_TOKEN_URL=<token endpoint> OAUTH2_CLIENT_ID=<id> \
                     OAUTH2_CLIENT_SECRET=<secret> API_URL=<URL to GET> \
                     [DPOP_KEY_FILE=<P-256 PKCS#8 PEM>] [OAUTH2_SCOPE=<scopes>] \
                     cargo run --example dpop --features dpop";

struct Config {
    token_url: String,
    client_id: String,
    client_secret: String,
    api_url: String,
    key_file: Option<String>,
    scope: Option<String>,
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
        key_file: var("DPOP_KEY_FILE"),
        scope: var("OAUTH2_SCOPE"),
    };
    match call_api(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn call_api(config: Config) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let key = match &config.key_file {
        Some(path) => DpopKey::from_pem(&std::fs::read_to_string(path)?)?,
        None => DpopKey::generate(),
    };
    println!(
        "DPoP key thumbprint (the token's cnf.jkt): {}",
        key.thumbprint()
    );
    let mut source =
        ClientCredentials::new(&config.token_url, config.client_id, config.client_secret)?
            .dpop(key);
    if let Some(scope) = config.scope {
        source = source.scope(scope);
    }
    let tokens = TokenManager::new(source);
    // Unchanged from bearer tokens: the token says how it is bound.
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(
            BearerAuthMiddleware::new(tokens.clone()).allow_origin(Origin::parse(&config.api_url)?),
        )
        .build();
    let response = client.get(&config.api_url).send().await?;
    let status = response.status();
    let body = response.text().await?;
    let bound = tokens.authorize().await?.is_dpop();
    println!(
        "GET {} -> {status} ({} token)",
        config.api_url,
        if bound { "DPoP-bound" } else { "bearer" }
    );
    println!("{}", body.chars().take(2_000).collect::<String>());
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("the API answered {status}").into())
    }
}
