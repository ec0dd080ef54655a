//! The keys this crate signs with: ES256 (P-256) or RS256 (RSA PKCS#1
//! v1.5 with SHA-256), both aws-lc-rs key pairs.

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    EcdsaKeyPair, KeyPair, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING, RSA_PKCS1_SHA256,
};
use secrecy::SecretSlice;

use super::jwk::EcPublicJwk;

/// A private key and the JWS algorithm it signs with. Its `Debug` names
/// the algorithm only.
pub(crate) enum SigningKey {
    /// ECDSA on P-256 with SHA-256, the signature as `r || s` (64 bytes),
    /// as JWS wants it.
    Es256(EcdsaKeyPair),
    /// RSASSA-PKCS1-v1_5 with SHA-256, 2048 to 8192 bits.
    Rs256(RsaKeyPair),
}

impl SigningKey {
    /// A new P-256 key from the system's randomness.
    pub(crate) fn generate_p256() -> Self {
        // Generating a P-256 key fails only when AWS-LC cannot allocate or
        // has no randomness, and then no key could be made at all.
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .expect("AWS-LC could not generate a P-256 key");
        SigningKey::Es256(pair)
    }

    /// Reads an unencrypted PKCS#8 private key (DER): P-256 or RSA.
    ///
    /// # Errors
    ///
    /// What kind of key was expected, never the key's bytes.
    pub(crate) fn from_pkcs8(der: &[u8]) -> Result<Self, &'static str> {
        if let Ok(pair) = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der) {
            return Ok(SigningKey::Es256(pair));
        }
        RsaKeyPair::from_pkcs8(der)
            .map(SigningKey::Rs256)
            .map_err(|_| {
                "it is neither a P-256 EC key nor an RSA key of 2048 to 8192 bits (other curves, \
             Ed25519 and encrypted keys are not supported)"
            })
    }

    /// The JWS `alg`.
    pub(crate) fn alg(&self) -> &'static str {
        match self {
            SigningKey::Es256(_) => "ES256",
            SigningKey::Rs256(_) => "RS256",
        }
    }

    /// Signs `message` (a JWS signing input).
    pub(crate) fn sign(&self, message: &[u8]) -> Vec<u8> {
        // Signing with a key that parsed fails only when AWS-LC cannot
        // allocate: there is no input that makes it fail.
        const INVARIANT: &str = "AWS-LC failed to sign with a valid key";
        match self {
            SigningKey::Es256(pair) => pair
                .sign(&SystemRandom::new(), message)
                .expect(INVARIANT)
                .as_ref()
                .to_vec(),
            SigningKey::Rs256(pair) => {
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(
                    &RSA_PKCS1_SHA256,
                    &SystemRandom::new(),
                    message,
                    &mut signature,
                )
                .expect(INVARIANT);
                signature
            }
        }
    }

    /// The public JWK of a P-256 key; `None` for RSA, whose public key
    /// this crate never needs to show.
    pub(crate) fn ec_public_jwk(&self) -> Option<EcPublicJwk> {
        match self {
            SigningKey::Es256(pair) => EcPublicJwk::from_point(pair.public_key().as_ref()),
            SigningKey::Rs256(_) => None,
        }
    }

    /// The key as unencrypted PKCS#8 (DER), wiped from memory when dropped.
    pub(crate) fn to_pkcs8(&self) -> SecretSlice<u8> {
        // Serialising a key that parsed fails only when AWS-LC cannot
        // allocate.
        const INVARIANT: &str = "AWS-LC failed to serialise a valid key";
        let der = match self {
            SigningKey::Es256(pair) => pair.to_pkcs8v1().expect(INVARIANT).as_ref().to_vec(),
            SigningKey::Rs256(pair) => {
                let der: Pkcs8V1Der<'static> = pair.as_der().expect(INVARIANT);
                der.as_ref().to_vec()
            }
        };
        SecretSlice::from(der)
    }

    /// The public key as aws-lc-rs encodes it: the uncompressed point for
    /// P-256, `RSAPublicKey` DER for RSA.
    #[cfg(test)]
    pub(crate) fn public_key_bytes(&self) -> Vec<u8> {
        match self {
            SigningKey::Es256(pair) => pair.public_key().as_ref().to_vec(),
            SigningKey::Rs256(pair) => pair.public_key().as_ref().to_vec(),
        }
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", self.alg())
    }
}
