//! Telling a DPoP nonce challenge (RFC 9449 §8, §9) from other refusals.

use http::header::WWW_AUTHENTICATE;
use http::HeaderMap;

/// The OAuth2 error code of a nonce challenge: in the token endpoint's 400
/// body (`{"error":"use_dpop_nonce"}`), and in an API's 401
/// `WWW-Authenticate: DPoP error="use_dpop_nonce"`.
pub(crate) const USE_DPOP_NONCE: &str = "use_dpop_nonce";

/// A `WWW-Authenticate` value longer than this is not parsed.
const MAX_CHALLENGE_LEN: usize = 4096;

/// Whether an API's answer (a 401) challenges for a nonce: a `DPoP`
/// challenge with `error="use_dpop_nonce"` in any `WWW-Authenticate`.
/// Such an answer is sent again once with the new nonce and the same token.
pub(crate) fn is_nonce_challenge(headers: &HeaderMap) -> bool {
    headers
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .filter(|value| value.len() <= MAX_CHALLENGE_LEN)
        .any(|value| {
            http_auth::ChallengeParser::new(value)
                .map_while(Result::ok)
                .filter(|challenge| challenge.scheme.eq_ignore_ascii_case("dpop"))
                .any(|challenge| {
                    challenge.params.iter().any(|(name, value)| {
                        name.eq_ignore_ascii_case("error") && value.to_unescaped() == USE_DPOP_NONCE
                    })
                })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append(WWW_AUTHENTICATE, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn a_dpop_nonce_challenge_is_recognised() {
        for value in [
            r#"DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof""#,
            r#"Bearer realm="api", DPoP algs="ES256", error="use_dpop_nonce""#,
            r#"dpop error=use_dpop_nonce"#,
        ] {
            assert!(is_nonce_challenge(&headers(&[value])), "{value}");
        }
        assert!(is_nonce_challenge(&headers(&[
            "Bearer",
            r#"DPoP error="use_dpop_nonce""#
        ])));
    }

    #[test]
    fn other_challenges_are_not_nonce_challenges() {
        for value in [
            r#"DPoP error="invalid_token""#,
            r#"Bearer error="use_dpop_nonce""#,
            r#"DPoP algs="ES256""#,
            "not a challenge ,,, \"",
        ] {
            assert!(!is_nonce_challenge(&headers(&[value])), "{value}");
        }
        assert!(!is_nonce_challenge(&HeaderMap::new()));
        let long = format!(
            r#"DPoP error="use_dpop_nonce", x="{}""#,
            "a".repeat(MAX_CHALLENGE_LEN)
        );
        assert!(!is_nonce_challenge(&headers(&[&long])));
    }
}
