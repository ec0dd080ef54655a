//! DPoP (RFC 9449): sender-constrained tokens. A DPoP-bound token is
//! worthless without its private key: each request carries a fresh proof,
//! a JWT signed by a key that the client holds.
//!
//! [`DpopKey`] is that key: one P-256 key (ES256) per client, made with
//! [`DpopKey::generate`] or read with [`DpopKey::from_pem`] to keep one key
//! across restarts. An authorization server binds the tokens it issues to
//! the key's [`thumbprint`](DpopKey::thumbprint) (the token's `cnf.jkt`).
//! A fleet that shares one token must share one key: every member loads
//! the same PEM.
//!
//! ```
//! use bearer_refresh::dpop::DpopKey;
//!
//! let key = DpopKey::generate();
//! assert_eq!(key.thumbprint().len(), 43);
//!
//! // Kept across restarts: the PEM is the private key, store it as a secret.
//! use secrecy::ExposeSecret;
//! let pem = key.to_pem();
//! let again = DpopKey::from_pem(pem.expose_secret())?;
//! assert_eq!(again.thumbprint(), key.thumbprint());
//! # Ok::<(), bearer_refresh::Error>(())
//! ```
//!
//! The cryptography is aws-lc-rs's: the default build already compiles it
//! for rustls, and it signs ES256 without hand-made code.

mod binding;
mod key;
mod nonces;
mod proof;

pub(crate) use binding::{Binding, Proof};
pub use key::DpopKey;
pub(crate) use nonces::Nonces;
