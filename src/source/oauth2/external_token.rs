//! A token minted elsewhere, fetched afresh for each token request: read
//! from a file, or returned by the user's async function.

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};

use super::credential_file;
use crate::error::Error;
use crate::source::BoxFuture;

type TokenFn = Arc<dyn Fn() -> BoxFuture<'static, Result<String, Error>> + Send + Sync>;

/// Where a client assertion or a subject token comes from.
#[derive(Clone)]
pub(super) enum ExternalToken {
    File(PathBuf),
    Fn(TokenFn),
}

impl ExternalToken {
    pub(super) fn from_fn<F, Fut>(f: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, Error>> + Send + 'static,
    {
        ExternalToken::Fn(Arc::new(move || Box::pin(f())))
    }

    /// The token now, trimmed. `what` names it in errors.
    ///
    /// # Errors
    ///
    /// A file's errors (see [`credential_file::read`]); the function's own
    /// errors as they are; [`Error::InvalidConfig`] when the function
    /// returns only whitespace.
    pub(super) async fn read(&self, what: &str) -> Result<SecretString, Error> {
        match self {
            ExternalToken::File(path) => credential_file::read(what, path).await,
            ExternalToken::Fn(f) => {
                let token = SecretString::from(f().await?);
                let trimmed = token.expose_secret().trim();
                if trimmed.is_empty() {
                    return Err(Error::config(format!(
                        "the {what} function returned an empty token"
                    )));
                }
                Ok(SecretString::from(trimmed.to_owned()))
            }
        }
    }
}

/// The path (not a secret) or that a function provides it.
impl fmt::Debug for ExternalToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExternalToken::File(path) => f.debug_tuple("File").field(path).finish(),
            ExternalToken::Fn(_) => f.write_str("Fn(..)"),
        }
    }
}
