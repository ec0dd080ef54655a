//! Credentials without a shared secret on the wire: `private_key_jwt`,
//! assertions read from a file, and token exchange.

use std::collections::HashSet;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::Endpoint;
use crate::error::Error;
use crate::jose::testing::{P256_PEM, RSA_PEM};
use crate::source::oauth2::{
    ClientAssertion, ClientCredentials, JwtSigningKey, RefreshTokenSource, SubjectToken,
    TokenExchange,
};
use crate::source::TokenSource;

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

#[tokio::test]
async fn private_key_jwt_sends_a_new_assertion_for_the_token_url_each_time() {
    let (endpoint, url) = Endpoint::start().await;
    for (pem, alg) in [(RSA_PEM, "RS256"), (P256_PEM, "ES256")] {
        let key = JwtSigningKey::from_pem(pem).unwrap().key_id("k-1");
        let source = ClientCredentials::private_key_jwt(&url, "svc", key)
            .unwrap()
            .scope("a b");
        let mut jtis = HashSet::new();
        for _ in 0..3 {
            source.login().await.unwrap();
            let seen = endpoint.last();
            assert_eq!(seen.authorization, None);
            assert_eq!(seen.field("grant_type"), Some("client_credentials"));
            assert_eq!(seen.field("scope"), Some("a b"));
            assert_eq!(seen.field("client_id"), Some("svc"));
            assert_eq!(seen.field("client_assertion_type"), Some(JWT_BEARER));
            let assertion = seen.field("client_assertion").unwrap();
            let header = claims(&format!("x.{}", assertion.split('.').next().unwrap()));
            assert_eq!(header["alg"], alg);
            assert_eq!(header["kid"], "k-1");
            let claims = claims(assertion);
            assert_eq!(claims["iss"], "svc");
            assert_eq!(claims["sub"], "svc");
            assert_eq!(claims["aud"], url.as_str());
            jtis.insert(claims["jti"].to_string());
        }
        assert_eq!(jtis.len(), 3);
        let shown = format!("{source:?}");
        assert!(shown.contains("private_key_jwt"), "{shown}");
        assert!(!shown.contains("PRIVATE"), "{shown}");
    }
}

#[tokio::test]
async fn a_refresh_grant_can_sign_its_client_assertion() {
    let (endpoint, url) = Endpoint::start().await;
    let key = JwtSigningKey::from_pem(P256_PEM).unwrap();
    let source = RefreshTokenSource::new(&url, "app", "rt-1")
        .unwrap()
        .private_key_jwt(key);
    source.refresh(&SecretString::from("rt-1")).await.unwrap();
    let seen = endpoint.last();
    assert_eq!(seen.field("grant_type"), Some("refresh_token"));
    assert_eq!(seen.field("client_assertion_type"), Some(JWT_BEARER));
    assert_eq!(
        claims(seen.field("client_assertion").unwrap())["sub"],
        "app"
    );
}

#[tokio::test]
async fn an_assertion_file_is_read_for_every_request_and_its_loss_names_the_path() {
    let (endpoint, url) = Endpoint::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("idp-token");
    std::fs::write(&path, "first.assertion.jwt\n").unwrap();
    let source = ClientCredentials::assertion(&url, "wl", ClientAssertion::file(&path)).unwrap();
    source.login().await.unwrap();
    assert_eq!(
        endpoint.last().field("client_assertion"),
        Some("first.assertion.jwt")
    );
    std::fs::write(&path, "second.assertion.jwt").unwrap();
    source.login().await.unwrap();
    assert_eq!(
        endpoint.last().field("client_assertion"),
        Some("second.assertion.jwt")
    );
    std::fs::remove_file(&path).unwrap();
    let err = source.login().await.unwrap_err();
    assert!(!err.is_transient());
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    assert_eq!(
        endpoint.seen.lock().unwrap().len(),
        2,
        "no request without it"
    );
}

