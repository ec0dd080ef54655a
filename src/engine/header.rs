//! [`AuthHeader`]: a bearer header and the generation of its token.

use std::fmt;

use http::HeaderValue;

/// A bearer header together with the generation of the token in it.
///
/// The request side remembers the generation it sent, so that a 401 only
/// invalidates the token it was actually about (see
/// [`TokenManager::invalidate`](super::TokenManager::invalidate)).
#[derive(Clone)]
pub struct AuthHeader {
    header: HeaderValue,
    generation: u64,
}

impl AuthHeader {
    pub(super) fn new(header: HeaderValue, generation: u64) -> Self {
        AuthHeader { header, generation }
    }

    /// The `Authorization` value, `Bearer <access token>`, marked sensitive.
    pub fn header(&self) -> &HeaderValue {
        &self.header
    }

    /// The token's generation: 1 for the first token, one more for each
    /// token after it.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Takes the header out.
    pub fn into_header(self) -> HeaderValue {
        self.header
    }
}

impl fmt::Debug for AuthHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthHeader")
            .field("header", &"Bearer [redacted]")
            .field("generation", &self.generation)
            .finish()
    }
}
