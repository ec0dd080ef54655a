//! The DPoP side of a send, for both adapters: a fresh proof on every send
//! of a DPoP-bound token, and the API origin's nonce kept from every
//! answer to one. It lives with the engine, below the adapters, because it
//! works on the engine's [`AuthHeader`]; the request side's decision stays
//! free of it. A bearer token costs one branch on a field already
//! loaded; everything else happens for DPoP-bound tokens only.

#[cfg(feature = "dpop")]
use std::sync::Arc;

use http::HeaderMap;
#[cfg(feature = "dpop")]
use http::HeaderValue;

use super::AuthHeader;
#[cfg(feature = "reqwest")]
use super::TokenManager;
#[cfg(feature = "dpop")]
use crate::dpop::Binding;
#[cfg(feature = "dpop")]
use crate::origin::Origin;

/// The header that carries a proof.
#[cfg(feature = "dpop")]
const DPOP: &str = "dpop";

/// What a DPoP send keeps for its answer: whose nonces to update. (The
/// reqwest adapter keeps only a flag, and the answer's URL says whose.)
#[cfg(feature = "dpop")]
#[cfg_attr(not(feature = "tower"), allow(dead_code))]
pub(crate) struct Proved {
    binding: Arc<Binding>,
    origin: Origin,
}

/// Without the `dpop` feature no send carries a proof.
#[cfg(not(feature = "dpop"))]
pub(crate) enum Proved {}

#[cfg_attr(not(feature = "tower"), allow(dead_code))]
impl Proved {
    /// Keeps the `DPoP-Nonce` of an answer, whatever its status.
    pub(crate) fn observe(&self, headers: &HeaderMap) {
        #[cfg(feature = "dpop")]
        self.binding.observe(&self.origin, headers);
        #[cfg(not(feature = "dpop"))]
        {
            let _ = headers;
            match *self {}
        }
    }
}

/// Whether `auth` is DPoP-bound, its sends then needing [`prove`]: the
/// one branch a bearer token costs.
#[inline]
pub(crate) fn is_bound(auth: &AuthHeader) -> bool {
    #[cfg(feature = "dpop")]
    return auth.binding().is_some();
    #[cfg(not(feature = "dpop"))]
    {
        let _ = auth;
        false
    }
}

/// Puts a fresh `DPoP` proof for a send of `method` to `url` on
/// `headers`, for a DPoP-bound `auth`, and returns what its answer needs.
///
/// A gRPC call's `htm` is `POST`; its `htu`,
/// `scheme://authority/package.Service/Method`, is its URL already.
#[cold]
pub(crate) fn prove(
    auth: &AuthHeader,
    method: &http::Method,
    url: &str,
    headers: &mut HeaderMap,
) -> Option<Proved> {
    #[cfg(feature = "dpop")]
    {
        let binding = auth.binding()?;
        let method = if is_grpc(headers) {
            "POST"
        } else {
            method.as_str()
        };
        let Some(proof) = auth.proof(method, url) else {
            // A request in scope has an absolute URL; without one there is
            // no `htu` to prove, and the server refuses the token.
            headers.remove(DPOP);
            return None;
        };
        headers.insert(DPOP, proof.header);
        Some(Proved {
            binding: Arc::clone(binding),
            origin: proof.origin,
        })
    }
    #[cfg(not(feature = "dpop"))]
    {
        let _ = (auth, method, url, headers);
        None
    }
}

/// Keeps the `DPoP-Nonce` of an answer from `url` to a DPoP send with a
/// token of `tokens`, whatever its status: for an adapter that keeps only
/// whether its send was one.
#[cfg(feature = "reqwest")]
#[cold]
pub(crate) fn observe_nonce(tokens: &TokenManager, url: &str, headers: &HeaderMap) {
    #[cfg(feature = "dpop")]
    if let (Some(binding), Ok((origin, _))) = (tokens.binding(), Origin::of_url(url)) {
        binding.observe(&origin, headers);
    }
    #[cfg(not(feature = "dpop"))]
    let _ = (tokens, url, headers);
}

/// Whether the request is a gRPC call (content type `application/grpc…`).
#[cfg(feature = "dpop")]
fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .map(HeaderValue::as_bytes)
        .is_some_and(|value| value.starts_with(b"application/grpc"))
}

#[cfg(all(test, feature = "dpop"))]
mod tests {
    use super::*;

    #[test]
    fn a_grpc_call_proves_post() {
        let mut headers = HeaderMap::new();
        assert!(!is_grpc(&headers));
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc+proto"),
        );
        assert!(is_grpc(&headers));
    }
}