#[tokio::test]
async fn a_refused_assertion_names_the_causes_and_quotes_nothing() {
    let (endpoint, url) = Endpoint::start().await;
    let source = ClientCredentials::assertion(
        &url,
        "wl",
        ClientAssertion::from_fn(|| async { Ok("the.assertion.jwt".to_owned()) }),
    )
    .unwrap();
    endpoint.answer(
        401,
        Vec::new(),
        r#"{"error":"invalid_client","error_description":"the.assertion.jwt is stale"}"#,
    );
    let err = source.login().await.unwrap_err();
    assert!(
        matches!(err, Error::ClientAssertionRejected { status: 401 }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("clock skew") && text.contains("aud"),
        "{text}"
    );
    assert!(!text.contains("stale"), "{text}");

    // An echo in another field is removed too.
    endpoint.answer(
        400,
        Vec::new(),
        r#"{"error":"invalid_request","error_description":"bad the.assertion.jwt"}"#,
    );
    let err = source.login().await.unwrap_err();
    assert!(
        !format!("{err} {err:?}").contains("the.assertion.jwt"),
        "{err}"
    );
}

#[tokio::test]
async fn token_exchange_sends_the_current_subject_token_and_drops_refresh_tokens() {
    let (endpoint, url) = Endpoint::start().await;
    endpoint.answer(
        200,
        Vec::new(),
        r#"{"access_token":"at","token_type":"Bearer","expires_in":60,"refresh_token":"rt"}"#,
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sts");
    std::fs::write(&path, "subject-1\n").unwrap();
    let anonymous = TokenExchange::new(&url, SubjectToken::file(&path, SubjectToken::JWT))
        .unwrap()
        .audience("aud-1")
        .resource("https://api.example/")
        .scope("s1 s2")
        .requested_token_type("urn:ietf:params:oauth:token-type:access_token");
    let response = anonymous.login().await.unwrap();
    assert!(response.refresh_token.is_none(), "never refreshed");
    let seen = endpoint.last();
    for (name, value) in [
        (
            "grant_type",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        ),
        ("subject_token", "subject-1"),
        ("subject_token_type", SubjectToken::JWT),
        ("audience", "aud-1"),
        ("resource", "https://api.example/"),
        ("scope", "s1 s2"),
        (
            "requested_token_type",
            "urn:ietf:params:oauth:token-type:access_token",
        ),
    ] {
        assert_eq!(seen.field(name), Some(value), "{name}");
    }
    assert_eq!(seen.field("client_id"), None);
    assert_eq!(seen.authorization, None);
    assert!(anonymous.long_lived_secret().is_none());

    std::fs::write(&path, "subject-2\n").unwrap();
    let confidential = anonymous.client_secret("ex", "s3cret");
    confidential
        .refresh(&SecretString::from("ignored"))
        .await
        .unwrap();
    let seen = endpoint.last();
    assert_eq!(seen.field("subject_token"), Some("subject-2"));
    assert_eq!(seen.field("refresh_token"), None);
    assert!(seen.authorization.unwrap().starts_with("Basic "));
    assert_eq!(
        confidential.long_lived_secret().unwrap().expose_secret(),
        "s3cret"
    );
    let shown = format!("{confidential:?}");
    assert!(
        !shown.contains("subject-2") && !shown.contains("s3cret"),
        "{shown}"
    );
}

#[tokio::test]
async fn an_expired_subject_token_is_permanent_and_not_quoted() {
    let (endpoint, url) = Endpoint::start().await;
    endpoint.answer(
        400,
        Vec::new(),
        r#"{"error":"invalid_grant","error_description":"expired-9 has expired"}"#,
    );
    let source = TokenExchange::new(
        &url,
        SubjectToken::from_fn(|| async { Ok("expired-9".to_owned()) }, SubjectToken::JWT),
    )
    .unwrap();
    let err = source.login().await.unwrap_err();
    assert!(
        matches!(&err, Error::GrantRefused { grant: "token-exchange", error: Some(code), .. } if code == "invalid_grant"),
        "{err:?}"
    );
    assert!(!err.is_transient());
    let text = err.to_string();
    assert!(text.contains("subject token was refused"), "{text}");
    assert!(!text.contains("expired-9"), "{text}");
}
