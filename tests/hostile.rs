//! Hostile token endpoints: every answer ends in a clear error or a usable
//! token, never a panic, a hang or unbounded memory.

mod support;

use std::time::Duration;

use bearer_refresh::testing::ApiVideoDouble;
use bearer_refresh::{Backoff, Error, TokenCall, TokenManager, TokenResponse};
use proptest::prelude::*;
use support::builder;

/// A manager that gives up after one attempt, so each case sees one answer.
fn one_shot(double: &ApiVideoDouble) -> TokenManager {
    builder(double)
        .backoff(Backoff::default().max_attempts(1))
        .call_timeout(Duration::from_secs(5))
        .build()
}

async fn answer(body: impl Into<bytes::Bytes>) -> Result<http::HeaderValue, Error> {
    let double = ApiVideoDouble::start().await.unwrap();
    double.malformed_next(1, body);
    one_shot(&double).authorization().await
}

#[tokio::test]
async fn a_response_over_the_size_cap_is_refused() {
    let huge = format!(r#"{{"access_token":"{}"}}"#, "a".repeat(1 << 20));
    let err = answer(huge).await.unwrap_err();
    assert!(err.to_string().contains("larger than 64 KiB"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn a_slowloris_endpoint_hits_the_timeout() {
    let double = ApiVideoDouble::start().await.unwrap();
    double.trickle_next(1);
    let err = one_shot(&double).authorization().await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Timeout {
                call: TokenCall::Login,
                ..
            }
        ),
        "{err:?}"
    );
}

/// A token call has one timeout, the manager's: the source sets none of
/// its own that would cut in first.
#[tokio::test(start_paused = true)]
async fn the_call_timeout_is_the_only_timeout_of_a_token_call() {
    let double = ApiVideoDouble::start().await.unwrap();
    double.trickle_next(1);
    let after = Duration::from_secs(90);
    let tokens = builder(&double)
        .backoff(Backoff::default().max_attempts(1))
        .call_timeout(after)
        .build();
    let err = tokens.authorization().await.unwrap_err();
    assert!(
        matches!(err, Error::Timeout { after: cut, .. } if cut == after),
        "{err:?}"
    );
}

#[tokio::test]
async fn undecodable_bodies_are_clear_errors() {
    for body in [
        &b"\xff\xfe\xfd"[..],
        b"",
        b"null",
        b"[]",
        br#"{"access_token": 42}"#,
        br#"{"access_token":"t","expires_in":"3600"}"#,
        br#"{"access_token":"t","expires_in":-1}"#,
    ] {
        let err = answer(body).await.unwrap_err();
        assert!(
            matches!(err, Error::InvalidResponse { .. }),
            "{body:?}: {err:?}"
        );
        assert!(err.to_string().contains("could not be decoded"));
    }
}

#[tokio::test]
async fn unusable_tokens_are_clear_errors() {
    for (body, expected) in [
        (r#"{"access_token":"t","token_type":"MAC"}"#, "token_type"),
        (r#"{"access_token":""}"#, "empty"),
        (
            r#"{"access_token":"a\r\nSet-Cookie: x=1"}"#,
            "not allowed in an HTTP header",
        ),
        (r#"{"access_token":"a b"}"#, "not allowed in an HTTP header"),
        (
            r#"{"access_token":"t\u00e9"}"#,
            "not allowed in an HTTP header",
        ),
        (
            r#"{"access_token":"t","refresh_token":"r\n"}"#,
            "not allowed in an HTTP header",
        ),
        (r#"{"access_token":"t","expires_in":0}"#, "already expired"),
    ] {
        let err = answer(body).await.unwrap_err();
        assert!(matches!(err, Error::InvalidToken { .. }), "{body}: {err:?}");
        assert!(err.to_string().contains(expected), "{body}: {err}");
    }
}

#[tokio::test]
async fn odd_but_valid_lifetimes_give_a_token() {
    // Huge lifetimes are clamped (no `Instant` overflow); unreadable JWT
    // payloads fall back to the short default lifetime.
    for body in [
        r#"{"access_token":"t","expires_in":1e300}"#,
        r#"{"access_token":"t","expires_in":18446744073709551615}"#,
        r#"{"access_token":"a.!!!.c"}"#,
        r#"{"access_token":"a.bm90IGpzb24.c"}"#,
        r#"{"access_token":"t","token_type":"BEARER","expires_in":1}"#,
    ] {
        let header = answer(body).await.unwrap();
        assert!(header.to_str().unwrap().starts_with("Bearer "), "{body}");
    }
}

/// A JWT whose `exp` is `from_now` seconds away, with no `expires_in`.
fn jwt_expiring_in(from_now: f64) -> String {
    use base64::Engine as _;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let payload = engine.encode(serde_json::json!({ "exp": now + from_now }).to_string());
    let token = format!("{}.{payload}.sig", engine.encode(r#"{"alg":"none"}"#));
    serde_json::json!({ "access_token": token }).to_string()
}

/// A token shorter than a second would cost one token call per request: it
/// is an invalid answer, transient, whether `expires_in` or the JWT `exp`
/// says so.
#[tokio::test]
async fn a_lifetime_under_a_second_is_an_invalid_answer() {
    for body in [
        r#"{"access_token":"t","token_type":"BEARER","expires_in":0.5}"#.to_owned(),
        r#"{"access_token":"t","expires_in":0.001}"#.to_owned(),
        r#"{"access_token":"t","expires_in":1e-9}"#.to_owned(),
        jwt_expiring_in(0.5),
    ] {
        let err = answer(body.clone()).await.unwrap_err();
        assert!(matches!(err, Error::InvalidToken { .. }), "{body}: {err:?}");
        assert!(err.is_transient(), "{body}: {err:?}");
    }
    let err = answer(r#"{"access_token":"t","expires_in":0.001}"#)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("under the 1 s"), "{err}");
}

/// The engine retries such an answer with backoff, like any transient one.
#[tokio::test]
async fn a_sub_second_token_is_retried_with_backoff() {
    let double = ApiVideoDouble::start().await.unwrap();
    double.malformed_next(1, r#"{"access_token":"t","expires_in":0.001}"#);
    let tokens = builder(&double)
        .backoff(
            Backoff::default()
                .initial(Duration::from_millis(10))
                .max(Duration::from_millis(10)),
        )
        .build();
    let header = tokens.authorization().await.unwrap();
    assert_ne!(header, "Bearer t");
    assert_eq!(double.calls().logins, 2, "one refused answer, one retry");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_token_decoder_never_panics(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = TokenResponse::from_json(TokenCall::Login, &body);
    }

    #[test]
    fn decoded_tokens_always_make_a_valid_header(
        token in "[ -~]{0,64}",
        expires in proptest::option::of(-10i64..100_000),
    ) {
        let body = serde_json::json!({ "access_token": token, "expires_in": expires }).to_string();
        if let Ok(response) = TokenResponse::from_json(TokenCall::Refresh, body.as_bytes()) {
            let header = format!("Bearer {token}");
            prop_assert!(http::HeaderValue::from_str(&header).is_ok());
            prop_assert!(!token.contains(' '));
            prop_assert!(response.expires_in.is_none_or(|d| d > Duration::ZERO));
        }
    }
}
