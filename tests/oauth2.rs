//! The OAuth2 sources against a real OAuth2 server that nobody here wrote:
//! the npm package `oauth2-mock-server`, run by tests/oauth2-server. It
//! needs node; the tests install the package themselves on first use.

mod support;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bearer_refresh::oauth2::{ClientCredentials, RefreshTokenSource};
use bearer_refresh::{Backoff, BearerAuthLayer, BearerAuthMiddleware, Error, Origin, TokenManager};
use futures::future::join_all;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use support::clients::{Adapter, Client, ADAPTERS};
use support::oauth2::{Api, Idp};

const ID: &str = "svc:1 é";
const SECRET: &str = "p@ss:w+rd%&";

/// A server that checks the client's id and secret.
async fn idp(extra: &[(&str, &str)]) -> Idp {
    let mut env = vec![("CLIENT_ID", ID), ("CLIENT_SECRET", SECRET)];
    env.extend_from_slice(extra);
    Idp::start(&env).await
}

fn credentials(idp: &Idp) -> ClientCredentials {
    ClientCredentials::new(&idp.token_url(), ID, SECRET).unwrap()
}

/// A client that sends the token to `api` only.
fn client(adapter: Adapter, tokens: &TokenManager, api: &Api) -> Client {
    let origin = Origin::parse(&api.url).unwrap();
    let also = origin.clone();
    Client::with_layer(
        adapter,
        tokens,
        |layer| layer.allow_origin(origin),
        |middleware| middleware.allow_origin(also),
    )
}

