//! Compact JWS serialisation (RFC 7515 §7.1): `header.payload.signature`,
//! each segment base64url.

use serde::Serialize;

use super::base64url::{encode, encode_into};
use super::key::SigningKey;

/// base64url of `value`'s JSON: a header or payload segment. A header
/// that never changes is encoded once and kept.
pub(crate) fn encode_segment(value: &impl Serialize) -> String {
    encode(to_json(value))
}

/// Signs `claims` under an encoded `header` (from [`encode_segment`]),
/// built in one buffer.
pub(crate) fn sign(key: &SigningKey, header: &str, claims: &impl Serialize) -> String {
    let payload = to_json(claims);
    // base64 grows by 4/3; an RSA signature is the longest part (512
    // bytes at most for 4096 bits, more only for larger keys).
    let mut jws = String::with_capacity(header.len() + payload.len() * 4 / 3 + 700);
    jws.push_str(header);
    jws.push('.');
    encode_into(&payload, &mut jws);
    let signature = key.sign(jws.as_bytes());
    jws.push('.');
    encode_into(signature, &mut jws);
    jws
}

fn to_json(value: &impl Serialize) -> Vec<u8> {
    // The crate's headers and claims are structs of strings and numbers:
    // serialising them cannot fail.
    serde_json::to_vec(value).expect("a JOSE header or claim set serialises to JSON")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::jose::testing::{decode, rsa_key, verify};

    #[test]
    fn an_es256_jws_verifies_and_decodes() {
        let key = SigningKey::generate_p256();
        let header = encode_segment(&json!({"alg": "ES256", "typ": "JWT"}));
        let jws = sign(&key, &header, &json!({"sub": "me", "n": 1}));
        verify(&key, &jws);
        let (head, claims) = decode(&jws);
        assert_eq!(head, json!({"alg": "ES256", "typ": "JWT"}));
        assert_eq!(claims, json!({"sub": "me", "n": 1}));
    }

    #[test]
    fn an_rs256_jws_verifies() {
        let key = rsa_key();
        let header = encode_segment(&json!({"alg": "RS256"}));
        let jws = sign(&key, &header, &json!({"sub": "me"}));
        verify(&key, &jws);
        assert_eq!(decode(&jws).1["sub"], "me");
    }

    #[test]
    #[should_panic(expected = "does not verify")]
    fn a_changed_payload_does_not_verify() {
        let key = SigningKey::generate_p256();
        let jws = sign(
            &key,
            &encode_segment(&json!({"alg": "ES256"})),
            &json!({"a": 1}),
        );
        let mut parts: Vec<&str> = jws.split('.').collect();
        let forged = encode(br#"{"a":2}"#);
        parts[1] = &forged;
        verify(&key, &parts.join("."));
    }
}
