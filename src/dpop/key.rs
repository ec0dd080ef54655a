//! The client's DPoP key.

use std::fmt;
use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use super::proof;
use crate::error::Error;
use crate::jose::{self, EcPublicJwk, SigningKey};

/// A DPoP key: P-256, signing ES256 proofs.
///
/// Cloning is cheap (the key is shared). `Debug` shows the thumbprint
/// only, never the private key.
///
/// ```
/// use bearer_refresh::dpop::DpopKey;
///
/// let key = DpopKey::generate();
/// let shown = format!("{key:?}");
/// assert!(shown.contains(&key.thumbprint()));
/// ```
#[derive(Clone)]
pub struct DpopKey(Arc<Inner>);

struct Inner {
    key: SigningKey,
    /// The proof header, encoded once: it is the same for every proof.
    header: String,
    thumbprint: String,
}

#[derive(Serialize)]
struct Header<'a> {
    typ: &'static str,
    alg: &'static str,
    jwk: &'a EcPublicJwk,
}

impl DpopKey {
    /// A new random P-256 key. It lives as long as the process: tokens bound
    /// to it are useless to any other process, and after a restart. To keep
    /// one key, save [`to_pem`](Self::to_pem) and use
    /// [`from_pem`](Self::from_pem).
    pub fn generate() -> DpopKey {
        DpopKey::new(SigningKey::generate_p256())
    }

    /// Reads an unencrypted PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`) of a
    /// P-256 key, as written by [`to_pem`](Self::to_pem) or by
    /// `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`.
    ///
    /// ```
    /// use bearer_refresh::dpop::DpopKey;
    ///
    /// let err = DpopKey::from_pem("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----")
    ///     .unwrap_err();
    /// assert!(!err.to_string().contains("not a key")); // the PEM is never echoed
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] when the text is not such a PEM, or holds
    /// another kind of key (RSA, another curve). The message says why,
    /// without quoting the text.
    pub fn from_pem(pem: &str) -> Result<DpopKey, Error> {
        let refused = |why: &str| Error::config(format!("the DPoP key was refused: {why}"));
        let der = jose::decode_pem(pem).map_err(|why| refused(&why))?;
        match SigningKey::from_pkcs8(der.expose_secret()).map_err(refused)? {
            key @ SigningKey::Es256(_) => Ok(DpopKey::new(key)),
            SigningKey::Rs256(_) => Err(refused(
                "it is an RSA key; DPoP here signs with ES256, so it needs a P-256 key",
            )),
        }
    }

    /// The private key as an unencrypted PKCS#8 PEM, to keep the key across
    /// restarts (store it as a secret: whoever holds it can use the tokens
    /// bound to it). [`from_pem`](Self::from_pem) reads it back.
    pub fn to_pem(&self) -> SecretString {
        jose::encode_pem(self.0.key.to_pkcs8().expose_secret())
    }

    /// The RFC 7638 JWK SHA-256 thumbprint of the public key, base64url
    /// without padding (43 characters): what a DPoP-bound token's
    /// `cnf.jkt` holds.
    pub fn thumbprint(&self) -> String {
        self.0.thumbprint.clone()
    }

    /// A fresh proof for one request (RFC 9449 §4.2): `htm` the method,
    /// `htu` the URI (its query and fragment are dropped here), the
    /// server's latest nonce, and the access token for `ath` on API calls.
    pub(crate) fn proof(
        &self,
        htm: &str,
        htu: &str,
        nonce: Option<&str>,
        access_token: Option<&str>,
    ) -> String {
        proof::build(&self.0.key, &self.0.header, htm, htu, nonce, access_token)
    }

    fn new(key: SigningKey) -> DpopKey {
        // Both constructors hand in a P-256 key, whose public key is always
        // an uncompressed point.
        let jwk = key
            .ec_public_jwk()
            .expect("a DPoP key is a P-256 key with a public point");
        let header = jose::encode_segment(&Header {
            typ: "dpop+jwt",
            alg: key.alg(),
            jwk: &jwk,
        });
        DpopKey(Arc::new(Inner {
            thumbprint: jwk.thumbprint(),
            header,
            key,
        }))
    }

    #[cfg(test)]
    pub(crate) fn signing_key(&self) -> &SigningKey {
        &self.0.key
    }
}

impl fmt::Debug for DpopKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpopKey")
            .field("thumbprint", &self.0.thumbprint)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jose::testing::{decode, P256_PEM, P384_PEM, RSA_PEM};

    fn assert_send_sync_static<T: Clone + fmt::Debug + Send + Sync + 'static>() {}

    #[test]
    fn a_key_is_clone_debug_send_sync_and_static() {
        assert_send_sync_static::<DpopKey>();
    }

    #[test]
    fn a_pem_round_trip_keeps_the_thumbprint() {
        let key = DpopKey::generate();
        let again = DpopKey::from_pem(key.to_pem().expose_secret()).unwrap();
        assert_eq!(again.thumbprint(), key.thumbprint());
        let fixed = DpopKey::from_pem(P256_PEM).unwrap();
        let pem = fixed.to_pem();
        assert_eq!(
            DpopKey::from_pem(pem.expose_secret()).unwrap().thumbprint(),
            fixed.thumbprint()
        );
    }

    #[test]
    fn keys_differ_and_thumbprints_are_43_characters() {
        let (a, b) = (DpopKey::generate(), DpopKey::generate());
        assert_eq!(a.thumbprint().len(), 43);
        assert_ne!(a.thumbprint(), b.thumbprint());
    }

    /// The thumbprint is RFC 7638's over the `jwk` the proofs carry.
    #[test]
    fn the_thumbprint_is_that_of_the_proof_jwk() {
        let key = DpopKey::from_pem(P256_PEM).unwrap();
        let (header, _) = decode(&key.proof("GET", "https://api.example/", None, None));
        let jwk = &header["jwk"];
        let members = ["crv", "kty", "x", "y"].map(|name| (name, jwk[name].as_str().unwrap()));
        assert_eq!(jose::thumbprint(&members), key.thumbprint());
    }

    #[test]
    fn other_keys_are_refused_without_echo() {
        for (pem, why) in [(RSA_PEM, "RSA key"), (P384_PEM, "neither a P-256")] {
            let err = DpopKey::from_pem(pem).unwrap_err().to_string();
            assert!(err.contains(why), "{err}");
            assert!(!err.contains(&pem[30..60]), "{err}");
        }
        let garbage = "-----BEGIN PRIVATE KEY-----\nc2VjcmV0IGtleQ==\n-----END PRIVATE KEY-----";
        let err = DpopKey::from_pem(garbage).unwrap_err();
        assert!(!err.is_transient());
        assert!(!err.to_string().contains("c2Vj"), "{err}");
    }

    #[test]
    fn debug_shows_the_thumbprint_and_no_key() {
        let key = DpopKey::from_pem(P256_PEM).unwrap();
        let shown = format!("{key:?}");
        assert!(shown.contains(&key.thumbprint()), "{shown}");
        let pem = key.to_pem();
        let body: String = pem.expose_secret().lines().skip(1).take(1).collect();
        assert!(!shown.contains(&body[..20]), "{shown}");
        assert!(!shown.contains("PRIVATE"), "{shown}");
    }
}
