//! The nonce dance at the token endpoint, against a scripted axum double:
//! one challenge is answered at once, a second is an error, and a nonce on
//! a 200 is used by the next request.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::Value;

use crate::dpop::DpopKey;
use crate::error::Error;
use crate::source::oauth2::{ClientCredentials, RefreshTokenSource};
use crate::source::{TokenSource, TokenType};

const CHALLENGE: &str = r#"{"error":"use_dpop_nonce","error_description":"nonce required"}"#;
const DPOP_TOKEN: &str = r#"{"access_token":"at","token_type":"DPoP","expires_in":60}"#;

/// A scripted answer: status, its `DPoP-Nonce` (if any), body.
type Answer = (u16, Option<&'static str>, &'static str);

/// The endpoint: answers from the script in order (the last one for ever),
/// and records the proofs it was sent (`None` for a request without one).
#[derive(Clone, Default)]
struct Endpoint {
    script: Arc<Mutex<VecDeque<Answer>>>,
    proofs: Arc<Mutex<Vec<Option<Value>>>>,
}

impl Endpoint {
    async fn start(script: &[Answer]) -> (Endpoint, String) {
        let endpoint = Endpoint {
            script: Arc::new(Mutex::new(script.iter().copied().collect())),
            ..Endpoint::default()
        };
        let app = axum::Router::new()
            .route("/oauth/token", axum::routing::post(answer))
            .with_state(endpoint.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/oauth/token?tenant=t1",
            listener.local_addr().unwrap()
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        (endpoint, url)
    }

    /// The claims of every proof sent so far.
    fn proofs(&self) -> Vec<Option<Value>> {
        self.proofs.lock().unwrap().clone()
    }

    fn nonces(&self) -> Vec<Option<String>> {
        self.proofs()
            .iter()
            .map(|claims| {
                claims.as_ref().expect("a proof")["nonce"]
                    .as_str()
                    .map(str::to_owned)
            })
            .collect()
    }
}

async fn answer(State(endpoint): State<Endpoint>, headers: HeaderMap) -> Response {
    let claims = headers.get("dpop").map(|proof| {
        let payload = proof.to_str().unwrap().split('.').nth(1).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
    });
    endpoint.proofs.lock().unwrap().push(claims);
    let (status, nonce, body) = {
        let mut script = endpoint.script.lock().unwrap();
        if script.len() > 1 {
            script.pop_front().unwrap()
        } else {
            script[0]
        }
    };
    let mut response = (StatusCode::from_u16(status).unwrap(), body).into_response();
    if let Some(nonce) = nonce {
        response
            .headers_mut()
            .insert("DPoP-Nonce", nonce.parse().unwrap());
    }
    response
}

fn source(url: &str, key: &DpopKey) -> ClientCredentials {
    ClientCredentials::new(url, "client", "secret")
        .unwrap()
        .dpop(key.clone())
}

#[tokio::test]
async fn one_nonce_challenge_is_answered_at_once_with_a_new_proof() {
    let (endpoint, url) = Endpoint::start(&[
        (400, Some("n-1"), CHALLENGE),
        (200, Some("n-2"), DPOP_TOKEN),
    ])
    .await;
    let key = DpopKey::generate();
    let source = source(&url, &key);
    let response = source.login().await.unwrap();
    assert_eq!(response.token_type(), TokenType::Dpop);
    assert_eq!(endpoint.nonces(), [None, Some("n-1".to_owned())]);

    // The nonce of the 200 is the next request's: no challenge this time.
    source.login().await.unwrap();
    assert_eq!(endpoint.nonces()[2].as_deref(), Some("n-2"));

    let proofs = endpoint.proofs();
    assert_eq!(proofs.len(), 3, "one extra request for the challenge only");
    let expected_htu = url.split('?').next().unwrap();
    for claims in proofs.iter().flatten() {
        assert_eq!(claims["htm"], "POST");
        assert_eq!(claims["htu"], expected_htu, "no query in htu");
    }
    let jtis: std::collections::HashSet<_> = proofs
        .iter()
        .flatten()
        .map(|claims| claims["jti"].to_string())
        .collect();
    assert_eq!(jtis.len(), 3, "a new proof per HTTP request");
    assert_eq!(source.dpop_key().unwrap().thumbprint(), key.thumbprint());
}

#[tokio::test]
async fn a_second_challenge_for_one_call_is_an_error() {
    let (endpoint, url) = Endpoint::start(&[(400, Some("n-1"), CHALLENGE)]).await;
    let err = source(&url, &DpopKey::generate())
        .login()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::GrantRefused { error: Some(code), .. } if code == "use_dpop_nonce"),
        "{err:?}"
    );
    assert!(!err.is_transient());
    assert_eq!(endpoint.proofs().len(), 2, "retried once only");
}

#[tokio::test]
async fn the_refresh_grant_retries_once_too() {
    let (endpoint, url) =
        Endpoint::start(&[(400, Some("n-1"), CHALLENGE), (200, None, DPOP_TOKEN)]).await;
    let source = RefreshTokenSource::new(&url, "public", "rt-1")
        .unwrap()
        .dpop(DpopKey::generate());
    let refresh = source.initial_refresh_token().unwrap();
    source.refresh(&refresh).await.unwrap();
    assert_eq!(endpoint.nonces(), [None, Some("n-1".to_owned())]);
}

#[tokio::test]
async fn without_a_key_there_is_no_proof_and_no_retry() {
    let (endpoint, url) = Endpoint::start(&[(400, Some("n-1"), CHALLENGE)]).await;
    let source = ClientCredentials::new(&url, "client", "secret").unwrap();
    assert!(source.dpop_key().is_none());
    assert!(source.login().await.is_err());
    assert_eq!(endpoint.proofs(), [None]);
}

#[test]
fn debug_shows_the_thumbprint_and_no_key() {
    let key = DpopKey::generate();
    let source = source("https://idp.example/token", &key);
    let shown = format!("{source:?}");
    assert!(shown.contains(&key.thumbprint()), "{shown}");
    assert!(!shown.contains("PRIVATE"), "{shown}");
}
