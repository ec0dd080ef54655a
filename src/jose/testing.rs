//! Test helpers: fixed keys, and a verifier that checks a JWS the way a
//! server does, with aws-lc-rs's public-key verification.

use aws_lc_rs::signature::{
    UnparsedPublicKey, ECDSA_P256_SHA256_FIXED, RSA_PKCS1_2048_8192_SHA256,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use super::key::SigningKey;
use super::pem;

/// A 2048-bit RSA key, PKCS#8 (made with `openssl genpkey`), shared with
/// the integration tests.
pub(crate) const RSA_PEM: &str = include_str!("../../tests/keys/rsa.pem");
/// A P-256 key, PKCS#8 (made with `openssl genpkey`), shared with the
/// integration tests.
pub(crate) const P256_PEM: &str = include_str!("../../tests/keys/p256.pem");
/// A P-384 key, PKCS#8: a curve this crate refuses.
pub(crate) const P384_PEM: &str = r"-----BEGIN PRIVATE KEY-----
MIG2AgEAMBAGByqGSM49AgEGBSuBBAAiBIGeMIGbAgEBBDDqLuBIR93I92VsiIuk
v/dkhd1tO5GxaMn9sxvrALVWObOW+GNJ9Lcnb3sklxG2EwChZANiAASmzndtqgvM
xVE0vcrD3+JrSh+QdacMJIYL2lBhf69XK8NnMJvT3gQKoR09jD4MmLcy+t0D+26J
FxcA9xLvij6j/5noI8V6W8me69uU6T14tZA0BYVovtqlYtSkZG6TpAI=
-----END PRIVATE KEY-----
";

pub(crate) fn rsa_key() -> SigningKey {
    let der = pem::decode(RSA_PEM).unwrap();
    SigningKey::from_pkcs8(secrecy::ExposeSecret::expose_secret(&der)).unwrap()
}

/// Panics unless `jws` is a compact JWS that `key` signed, with the
/// `alg` of its header matching the key.
pub(crate) fn verify(key: &SigningKey, jws: &str) {
    let (input, signature) = jws.rsplit_once('.').expect("a compact JWS");
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .expect("a base64url signature");
    let (header, _) = decode(jws);
    assert_eq!(header["alg"], key.alg());
    let public = key.public_key_bytes();
    let checked = match key {
        SigningKey::Es256(_) => UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &public)
            .verify(input.as_bytes(), &signature),
        SigningKey::Rs256(_) => UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &public)
            .verify(input.as_bytes(), &signature),
    };
    assert!(checked.is_ok(), "the JWS does not verify");
}

/// The header and the claims of a compact JWS, as JSON.
pub(crate) fn decode(jws: &str) -> (serde_json::Value, serde_json::Value) {
    let parts: Vec<&str> = jws.split('.').collect();
    assert_eq!(parts.len(), 3, "a compact JWS has three segments");
    let segment = |text: &str| -> serde_json::Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(text).expect("base64url")).expect("JSON")
    };
    (segment(parts[0]), segment(parts[1]))
}
