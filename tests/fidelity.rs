//! What the crate does with each behaviour of the real api.video API that
//! the double models, counted at the double.

mod support;

use std::time::Duration;

use bearer_refresh::testing::ApiVideoDouble;
use bearer_refresh::{ApiKeySource, BearerAuthMiddleware, Error, TokenCall, TokenManager};
use futures::future::join_all;
use http::StatusCode;
use support::clients::{Client, ADAPTERS};
use tokio::time::advance;

/// api.video's spec says 400 for a bad credential, its docs say 401.
const REJECTION_STATUSES: [u16; 2] = [400, 401];

#[tokio::test(start_paused = true)]
async fn a_rejected_refresh_token_falls_back_to_a_login_for_400_and_401() {
    for status in REJECTION_STATUSES {
        let double = ApiVideoDouble::start().await.unwrap();
        double.set_rejection_status(status);
        double.set_lifetime(Duration::from_secs(4));
        let tokens = TokenManager::new(double.source());
        let first = tokens.authorization().await.unwrap();
        double.reject_refresh_tokens(true);
        advance(Duration::from_secs(4)).await;
        let second = tokens.authorization().await.unwrap();
        assert_ne!(first, second, "HTTP {status}");
        let calls = double.calls();
        assert_eq!((calls.refreshes, calls.logins), (1, 2), "HTTP {status}");
        assert_eq!(tokens.stats().fallback_logins, 1, "HTTP {status}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_rejected_api_key_is_permanent_for_400_and_401() {
    for status in REJECTION_STATUSES {
        let double = ApiVideoDouble::start().await.unwrap();
        double.set_rejection_status(status);
        let tokens = TokenManager::new(double.source_with_key("wrong-key"));
        for _ in 0..5 {
            let err = tokens.authorization().await.unwrap_err();
            assert!(
                matches!(err, Error::ApiKeyRejected { status: s, .. } if s == status),
                "{err:?}"
            );
            assert!(!err.is_transient());
            assert!(err.to_string().contains("API key"), "{err}");
        }
        assert_eq!(double.calls().logins, 1, "HTTP {status}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_suspended_account_on_login_says_so_without_key_advice() {
    let double = ApiVideoDouble::start().await.unwrap();
    double.suspend_account(true);
    let tokens = TokenManager::new(double.source());
    for _ in 0..5 {
        let err = tokens.authorization().await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::AccountSuspended {
                    call: TokenCall::Login,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(!err.is_transient());
        let text = err.to_string();
        assert!(text.contains("suspended account"), "{text}");
        assert!(!text.to_lowercase().contains("key"), "{text}");
    }
    assert_eq!(double.calls().logins, 1);
}

#[tokio::test(start_paused = true)]
async fn a_suspended_account_on_refresh_does_not_fall_back_to_a_login() {
    let double = ApiVideoDouble::start().await.unwrap();
    double.set_lifetime(Duration::from_secs(4));
    let tokens = TokenManager::new(double.source());
    tokens.authorization().await.unwrap();
    double.suspend_account(true);
    advance(Duration::from_secs(4)).await;
    let err = tokens.authorization().await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::AccountSuspended {
                call: TokenCall::Refresh,
                ..
            }
        ),
        "{err:?}"
    );
    let calls = double.calls();
    assert_eq!((calls.refreshes, calls.logins), (1, 1));
}

#[tokio::test]
async fn a_suspended_account_reaches_every_adapter_as_the_typed_error() {
    let double = ApiVideoDouble::start().await.unwrap();
    double.suspend_account(true);
    for adapter in ADAPTERS {
        let tokens = TokenManager::new(double.source());
        let client = Client::new(adapter, &tokens);
        let failure = client.get(&double.url("/videos")).await.unwrap_err();
        let err = failure.token_error().expect("the crate's error");
        assert!(
            matches!(err, Error::AccountSuspended { .. }),
            "{adapter:?}: {err:?}"
        );
    }
    assert_eq!(double.calls().videos, 0);
}

#[tokio::test(start_paused = true)]
async fn long_opaque_refresh_tokens_rotate_without_reuse() {
    let double = ApiVideoDouble::start().await.unwrap();
    double.set_lifetime(Duration::from_secs(4));
    let tokens = TokenManager::new(double.source());
    tokens.authorization().await.unwrap();
    for _ in 0..5 {
        advance(Duration::from_secs(4)).await;
        tokens.authorization().await.unwrap();
    }
    let calls = double.calls();
    assert_eq!((calls.logins, calls.refreshes), (1, 5));
    assert_eq!(calls.refresh_reuses, 0);
    let refresh_tokens: Vec<String> = double
        .issued_secrets()
        .into_iter()
        .filter(|secret| secret.starts_with("def50200"))
        .collect();
    assert_eq!(refresh_tokens.len(), 6);
    assert!(refresh_tokens.iter().all(|token| token.len() == 780));
    let debug = format!("{tokens:?}");
    for token in &refresh_tokens {
        assert!(!debug.contains(&token[8..40]), "{debug}");
    }
}

/// DESIGN lifecycle 14: a refresh revokes the old access token while
/// requests carrying it are in flight. Their 401s are replayed with the new
/// token: every request succeeds, with one refresh.
#[tokio::test(start_paused = true)]
async fn a_revoked_token_during_a_refresh_costs_one_refresh_and_no_error() {
    for adapter in ADAPTERS {
        let double = ApiVideoDouble::start().await.unwrap();
        double.revoke_on_refresh(true);
        // A 20 s token: stale after 8 to 10 s, expired after 15 s.
        double.set_lifetime(Duration::from_secs(20));
        let tokens = TokenManager::new(double.source());
        let client = Client::new(adapter, &tokens);
        assert_eq!(
            client.get(&double.url("/videos")).await.unwrap().status,
            200
        );
        advance(Duration::from_secs(11)).await;
        // The refresh answers while the stale requests wait at /videos, and
        // revokes the token they carry.
        double.set_latency(Duration::from_millis(200));
        double.set_videos_latency(Duration::from_millis(500));
        let url = double.url("/videos");
        let replies = join_all((0..20).map(|_| client.get(&url))).await;
        for reply in replies {
            assert_eq!(reply.unwrap().status, StatusCode::OK, "{adapter:?}");
        }
        let calls = double.calls();
        assert_eq!((calls.logins, calls.refreshes), (1, 1), "{adapter:?}");
        assert_eq!(calls.revoked_tokens_seen, 20, "{adapter:?}");
        assert_eq!(calls.refresh_reuses, 0, "{adapter:?}");
        assert_eq!(calls.videos, 1 + 20 + 20, "{adapter:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn the_rate_limit_of_videos_passes_through_and_auth_is_not_limited() {
    let double = ApiVideoDouble::start().await.unwrap();
    double.set_rate_limit(2, Duration::from_secs(60));
    let tokens = TokenManager::new(double.source());
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(BearerAuthMiddleware::new(tokens.clone()))
        .build();
    let mut seen = Vec::new();
    for _ in 0..3 {
        let response = client.get(double.url("/videos")).send().await.unwrap();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|value| value.to_str().unwrap().to_owned())
        };
        seen.push((
            response.status().as_u16(),
            header("x-ratelimit-limit"),
            header("x-ratelimit-remaining"),
            header("x-ratelimit-retry-after").is_some(),
        ));
    }
    let limit = Some("2".to_owned());
    assert_eq!(
        seen,
        [
            (200, limit.clone(), Some("1".to_owned()), true),
            (200, limit.clone(), Some("0".to_owned()), true),
            (429, limit, Some("0".to_owned()), true),
        ]
    );
    // A 429 is not ours to handle: no refresh, no replay.
    let calls = double.calls();
    assert_eq!((calls.logins, calls.refreshes), (1, 0));
    assert_eq!((calls.videos, calls.rate_limited), (3, 1));
    // The auth endpoints are not rate limited.
    let raw = reqwest::Client::new();
    for _ in 0..5 {
        let response = raw
            .post(double.url("/auth/api-key"))
            .json(&serde_json::json!({ "apiKey": ApiVideoDouble::API_KEY }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert!(response.headers().get("x-ratelimit-limit").is_none());
    }
    // The window ends and the budget comes back.
    advance(Duration::from_secs(60)).await;
    let response = client.get(double.url("/videos")).send().await.unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test(start_paused = true)]
async fn token_calls_name_the_crate_in_their_user_agent() {
    let double = ApiVideoDouble::start().await.unwrap();
    double.set_lifetime(Duration::from_secs(4));
    let tokens = TokenManager::new(double.source());
    tokens.authorization().await.unwrap();
    advance(Duration::from_secs(4)).await;
    tokens.authorization().await.unwrap();
    let expected = format!("bearer-refresh/{}", env!("CARGO_PKG_VERSION"));
    assert_eq!(ApiKeySource::USER_AGENT, expected);
    let calls = double.auth_calls();
    let paths: Vec<&str> = calls.iter().map(|call| call.path).collect();
    assert_eq!(paths, ["/auth/api-key", "/auth/refresh"]);
    for call in &calls {
        assert_eq!(call.user_agent(), Some(expected.as_str()), "{}", call.path);
    }
}
