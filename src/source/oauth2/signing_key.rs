//! `private_key_jwt` (RFC 7523 §2.2, OpenID Connect Core §9): the client
//! proves itself with a JWT signed by its own key, not a shared secret.

use std::fmt;
use std::sync::Arc;

use aws_lc_rs::digest::{Context, SHA256};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use crate::error::Error;
use crate::jose::{self, SigningKey};

/// How long an assertion is valid. RFC 7523 wants it short; five minutes
/// is the most the crate allows, and covers a server clock that runs
/// ahead. Each token request signs a new one anyway.
const LIFETIME_SECS: u64 = 300;

/// A client's private key for `private_key_jwt`: an RSA key signs RS256,
/// a P-256 key ES256. The crate signs a fresh assertion for every token
/// request and every retry.
///
/// Register the matching public key (or a JWKS URL serving it) with the
/// identity provider, under the key id given to [`key_id`](Self::key_id)
/// if it has several.
///
/// Cloning is cheap (the key is shared). `Debug` shows the algorithm and
/// the key id, never the key.
///
/// ```
/// use bearer_refresh::oauth2::JwtSigningKey;
///
/// # let pem = "-----BEGIN PRIVATE KEY-----\n\
/// #     MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgm9WduimwpSlxZPPF\n\
/// #     5zb4FWx+qVIVGsOY7hrbd7AOoZWhRANCAATsiz9V85V9koAChodxdrqUDi7SJdEY\n\
/// #     4EHNbJlosY0+mFVWNcdDmKZagOEjLUgpgi+NvLb5aXJ0eu+nQ1G8Pw0Q\n\
/// #     -----END PRIVATE KEY-----";
/// let key = JwtSigningKey::from_pem(pem)?.key_id("2026-11");
/// assert_eq!(format!("{key:?}"), r#"JwtSigningKey { alg: "ES256", key_id: Some("2026-11") }"#);
/// # Ok::<(), bearer_refresh::Error>(())
/// ```
#[derive(Clone)]
pub struct JwtSigningKey {
    key: Arc<SigningKey>,
    key_id: Option<String>,
    /// The assertion header, encoded once per key id.
    header: String,
    /// A secret only the key's holders can compute, from which a store
    /// derives its sealing key: a fleet that shares the key shares it.
    seal_secret: Arc<SecretString>,
}

#[derive(Serialize)]
struct Header<'a> {
    alg: &'static str,
    typ: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    kid: Option<&'a str>,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    jti: String,
    iat: u64,
    exp: u64,
}

impl JwtSigningKey {
    /// Reads an unencrypted PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`): an
    /// RSA key of 2048 to 8192 bits (RS256) or a P-256 key (ES256).
    /// Another format converts with `openssl pkey -in key.pem -out
    /// key-pkcs8.pem`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] when the text is not such a PEM or holds
    /// another kind of key. The message says why, without quoting the text.
    pub fn from_pem(pem: &str) -> Result<JwtSigningKey, Error> {
        let refused = |why: &str| Error::config(format!("the JWT signing key was refused: {why}"));
        let der = jose::decode_pem(pem).map_err(|why| refused(&why))?;
        let key = SigningKey::from_pkcs8(der.expose_secret()).map_err(refused)?;
        Ok(JwtSigningKey {
            header: header(&key, None),
            seal_secret: Arc::new(seal_secret(&key)),
            key: Arc::new(key),
            key_id: None,
        })
    }

    /// Sets the `kid` header, so that the provider picks the right one of
    /// the client's registered keys.
    pub fn key_id(mut self, key_id: impl Into<String>) -> Self {
        let key_id = key_id.into();
        self.header = header(&self.key, Some(&key_id));
        self.key_id = Some(key_id);
        self
    }

    /// A fresh client assertion for one token request: `iss` and `sub` the
    /// client id, `aud` the token endpoint URL, a new `jti`, `iat`, and
    /// `exp` five minutes later.
    pub(crate) fn assertion(&self, client_id: &str, audience: &str) -> String {
        let iat = jose::issued_at();
        let claims = Claims {
            iss: client_id,
            sub: client_id,
            aud: audience,
            jti: jose::jti(),
            iat,
            exp: iat + LIFETIME_SECS,
        };
        jose::sign(&self.key, &self.header, &claims)
    }

