//! Reading `WWW-Authenticate` challenges (RFC 7235): a Bearer challenge
//! with `error="insufficient_scope"` says that a new token would not help,
//! and a DPoP challenge with `error="use_dpop_nonce"` that the same token
//! goes again with the server's new nonce (RFC 9449 §9).

use http::header::WWW_AUTHENTICATE;
use http::HeaderMap;

/// The longest `WWW-Authenticate` value we parse. A longer one is not read
/// for an error code, so the 401 counts as a plain token rejection.
const MAX_CHALLENGE_LEN: usize = 8 * 1024;

/// Whether any `WWW-Authenticate` header holds a Bearer challenge with
/// `error="insufficient_scope"` (RFC 6750 §3.1).
pub(crate) fn insufficient_scope(headers: &HeaderMap) -> bool {
    any_challenge(headers, "bearer", "insufficient_scope")
}

/// Whether any `WWW-Authenticate` header holds a DPoP challenge with
/// `error="use_dpop_nonce"` (RFC 9449 §9).
pub(crate) fn use_dpop_nonce(headers: &HeaderMap) -> bool {
    any_challenge(headers, "dpop", "use_dpop_nonce")
}

/// Whether any `WWW-Authenticate` value holds a `scheme` challenge whose
/// `error` is `error`.
fn any_challenge(headers: &HeaderMap, scheme: &str, error: &str) -> bool {
    headers
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|value| challenges(value, scheme, error))
}

/// Parses one `WWW-Authenticate` value (a list of challenges, RFC 7235).
/// Parsing stops at the first malformed challenge; what came before counts.
fn challenges(value: &str, scheme: &str, error: &str) -> bool {
    if value.len() > MAX_CHALLENGE_LEN {
        return false;
    }
    http_auth::ChallengeParser::new(value)
        .map_while(Result::ok)
        .filter(|challenge| challenge.scheme.eq_ignore_ascii_case(scheme))
        .any(|challenge| {
            challenge.params.iter().any(|(name, value)| {
                name.eq_ignore_ascii_case("error") && value.to_unescaped() == error
            })
        })
}

#[cfg(test)]
fn challenges_insufficient_scope(value: &str) -> bool {
    challenges(value, "bearer", "insufficient_scope")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append(WWW_AUTHENTICATE, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn insufficient_scope_passes_through() {
        for value in [
            r#"Bearer error="insufficient_scope""#,
            r#"bearer realm="a, b", ERROR=insufficient_scope, scope="videos""#,
            r#"Basic realm="x", Bearer realm="y", error="insufficient_scope""#,
            r#"Bearer realm="say \"hi\"", error="insufficient_scope""#,
        ] {
            assert!(challenges_insufficient_scope(value), "{value}");
        }
        assert!(insufficient_scope(&headers(&[
            r#"Basic realm="x""#,
            r#"Bearer error="insufficient_scope""#
        ])));
    }

    #[test]
    fn other_challenges_do_not_pass_through() {
        for value in [
            "",
            "Bearer",
            r#"Bearer error="invalid_token""#,
            r#"Basic error="insufficient_scope""#,
            r#"Bearer error="insufficient_scope"#,
            "Bearer ,,,===",
            "\"unterminated",
        ] {
            assert!(!challenges_insufficient_scope(value), "{value}");
        }
        let huge = format!(
            r#"Bearer realm="{}", error="insufficient_scope""#,
            "a".repeat(MAX_CHALLENGE_LEN)
        );
        assert!(!challenges_insufficient_scope(&huge));
    }

    proptest! {
        #[test]
        fn the_challenge_parser_never_panics(value in ".{0,300}") {
            let _ = challenges_insufficient_scope(&value);
        }

        #[test]
        fn scope_errors_are_found_among_other_challenges(
            realm in "[a-zA-Z0-9 ,=]{0,40}",
            scheme in "(Basic|Digest|Negotiate)",
        ) {
            let value = format!(r#"{scheme} realm="{realm}", Bearer realm="{realm}", error="insufficient_scope""#);
            prop_assert!(challenges_insufficient_scope(&value));
            let other = format!(r#"{scheme} realm="{realm}", Bearer realm="{realm}", error="invalid_token""#);
            prop_assert!(!challenges_insufficient_scope(&other));
        }
    }

    #[test]
    fn a_dpop_nonce_challenge_is_recognised() {
        for value in [
            r#"DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof""#,
            r#"Bearer realm="api", DPoP algs="ES256", error="use_dpop_nonce""#,
            r#"dpop error=use_dpop_nonce"#,
        ] {
            assert!(use_dpop_nonce(&headers(&[value])), "{value}");
        }
        assert!(use_dpop_nonce(&headers(&[
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
            assert!(!use_dpop_nonce(&headers(&[value])), "{value}");
        }
        assert!(!use_dpop_nonce(&HeaderMap::new()));
        let long = format!(
            r#"DPoP error="use_dpop_nonce", x="{}""#,
            "a".repeat(MAX_CHALLENGE_LEN)
        );
        assert!(!use_dpop_nonce(&headers(&[&long])));
    }
}
