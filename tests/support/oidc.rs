//! The certified OpenID provider (npm `oidc-provider`, configured by
//! tests/oidc-server/server.mjs) in a child process, and JWS signing done
//! by hand with aws-lc-rs, so that the tests check the crate's keys and
//! thumbprints against a server that nobody here wrote.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    EcdsaKeyPair, KeyPair, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING, RSA_PKCS1_SHA256,
};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde_json::Value;

use super::npm::NodeServer;

/// `rsa-client`'s key (2048 bits, PKCS#8; made with `openssl genpkey`).
pub(crate) const RSA_CLIENT_KEY: &str = include_str!("../keys/rsa.pem");
/// `ec-client`'s key (P-256, PKCS#8; made with `openssl genpkey`).
pub(crate) const EC_CLIENT_KEY: &str = include_str!("../keys/p256.pem");

/// The provider, stopped when dropped (its stdin closes and the child is
/// killed).
pub(crate) struct Oidc {
    issuer: String,
    http: reqwest::Client,
    _server: NodeServer,
}

impl Oidc {
    /// Starts the provider with both private_key_jwt clients and `env`
    /// (see server.mjs for the variables). Installs its npm packages first
    /// if they are missing.
    pub(crate) async fn start(env: &[(&str, &str)]) -> Oidc {
        let keys = [
            ("RSA_CLIENT_KEY_PEM", RSA_CLIENT_KEY),
            ("EC_CLIENT_KEY_PEM", EC_CLIENT_KEY),
        ];
        let env: Vec<_> = keys.iter().chain(env).copied().collect();
        let server = NodeServer::start("oidc-server", "OpenID provider", &env).await;
        Oidc {
            issuer: server.base.clone(),
            http: reqwest::Client::new(),
            _server: server,
        }
    }

    pub(crate) fn issuer(&self) -> &str {
        &self.issuer
    }

    pub(crate) fn token_url(&self) -> String {
        format!("{}/token", self.issuer)
    }

    /// Every token request the provider saw, as server.mjs records it.
    pub(crate) async fn requests(&self) -> Vec<Value> {
        let stats: Value = self.get_json("/test/stats").await;
        stats["requests"]
            .as_array()
            .expect("a list of requests")
            .clone()
    }

    /// Forgets the token requests seen so far.
    pub(crate) async fn reset(&self) {
        self.post_json("/test/reset", serde_json::json!({})).await;
    }

    /// Answers the next `count` token requests 503, before the provider
    /// sees them (they are recorded all the same).
    pub(crate) async fn fail_next(&self, count: u32) {
        self.post_json("/test/fail-next", serde_json::json!({ "count": count }))
            .await;
    }

    async fn post_json(&self, path: &str, body: Value) {
        let status = self
            .http
            .post(format!("{}{path}", self.issuer))
            .json(&body)
            .send()
            .await
            .unwrap()
            .status();
        assert!(status.is_success(), "{path}: {status}");
    }

    /// A fresh refresh token of `public-client`.
    pub(crate) async fn seed_refresh_token(&self, scope: &str) -> String {
        self.seed_refresh_token_of("public-client", scope).await
    }

    /// A fresh refresh token of `client_id`.
    pub(crate) async fn seed_refresh_token_of(&self, client_id: &str, scope: &str) -> String {
        let url = format!("{}/test/refresh-token", self.issuer);
        let answer: Value = self
            .http
            .post(url)
            .json(&serde_json::json!({ "scope": scope, "client_id": client_id }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        answer["refresh_token"]
            .as_str()
            .expect("a refresh token")
            .to_owned()
    }

    /// What the provider's introspection endpoint says about `token`
    /// (asked as `secret-client`).
    pub(crate) async fn introspect(&self, token: &str) -> Value {
        self.http
            .post(format!("{}/token/introspection", self.issuer))
            .basic_auth("secret-client", Some("secret"))
            .header("content-type", FORM)
            .body(form(&[("token", token)]))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn get_json(&self, path: &str) -> Value {
        let url = format!("{}{path}", self.issuer);
        self.http
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

/// The media type of a token request.
pub(crate) const FORM: &str = "application/x-www-form-urlencoded";

/// `pairs`, form-urlencoded (reqwest's `form` is a feature the tests do
/// not compile).
pub(crate) fn form(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// The DER inside a PKCS#8 PEM.
pub(crate) fn pem_der(pem: &str) -> Vec<u8> {
    let body: String = pem
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    STANDARD.decode(body).expect("a base64 PEM body")
}

/// A compact JWS of `claims` under `header`, signed ES256 with a P-256
/// PKCS#8 key.
pub(crate) fn sign_es256(pkcs8: &[u8], header: &Value, claims: &Value) -> String {
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8).unwrap();
    let input = signing_input(header, claims);
    let signature = key.sign(&SystemRandom::new(), input.as_bytes()).unwrap();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
}

/// The same, RS256 with an RSA PKCS#8 key.
pub(crate) fn sign_rs256(pkcs8: &[u8], header: &Value, claims: &Value) -> String {
    let key = RsaKeyPair::from_pkcs8(pkcs8).unwrap();
    let input = signing_input(header, claims);
    let mut signature = vec![0; key.public_modulus_len()];
    key.sign(
        &RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        input.as_bytes(),
        &mut signature,
    )
    .unwrap();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// A new P-256 key as a PKCS#8 PEM: a key no client registered.
pub(crate) fn new_p256_pem() -> String {
    let der = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
        .unwrap();
    let body = STANDARD.encode(der.as_ref());
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|line| std::str::from_utf8(line).unwrap())
        .collect();
    format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        lines.join("\n")
    )
}

/// The public JWK of a P-256 PKCS#8 key.
pub(crate) fn ec_public_jwk(pkcs8: &[u8]) -> Value {
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8).unwrap();
    let point = key.public_key().as_ref();
    serde_json::json!({
        "kty": "EC",
        "crv": "P-256",
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
        "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
    })
}

/// The payload of a compact JWT, without checking it.
pub(crate) fn jwt_claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).expect("a compact JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn signing_input(header: &Value, claims: &Value) -> String {
    let encode = |value: &Value| URL_SAFE_NO_PAD.encode(value.to_string());
    format!("{}.{}", encode(header), encode(claims))
}
