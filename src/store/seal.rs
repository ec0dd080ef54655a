//! The cipher of tokens at rest: ChaCha20-Poly1305, keyed by HKDF-SHA256
//! over a long-lived credential (or a key the user gives), and the token's
//! fields as they are sealed, or written in clear when there is no key.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hkdf::Hkdf;
use secrecy::{ExposeSecret, ExposeSecretMut, SecretBox, SecretString};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::store::StoredToken;

const NONCE_LEN: usize = 12;

/// A sealing key. `Debug` shows nothing of it.
#[derive(Clone)]
pub(crate) struct Seal {
    cipher: ChaCha20Poly1305,
}

impl Seal {
    /// A key derived with HKDF-SHA256 from `material`; `salt` names the
    /// store kind and `info` binds the key to one place in it.
    pub(crate) fn derive(material: &[u8], salt: &[u8], info: &[u8]) -> Self {
        let hkdf = Hkdf::<Sha256>::new(Some(salt), material);
        let mut key = SecretBox::new(Box::new([0u8; 32]));
        // 32 bytes is far below HKDF-SHA256's output limit (8160 bytes), so
        // `expand` cannot fail; the zero key it would leave is never reached.
        let _ = hkdf.expand(info, key.expose_secret_mut());
        Seal {
            cipher: ChaCha20Poly1305::new(Key::from_slice(key.expose_secret())),
        }
    }

    /// A user's key: 32 bytes are used as is, anything else goes through
    /// [`derive`](Self::derive).
    #[cfg_attr(not(any(feature = "file-store", feature = "redis")), allow(dead_code))]
    pub(crate) fn from_key(key: &[u8], salt: &[u8], info: &[u8]) -> Self {
        match <&[u8; 32]>::try_from(key) {
            Ok(exact) => Seal {
                cipher: ChaCha20Poly1305::new(Key::from_slice(exact)),
            },
            Err(_) => Self::derive(key, salt, info),
        }
    }

    /// Seals `token`: a random nonce, then the ciphertext of its JSON form.
    /// `aad` is authenticated but not stored, so a blob only opens in the
    /// place (and generation) it was sealed for.
    #[cfg(test)]
    pub(crate) fn seal(&self, token: &StoredToken, aad: &[u8]) -> Option<Vec<u8>> {
        self.seal_plain(&PlainToken::new(token), aad)
    }

    /// Seals `token`'s fields, as [`seal`](Self::seal) does.
    pub(crate) fn seal_plain(&self, token: &PlainToken, aad: &[u8]) -> Option<Vec<u8>> {
        let plain = SecretBox::new(Box::new(token.to_bytes()?));
        let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plain.expose_secret(),
                    aad,
                },
            )
            .ok()?;
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&sealed);
        Some(blob)
    }

    /// Opens a blob from [`seal`](Self::seal), or `None` if it was sealed
    /// with another key or `aad`, tampered with, or is not ours at all.
    #[cfg(test)]
    pub(crate) fn open(&self, blob: &[u8], aad: &[u8], generation: u64) -> Option<StoredToken> {
        Some(self.open_plain(blob, aad)?.into_stored(generation))
    }

    /// Opens a blob into the token's fields, as [`open`](Self::open) does.
    pub(crate) fn open_plain(&self, blob: &[u8], aad: &[u8]) -> Option<PlainToken> {
        if blob.len() < NONCE_LEN {
            return None;
        }
        let (nonce, sealed) = blob.split_at(NONCE_LEN);
        let plain = self
            .cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad })
            .ok()?;
        let plain = SecretBox::new(Box::new(plain));
        PlainToken::from_bytes(plain.expose_secret())
    }
}

impl fmt::Debug for Seal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Seal([redacted])")
    }
}

/// How a store's tokens are sealed: what [`FileStore`](crate::FileStore)
/// and [`RedisStore`](crate::RedisStore) ask for, or the defaults for a
/// store of the user's. The sealing layer (`sealed.rs`) applies it.
#[derive(Debug)]
pub(crate) struct Context {
    /// The user's key (`seal_key`), which wins over a derived one.
    pub(crate) key: Option<Seal>,
    /// The HKDF salt and info of a key derived from the source.
    pub(crate) salt: &'static [u8],
    pub(crate) info: Vec<u8>,
    /// The associated data, before the generation: it binds a sealed
    /// token to its place and generation.
    pub(crate) aad: String,
    /// Whether bytes that do not open are a store error (Redis: a fleet
    /// member with another key must not overwrite the fleet's token), or
    /// count as no token, overwritten by the next (a file).
    pub(crate) unopenable_is_error: bool,
    /// What the warnings name: the way to give a key, and the place.
    pub(crate) setter: &'static str,
    pub(crate) place: String,
}

impl Context {
    /// The associated data of a token of `generation`.
    pub(crate) fn associated_data(&self, generation: u64) -> Vec<u8> {
        format!("{}{generation}", self.aad).into_bytes()
    }
}

/// A token's fields in clear, as sealed (or, without a key, as written).
///
/// `failing_ms`, when present, says until when (wall clock, ms since the
/// epoch) the fleet found the token endpoint failing: outage mode's shared
/// negative cache. It rides with the token it was written over, under the
/// same seal and generation. An older reader ignores it (serde skips
/// unknown fields), and a token written without it reads as not failing,
/// so the format keeps its version.
///
/// The DPoP fields are left out for a bearer token from a source without
/// a key, and read as absent from tokens stored before they existed: the
/// format stays readable both ways.
#[derive(Serialize, Deserialize)]
pub(crate) struct PlainToken {
    access: String,
    refresh: Option<String>,
    expires_ms: u64,
    lifetime_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    failing_ms: Option<u64>,
    /// Whether the access token is DPoP-bound.
    #[serde(default, skip_serializing_if = "is_false")]
    dpop: bool,
    /// The thumbprint of the storing source's DPoP key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    jkt: Option<String>,
}

