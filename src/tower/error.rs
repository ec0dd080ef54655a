use std::error::Error as StdError;
use std::fmt;

use crate::error::Error;

type BoxError = Box<dyn StdError + Send + Sync>;

/// The error of a [`BearerAuth`](super::BearerAuth) service: the inner
/// service failed, or no token could be had.
///
/// The inner service's error is passed through as it is: reach it with
/// [`inner`](Self::inner), [`into_inner`](Self::into_inner) or
/// [`source`](std::error::Error::source), then downcast it.
///
/// ```
/// use bearer_refresh::tower::BearerAuthError;
///
/// fn explain(err: &BearerAuthError) -> String {
///     match err.token_error() {
///         Some(token) => format!("auth failed: {token}"),
///         None => format!("transport failed: {err}"),
///     }
/// }
/// # let _ = explain;
/// ```
pub struct BearerAuthError {
    kind: Kind,
}

enum Kind {
    Inner(BoxError),
    Token(Error),
}

impl BearerAuthError {
    pub(crate) fn inner_error(error: impl Into<BoxError>) -> Self {
        BearerAuthError {
            kind: Kind::Inner(error.into()),
        }
    }

    pub(crate) fn token(error: Error) -> Self {
        BearerAuthError {
            kind: Kind::Token(error),
        }
    }

    /// The token error, when no token could be had (the request was not
    /// sent).
    pub fn token_error(&self) -> Option<&Error> {
        match &self.kind {
            Kind::Token(error) => Some(error),
            Kind::Inner(_) => None,
        }
    }

    /// The inner service's error, when it failed.
    pub fn inner(&self) -> Option<&(dyn StdError + Send + Sync + 'static)> {
        match &self.kind {
            Kind::Inner(error) => Some(error.as_ref()),
            Kind::Token(_) => None,
        }
    }

    /// The error as a [`tower::BoxError`](https://docs.rs/tower/latest/tower/type.BoxError.html):
    /// the inner service's error unchanged, or the token [`Error`].
    pub fn into_inner(self) -> BoxError {
        match self.kind {
            Kind::Inner(error) => error,
            Kind::Token(error) => Box::new(error),
        }
    }
}

impl fmt::Debug for BearerAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Inner(error) => f.debug_tuple("Inner").field(error).finish(),
            Kind::Token(error) => f.debug_tuple("Token").field(error).finish(),
        }
    }
}

impl fmt::Display for BearerAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Inner(error) => write!(f, "the inner service failed: {error}"),
            Kind::Token(error) => write!(f, "no bearer token, the request was not sent: {error}"),
        }
    }
}

impl StdError for BearerAuthError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match &self.kind {
            Kind::Inner(error) => Some(error.as_ref()),
            Kind::Token(error) => Some(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_error_is_found_in_ours_and_in_a_box() {
        let error = BearerAuthError::token(Error::config("refused"));
        assert!(matches!(
            Error::find(&error),
            Some(Error::InvalidConfig { .. })
        ));
        let boxed = error.into_inner();
        assert!(Error::find(&*boxed).is_some());
        let inner = BearerAuthError::inner_error(std::io::Error::other("reset"));
        assert!(Error::find(&inner).is_none());
    }
}
