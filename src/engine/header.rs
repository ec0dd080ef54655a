//! [`AuthHeader`]: a bearer header and the generation of its token.

use std::fmt;
#[cfg(feature = "dpop")]
use std::sync::Arc;

use http::HeaderValue;

#[cfg(feature = "dpop")]
use crate::dpop::{Binding, Proof};

/// A bearer header together with the generation of the token in it.
///
/// The request side remembers the generation it sent, so that a 401 only
/// invalidates the token it was actually about (see
/// [`TokenManager::invalidate`](super::TokenManager::invalidate)).
///
/// A DPoP-bound token (feature `dpop`) also needs a fresh proof on every
/// send: [`dpop_proof`](Self::dpop_proof). The layer and the middleware
/// make them.
#[derive(Clone)]
pub struct AuthHeader {
    header: HeaderValue,
    generation: u64,
    /// The key and nonces of a DPoP-bound token; `None` for a bearer one.
    #[cfg(feature = "dpop")]
    dpop: Option<Arc<Binding>>,
}

impl AuthHeader {
    pub(super) fn new(header: HeaderValue, generation: u64) -> Self {
        AuthHeader {
            header,
            generation,
            #[cfg(feature = "dpop")]
            dpop: None,
        }
    }

    #[cfg(feature = "dpop")]
    pub(super) fn bound(mut self, dpop: Option<Arc<Binding>>) -> Self {
        self.dpop = dpop;
        self
    }

    /// The `Authorization` value, `Bearer <access token>` (or, for a
    /// DPoP-bound token, `DPoP <access token>`), marked sensitive.
    pub fn header(&self) -> &HeaderValue {
        &self.header
    }

    /// Whether the token is DPoP-bound (the token endpoint answered
    /// `token_type: DPoP`): each send then needs a
    /// [`dpop_proof`](Self::dpop_proof).
    #[cfg(feature = "dpop")]
    #[cfg_attr(docsrs, doc(cfg(feature = "dpop")))]
    pub fn is_dpop(&self) -> bool {
        self.dpop.is_some()
    }

    /// A fresh `DPoP` header value for one send of `method` (`GET`,
    /// `POST`, ...) to the absolute `url` with this token: a proof signed
    /// with the source's key, carrying `ath` and the latest nonce of the
    /// URL's origin. Make a new one for every send, replays included.
    /// `None` for a bearer token, or a URL without an origin.
    #[cfg(feature = "dpop")]
    #[cfg_attr(docsrs, doc(cfg(feature = "dpop")))]
    pub fn dpop_proof(&self, method: &str, url: &str) -> Option<HeaderValue> {
        self.proof(method, url).map(|proof| proof.header)
    }

    /// [`dpop_proof`](Self::dpop_proof) with the origin it is for, whose
    /// answers' nonces the adapters keep.
    #[cfg(feature = "dpop")]
    pub(crate) fn proof(&self, method: &str, url: &str) -> Option<Proof> {
        let binding = self.dpop.as_ref()?;
        // The header is `DPoP <token>`, built from a checked token.
        let token = self.header.to_str().ok()?.strip_prefix("DPoP ")?;
        binding.proof(method, url, token)
    }

    /// The binding of a DPoP-bound token, for the nonces of its answers.
    #[cfg(feature = "dpop")]
    pub(crate) fn binding(&self) -> Option<&Arc<Binding>> {
        self.dpop.as_ref()
    }

    /// The token's generation: 1 for the first token, one more for each
    /// token after it.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Takes the header out.
    pub fn into_header(self) -> HeaderValue {
        self.header
    }
}

impl fmt::Debug for AuthHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = if self.header.as_bytes().starts_with(b"DPoP ") {
            "DPoP [redacted]"
        } else {
            "Bearer [redacted]"
        };
        f.debug_struct("AuthHeader")
            .field("header", &redacted)
            .field("generation", &self.generation)
            .finish()
    }
}
