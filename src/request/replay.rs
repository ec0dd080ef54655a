//! The request side's rules, shared by the tower layer and the reqwest
//! middleware: which requests get the token, which 401s ask for a new one,
//! and how many replays follow.

use http::header::WWW_AUTHENTICATE;
use http::{HeaderMap, StatusCode};

use crate::engine::TokenManager;
use crate::request::{Origin, Scope};

/// The longest `WWW-Authenticate` value we parse. A longer one is not read
/// for a scope error, so the 401 counts as a plain token rejection.
const MAX_CHALLENGE_LEN: usize = 8 * 1024;

/// The settings both adapters apply to every request.
#[derive(Clone, Debug)]
pub(crate) struct Policy {
    pub(crate) tokens: TokenManager,
    pub(crate) scope: Scope,
    pub(crate) max_replays: u32,
    /// How bodies are kept for a replay (the reqwest side uses
    /// `Request::try_clone` instead).
    #[cfg(feature = "tower")]
    pub(crate) bodies: super::Bodies,
}

impl Policy {
    /// The token goes to the source's origin only, with one replay.
    pub(crate) fn new(tokens: TokenManager) -> Self {
        let scope = Scope::of(tokens.origin());
        Policy {
            tokens,
            scope,
            max_replays: 1,
            #[cfg(feature = "tower")]
            bodies: super::Bodies::new(),
        }
    }

    pub(crate) fn allow_origin(&mut self, origin: Origin) {
        self.scope.add(origin);
    }

    pub(crate) fn allow_any_origin(&mut self) {
        self.scope = Scope::Any;
    }
}

/// Whether a response asks for a new token: a 401, unless its Bearer
/// challenge says `error="insufficient_scope"` (a new token would not have
/// more scope). Every other status, 403 included, passes through.
#[inline]
pub(crate) fn wants_new_token(status: StatusCode, headers: &HeaderMap) -> bool {
    status == StatusCode::UNAUTHORIZED && !insufficient_scope(headers)
}

/// Whether any `WWW-Authenticate` header holds a Bearer challenge with
/// `error="insufficient_scope"` (RFC 6750 §3.1).
pub(crate) fn insufficient_scope(headers: &HeaderMap) -> bool {
    headers
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(challenges_insufficient_scope)
}

/// Parses one `WWW-Authenticate` value (a list of challenges, RFC 7235).
/// Parsing stops at the first malformed challenge; what came before counts.
pub(crate) fn challenges_insufficient_scope(value: &str) -> bool {
    if value.len() > MAX_CHALLENGE_LEN {
        return false;
    }
    http_auth::ChallengeParser::new(value)
        .map_while(Result::ok)
        .filter(|challenge| challenge.scheme.eq_ignore_ascii_case("bearer"))
        .any(|challenge| {
            challenge.params.iter().any(|(name, value)| {
                name.eq_ignore_ascii_case("error") && value.to_unescaped() == "insufficient_scope"
            })
        })
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
    fn plain_401s_want_a_new_token() {
        assert!(wants_new_token(StatusCode::UNAUTHORIZED, &HeaderMap::new()));
        assert!(wants_new_token(
            StatusCode::UNAUTHORIZED,
            &headers(&[r#"Bearer realm="api", error="invalid_token""#])
        ));
        assert!(!wants_new_token(StatusCode::FORBIDDEN, &HeaderMap::new()));
        assert!(!wants_new_token(StatusCode::OK, &HeaderMap::new()));
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
}
