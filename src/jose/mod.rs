//! JOSE, as much as the crate needs: compact JWS (RFC 7515) signed with
//! ES256 or RS256, PKCS#8 PEM keys, the public JWK of a P-256 key and its
//! RFC 7638 thumbprint.
//!
//! The cryptography is aws-lc-rs's (the default build already compiles it
//! for rustls); this module only arranges bytes around it.

mod base64url;
mod claims;
mod jwk;
mod jws;
mod key;
mod pem;

pub(crate) use base64url::encode as base64url;
pub(crate) use claims::{issued_at, jti};
#[cfg(test)]
pub(crate) use jwk::thumbprint;
pub(crate) use jwk::EcPublicJwk;
pub(crate) use jws::{encode_segment, sign};
pub(crate) use key::SigningKey;
pub(crate) use pem::{decode as decode_pem, encode as encode_pem};

#[cfg(test)]
pub(crate) mod testing;
