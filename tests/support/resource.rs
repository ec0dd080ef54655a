//! A strict DPoP resource server (axum on 127.0.0.1:0) in front of the
//! OpenID provider: it checks every proof claim of every request and asks
//! the provider, by introspection, whether the token is active and bound
//! to the proof's key (`cnf.jkt`). The provider's access tokens are
//! opaque, so introspection is the only way to learn their binding.
//!
//! Checked on every request, in this order (anything else than the nonce
//! is a violation, recorded and answered with a 400):
//! - `Authorization: DPoP <token>`, and exactly one `DPoP` header;
//! - the proof's header: `typ` `dpop+jwt`, `alg` `ES256`, a `jwk` that is
//!   a public P-256 key (no private member) whose key verifies the
//!   signature;
//! - the claims: `htm` the method (`POST` for gRPC), `htu` the URL without
//!   query and fragment (`scheme://authority/package.Service/Method` for
//!   gRPC), `iat` within 60 s of now, a `jti` never seen before, and `ath`
//!   the hash of the token;
//! - the nonce: the server's current one, or the answer is a 401
//!   `WWW-Authenticate: DPoP error="use_dpop_nonce"` with a `DPoP-Nonce`;
//! - the token: active at the provider (else a 401 `DPoP
//!   error="invalid_token"`), with `cnf.jkt` the thumbprint of the proof's
//!   `jwk`.
//!
//! Every answer carries the current nonce; a 200 may rotate it first.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::digest::{digest, SHA256};
use aws_lc_rs::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED};
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};

use super::oidc::FORM;

/// What the server saw, shared with the test.
#[derive(Default)]
pub(crate) struct Seen {
    /// Every request, proof or not.
    pub(crate) sends: AtomicUsize,
    /// Requests answered with a nonce challenge.
    pub(crate) challenges: AtomicUsize,
    /// Requests answered 200.
    pub(crate) accepted: AtomicUsize,
    /// Every `jti` seen.
    pub(crate) jtis: Mutex<HashSet<String>>,
    /// Every `jti` seen twice, and any other broken rule.
    pub(crate) violations: Mutex<Vec<String>>,
    /// Access tokens seen (for the revocation test).
    pub(crate) tokens: Mutex<Vec<String>>,
}

/// The server's rules and state.
pub(crate) struct Rules {
    issuer: String,
    http: reqwest::Client,
    nonce: Mutex<String>,
    counter: AtomicUsize,
    /// Challenge every request, with a new nonce each time.
    pub(crate) endless: AtomicBool,
    /// Rotate the nonce on each 200 (the next request uses it unasked).
    pub(crate) rotate_on_success: AtomicBool,
    pub(crate) seen: Seen,
}