/// Calls `authorization()` from `tasks` tasks until `run` has passed, and
/// returns every header seen.
async fn keep_busy(tokens: &TokenManager, tasks: usize, run: Duration) -> Vec<String> {
    let until = tokio::time::Instant::now() + run;
    let seen = join_all((0..tasks).map(|_| {
        let tokens = tokens.clone();
        tokio::spawn(async move {
            let mut seen = Vec::new();
            while tokio::time::Instant::now() < until {
                let header = tokens.authorization().await.expect("a token");
                seen.push(header.to_str().unwrap().to_owned());
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            seen
        })
    }))
    .await;
    seen.into_iter().flat_map(Result::unwrap).collect()
}

#[tokio::test]
async fn a_cold_storm_makes_one_grant_on_either_adapter() {
    let idp = idp(&[]).await;
    let api = Api::start().await;
    for adapter in ADAPTERS {
        idp.control(json!({"reset_stats": true})).await;
        let tokens = TokenManager::new(credentials(&idp));
        let client = client(adapter, &tokens, &api);
        let replies = join_all((0..100).map(|i| {
            let client = client.clone();
            let url = format!("{}/videos/{i}", api.url);
            tokio::spawn(async move { client.get(&url).await })
        }))
        .await;
        for reply in replies {
            assert_eq!(reply.unwrap().unwrap().status, 200, "{adapter:?}");
        }
        let stats = idp.stats().await;
        assert_eq!(stats.grants("client_credentials"), 1, "{adapter:?}");
        assert_eq!(stats.requests.len(), 1, "{adapter:?}");
    }
    let bearers = api.bearers();
    assert_eq!(bearers.len(), 300);
    assert_eq!(bearers.iter().collect::<HashSet<_>>().len(), ADAPTERS.len());
}

#[tokio::test]
async fn short_lived_tokens_are_renewed_without_a_loop() {
    let idp = idp(&[("TOKEN_TTL_SECS", "1")]).await;
    let tokens = TokenManager::new(credentials(&idp));
    let seen = keep_busy(&tokens, 4, Duration::from_millis(2500)).await;
    let distinct = seen.iter().collect::<HashSet<_>>().len();
    let grants = idp.stats().await.grants("client_credentials");
    // A 1 s token is stale after about half its life: some five grants in
    // 2.5 s. A refresh loop would make hundreds.
    assert!((3..=10).contains(&grants), "{grants} grants");
    // Every grant's token was used, but perhaps the last one, whose
    // background refresh may end after the callers stopped.
    assert!(
        distinct <= grants && grants <= distinct + 1,
        "{distinct} tokens, {grants} grants"
    );
}

#[tokio::test]
async fn basic_authentication_form_encodes_the_id_and_secret() {
    let idp = idp(&[]).await;
    let tokens = TokenManager::new(credentials(&idp));
    tokens.authorization().await.unwrap();
    let stats = idp.stats().await;
    let request = &stats.requests[0];
    assert_eq!(request.auth, "basic");
    assert_eq!(request.client_id.as_deref(), Some(ID));
    assert_eq!(request.status, 200);
}

#[tokio::test]
async fn client_secret_post_sends_the_secret_in_the_form() {
    let idp = idp(&[]).await;
    let tokens = TokenManager::new(credentials(&idp).client_secret_post());
    tokens.authorization().await.unwrap();
    let stats = idp.stats().await;
    let request = &stats.requests[0];
    assert_eq!(request.auth, "post");
    assert!(!request.has_authorization_header);
    assert_eq!(request.client_id.as_deref(), Some(ID));
    assert_eq!(request.status, 200);
}

#[tokio::test]
async fn a_wrong_secret_is_a_permanent_error_naming_the_client_authentication() {
    let idp = idp(&[]).await;
    for post in [false, true] {
        idp.control(json!({"reset_stats": true})).await;
        let source = ClientCredentials::new(&idp.token_url(), ID, "wrong-s3cret").unwrap();
        let source = if post {
            source.client_secret_post()
        } else {
            source
        };
        let tokens = TokenManager::new(source);
        let err = tokens.authorization().await.unwrap_err();
        assert!(
            matches!(err, Error::ClientAuthRejected { status: 401, .. }),
            "{err:?}"
        );
        assert!(!err.is_transient());
        let text = err.to_string();
        assert!(text.contains("client authentication"), "{text}");
        assert!(!text.contains("wrong-s3cret") && !format!("{err:?}").contains("wrong-s3cret"));
        let stats = idp.stats().await;
        assert!(stats.requests.len() <= 2, "{} calls", stats.requests.len());
        assert_eq!(stats.requests[0].error.as_deref(), Some("invalid_client"));
    }
}

#[tokio::test]
async fn a_rotated_refresh_token_is_never_presented_twice() {
    let idp = idp(&[("TOKEN_TTL_SECS", "1"), ("REFRESH_TOKENS", "1")]).await;
    let tokens = TokenManager::new(credentials(&idp));
    keep_busy(&tokens, 8, Duration::from_millis(2500)).await;
    let stats = idp.stats().await;
    assert_eq!(stats.grants("client_credentials"), 1);
    assert!(stats.grants("refresh_token") >= 2, "{:?}", stats.grants);
    assert_eq!(stats.reused_refresh_tokens, 0);
    let presented: Vec<_> = stats
        .requests
        .iter()
        .filter_map(|r| r.refresh_token.clone())
        .collect();
    let distinct: HashSet<_> = presented.iter().collect();
    assert_eq!(distinct.len(), presented.len(), "{presented:?}");
    assert!(stats
        .requests
        .iter()
        .all(|r| r.status == 200 && r.auth == "basic"));
}

#[tokio::test]
async fn a_refresh_token_source_rotates_from_the_token_handed_over() {
    let idp = Idp::start(&[
        ("TOKEN_TTL_SECS", "1"),
        ("SEED_REFRESH_TOKEN", "seed-rt"),
        ("SEED_SCOPE", "read"),
    ])
    .await;
    let source = RefreshTokenSource::new(&idp.token_url(), "my-cli", "seed-rt").unwrap();
    let tokens = TokenManager::new(source);
    keep_busy(&tokens, 4, Duration::from_millis(2000)).await;
    let stats = idp.stats().await;
    assert_eq!(stats.grants.len(), 1, "{:?}", stats.grants);
    assert!(stats.grants("refresh_token") >= 2, "{:?}", stats.grants);
    assert_eq!(stats.reused_refresh_tokens, 0);
    let first = &stats.requests[0];
    assert_eq!(first.refresh_token.as_deref(), Some("seed-rt"));
    assert_eq!(
        (first.auth.as_str(), first.client_id.as_deref()),
        ("none", Some("my-cli"))
    );
    let presented: HashSet<_> = stats.requests.iter().map(|r| &r.refresh_token).collect();
    assert_eq!(presented.len(), stats.requests.len());
    assert!(stats.requests.iter().all(|r| r.status == 200));
}

#[tokio::test]
async fn the_rotated_refresh_token_survives_a_restart_through_the_hook() {
    let idp = Idp::start(&[("TOKEN_TTL_SECS", "1"), ("SEED_REFRESH_TOKEN", "seed-rt")]).await;
    let saved = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&saved);
    let first =
        TokenManager::builder(RefreshTokenSource::new(&idp.token_url(), "cli", "seed-rt").unwrap())
            .on_refresh_token(move |token: &SecretString| {
                sink.lock().unwrap().push(token.expose_secret().to_owned());
            })
            .build();
    first.authorization().await.unwrap();
    drop(first);
    let told = saved.lock().unwrap().clone();
    assert_eq!(told.len(), 1, "told about the one new refresh token");
    // The next process starts from the saved token, not the spent seed.
    let second =
        TokenManager::new(RefreshTokenSource::new(&idp.token_url(), "cli", &told[0]).unwrap());
    second.authorization().await.unwrap();
    let stats = idp.stats().await;
    let presented: Vec<_> = stats
        .requests
        .iter()
        .map(|r| r.refresh_token.clone())
        .collect();
    assert_eq!(
        presented,
        [Some("seed-rt".to_owned()), Some(told[0].clone())]
    );
    assert_eq!(stats.reused_refresh_tokens, 0);
    assert!(stats.requests.iter().all(|r| r.status == 200));
}

