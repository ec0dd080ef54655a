//! The request side, shared by the tower layer and the reqwest middleware:
//! which requests get the token ([`Origin`], scope), which 401s ask for a
//! new one, and how a request is kept for a replay (its parts copied, its
//! body copied or recorded).

#[cfg(feature = "tower")]
mod body;
#[cfg(feature = "tower")]
mod record;
mod replay;
mod scope;
#[cfg(any(feature = "tower", feature = "reqwest"))]
#[cfg_attr(not(feature = "tower"), allow(dead_code))]
mod snapshot;

#[cfg(feature = "tower")]
pub(crate) use body::{cast, keep_body, recordable_types, Bodies, BodyCopy};
#[cfg(any(feature = "tower", feature = "reqwest"))]
pub(crate) use replay::{wants_new_token, Policy};
pub use scope::Origin;
pub(crate) use scope::Scope;
#[cfg(feature = "tower")]
pub(crate) use snapshot::Snapshot;
#[cfg(feature = "reqwest")]
pub(crate) use snapshot::{read_headers, Flat};
