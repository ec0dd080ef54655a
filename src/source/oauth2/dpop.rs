//! DPoP at the token endpoint (RFC 9449 §5, §8): a fresh proof on every
//! token request, and the endpoint's latest nonce.
//!
//! Without the `dpop` feature, [`EndpointDpop`] is a type with no value,
//! so that the client's exchange reads the same either way.

#[cfg(not(feature = "dpop"))]
pub(super) use absent::EndpointDpop;
#[cfg(feature = "dpop")]
pub(super) use present::EndpointDpop;

#[cfg(feature = "dpop")]
mod present {

    use std::sync::Arc;

    use http::{HeaderMap, HeaderName, HeaderValue};

    use crate::dpop::{DpopKey, Nonces};
    use crate::origin::Origin;
    use crate::source::refusal::Refusal;
    use crate::source::token_request::TokenRequest;

    /// The request header that carries a proof.
    const DPOP: HeaderName = HeaderName::from_static("dpop");

    /// The OAuth2 error code of the token endpoint's nonce challenge
    /// (`400 {"error":"use_dpop_nonce"}`, RFC 9449 §8).
    const USE_DPOP_NONCE: &str = "use_dpop_nonce";

    /// A client's DPoP key, and the nonces its token endpoint sent. Clones of
    /// a source share the nonces.
    #[derive(Clone, Debug)]
    pub(in crate::source::oauth2) struct EndpointDpop {
        key: DpopKey,
        origin: Origin,
        nonces: Arc<Nonces>,
    }

    impl EndpointDpop {
        /// Proofs by `key` for the token endpoint of `origin`.
        pub(in crate::source::oauth2) fn new(key: DpopKey, origin: Origin) -> Self {
            EndpointDpop {
                key,
                origin,
                nonces: Arc::default(),
            }
        }

        pub(in crate::source::oauth2) fn key(&self) -> &DpopKey {
            &self.key
        }

        /// Adds a new proof for a `POST` to `token_url`, with the endpoint's
        /// latest nonce if it sent one. The proof drops the URL's query.
        pub(in crate::source::oauth2) fn add_proof(
            &self,
            token_url: &str,
            request: &mut TokenRequest,
        ) {
            let nonce = self.nonces.get(&self.origin);
            let proof = self.key.proof("POST", token_url, nonce.as_deref(), None);
            // A compact JWS is base64url segments and dots: a valid header.
            let value = HeaderValue::try_from(proof).expect("a compact JWS is visible ASCII");
            request.header(DPOP, value);
        }

        /// Keeps the `DPoP-Nonce` of any answer of the endpoint.
        pub(in crate::source::oauth2) fn observe(&self, headers: &HeaderMap) {
            self.nonces.observe(&self.origin, headers);
        }

        /// Whether the endpoint refused the request for want of a (fresh) nonce
        /// (§8: `400 {"error":"use_dpop_nonce"}`; any 4xx is taken).
        pub(in crate::source::oauth2) fn is_challenge(refusal: &Refusal) -> bool {
            refusal.status().is_client_error()
                && refusal.field("error").as_deref() == Some(USE_DPOP_NONCE)
        }
    }
}

#[cfg(not(feature = "dpop"))]
mod absent {
    use http::HeaderMap;

    use crate::source::refusal::Refusal;
    use crate::source::token_request::TokenRequest;

    /// No DPoP without the feature: there is no value of this type.
    #[derive(Clone, Debug)]
    pub(in crate::source::oauth2) enum EndpointDpop {}

    impl EndpointDpop {
        pub(in crate::source::oauth2) fn add_proof(&self, _: &str, _: &mut TokenRequest) {
            match *self {}
        }

        pub(in crate::source::oauth2) fn observe(&self, _: &HeaderMap) {
            match *self {}
        }

        pub(in crate::source::oauth2) fn is_challenge(_: &Refusal) -> bool {
            false
        }
    }
}

#[cfg(all(test, feature = "dpop"))]
mod tests;