#[cfg(feature = "file-store")]
#[tokio::test]
async fn the_rotated_refresh_token_survives_a_restart_through_a_file_store() {
    let idp = Idp::start(&[("TOKEN_TTL_SECS", "1"), ("SEED_REFRESH_TOKEN", "seed-rt")]).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    let start = || {
        let source = RefreshTokenSource::new(&idp.token_url(), "cli", "seed-rt").unwrap();
        let store = bearer_refresh::FileStore::open(&path).unwrap();
        TokenManager::builder(source).store(store).build()
    };
    start().authorization().await.unwrap();
    // The stored access token expires; a new process built with the same
    // (spent) seed refreshes with the rotated token from the file.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    start().authorization().await.unwrap();
    let stats = idp.stats().await;
    assert_eq!(stats.grants("refresh_token"), 2, "{:?}", stats.grants);
    assert_eq!(stats.reused_refresh_tokens, 0);
    assert!(stats.requests.iter().all(|r| r.status == 200));
    assert_ne!(stats.requests[1].refresh_token.as_deref(), Some("seed-rt"));
}

#[tokio::test]
async fn a_rejected_refresh_token_asks_the_user_to_sign_in_again() {
    let idp = Idp::start(&[("SEED_REFRESH_TOKEN", "seed-rt")]).await;
    // A first process spends the refresh token; a second one that still
    // holds it is refused.
    let first =
        TokenManager::new(RefreshTokenSource::new(&idp.token_url(), "cli", "seed-rt").unwrap());
    first.authorization().await.unwrap();
    let second =
        TokenManager::new(RefreshTokenSource::new(&idp.token_url(), "cli", "seed-rt").unwrap());
    for _ in 0..2 {
        let err = second.authorization().await.unwrap_err();
        assert!(
            matches!(err, Error::SignInRequired { status: Some(400) }),
            "{err:?}"
        );
        assert!(!err.is_transient());
        assert!(err.to_string().contains("sign in again"), "{err}");
        assert!(!err.to_string().contains("API key"), "{err}");
    }
    let stats = idp.stats().await;
    assert_eq!(
        stats.reused_refresh_tokens, 1,
        "the dead token is not sent again"
    );
    assert_eq!(stats.requests.len(), 2);
    assert_eq!(
        stats.grants.len(),
        1,
        "no other grant is tried: {:?}",
        stats.grants
    );
    let unknown =
        TokenManager::new(RefreshTokenSource::new(&idp.token_url(), "cli", "made-up").unwrap());
    assert!(matches!(
        unknown.authorization().await,
        Err(Error::SignInRequired { .. })
    ));
}

#[tokio::test]
async fn a_rejected_refresh_token_of_client_credentials_means_a_new_grant() {
    let idp = idp(&[("TOKEN_TTL_SECS", "1"), ("REFRESH_TOKENS", "1")]).await;
    let tokens = TokenManager::new(credentials(&idp));
    let before = tokens.authorization().await.unwrap();
    idp.control(json!({"fail_next": 1, "status": 400, "body": {"error": "invalid_grant"}}))
        .await;
    // Past the expiry skew of a 1 s token, the next call waits for the
    // renewal.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let after = tokens.authorization().await.unwrap();
    assert_ne!(before, after);
    let stats = idp.stats().await;
    assert_eq!(
        stats.grants("client_credentials"),
        2,
        "{:?}",
        stats.requests
    );
    assert_eq!(stats.grants("refresh_token"), 1);
    assert_eq!(stats.requests[1].error.as_deref(), Some("invalid_grant"));
}

