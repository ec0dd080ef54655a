//! Calls an API with a workload identity, as on Kubernetes: no shared
//! secret, but a token that the platform writes to a file and rewrites
//! every few minutes, read afresh on every token request.
//!
//! Two ways to use it, chosen by `EXCHANGE`:
//!
//! - as a client assertion (federated credentials: Entra ID workload
//!   identity, Okta, Auth0, Keycloak), with the client id it stands for:
//!
//!   ```sh
//!   TOKEN_FILE=/var/run/secrets/tokens/idp-token \
//!   TOKEN_URL=https://login.example/tenant/oauth2/v2.0/token \
//!   CLIENT_ID=... SCOPE='https://api.example/.default' \
//!   API_URL=https://api.example/v1/things \
//!   cargo run --example workload_identity
//!   ```
//!
//! - traded by RFC 8693 token exchange (a security token service such as
//!   GCP STS, Okta or Keycloak), with `EXCHANGE=1` and an optional
//!   `AUDIENCE`; `CLIENT_ID` and `CLIENT_SECRET` authenticate the exchange
//!   when the service wants a client:
//!
//!   ```sh
//!   EXCHANGE=1 TOKEN_FILE=/var/run/secrets/tokens/sts-token \
//!   TOKEN_URL=https://sts.example/v1/token AUDIENCE=https://api.example \
//!   API_URL=https://api.example/v1/things \
//!   cargo run --example workload_identity
//!   ```
//!
//! Kubernetes names the file in a projected volume; Azure's webhook sets
//! `AZURE_FEDERATED_TOKEN_FILE`, which works as `TOKEN_FILE` here.

use std::process::ExitCode;

use bearer_refresh::oauth2::{ClientAssertion, ClientCredentials, SubjectToken, TokenExchange};
use bearer_refresh::{BearerAuthMiddleware, Origin, TokenManager};

const USAGE: &str = "usage: TOKEN_FILE=<path of the platform's token> TOKEN_URL=<token endpoint> \
                     API_URL=<URL to GET> and either CLIENT_ID=<id> [SCOPE=<scopes>] \
                     (client assertion) or EXCHANGE=1 [AUDIENCE=<audience>] [SCOPE=<scopes>] \
                     [CLIENT_ID=<id> CLIENT_SECRET=<secret>] (token exchange) \
                     cargo run --example workload_identity";

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

#[tokio::main]
async fn main() -> ExitCode {
    let token_file = var("TOKEN_FILE").or_else(|| var("AZURE_FEDERATED_TOKEN_FILE"));
    let (Some(token_file), Some(token_url), Some(api_url)) =
        (token_file, var("TOKEN_URL"), var("API_URL"))
    else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let exchange = var("EXCHANGE").is_some_and(|value| value == "1");
    if !exchange && var("CLIENT_ID").is_none() {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    }
    let tokens = if exchange {
        exchange_source(&token_url, token_file).map(TokenManager::new)
    } else {
        assertion_source(&token_url, token_file).map(TokenManager::new)
    };
    let outcome = match tokens {
        Ok(tokens) => call_api(tokens, &api_url).await,
        Err(error) => Err(error),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The token file as the client's assertion.
fn assertion_source(token_url: &str, token_file: String) -> Result<ClientCredentials, BoxError> {
    let client_id = var("CLIENT_ID").unwrap_or_default();
    let mut source =
        ClientCredentials::assertion(token_url, client_id, ClientAssertion::file(token_file))?;
    if let Some(scope) = var("SCOPE") {
        source = source.scope(scope);
    }
    Ok(source)
}

/// The token file traded by token exchange.
fn exchange_source(token_url: &str, token_file: String) -> Result<TokenExchange, BoxError> {
    let subject = SubjectToken::file(token_file, SubjectToken::JWT);
    let mut source = TokenExchange::new(token_url, subject)?;
    if let Some(audience) = var("AUDIENCE") {
        source = source.audience(audience);
    }
    if let Some(scope) = var("SCOPE") {
        source = source.scope(scope);
    }
    if let (Some(id), Some(secret)) = (var("CLIENT_ID"), var("CLIENT_SECRET")) {
        source = source.client_secret(id, secret);
    }
    Ok(source)
}

async fn call_api(tokens: TokenManager, api_url: &str) -> Result<(), BoxError> {
    // The token endpoint is not the API: say where the tokens may go.
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(BearerAuthMiddleware::new(tokens.clone()).allow_origin(Origin::parse(api_url)?))
        .build();
    let response = client.get(api_url).send().await?;
    let status = response.status();
    let body = response.text().await?;
    println!("GET {api_url} -> {status}");
    println!("{}", body.chars().take(2_000).collect::<String>());
    let stats = tokens.stats();
    println!("token calls: {} (each read the token file)", stats.logins);
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("the API answered {status}").into())
    }
}
