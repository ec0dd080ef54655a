//! DPoP proofs (RFC 9449 §4.2): one fresh JWT per request.

use aws_lc_rs::digest::{digest, SHA256};
use serde::Serialize;

use crate::jose::{self, SigningKey};

#[derive(Serialize)]
struct Claims<'a> {
    jti: String,
    htm: &'a str,
    htu: &'a str,
    iat: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ath: Option<String>,
}

/// A proof signed by `key` under its encoded `header`.
pub(super) fn build(
    key: &SigningKey,
    header: &str,
    htm: &str,
    htu: &str,
    nonce: Option<&str>,
    access_token: Option<&str>,
) -> String {
    let claims = Claims {
        jti: jose::jti(),
        htm,
        htu: without_query_and_fragment(htu),
        iat: jose::issued_at(),
        nonce,
        ath: access_token.map(access_token_hash),
    };
    jose::sign(key, header, &claims)
}

/// `htu` is the request URI without its query and fragment (§4.2).
fn without_query_and_fragment(uri: &str) -> &str {
    uri.split(['?', '#']).next().unwrap_or(uri)
}

/// `ath`: base64url of the SHA-256 of the access token's ASCII (§4.2).
fn access_token_hash(token: &str) -> String {
    jose::base64url(digest(&SHA256, token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use serde_json::json;

    use super::*;
    use crate::dpop::DpopKey;
    use crate::jose::testing::{decode, verify};

    #[test]
    fn a_token_call_proof_has_the_header_and_claims_of_rfc_9449() {
        let key = DpopKey::generate();
        let proof = key.proof("POST", "https://idp.example/token?x=1#f", None, None);
        verify(key.signing_key(), &proof);
        let (header, claims) = decode(&proof);
        assert_eq!(header["typ"], "dpop+jwt");
        assert_eq!(header["alg"], "ES256");
        let jwk = header["jwk"].as_object().unwrap();
        let mut members: Vec<_> = jwk.keys().map(String::as_str).collect();
        members.sort_unstable();
        assert_eq!(members, ["crv", "kty", "x", "y"], "no private member");
        assert_eq!(claims["htm"], "POST");
        assert_eq!(claims["htu"], "https://idp.example/token");
        assert_eq!(claims["jti"].as_str().unwrap().len(), 22);
        let iat = claims["iat"].as_u64().unwrap();
        assert!(iat.abs_diff(jose::issued_at()) <= 5, "{iat}");
        let names: HashSet<_> = claims.as_object().unwrap().keys().cloned().collect();
        assert_eq!(names, ["jti", "htm", "htu", "iat"].map(String::from).into());
    }

    #[test]
    fn an_api_proof_carries_the_nonce_and_the_token_hash() {
        let key = DpopKey::generate();
        let proof = key.proof(
            "GET",
            "https://api.example/v1/videos#top",
            Some("n-1"),
            Some("tok"),
        );
        verify(key.signing_key(), &proof);
        let (_, claims) = decode(&proof);
        assert_eq!(claims["htu"], "https://api.example/v1/videos");
        assert_eq!(claims["nonce"], "n-1");
        // RFC 9449's own example (§7.1): the hash of its access token.
        assert_eq!(
            access_token_hash("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"),
            "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
        );
        assert_eq!(claims["ath"], json!(access_token_hash("tok")));
    }

    #[test]
    fn every_proof_has_its_own_jti() {
        let key = DpopKey::generate();
        let jtis: HashSet<String> = (0..50)
            .map(|_| {
                decode(&key.proof("GET", "https://api.example/", None, None)).1["jti"].to_string()
            })
            .collect();
        assert_eq!(jtis.len(), 50);
    }

    #[test]
    fn a_grpc_htu_is_kept_whole() {
        let htu = "https://grpc.example:8443/videos.v1.Videos/List";
        assert_eq!(without_query_and_fragment(htu), htu);
    }
}
