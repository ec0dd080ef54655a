//! The harness of the DPoP and credentials-without-a-secret tests: the
//! certified OpenID provider (npm `oidc-provider`, run by tests/oidc-server)
//! answers proofs and assertions signed by hand with the keys of the crate's
//! public API. `cargo test` installs the server itself; it needs node.

mod support;

use std::time::{SystemTime, UNIX_EPOCH};

use bearer_refresh::dpop::DpopKey;
use bearer_refresh::oauth2::{ClientCredentials, JwtSigningKey, RefreshTokenSource};
use bearer_refresh::TokenManager;
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use support::oidc::{
    ec_public_jwk, form, pem_der, sign_es256, sign_rs256, Oidc, EC_CLIENT_KEY, FORM, RSA_CLIENT_KEY,
};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn jti() -> String {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).unwrap();
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// A DPoP proof for a token request, signed with `key` (PKCS#8 DER).
fn proof(key: &[u8], token_url: &str, nonce: Option<&str>) -> String {
    let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": ec_public_jwk(key)});
    let mut claims = json!({"jti": jti(), "htm": "POST", "htu": token_url, "iat": now()});
    if let Some(nonce) = nonce {
        claims["nonce"] = json!(nonce);
    }
    sign_es256(key, &header, &claims)
}

fn statuses(requests: &[Value]) -> Vec<u64> {
    requests
        .iter()
        .map(|request| request["status"].as_u64().unwrap())
        .collect()
}

/// A client credentials grant with a DPoP proof: the provider challenges
/// for a nonce once, then binds the token to the key whose thumbprint the
/// crate computes, for a new key and for one round-tripped through PEM.
#[tokio::test]
async fn a_dpop_bound_token_carries_the_thumbprint_of_the_key() {
    let oidc = Oidc::start(&[]).await;
    let token_url = oidc.token_url();
    let http = reqwest::Client::new();
    let fixed = DpopKey::from_pem(EC_CLIENT_KEY).unwrap();
    let round_tripped = DpopKey::from_pem(fixed.to_pem().expose_secret()).unwrap();
    for key in [DpopKey::generate(), round_tripped] {
        let der = pem_der(key.to_pem().expose_secret());
        let send = |nonce: Option<String>| {
            http.post(&token_url)
                .basic_auth("secret-client", Some("secret"))
                .header("DPoP", proof(&der, &token_url, nonce.as_deref()))
                .header("content-type", FORM)
                .body(form(&[("grant_type", "client_credentials")]))
                .send()
        };
        let challenged = send(None).await.unwrap();
        assert_eq!(challenged.status(), 400);
        let nonce = challenged.headers()["dpop-nonce"]
            .to_str()
            .unwrap()
            .to_owned();
        let refusal: Value = challenged.json().await.unwrap();
        assert_eq!(refusal["error"], "use_dpop_nonce");

        let answer = send(Some(nonce)).await.unwrap();
        assert_eq!(answer.status(), 200);
        let token: Value = answer.json().await.unwrap();
        assert_eq!(token["token_type"], "DPoP", "{token}");
        let introspected = oidc
            .introspect(token["access_token"].as_str().unwrap())
            .await;
        assert_eq!(introspected["active"], true, "{introspected}");
        assert_eq!(introspected["cnf"]["jkt"], json!(key.thumbprint()));
    }
    assert_eq!(
        fixed.thumbprint(),
        DpopKey::from_pem(EC_CLIENT_KEY).unwrap().thumbprint()
    );

    let requests = oidc.requests().await;
    assert_eq!(statuses(&requests), [400, 200, 400, 200]);
    let seen = &requests[1]["dpop"];
    assert_eq!(seen["header"]["typ"], "dpop+jwt");
    assert_eq!(seen["payload"]["htu"], json!(token_url));
    assert!(seen["payload"]["nonce"].is_string());
}

/// private_key_jwt with an RSA and an EC key that `JwtSigningKey` reads:
/// the provider accepts an assertion once, refuses its `jti` again, and
/// refuses one signed by another key.
#[tokio::test]
async fn private_key_jwt_assertions_with_rsa_and_ec_keys() {
    let oidc = Oidc::start(&[]).await;
    let token_url = oidc.token_url();
    let http = reqwest::Client::new();
    let stranger = DpopKey::generate().to_pem();
    let keys = [
        ("rsa-client", RSA_CLIENT_KEY, "RS256"),
        ("ec-client", EC_CLIENT_KEY, "ES256"),
        ("ec-client", stranger.expose_secret(), "ES256"),
    ];
    for (client, pem, alg) in keys {
        let shown = format!("{:?}", JwtSigningKey::from_pem(pem).unwrap());
        assert!(shown.contains(alg), "{shown}");
        let der = pem_der(pem);
        let header = json!({"alg": alg, "typ": "JWT", "kid": format!("{client}-key")});
        let iat = now();
        let claims = json!({
            "iss": client, "sub": client, "aud": token_url,
            "jti": jti(), "iat": iat, "exp": iat + 300,
        });
        let assertion = match alg {
            "RS256" => sign_rs256(&der, &header, &claims),
            _ => sign_es256(&der, &header, &claims),
        };
        for _ in 0..2 {
            let answer = http
                .post(&token_url)
                .header("content-type", FORM)
                .body(form(&[
                    ("grant_type", "client_credentials"),
                    ("client_assertion_type", JWT_BEARER),
                    ("client_assertion", &assertion),
                ]))
                .send()
                .await
                .unwrap();
            let _ = answer.bytes().await;
        }
    }
    let requests = oidc.requests().await;
    // Accepted, then the same jti refused; the stranger's key refused twice.
    assert_eq!(statuses(&requests), [200, 401, 200, 401, 401, 401]);
    for request in &requests {
        assert_eq!(request["auth"], "jwt");
        let claims = &request["client_assertion"]["payload"];
        assert_eq!(claims["aud"], json!(token_url));
        assert_eq!(claims["iss"], claims["sub"]);
    }
    assert!(requests[1..]
        .iter()
        .all(|r| r["status"] == 200 || r["error"] == "invalid_client"));
}