impl Rules {
    fn next_nonce(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::SeqCst);
        let nonce = format!("rs-nonce-{n}");
        *self.nonce.lock().unwrap() = nonce.clone();
        nonce
    }

    fn nonce(&self) -> String {
        self.nonce.lock().unwrap().clone()
    }

    fn violation(&self, what: String) -> Verdict {
        self.seen.violations.lock().unwrap().push(what.clone());
        Verdict::Bad(what)
    }

    /// Checks one request: `htu` is what its proof must say.
    pub(crate) async fn check(&self, method: &Method, htu: &str, headers: &HeaderMap) -> Verdict {
        self.seen.sends.fetch_add(1, Ordering::SeqCst);
        let Some(token) = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("DPoP "))
        else {
            return self.violation("no `Authorization: DPoP` header".into());
        };
        self.seen.tokens.lock().unwrap().push(token.to_owned());
        let proofs: Vec<_> = headers.get_all("dpop").iter().collect();
        if proofs.len() != 1 {
            return self.violation(format!("{} DPoP headers", proofs.len()));
        }
        let proof = proofs[0].to_str().unwrap_or_default();
        let (header, claims) = match verify(proof) {
            Ok(parts) => parts,
            Err(why) => return self.violation(why),
        };
        if header["typ"] != "dpop+jwt" || header["alg"] != "ES256" {
            return self.violation(format!("proof header {header}"));
        }
        let expected_htm = if is_grpc(headers) {
            "POST"
        } else {
            method.as_str()
        };
        if claims["htm"] != expected_htm {
            return self.violation(format!("htm {} for {method}", claims["htm"]));
        }
        if claims["htu"] != htu {
            return self.violation(format!("htu {} for {htu}", claims["htu"]));
        }
        let iat = claims["iat"].as_u64().unwrap_or(0);
        if iat.abs_diff(now()) > 60 {
            return self.violation(format!("iat {iat} is off"));
        }
        let Some(jti) = claims["jti"].as_str().filter(|jti| !jti.is_empty()) else {
            return self.violation("no jti".into());
        };
        if !self.seen.jtis.lock().unwrap().insert(jti.to_owned()) {
            return self.violation(format!("jti {jti} reused"));
        }
        let ath = URL_SAFE_NO_PAD.encode(digest(&SHA256, token.as_bytes()));
        if claims["ath"] != ath.as_str() {
            return self.violation("ath is not the token's hash".into());
        }
        let endless = self.endless.load(Ordering::SeqCst);
        if endless || claims["nonce"] != self.nonce().as_str() {
            if endless {
                self.next_nonce();
            }
            self.seen.challenges.fetch_add(1, Ordering::SeqCst);
            return Verdict::Challenge;
        }
        let introspected = self.introspect(token).await;
        if introspected["active"] != true {
            return Verdict::InvalidToken;
        }
        if introspected["cnf"]["jkt"] != thumbprint(&header["jwk"]).as_str() {
            return self.violation(format!(
                "cnf {} is not the proof's key",
                introspected["cnf"]
            ));
        }
        if self.rotate_on_success.load(Ordering::SeqCst) {
            self.next_nonce();
        }
        self.seen.accepted.fetch_add(1, Ordering::SeqCst);
        Verdict::Ok
    }

    async fn introspect(&self, token: &str) -> Value {
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("token", token)
            .finish();
        self.http
            .post(format!("{}/token/introspection", self.issuer))
            .basic_auth("secret-client", Some("secret"))
            .header("content-type", FORM)
            .body(body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The answer to a verdict, with the current nonce.
    pub(crate) fn answer(&self, verdict: Verdict) -> Response<Body> {
        let (status, challenge, body) = match verdict {
            Verdict::Ok => (StatusCode::OK, None, "ok".to_owned()),
            Verdict::Challenge => (
                StatusCode::UNAUTHORIZED,
                Some(
                    r#"DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof""#,
                ),
                String::new(),
            ),
            Verdict::InvalidToken => (
                StatusCode::UNAUTHORIZED,
                Some(r#"DPoP error="invalid_token""#),
                String::new(),
            ),
            Verdict::Bad(why) => (StatusCode::BAD_REQUEST, None, why),
        };
        let mut response = Response::builder()
            .status(status)
            .header("dpop-nonce", self.nonce());
        if let Some(challenge) = challenge {
            response = response.header("www-authenticate", challenge);
        }
        response.body(Body::from(body)).unwrap()
    }
}

/// The outcome of a request's checks.
pub(crate) enum Verdict {
    Ok,
    Challenge,
    InvalidToken,
    Bad(String),
}

/// The resource server, listening.
pub(crate) struct ResourceServer {
    pub(crate) url: String,
    pub(crate) rules: Arc<Rules>,
}

impl ResourceServer {
    /// A server asking `issuer` about tokens.
    pub(crate) async fn start(issuer: &str) -> ResourceServer {
        let rules = Arc::new(Rules {
            issuer: issuer.to_owned(),
            http: reqwest::Client::new(),
            nonce: Mutex::new(String::new()),
            counter: AtomicUsize::new(0),
            endless: AtomicBool::new(false),
            rotate_on_success: AtomicBool::new(false),
            seen: Seen::default(),
        });
        rules.next_nonce();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&rules));
        tokio::spawn(async move { axum::serve(listener, app).await });
        ResourceServer { url, rules }
    }

    pub(crate) fn seen(&self) -> &Seen {
        &self.rules.seen
    }

    /// The violations so far; the tests assert there are none.
    pub(crate) fn violations(&self) -> Vec<String> {
        self.seen().violations.lock().unwrap().clone()
    }
}

async fn handle(State(rules): State<Arc<Rules>>, request: Request<Body>) -> Response<Body> {
    let htu = htu(request.uri(), request.headers());
    let verdict = rules.check(request.method(), &htu, request.headers()).await;
    rules.answer(verdict)
}

/// The URL a request was sent to, without query: what `htu` must be.
pub(crate) fn htu(uri: &Uri, headers: &HeaderMap) -> String {
    let host = headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| uri.authority().map(ToString::to_string))
        .unwrap_or_default();
    format!("http://{host}{}", uri.path())
}

fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The header and claims of an ES256 proof, once its signature verifies
/// with the public key of its own `jwk`.
fn verify(jws: &str) -> Result<(Value, Value), String> {
    let parts: Vec<&str> = jws.split('.').collect();
    let [header, claims, signature] = parts[..] else {
        return Err("the proof is not a compact JWS".into());
    };
    let decode = |part: &str| -> Result<Value, String> {
        let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|e| e.to_string())?;
        serde_json::from_slice(&bytes).map_err(|e| e.to_string())
    };
    let (header_json, claims_json) = (decode(header)?, decode(claims)?);
    let jwk = &header_json["jwk"];
    let mut members: Vec<&String> = jwk.as_object().ok_or("no jwk")?.keys().collect();
    members.sort();
    if members != ["crv", "kty", "x", "y"] || jwk["kty"] != "EC" || jwk["crv"] != "P-256" {
        return Err(format!("jwk {jwk} is not a bare public P-256 key"));
    }
    let coordinate = |name: &str| {
        URL_SAFE_NO_PAD
            .decode(jwk[name].as_str().unwrap_or_default())
            .unwrap_or_default()
    };
    let point = [vec![4], coordinate("x"), coordinate("y")].concat();
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|e| e.to_string())?;
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
        .verify(format!("{header}.{claims}").as_bytes(), &signature)
        .map_err(|_| "the proof's signature does not verify".to_owned())?;
    Ok((header_json, claims_json))
}

/// RFC 7638's thumbprint of a P-256 JWK, computed here apart from the
/// crate's.
pub(crate) fn thumbprint(jwk: &Value) -> String {
    let canonical = json!({"crv": jwk["crv"], "kty": jwk["kty"], "x": jwk["x"], "y": jwk["y"]});
    // serde_json keeps object keys sorted: the canonical member order.
    URL_SAFE_NO_PAD.encode(digest(&SHA256, canonical.to_string().as_bytes()))
}
