//! The certified OpenID provider (npm `oidc-provider`, configured by
//! tests/oidc-server/server.mjs) in a child process, and JWS signing done
//! by hand with aws-lc-rs, so that the tests check the crate's keys and
//! thumbprints against a server that nobody here wrote.

use std::process::Stdio;
use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    EcdsaKeyPair, KeyPair, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING, RSA_PKCS1_SHA256,
};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};

/// `rsa-client`'s key (2048 bits, PKCS#8; made with `openssl genpkey`).
pub(crate) const RSA_CLIENT_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIIEvwIBADANBgkqhkiG9w0BAQEFAASCBKkwggSlAgEAAoIBAQCrOloDW4p84GUH
R6wfol1HSjR7nSqFLHkz/FB3gdRjMhm4+Lhrk15KYq4z8MCE7JMuyQbVPhVXEeeD
ECCwxl4du+W3tRjg49Lc0YokyXVO6fN51LeLdZQZANntN7hGbjijAW7v5afYAQHx
8d9iU6JQcC16iz6YFCEqG32cGIRDx49vp6/wppySAsz6jE1qkl0MIRvQ4cu5BTuy
UgkwmJGvG/IIusPHDekoTXnCikRLDzdECvIhEnve+CEiPA/BFd9XSXfArINjO0Th
p56ytztAincx5b+MXrIJLxd7zoD7suQvwLFhwDzQhnW06yR9OhZHmjwEcApMk2U6
fOYsx00fAgMBAAECggEAU07qqKOLN8K9pNMcTa/jjmHuMw5+t5ixx7dFNz/1o+Wm
Wja5E635vFtSwnaqVIH+Ak9QgcPZAin15/Ca1ydMd08KL11vI0v1NfbFLazO5Hwz
N91lB/dG/PtLDH2FrM7Hw5dY8GNeTFwBJEQ4GVDzsgtCNVM2OyvgDuqdLKtI/uh3
Z85FsUgKDo/KYFIuu+9oxwqaWHH1UwCWmHlPWBfd5G1tAmQGRXpxcCZKdLzM5uvQ
Qvze5Wst6NiBdqXFnpe06evimhUH7HJRPUzrYc/JYh8VwyQg5QBK8vrzRvKqg7xu
B8Ym+Ej6tWW9XRf8lo/ndPnPzlx2n5yBSoowesTRQQKBgQDY2rO5BKju85PGU2Lf
Bl45HDn+Q9urIP5dYhIFZ0DejPWvcRXCvXQ/TOp09xeHFYn6D96xmAZaVBUbRJlU
097duVhWpRs64a8TmI0LdKcfbA0u91gXWdeDrVIoPbt0yV0HHba1xszeCmYFIQkW
xZ6XVSW0OdPT7neGGRuUEyEgUQKBgQDKIyh93sMPBF21c2etMLDmLXBgmOt9glmt
u15Q8jbpOk4SCW8DsODiyoNJ8eEJ9vjPMICypsz/3tCBqFT2hy0/XCIRRoofJZom
FKjiepbVygxmo6YMMUxU8zwvDfvI+lo3iP1CcjbFN0MeATzgLLFNKaZRSrp9BMom
NQ3tbg0qbwKBgQCTDav2eXx9ndvGD+HqT40xuTxyel3KbHNRrCGAXIaW5Ivuzwbs
qkDcdDJB4xWnWynX0082q1sTghVWCmzYI1zsirWm/Au9IDHzXe23qQFzw3glM0If
g6Mr/irKcyJdjfdxzeqK1iczI2YPcFmTgauMAAezcct92iZfX0NeZKKAIQKBgQCu
LlehBwi8cv2w8u4e3jtBTVxt0Lfz4hQW0cM3K1DH7rcBceGYo51VsD4rxOMvLANA
vkHYMEWsIrs3Tu9PtDH4TBMLIea5ajSHpfvVlN9PABlphJD8Jqro9OQihAE4MQr2
mfPqgvLRRIpwW46yebCalk479JH4Ut1CySrkMpXjvwKBgQDP6a7aetaRSGhFUP5/
h4M/bXsAnKZOGiiLz7kRJPU9CFQNXJXuCx/DVYN6AFK0uPUWIc2Qc0G7O0f3pioz
iqmESK9ELgJ+8exsqQYiodZDQbJNLaILdGYLr136335BlM6I72dtRzGhZZeiCv/U
y46vgEd6niZzWmE24WuF7oNpJQ==
-----END PRIVATE KEY-----";
/// `ec-client`'s key (P-256, PKCS#8; made with `openssl genpkey`).
pub(crate) const EC_CLIENT_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgm9WduimwpSlxZPPF
5zb4FWx+qVIVGsOY7hrbd7AOoZWhRANCAATsiz9V85V9koAChodxdrqUDi7SJdEY
4EHNbJlosY0+mFVWNcdDmKZagOEjLUgpgi+NvLb5aXJ0eu+nQ1G8Pw0Q
-----END PRIVATE KEY-----";

/// The provider, stopped when dropped (its stdin closes and the child is
/// killed).
pub(crate) struct Oidc {
    issuer: String,
    http: reqwest::Client,
    _stdin: ChildStdin,
    _child: Child,
}

impl Oidc {
    /// Starts the provider with both private_key_jwt clients and `env`
    /// (see server.mjs for the variables). Installs its npm packages first
    /// if they are missing.
    pub(crate) async fn start(env: &[(&str, &str)]) -> Oidc {
        let dir = super::npm::ensure_installed("oidc-server");
        let mut child = Command::new("node")
            .arg("server.mjs")
            .current_dir(&dir)
            .env("RSA_CLIENT_KEY_PEM", RSA_CLIENT_KEY)
            .env("EC_CLIENT_KEY_PEM", EC_CLIENT_KEY)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|err| {
                panic!("the OpenID provider tests need node (20 or later) on the PATH: {err}")
            });
        let stdin = child.stdin.take().expect("stdin is piped");
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("the OpenID provider did not start within 30 s")
            .expect("the OpenID provider's stdout")
            .expect("the OpenID provider exited before it was ready");
        let issuer = ready
            .strip_prefix("READY ")
            .unwrap_or_else(|| panic!("unexpected first line from the OpenID provider: {ready}"))
            .to_owned();
        // The provider writes notices to stdout later on: keep reading, or
        // its next write would hit a closed pipe and kill it (EPIPE).
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                eprintln!("oidc-provider: {line}");
            }
        });
        Oidc {
            issuer,
            http: reqwest::Client::new(),
            _stdin: stdin,
            _child: child,
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
