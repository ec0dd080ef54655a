//! Test helpers: fixed keys, and a verifier that checks a JWS the way a
//! server does, with aws-lc-rs's public-key verification.

use aws_lc_rs::signature::{
    UnparsedPublicKey, ECDSA_P256_SHA256_FIXED, RSA_PKCS1_2048_8192_SHA256,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use super::key::SigningKey;
use super::pem;

/// A 2048-bit RSA key, PKCS#8 (made with `openssl genpkey`).
pub(crate) const RSA_PEM: &str = r"-----BEGIN PRIVATE KEY-----
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
-----END PRIVATE KEY-----
";
/// A P-256 key, PKCS#8 (made with `openssl genpkey`).
pub(crate) const P256_PEM: &str = r"-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgm9WduimwpSlxZPPF
5zb4FWx+qVIVGsOY7hrbd7AOoZWhRANCAATsiz9V85V9koAChodxdrqUDi7SJdEY
4EHNbJlosY0+mFVWNcdDmKZagOEjLUgpgi+NvLb5aXJ0eu+nQ1G8Pw0Q
-----END PRIVATE KEY-----
";
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