    /// The secret a store derives its sealing key from.
    pub(crate) fn seal_secret(&self) -> &SecretString {
        &self.seal_secret
    }
}

/// The key's seal secret: a hash of its canonical PKCS#8 form (the same
/// for every PEM of one key), so the store never sees the key itself.
fn seal_secret(key: &SigningKey) -> SecretString {
    let mut context = Context::new(&SHA256);
    context.update(b"bearer-refresh/jwt-signing-key/seal\0");
    context.update(key.to_pkcs8().expose_secret());
    SecretString::from(jose::base64url(context.finish()))
}

fn header(key: &SigningKey, kid: Option<&str>) -> String {
    jose::encode_segment(&Header {
        alg: key.alg(),
        typ: "JWT",
        kid,
    })
}

impl fmt::Debug for JwtSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtSigningKey")
            .field("alg", &self.key.alg())
            .field("key_id", &self.key_id)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use serde_json::json;

    use super::*;
    use crate::jose::testing::{decode, verify, P256_PEM, P384_PEM, RSA_PEM};

    const TOKEN_URL: &str = "https://idp.example/oauth2/token";

    #[test]
    fn an_rsa_key_signs_rs256_and_a_p256_key_es256() {
        for (pem, alg) in [(RSA_PEM, "RS256"), (P256_PEM, "ES256")] {
            let key = JwtSigningKey::from_pem(pem).unwrap();
            let assertion = key.assertion("client-1", TOKEN_URL);
            verify(&key.key, &assertion);
            let (header, _) = decode(&assertion);
            assert_eq!(header, json!({"alg": alg, "typ": "JWT"}));
        }
    }

    #[test]
    fn the_claims_are_those_of_rfc_7523() {
        let key = JwtSigningKey::from_pem(P256_PEM).unwrap().key_id("2026-11");
        let assertion = key.assertion("client-1", TOKEN_URL);
        verify(&key.key, &assertion);
        let (header, claims) = decode(&assertion);
        assert_eq!(
            header,
            json!({"alg": "ES256", "typ": "JWT", "kid": "2026-11"})
        );
        assert_eq!(claims["iss"], "client-1");
        assert_eq!(claims["sub"], "client-1");
        assert_eq!(claims["aud"], TOKEN_URL);
        let iat = claims["iat"].as_u64().unwrap();
        let exp = claims["exp"].as_u64().unwrap();
        assert!(iat.abs_diff(jose::issued_at()) <= 5);
        assert!(exp > iat && exp - iat <= 300, "{iat} {exp}");
        assert_eq!(claims.as_object().unwrap().len(), 6, "{claims}");
    }

    #[test]
    fn every_assertion_has_its_own_jti() {
        let key = JwtSigningKey::from_pem(RSA_PEM).unwrap();
        let jtis: HashSet<String> = (0..20)
            .map(|_| decode(&key.assertion("c", TOKEN_URL)).1["jti"].to_string())
            .collect();
        assert_eq!(jtis.len(), 20);
    }

    #[test]
    fn other_keys_are_refused_without_echo() {
        let err = JwtSigningKey::from_pem(P384_PEM).unwrap_err();
        assert!(!err.is_transient());
        let text = err.to_string();
        assert!(
            text.contains("JWT signing key") && text.contains("P-256"),
            "{text}"
        );
        assert!(!text.contains(&P384_PEM[30..60]), "{text}");
    }

    #[test]
    fn the_seal_secret_is_the_key_s_whatever_its_pem() {
        let key = JwtSigningKey::from_pem(P256_PEM).unwrap();
        let again = JwtSigningKey::from_pem(
            jose::encode_pem(key.key.to_pkcs8().expose_secret()).expose_secret(),
        )
        .unwrap();
        assert_eq!(
            key.seal_secret().expose_secret(),
            again.key_id("other").seal_secret().expose_secret()
        );
        let other = JwtSigningKey::from_pem(RSA_PEM).unwrap();
        assert_ne!(
            key.seal_secret().expose_secret(),
            other.seal_secret().expose_secret()
        );
    }

    #[test]
    fn debug_shows_no_key_material() {
        let key = JwtSigningKey::from_pem(RSA_PEM).unwrap();
        let shown = format!("{key:?}");
        assert_eq!(shown, r#"JwtSigningKey { alg: "RS256", key_id: None }"#);
    }
}
