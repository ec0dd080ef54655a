//! The subject token of an RFC 8693 token exchange.

use std::fmt;
use std::future::Future;
use std::path::PathBuf;

use secrecy::SecretString;

use super::external_token::ExternalToken;
use crate::error::Error;

/// The token to trade in a token exchange (RFC 8693 §2.1), with its type:
/// a workload identity token from a file the platform rotates, or from an
/// async function.
///
/// It is fetched afresh for every exchange: never kept, stored or logged.
/// `Debug` shows the type and the file's path, not the token.
///
/// ```
/// use bearer_refresh::oauth2::SubjectToken;
///
/// let subject = SubjectToken::file("/var/run/secrets/tokens/sts", SubjectToken::JWT);
/// assert!(format!("{subject:?}").contains("/var/run/secrets/tokens/sts"));
///
/// let subject = SubjectToken::from_fn(|| async { Ok("eyJhbGciOi...".to_owned()) }, SubjectToken::ID_TOKEN);
/// ```
#[derive(Clone)]
pub struct SubjectToken {
    token: ExternalToken,
    token_type: String,
}

impl SubjectToken {
    /// `urn:ietf:params:oauth:token-type:jwt`: a JWT, such as a Kubernetes
    /// service-account token.
    pub const JWT: &'static str = "urn:ietf:params:oauth:token-type:jwt";
    /// `urn:ietf:params:oauth:token-type:id_token`: an OpenID Connect ID
    /// token, such as a CI provider's OIDC token.
    pub const ID_TOKEN: &'static str = "urn:ietf:params:oauth:token-type:id_token";
    /// `urn:ietf:params:oauth:token-type:access_token`: an OAuth2 access
    /// token from another issuer.
    pub const ACCESS_TOKEN: &'static str = "urn:ietf:params:oauth:token-type:access_token";

    /// Reads the token from `path` on every exchange, trimmed of
    /// whitespace; `token_type` is its `subject_token_type` (a URN, such as
    /// [`SubjectToken::JWT`]). Symbolic links are followed (Kubernetes
    /// rotates a projected token by swapping a link); the target must be a
    /// regular file of at most 64 KiB, read within 5 seconds.
    ///
    /// A missing, unreadable or empty file fails that exchange with a
    /// permanent [`Error::InvalidConfig`] that names the path; the next
    /// exchange reads the file again.
    pub fn file(path: impl Into<PathBuf>, token_type: impl Into<String>) -> Self {
        SubjectToken {
            token: ExternalToken::File(path.into()),
            token_type: token_type.into(),
        }
    }

    /// Calls `f` on every exchange for the token (trimmed), of type
    /// `token_type`. An error it returns fails that exchange as it is, so
    /// return a transient one (such as [`Error::Unreachable`]) for a
    /// failure worth retrying.
    pub fn from_fn<F, Fut>(f: F, token_type: impl Into<String>) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, Error>> + Send + 'static,
    {
        SubjectToken {
            token: ExternalToken::from_fn(f),
            token_type: token_type.into(),
        }
    }

    /// The form's `subject_token_type`.
    pub(crate) fn token_type(&self) -> &str {
        &self.token_type
    }

    /// The token for one exchange.
    pub(crate) async fn read(&self) -> Result<SecretString, Error> {
        self.token.read("subject token").await
    }
}

impl fmt::Debug for SubjectToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubjectToken")
            .field("token", &self.token)
            .field("token_type", &self.token_type)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[tokio::test]
    async fn a_rotated_file_is_read_afresh_with_its_type() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sts");
        std::fs::write(&path, "subject-1\n").unwrap();
        let subject = SubjectToken::file(&path, SubjectToken::JWT);
        assert_eq!(subject.read().await.unwrap().expose_secret(), "subject-1");
        std::fs::write(&path, "subject-2\n").unwrap();
        assert_eq!(subject.read().await.unwrap().expose_secret(), "subject-2");
        assert_eq!(subject.token_type(), "urn:ietf:params:oauth:token-type:jwt");
        let shown = format!("{subject:?}");
        assert!(
            !shown.contains("subject-2") && shown.contains("sts"),
            "{shown}"
        );
    }

    #[tokio::test]
    async fn a_missing_file_names_the_subject_token_and_the_path() {
        let subject = SubjectToken::file("/nonexistent/sts-token", SubjectToken::ID_TOKEN);
        let err = subject.read().await.unwrap_err();
        assert!(!err.is_transient());
        let text = err.to_string();
        assert!(
            text.contains("subject token file /nonexistent/sts-token"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_function_provides_the_token() {
        let subject = SubjectToken::from_fn(|| async { Ok("t\n".to_owned()) }, "urn:x");
        assert_eq!(subject.read().await.unwrap().expose_secret(), "t");
        assert_eq!(subject.token_type(), "urn:x");
    }
}