fn is_false(value: &bool) -> bool {
    !value
}

impl PlainToken {
    pub(crate) fn new(token: &StoredToken) -> Self {
        PlainToken {
            access: token.access_token.expose_secret().to_owned(),
            refresh: token
                .refresh_token
                .as_ref()
                .map(|refresh| refresh.expose_secret().to_owned()),
            expires_ms: millis(
                token
                    .expires_at
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default(),
            ),
            lifetime_ms: millis(token.lifetime),
            failing_ms: None,
            dpop: token.dpop,
            jkt: token.thumbprint.clone(),
        }
    }

    /// The same, marked with the fleet's "failing until" deadline.
    pub(crate) fn failing_until(mut self, until: Option<SystemTime>) -> Self {
        self.failing_ms = until.map(|at| millis(at.duration_since(UNIX_EPOCH).unwrap_or_default()));
        self
    }

    /// The fleet's "failing until" deadline, if the token carries one.
    pub(crate) fn failing(&self) -> Option<SystemTime> {
        UNIX_EPOCH.checked_add(Duration::from_millis(self.failing_ms?))
    }

    /// The token's JSON form: what is sealed, or written when there is no
    /// key.
    pub(crate) fn to_bytes(&self) -> Option<Vec<u8>> {
        serde_json::to_vec(self).ok()
    }

    /// The token in bytes from [`to_bytes`](Self::to_bytes).
    pub(crate) fn from_bytes(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }

    pub(crate) fn into_stored(self, generation: u64) -> StoredToken {
        let mut token = StoredToken::new(
            SecretString::from(self.access),
            UNIX_EPOCH + Duration::from_millis(self.expires_ms),
            Duration::from_millis(self.lifetime_ms),
        )
        .with_generation(generation);
        token.refresh_token = self.refresh.map(SecretString::from);
        token.dpop = self.dpop;
        token.thumbprint = self.jkt;
        token
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> StoredToken {
        StoredToken::new(
            SecretString::from("access-abc".to_owned()),
            SystemTime::now() + Duration::from_secs(60),
            Duration::from_secs(60),
        )
        .with_refresh_token(SecretString::from("refresh-xyz".to_owned()))
        .with_generation(4)
    }

    #[test]
    fn a_sealed_token_opens_only_with_its_key_and_associated_data() {
        let seal = Seal::derive(b"api key", b"salt", b"info");
        let blob = seal.seal(&token(), b"gen:4").unwrap();
        assert!(!blob.windows(10).any(|w| w == b"access-abc"));
        let opened = seal.open(&blob, b"gen:4", 4).unwrap();
        assert_eq!(opened.access_token.expose_secret(), "access-abc");
        assert_eq!(opened.refresh_token.unwrap().expose_secret(), "refresh-xyz");
        assert!(seal.open(&blob, b"gen:5", 5).is_none());
        let other = Seal::derive(b"another key", b"salt", b"info");
        assert!(other.open(&blob, b"gen:4", 4).is_none());
        assert!(seal.open(&blob[..5], b"gen:4", 4).is_none());
    }

    #[test]
    fn the_failing_deadline_is_sealed_with_the_token_and_optional_on_read() {
        let seal = Seal::derive(b"api key", b"salt", b"info");
        let until = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let plain = PlainToken::new(&token()).failing_until(Some(until));
        let blob = seal.seal_plain(&plain, b"x").unwrap();
        assert!(!blob.windows(7).any(|w| w == b"failing"));
        assert_eq!(seal.open_plain(&blob, b"x").unwrap().failing(), Some(until));
        // A token written before the field existed reads as not failing.
        let old = br#"{"access":"a","refresh":null,"expires_ms":1,"lifetime_ms":1}"#;
        assert_eq!(PlainToken::from_bytes(old).unwrap().failing(), None);
        // And the field stays out of a token that is not failing.
        let bytes = PlainToken::new(&token()).to_bytes().unwrap();
        assert!(!bytes.windows(7).any(|w| w == b"failing"));
    }

    #[test]
    fn the_dpop_fields_round_trip_and_old_tokens_still_read() {
        let mut bound = token();
        bound.dpop = true;
        bound.thumbprint = Some("jkt-1".into());
        let bytes = PlainToken::new(&bound).to_bytes().unwrap();
        let back = PlainToken::from_bytes(&bytes).unwrap().into_stored(4);
        assert!(back.dpop);
        assert_eq!(back.thumbprint.as_deref(), Some("jkt-1"));
        let old = br#"{"access":"a","refresh":null,"expires_ms":1,"lifetime_ms":60000}"#;
        let back = PlainToken::from_bytes(old).unwrap().into_stored(1);
        assert!(!back.dpop);
        assert!(back.thumbprint.is_none());
        let bearer = PlainToken::new(&token()).to_bytes().unwrap();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&bearer)
                .unwrap()
                .as_object()
                .unwrap()
                .len(),
            4,
            "a bearer token is written as before"
        );
    }

    #[test]
    fn a_32_byte_key_is_used_as_is_and_other_lengths_are_derived() {
        let exact = Seal::from_key(&[7u8; 32], b"salt", b"info");
        let blob = exact.seal(&token(), b"x").unwrap();
        assert!(Seal::from_key(&[7u8; 32], b"other", b"other")
            .open(&blob, b"x", 1)
            .is_some());
        let derived = Seal::from_key(b"short", b"salt", b"info");
        assert!(derived.open(&blob, b"x", 1).is_none());
    }
}
