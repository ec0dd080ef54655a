//! How a token is presented: as a bearer token, or DPoP-bound to the
//! source's key (RFC 9449), as the token endpoint's `token_type` says.

#[cfg(feature = "dpop")]
use std::sync::Arc;

use http::HeaderValue;

use super::lifetime::Cached;
use super::{Shared, TokenManager};
#[cfg(feature = "dpop")]
use crate::dpop::Binding;
use crate::error::Error;
use crate::source::{TokenResponse, TokenType};

/// The `Authorization` value of a token whose bearer header is `bearer`:
/// itself, or `DPoP <token>` for a DPoP-bound one.
pub(super) fn presented(bearer: HeaderValue, dpop: bool) -> HeaderValue {
    if !dpop {
        return bearer;
    }
    let token = bearer
        .as_bytes()
        .strip_prefix(b"Bearer ")
        .unwrap_or_default();
    let mut value = [b"DPoP ".as_slice(), token].concat();
    // The same checked token bytes under another scheme: still a valid
    // header value.
    match HeaderValue::from_bytes(&value) {
        Ok(mut header) => {
            header.set_sensitive(true);
            value.fill(0);
            header
        }
        Err(_) => bearer,
    }
}

/// The access token in a header from [`presented`].
pub(super) fn access_token(header: &HeaderValue) -> &str {
    let value = header.to_str().unwrap_or_default();
    value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("DPoP "))
        .unwrap_or_default()
}

impl TokenManager {
    /// The binding of the source's DPoP key, if it has one: the API
    /// origins' nonces live there.
    #[cfg(all(feature = "dpop", feature = "reqwest"))]
    pub(crate) fn binding(&self) -> Option<&Arc<Binding>> {
        self.shared.binding()
    }
}

impl Shared {
    /// Checks that the manager can present `response`'s token. A DPoP
    /// token needs the source's key; a bearer token from a source with a
    /// key is used as one, and said once.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] (permanent: asking again would not help)
    /// for a DPoP-bound token without a key.
    pub(super) fn check_token_type(&self, response: &TokenResponse) -> Result<(), Error> {
        match response.token_type() {
            TokenType::Dpop if self.binding().is_none() => Err(Error::config(
                "the token endpoint answered token_type DPoP, but the source has no DPoP key \
                 (TokenSource::dpop_key, feature `dpop`) to sign the proofs with",
            )),
            TokenType::Dpop => Ok(()),
            _ => {
                #[cfg(feature = "dpop")]
                if let Some(binding) = self.binding() {
                    binding.warn_bearer();
                }
                Ok(())
            }
        }
    }

    /// The binding of the manager's DPoP key, if the source has one.
    #[cfg(feature = "dpop")]
    pub(super) fn binding(&self) -> Option<&Arc<Binding>> {
        self.dpop.as_ref()
    }

    #[cfg(not(feature = "dpop"))]
    fn binding(&self) -> Option<()> {
        None
    }

    /// The thumbprint of the source's DPoP key, stored with its tokens.
    pub(super) fn thumbprint(&self) -> Option<String> {
        #[cfg(feature = "dpop")]
        return self.binding().map(|binding| binding.key().thumbprint());
        #[cfg(not(feature = "dpop"))]
        None
    }

    /// `cached`, bound to the manager's key if its token is DPoP-bound.
    pub(super) fn bind(&self, cached: Cached, dpop: bool) -> Cached {
        #[cfg(feature = "dpop")]
        let cached = {
            let mut cached = cached;
            cached.dpop = self.binding().filter(|_| dpop).cloned();
            cached
        };
        #[cfg(not(feature = "dpop"))]
        let _ = dpop;
        cached
    }
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use super::*;
    use crate::source::{BoxFuture, TokenSource};

    /// Answers with `kind`, with a DPoP key or without.
    struct Answers {
        kind: TokenType,
        #[cfg(feature = "dpop")]
        key: Option<crate::dpop::DpopKey>,
    }

    impl TokenSource for Answers {
        fn login(&self) -> BoxFuture<'_, Result<TokenResponse, Error>> {
            let kind = self.kind;
            Box::pin(async move {
                Ok(TokenResponse::new("t0k3n")
                    .with_expires_in(std::time::Duration::from_secs(3600))
                    .with_token_type(kind))
            })
        }

        fn refresh<'a>(
            &'a self,
            _: &'a SecretString,
        ) -> BoxFuture<'a, Result<TokenResponse, Error>> {
            self.login()
        }

        #[cfg(feature = "dpop")]
        fn dpop_key(&self) -> Option<&crate::dpop::DpopKey> {
            self.key.as_ref()
        }
    }

    #[tokio::test]
    async fn a_dpop_token_without_a_key_is_refused_for_good() {
        let tokens = TokenManager::new(Answers {
            kind: TokenType::Dpop,
            #[cfg(feature = "dpop")]
            key: None,
        });
        let err = tokens.authorize().await.unwrap_err();
        assert!(matches!(err, Error::InvalidConfig { .. }), "{err:?}");
        assert!(!err.is_transient());
    }

    #[cfg(feature = "dpop")]
    #[tokio::test]
    async fn a_bearer_answer_to_a_dpop_source_is_a_bearer_token_and_a_dpop_one_is_bound() {
        let key = crate::dpop::DpopKey::generate();
        for (kind, scheme, bound) in [
            (TokenType::Bearer, "Bearer t0k3n", false),
            (TokenType::Dpop, "DPoP t0k3n", true),
        ] {
            let tokens = TokenManager::new(Answers {
                kind,
                key: Some(key.clone()),
            });
            let auth = tokens.authorize().await.unwrap();
            assert_eq!(auth.header(), scheme);
            assert_eq!(auth.is_dpop(), bound);
            assert_eq!(
                auth.dpop_proof("GET", "https://api.example/").is_some(),
                bound
            );
            let (name, token) = scheme.split_once(' ').unwrap();
            let shown = format!("{auth:?}");
            assert!(shown.contains(&format!("{name} [redacted]")), "{shown}");
            assert!(!shown.contains(token), "{shown}");
        }
    }

    #[test]
    fn a_dpop_token_is_presented_under_its_scheme() {
        let bearer = HeaderValue::from_static("Bearer a.b-c");
        let dpop = presented(bearer.clone(), true);
        assert_eq!(dpop, "DPoP a.b-c");
        assert!(dpop.is_sensitive());
        assert_eq!(access_token(&dpop), "a.b-c");
        assert_eq!(presented(bearer.clone(), false), bearer);
        assert_eq!(access_token(&bearer), "a.b-c");
    }
}