/// The public client's refresh tokens rotate, and the registered
/// token-exchange grant answers and refuses as the tests will need.
#[tokio::test]
async fn rotating_refresh_tokens_and_token_exchange() {
    let oidc = Oidc::start(&[]).await;
    let token_url = oidc.token_url();
    let http = reqwest::Client::new();

    let first = oidc.seed_refresh_token("openid offline_access").await;
    let refresh = |token: String| {
        http.post(&token_url)
            .header("content-type", FORM)
            .body(form(&[
                ("grant_type", "refresh_token"),
                ("client_id", "public-client"),
                ("refresh_token", &token),
            ]))
            .send()
    };
    let answer: Value = refresh(first.clone()).await.unwrap().json().await.unwrap();
    let second = answer["refresh_token"]
        .as_str()
        .expect("a rotated refresh token");
    assert_ne!(second, first);
    assert_eq!(
        refresh(first).await.unwrap().status(),
        400,
        "a used refresh token is dead"
    );

    let exchange = |subject: &'static str| {
        http.post(&token_url)
            .basic_auth("secret-client", Some("secret"))
            .header("content-type", FORM)
            .body(form(&[
                ("grant_type", TOKEN_EXCHANGE),
                ("subject_token", subject),
                ("subject_token_type", "urn:ietf:params:oauth:token-type:jwt"),
                ("audience", "https://api.example"),
            ]))
            .send()
    };
    let answer: Value = exchange("workload-1").await.unwrap().json().await.unwrap();
    assert_eq!(
        answer["issued_token_type"],
        "urn:ietf:params:oauth:token-type:access_token"
    );
    assert!(answer["access_token"].is_string(), "{answer}");
    let refused = exchange("expired-1").await.unwrap();
    assert_eq!(refused.status(), 400);
    assert_eq!(
        refused.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );

    let requests = oidc.requests().await;
    assert_eq!(statuses(&requests), [200, 400, 200, 400]);
    assert_eq!(requests[2]["subject_token"], "workload-1");
    assert_eq!(requests[2]["audience"], "https://api.example");
    assert!(oidc.issuer().starts_with("http://127.0.0.1:"));
}

/// The access token in an `Authorization` value, whatever its scheme.
fn access_token(header: &http::HeaderValue) -> String {
    let value = header.to_str().unwrap();
    value.split_once(' ').unwrap().1.to_owned()
}

/// `ClientCredentials::dpop` through the manager: the provider's nonce
/// challenge costs exactly one extra token call, and the token is bound to
/// the key (`cnf.jkt`, by introspection).
#[tokio::test]
async fn client_credentials_with_dpop_get_a_bound_token_for_one_extra_call() {
    let oidc = Oidc::start(&[]).await;
    let key = DpopKey::generate();
    let source = ClientCredentials::new(&oidc.token_url(), "secret-client", "secret")
        .unwrap()
        .dpop(key.clone());
    let tokens = TokenManager::new(source);
    let header = tokens.authorization().await.unwrap();
    let introspected = oidc.introspect(&access_token(&header)).await;
    assert_eq!(introspected["active"], true, "{introspected}");
    assert_eq!(introspected["cnf"]["jkt"], json!(key.thumbprint()));

    let requests = oidc.requests().await;
    assert_eq!(statuses(&requests), [400, 200]);
    assert_eq!(requests[0]["error"], "use_dpop_nonce");
    assert_eq!(requests[1]["token_type"], "DPoP");
    let proofs: Vec<&Value> = requests.iter().map(|r| &r["dpop"]).collect();
    assert!(proofs[0]["payload"]["nonce"].is_null());
    assert_eq!(
        proofs[1]["payload"]["nonce"], requests[0]["dpop_nonce"],
        "the retry carries the challenge's nonce"
    );
    assert_ne!(proofs[0]["payload"]["jti"], proofs[1]["payload"]["jti"]);
    assert_eq!(proofs[1]["payload"]["htu"], json!(oidc.token_url()));
}

/// The refresh-token grant of a public client with DPoP: the rotated
/// refresh token is used for the next refresh, and each access token is
/// bound to the key.
#[tokio::test]
async fn a_public_client_refreshes_with_dpop() {
    let oidc = Oidc::start(&[]).await;
    let key = DpopKey::generate();
    let seed = oidc.seed_refresh_token("openid offline_access").await;
    let source = RefreshTokenSource::new(&oidc.token_url(), "public-client", seed)
        .unwrap()
        .dpop(key.clone());
    let tokens = TokenManager::new(source);
    let first = tokens.authorize().await.unwrap();
    assert!(tokens.invalidate(first.generation()));
    let second = tokens.authorization().await.unwrap();
    assert_ne!(first.header(), &second);
    for header in [first.header(), &second] {
        let introspected = oidc.introspect(&access_token(header)).await;
        assert_eq!(introspected["cnf"]["jkt"], json!(key.thumbprint()));
    }
    let requests = oidc.requests().await;
    // One nonce challenge, then two refreshes with the provider's nonce.
    assert_eq!(statuses(&requests), [400, 200, 200], "{requests:?}");
    assert!(requests.iter().all(|r| r["grant_type"] == "refresh_token"));
    assert!(requests
        .iter()
        .all(|r| r["dpop"]["payload"]["htm"] == "POST"));
    assert!(requests[1..].iter().all(|r| r["token_type"] == "DPoP"));
}