#[tokio::test]
async fn an_api_401_causes_one_new_grant_and_a_replay() {
    let idp = idp(&[]).await;
    let api = Api::start().await;
    for adapter in ADAPTERS {
        idp.control(json!({"reset_stats": true})).await;
        let tokens = TokenManager::new(credentials(&idp));
        let client = client(adapter, &tokens, &api);
        assert_eq!(client.get(&api.url).await.unwrap().status, 200);
        let seen = api.bearers().len();
        api.refuse_next(1);
        let reply = client.get(&format!("{}/videos", api.url)).await.unwrap();
        assert_eq!(reply.status, 200, "{adapter:?}");
        assert_eq!(
            idp.stats().await.grants("client_credentials"),
            2,
            "{adapter:?}"
        );
        let bearers = api.bearers();
        assert_eq!(bearers.len(), seen + 2, "{adapter:?}");
        assert_ne!(
            bearers[seen],
            bearers[seen + 1],
            "{adapter:?}: replayed with the new token"
        );
    }
}

#[tokio::test]
async fn without_allow_origin_nothing_is_attached() {
    let idp = idp(&[]).await;
    let api = Api::start().await;
    for adapter in ADAPTERS {
        let tokens = TokenManager::new(credentials(&idp));
        let client = Client::new(adapter, &tokens);
        let reply = client.get(&format!("{}/videos", api.url)).await.unwrap();
        assert_eq!(reply.status, 401, "{adapter:?}: the API's own answer");
    }
    assert_eq!(api.anonymous(), ADAPTERS.len());
    assert!(api.bearers().is_empty());
    assert!(
        idp.stats().await.requests.is_empty(),
        "no token was even fetched"
    );
}

#[tokio::test]
async fn scopes_and_the_audience_reach_the_endpoint() {
    let idp = idp(&[("ALLOWED_SCOPES", "videos:read videos:write")]).await;
    let source = credentials(&idp)
        .scope("videos:read videos:write")
        .audience("https://api.example");
    TokenManager::new(source).authorization().await.unwrap();
    let stats = idp.stats().await;
    assert_eq!(
        stats.requests[0].scope.as_deref(),
        Some("videos:read videos:write")
    );
    assert_eq!(
        stats.requests[0].audience.as_deref(),
        Some("https://api.example")
    );
    assert_eq!(stats.requests[0].status, 200);

    let tokens = TokenManager::new(credentials(&idp).scope("videos:delete"));
    let err = tokens.authorization().await.unwrap_err();
    assert!(
        matches!(&err, Error::GrantRefused { error: Some(code), .. } if code == "invalid_scope"),
        "{err:?}"
    );
    assert!(!err.is_transient());
    assert!(err.to_string().contains("scope"), "{err}");
    assert_eq!(
        idp.stats().await.requests.len(),
        2,
        "no retry of a permanent error"
    );
}

#[tokio::test]
async fn failures_of_the_endpoint_are_retried() {
    let idp = idp(&[]).await;
    let tokens = TokenManager::builder(credentials(&idp))
        .backoff(Backoff::default().initial(Duration::from_millis(20)))
        .build();
    idp.control(json!({"fail_next": 2, "status": 503})).await;
    tokens.authorization().await.unwrap();
    assert_eq!(idp.stats().await.statuses(), [503, 503, 200]);
    idp.control(json!({"reset_stats": true})).await;
    let limited = TokenManager::builder(credentials(&idp))
        .backoff(Backoff::default().initial(Duration::from_millis(20)))
        .build();
    idp.control(json!({"fail_next": 1, "status": 429})).await;
    limited.authorization().await.unwrap();
    let statuses: Vec<_> = idp
        .stats()
        .await
        .requests
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [429, 200]);
}

#[tokio::test]
async fn no_secret_in_any_debug_output() {
    let idp = idp(&[("REFRESH_TOKENS", "1")]).await;
    let source = credentials(&idp).scope("read");
    let tokens = TokenManager::new(source.clone());
    let header = tokens.authorization().await.unwrap();
    let access = header
        .to_str()
        .unwrap()
        .strip_prefix("Bearer ")
        .unwrap()
        .to_owned();
    let public = RefreshTokenSource::new(&idp.token_url(), "cli", "r3fresh-secret").unwrap();
    let confidential = public.clone().client_secret(SECRET).client_secret_post();
    let debug = format!(
        "{source:?} {public:?} {confidential:?} {tokens:?} {header:?} {:?} {:?}",
        BearerAuthLayer::new(tokens.clone()),
        BearerAuthMiddleware::new(tokens.clone()),
    );
    // The server issues refresh tokens as `rt-<n>-<uuid>`.
    for secret in [SECRET, "r3fresh-secret", "rt-1-", &access] {
        assert!(!debug.contains(secret), "{debug}");
    }
    assert!(
        debug.contains("client_secret_post") && debug.contains(ID),
        "{debug}"
    );
}
