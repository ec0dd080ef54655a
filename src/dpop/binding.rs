//! A manager's DPoP binding on the API side: its key and the API origins'
//! nonces, shared by every DPoP-bound token it hands out. The adapters ask
//! it for each send's proof, and hand it each answer's `DPoP-Nonce`.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

use http::{HeaderMap, HeaderValue};

use super::{DpopKey, Nonces};
use crate::origin::Origin;

/// The key a manager's tokens are bound to, and what the API servers said
/// about nonces.
pub(crate) struct Binding {
    key: DpopKey,
    nonces: Nonces,
    /// Whether the `Bearer` answer of a DPoP source was reported.
    warned_bearer: AtomicBool,
}

/// One send's `DPoP` header, and the origin whose nonce it used.
pub(crate) struct Proof {
    pub(crate) header: HeaderValue,
    pub(crate) origin: Origin,
}

impl Binding {
    pub(crate) fn new(key: DpopKey) -> Self {
        Binding {
            key,
            nonces: Nonces::default(),
            warned_bearer: AtomicBool::new(false),
        }
    }

    pub(crate) fn key(&self) -> &DpopKey {
        &self.key
    }

    /// A fresh proof for one send of `method` to `url` (absolute; its
    /// query and fragment are dropped) with `access_token`, carrying the
    /// origin's latest nonce. `None` for a URL that has no origin.
    pub(crate) fn proof(&self, method: &str, url: &str, access_token: &str) -> Option<Proof> {
        let (origin, _) = Origin::of_url(url).ok()?;
        let nonce = self.nonces.get(&origin);
        let proof = self
            .key
            .proof(method, url, nonce.as_deref(), Some(access_token));
        // A JWT is base64url and dots: always a valid header value.
        let header = HeaderValue::try_from(proof).ok()?;
        Some(Proof { header, origin })
    }

    /// Keeps the `DPoP-Nonce` of an answer from `origin`, whatever its
    /// status.
    pub(crate) fn observe(&self, origin: &Origin, headers: &HeaderMap) {
        self.nonces.observe(origin, headers);
    }

    /// Says once that the token endpoint answered a DPoP request with a
    /// bearer token, which is then used as one.
    pub(crate) fn warn_bearer(&self) {
        if !self.warned_bearer.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                thumbprint = %self.key.thumbprint(),
                "the token endpoint answered a DPoP token request with a Bearer token: it is used as a bearer token, without proofs (said once)"
            );
        }
    }
}

/// The key's `Debug`: its thumbprint, never the private key.
impl fmt::Debug for Binding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Binding")
            .field("key", &self.key)
            .field("nonces", &self.nonces)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jose::testing::{decode, verify};

    #[test]
    fn a_proof_carries_the_origins_latest_nonce() {
        let binding = Binding::new(DpopKey::generate());
        let first = binding
            .proof("GET", "https://api.example/v1/videos?page=2", "tok")
            .unwrap();
        verify(binding.key().signing_key(), first.header.to_str().unwrap());
        let (_, claims) = decode(first.header.to_str().unwrap());
        assert!(claims.get("nonce").is_none());
        assert_eq!(claims["htu"], "https://api.example/v1/videos");
        let mut headers = HeaderMap::new();
        headers.insert("dpop-nonce", HeaderValue::from_static("n-2"));
        binding.observe(&first.origin, &headers);
        let again = binding
            .proof("POST", "https://api.example/v1/videos", "tok")
            .unwrap();
        let (_, claims) = decode(again.header.to_str().unwrap());
        assert_eq!(claims["nonce"], "n-2");
        assert_eq!(claims["htm"], "POST");
        let other = binding
            .proof("GET", "https://other.example/", "tok")
            .unwrap();
        assert!(decode(other.header.to_str().unwrap())
            .1
            .get("nonce")
            .is_none());
        assert!(binding.proof("GET", "/relative", "tok").is_none());
    }
}
