//! Credentials without a shared secret (#20) against the certified OpenID
//! provider (npm `oidc-provider`, run by tests/oidc-server): what the
//! server sees of `private_key_jwt` assertions, assertion files that the
//! platform rotates, and token exchange, through the manager and both
//! adapters. `cargo test` installs the server itself; it needs node.
//!
//! The API of the adapter tests trusts the provider: it asks the
//! provider's introspection endpoint about every token it is sent.

mod support;

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bearer_refresh::oauth2::{
    ClientAssertion, ClientCredentials, JwtSigningKey, RefreshTokenSource, SubjectToken,
    TokenExchange,
};
use bearer_refresh::{Backoff, Error, FileStore, Origin, TokenManager};
use futures::future::join_all;
use serde_json::{json, Value};
use support::clients::{Adapter, Client};
use support::oidc::{
    form, new_p256_pem, pem_der, sign_es256, Oidc, EC_CLIENT_KEY, FORM, RSA_CLIENT_KEY,
};

/// The two private_key_jwt clients of the server, with their key and alg.
const CLIENTS: [(&str, &str, &str); 2] = [
    ("rsa-client", RSA_CLIENT_KEY, "RS256"),
    ("ec-client", EC_CLIENT_KEY, "ES256"),
];

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The client's signing key, with the key id the server registered.
fn signing_key(client: &str, pem: &str) -> JwtSigningKey {
    JwtSigningKey::from_pem(pem)
        .unwrap()
        .key_id(format!("{client}-key"))
}

/// A manager whose retries come quickly.
fn manager(source: impl bearer_refresh::TokenSource) -> TokenManager {
    TokenManager::builder(source)
        .backoff(
            Backoff::default()
                .initial(Duration::from_millis(20))
                .jitter(false),
        )
        .build()
}

/// The `jti` of the client assertion of each request the server saw.
fn jtis(requests: &[Value]) -> Vec<String> {
    requests
        .iter()
        .map(|r| {
            r["client_assertion"]["payload"]["jti"]
                .as_str()
                .expect("an assertion with a jti")
                .to_owned()
        })
        .collect()
}

fn statuses(requests: &[Value]) -> Vec<u64> {
    requests
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect()
}

/// An assertion for `ec-client`, signed by hand as a platform would mint
/// it, written to `path` by a rename (as Kubernetes swaps the file).
fn write_assertion(path: &Path, audience: &str) -> String {
    let iat = now();
    let jti = format!("hand-{}", fastrand_jti());
    let assertion = sign_es256(
        &pem_der(EC_CLIENT_KEY),
        &json!({"alg": "ES256", "typ": "JWT", "kid": "ec-client-key"}),
        &json!({
            "iss": "ec-client", "sub": "ec-client", "aud": audience,
            "jti": jti, "iat": iat, "exp": iat + 300,
        }),
    );
    let next = path.with_extension("next");
    std::fs::write(&next, format!("{assertion}\n")).unwrap();
    std::fs::rename(&next, path).unwrap();
    jti
}

fn fastrand_jti() -> String {
    let mut bytes = [0u8; 12];
    aws_lc_rs::rand::fill(&mut bytes).unwrap();
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// An API that takes a token only if the provider says it is active, and
/// answers with the client it was issued to.
async fn api(issuer: String) -> String {
    let http = reqwest::Client::new();
    let app = axum::Router::new().fallback(move |headers: http::HeaderMap| {
        let (http, issuer) = (http.clone(), issuer.clone());
        async move {
            let token = headers
                .get("authorization")
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.split_once(' '))
                .map(|(_, token)| token.to_owned())
                .unwrap_or_default();
            let introspected: Value = http
                .post(format!("{issuer}/token/introspection"))
                .basic_auth("secret-client", Some("secret"))
                .header("content-type", FORM)
                .body(form(&[("token", &token)]))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if introspected["active"] == true {
                (
                    http::StatusCode::OK,
                    introspected["client_id"].as_str().unwrap().to_owned(),
                )
            } else {
                (http::StatusCode::UNAUTHORIZED, String::new())
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// RS256 and ES256 `private_key_jwt` through the tower layer (over a
/// hyper-util client) and the reqwest middleware: the API accepts the
/// token, and the server saw the claims of RFC 7523.
#[tokio::test]
async fn private_key_jwt_with_rsa_and_ec_keys_through_both_adapters() {
    let oidc = Oidc::start(&[]).await;
    let token_url = oidc.token_url();
    let api = api(oidc.issuer().to_owned()).await;
    let origin = Origin::parse(&api).unwrap();
    for (client_id, pem, _) in CLIENTS {
        for adapter in [Adapter::Tower, Adapter::Reqwest] {
            let source = ClientCredentials::private_key_jwt(
                &token_url,
                client_id,
                signing_key(client_id, pem),
            )
            .unwrap();
            let tokens = TokenManager::new(source);
            let (a, b) = (origin.clone(), origin.clone());
            let client = Client::with_layer(
                adapter,
                &tokens,
                |layer| layer.allow_origin(a),
                |middleware| middleware.allow_origin(b),
            );
            let reply = client.get(&format!("{api}/videos")).await.unwrap();
            assert_eq!(reply.status, 200, "{client_id} {adapter:?}");
            assert_eq!(reply.body, client_id);
        }
    }
    let requests = oidc.requests().await;
    assert_eq!(statuses(&requests), [200; 4]);
    for (request, (client_id, _, alg)) in requests
        .iter()
        .zip(CLIENTS.iter().flat_map(|client| [client, client]))
    {
        println!("server saw: {}", request["client_assertion"]);
        assert_eq!(request["auth"], "jwt");
        assert_eq!(request["grant_type"], "client_credentials");
        let header = &request["client_assertion"]["header"];
        assert_eq!(
            header,
            &json!({"alg": alg, "typ": "JWT", "kid": format!("{client_id}-key")})
        );
        let claims = &request["client_assertion"]["payload"];
        assert_eq!(claims["iss"], *client_id);
        assert_eq!(claims["sub"], *client_id);
        assert_eq!(claims["aud"], json!(token_url));
        let (iat, exp) = (
            claims["iat"].as_u64().unwrap(),
            claims["exp"].as_u64().unwrap(),
        );
        assert!(iat.abs_diff(now()) < 60 && exp > iat && exp - iat <= 300);
    }
    assert_eq!(jtis(&requests).into_iter().collect::<HashSet<_>>().len(), 4);
}

/// Two 503s then a success: three attempts, three distinct `jti`.
#[tokio::test]
async fn three_attempts_send_three_distinct_jti() {
    let oidc = Oidc::start(&[]).await;
    oidc.fail_next(2).await;
    let (client_id, pem, _) = CLIENTS[1];
    let source = ClientCredentials::private_key_jwt(
        &oidc.token_url(),
        client_id,
        signing_key(client_id, pem),
    )
    .unwrap();
    manager(source).authorization().await.unwrap();
    let requests = oidc.requests().await;
    println!(
        "server saw statuses {:?}, jti {:?}",
        statuses(&requests),
        jtis(&requests)
    );
    assert_eq!(statuses(&requests), [503, 503, 200]);
    assert_eq!(jtis(&requests).into_iter().collect::<HashSet<_>>().len(), 3);
}

/// A first token and five renewals: six token calls, no `jti` twice.
#[tokio::test]
async fn five_renewals_send_no_jti_twice() {
    let oidc = Oidc::start(&[]).await;
    let (client_id, pem, _) = CLIENTS[0];
    let source = ClientCredentials::private_key_jwt(
        &oidc.token_url(),
        client_id,
        signing_key(client_id, pem),
    )
    .unwrap();
    let tokens = manager(source);
    for _ in 0..5 {
        let token = tokens.authorize().await.unwrap();
        assert!(tokens.invalidate(token.generation()));
    }
    tokens.authorization().await.unwrap();
    let requests = oidc.requests().await;
    println!(
        "server saw statuses {:?}, jti {:?}",
        statuses(&requests),
        jtis(&requests)
    );
    assert_eq!(statuses(&requests), [200; 6]);
    assert_eq!(jtis(&requests).into_iter().collect::<HashSet<_>>().len(), 6);
}

/// The refresh-token grant of a confidential client signed with
/// `private_key_jwt`: each refresh has its own assertion.
#[tokio::test]
async fn a_refresh_grant_signs_a_new_assertion_each_time() {
    let oidc = Oidc::start(&[]).await;
    let (client_id, pem, _) = CLIENTS[1];
    let seed = oidc
        .seed_refresh_token_of(client_id, "openid offline_access")
        .await;
    let source = RefreshTokenSource::new(&oidc.token_url(), client_id, seed)
        .unwrap()
        .private_key_jwt(signing_key(client_id, pem));
    let tokens = manager(source);
    let first = tokens.authorize().await.unwrap();
    assert!(tokens.invalidate(first.generation()));
    tokens.authorization().await.unwrap();
    let requests = oidc.requests().await;
    println!(
        "server saw statuses {:?}, jti {:?}",
        statuses(&requests),
        jtis(&requests)
    );
    assert_eq!(statuses(&requests), [200, 200]);
    assert!(requests.iter().all(|r| r["grant_type"] == "refresh_token"));
    assert!(requests.iter().all(|r| r["auth"] == "jwt"));
    assert_eq!(jtis(&requests).into_iter().collect::<HashSet<_>>().len(), 2);
}

/// An assertion file rewritten before each renewal is read afresh each
/// time; once deleted, the error is permanent, names the path, and no
/// token call is made.
#[tokio::test]
async fn a_rotated_assertion_file_is_read_afresh_and_a_deleted_one_is_named() {
    let oidc = Oidc::start(&[]).await;
    let token_url = oidc.token_url();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("idp-token");
    let source =
        ClientCredentials::assertion(&token_url, "ec-client", ClientAssertion::file(&path))
            .unwrap();
    let tokens = manager(source);
    let mut written = Vec::new();
    let mut generation = None;
    for _ in 0..3 {
        written.push(write_assertion(&path, &token_url));
        if let Some(generation) = generation {
            assert!(tokens.invalidate(generation));
        }
        generation = Some(tokens.authorize().await.unwrap().generation());
    }
    let requests = oidc.requests().await;
    println!(
        "server saw statuses {:?}, jti {:?}",
        statuses(&requests),
        jtis(&requests)
    );
    assert_eq!(statuses(&requests), [200; 3]);
    assert_eq!(jtis(&requests), written, "each renewal read the file again");

    std::fs::remove_file(&path).unwrap();
    assert!(tokens.invalidate(generation.unwrap()));
    let err = tokens.authorization().await.unwrap_err();
    println!("a deleted file: {err}");
    assert!(matches!(err, Error::InvalidConfig { .. }), "{err:?}");
    assert!(!err.is_transient());
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    assert_eq!(oidc.requests().await.len(), 3, "no token call without it");
}

/// Token exchange renews with the rotated subject token, never with a
/// refresh grant; an expired subject token is a permanent error, after
/// one token call.
#[tokio::test]
async fn token_exchange_renews_with_the_rotated_subject_token() {
    let oidc = Oidc::start(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sts");
    std::fs::write(&path, "workload-1\n").unwrap();
    let source = TokenExchange::new(
        &oidc.token_url(),
        SubjectToken::file(&path, SubjectToken::JWT),
    )
    .unwrap()
    .audience("https://api.example")
    .client_secret("secret-client", "secret");
    let tokens = manager(source);
    let token = tokens.authorize().await.unwrap();
    std::fs::write(&path, "workload-2\n").unwrap();
    assert!(tokens.invalidate(token.generation()));
    let token = tokens.authorize().await.unwrap();

    std::fs::write(&path, "expired-3\n").unwrap();
    assert!(tokens.invalidate(token.generation()));
    let err = tokens.authorization().await.unwrap_err();
    println!("an expired subject token: {err}");
    assert!(
        matches!(&err, Error::GrantRefused { error: Some(code), .. } if code == "invalid_grant"),
        "{err:?}"
    );
    assert!(!err.is_transient());
    assert!(!err.to_string().contains("expired-3"), "{err}");
    tokio::time::sleep(Duration::from_millis(300)).await;

    let requests = oidc.requests().await;
    let subjects: Vec<&str> = requests
        .iter()
        .map(|r| r["subject_token"].as_str().unwrap())
        .collect();
    println!(
        "server saw statuses {:?}, subject tokens {subjects:?}",
        statuses(&requests)
    );
    assert_eq!(subjects, ["workload-1", "workload-2", "expired-3"]);
    assert_eq!(statuses(&requests), [200, 200, 400]);
    assert!(requests
        .iter()
        .all(|r| r["grant_type"] == "urn:ietf:params:oauth:grant-type:token-exchange"));
    assert!(requests
        .iter()
        .all(|r| r["audience"] == "https://api.example"));
}

/// A key the provider does not know: a permanent error that names the
/// likely causes, after at most 2 token calls, with no retry loop.
#[tokio::test]
async fn a_wrong_key_is_a_permanent_error_without_a_loop() {
    let oidc = Oidc::start(&[]).await;
    let stranger = JwtSigningKey::from_pem(&new_p256_pem())
        .unwrap()
        .key_id("ec-client-key");
    let source =
        ClientCredentials::private_key_jwt(&oidc.token_url(), "ec-client", stranger).unwrap();
    let tokens = manager(source);
    let err = tokens.authorization().await.unwrap_err();
    println!("a wrong key: {err}");
    assert!(
        matches!(err, Error::ClientAssertionRejected { .. }),
        "{err:?}"
    );
    assert!(!err.is_transient());
    assert!(err.to_string().contains("clock skew"), "{err}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let requests = oidc.requests().await;
    println!("server saw statuses {:?}", statuses(&requests));
    assert!((1..=2).contains(&requests.len()), "{requests:?}");
    assert!(requests.iter().all(|r| r["error"] == "invalid_client"));
}

/// 32 callers of a cold manager: one token call.
#[tokio::test]
async fn thirty_two_cold_callers_make_one_token_call() {
    let oidc = Oidc::start(&[]).await;
    let (client_id, pem, _) = CLIENTS[0];
    let source = ClientCredentials::private_key_jwt(
        &oidc.token_url(),
        client_id,
        signing_key(client_id, pem),
    )
    .unwrap();
    let tokens = manager(source);
    let headers = join_all((0..32).map(|_| tokens.authorization())).await;
    assert!(headers.iter().all(|header| header.is_ok()));
    let distinct: HashSet<_> = headers.into_iter().map(Result::unwrap).collect();
    assert_eq!(distinct.len(), 1);
    assert_eq!(oidc.requests().await.len(), 1);
}

/// Neither `Debug` nor a `FileStore` file holds an assertion, a subject
/// token or a private key.
#[tokio::test]
async fn no_secret_material_in_debug_or_in_a_file_store() {
    let oidc = Oidc::start(&[]).await;
    let token_url = oidc.token_url();
    let dir = tempfile::tempdir().unwrap();
    let assertion_path = dir.path().join("idp-token");
    write_assertion(&assertion_path, &token_url);
    let assertion = std::fs::read_to_string(&assertion_path).unwrap();
    let subject_path = dir.path().join("sts");
    std::fs::write(&subject_path, "workload-subject-7\n").unwrap();
    let (client_id, pem, _) = CLIENTS[0];
    let pem_body: String = pem.lines().nth(3).unwrap().to_owned();

    let stores = dir.path().join("stores");
    let managers = [
        TokenManager::builder(
            ClientCredentials::assertion(
                &token_url,
                "ec-client",
                ClientAssertion::file(&assertion_path),
            )
            .unwrap(),
        )
        .store(FileStore::open(stores.join("assertion")).unwrap())
        .build(),
        TokenManager::builder(
            TokenExchange::new(
                &token_url,
                SubjectToken::file(&subject_path, SubjectToken::JWT),
            )
            .unwrap()
            .client_secret("secret-client", "secret"),
        )
        .store(FileStore::open(stores.join("exchange")).unwrap())
        .build(),
        TokenManager::builder(
            ClientCredentials::private_key_jwt(&token_url, client_id, signing_key(client_id, pem))
                .unwrap(),
        )
        .store(FileStore::open(stores.join("jwt")).unwrap())
        .build(),
    ];
    let mut headers = Vec::new();
    for tokens in &managers {
        headers.push(tokens.authorization().await.unwrap());
    }
    let requests = oidc.requests().await;
    assert_eq!(statuses(&requests), [200; 3]);
    let signed = requests[2]["client_assertion"]["payload"]["jti"]
        .as_str()
        .unwrap()
        .to_owned();

    let secrets = [assertion.trim(), "workload-subject-7", &pem_body, &signed];
    let mut files = 0;
    for entry in std::fs::read_dir(&stores).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        for secret in secrets {
            assert!(!text.contains(secret), "a store file holds {secret:.20}");
        }
        files += 1;
    }
    assert!(files >= 3, "the stores wrote their files");
    // The private_key_jwt client's store seals with a key derived from its
    // signing key: its access token is not in clear either.
    let access = headers[2].to_str().unwrap().split_once(' ').unwrap().1;
    let sealed = std::fs::read(stores.join("jwt")).unwrap();
    assert!(!String::from_utf8_lossy(&sealed).contains(access));
    let shown = format!("{managers:?}");
    for secret in secrets {
        assert!(!shown.contains(secret), "Debug shows {secret:.20}: {shown}");
    }
    assert!(!shown.contains("PRIVATE"), "{shown}");
}

/// With DPoP, the provider's nonce challenge is answered with a new proof
/// and a new assertion: two token calls, two `jti`, a bound token.
#[cfg(feature = "dpop")]
#[tokio::test]
async fn a_dpop_nonce_retry_sends_a_fresh_assertion() {
    use bearer_refresh::dpop::DpopKey;

    let oidc = Oidc::start(&[]).await;
    let key = DpopKey::generate();
    let (client_id, pem, _) = CLIENTS[1];
    let source = ClientCredentials::private_key_jwt(
        &oidc.token_url(),
        client_id,
        signing_key(client_id, pem),
    )
    .unwrap()
    .dpop(key.clone());
    let header = manager(source).authorization().await.unwrap();
    let requests = oidc.requests().await;
    println!(
        "server saw statuses {:?}, jti {:?}",
        statuses(&requests),
        jtis(&requests)
    );
    assert_eq!(statuses(&requests), [400, 200]);
    assert_eq!(requests[0]["error"], "use_dpop_nonce");
    assert_eq!(jtis(&requests).into_iter().collect::<HashSet<_>>().len(), 2);
    assert_eq!(requests[1]["token_type"], "DPoP");
    let token = header.to_str().unwrap().split_once(' ').unwrap().1;
    assert_eq!(
        oidc.introspect(token).await["cnf"]["jkt"],
        json!(key.thumbprint())
    );
}
