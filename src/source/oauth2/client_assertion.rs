//! A client assertion minted elsewhere (RFC 7521 §4.2, RFC 7523 §2.2):
//! a workload identity token sent in place of a client secret.

use std::fmt;
use std::future::Future;
use std::path::PathBuf;

use secrecy::SecretString;

use super::external_token::ExternalToken;
use crate::error::Error;

/// The form's `client_assertion_type` for a JWT, whoever signed it.
pub(crate) const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A JWT that another issuer minted for this workload (a Kubernetes
/// projected service-account token, a GitHub Actions OIDC token), sent as
/// the client's `client_assertion`.
///
/// It is fetched afresh for every token request, because platforms rotate
/// it every few minutes: it is never kept, stored or logged. `Debug` shows
/// the file's path, not its content.
///
/// ```
/// use bearer_refresh::oauth2::ClientAssertion;
///
/// let assertion = ClientAssertion::file("/var/run/secrets/tokens/idp");
/// assert_eq!(format!("{assertion:?}"), r#"ClientAssertion(File("/var/run/secrets/tokens/idp"))"#);
///
/// // A platform that hands the token out over HTTP, or anything async.
/// let assertion = ClientAssertion::from_fn(|| async { Ok("eyJhbGciOi...".to_owned()) });
/// ```
#[derive(Clone)]
pub struct ClientAssertion(ExternalToken);

impl ClientAssertion {
    /// Reads the assertion from `path` on every token request, trimmed of
    /// whitespace. Symbolic links are followed (Kubernetes rotates a
    /// projected token by swapping a link); the target must be a regular
    /// file of at most 64 KiB, read within 5 seconds.
    ///
    /// A missing, unreadable or empty file fails that token request with a
    /// permanent [`Error::InvalidConfig`] that names the path; the next
    /// request reads the file again.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        ClientAssertion(ExternalToken::File(path.into()))
    }

    /// Calls `f` on every token request for the assertion (trimmed). An
    /// error it returns fails that token request as it is, so return a
    /// transient one (such as [`Error::Unreachable`]) for a failure worth
    /// retrying.
    pub fn from_fn<F, Fut>(f: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, Error>> + Send + 'static,
    {
        ClientAssertion(ExternalToken::from_fn(f))
    }

    /// The assertion for one token request.
    pub(crate) async fn read(&self) -> Result<SecretString, Error> {
        self.0.read("client assertion").await
    }
}

impl fmt::Debug for ClientAssertion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ClientAssertion").field(&self.0).finish()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use secrecy::ExposeSecret;

    use super::*;

    #[tokio::test]
    async fn a_file_is_read_on_every_call() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("idp");
        let assertion = ClientAssertion::file(&path);
        let err = assertion.read().await.unwrap_err().to_string();
        assert!(
            err.contains("client assertion file") && err.contains("idp"),
            "{err}"
        );
        std::fs::write(&path, "one\n").unwrap();
        assert_eq!(assertion.read().await.unwrap().expose_secret(), "one");
        std::fs::write(&path, "two\n").unwrap();
        assert_eq!(
            assertion.clone().read().await.unwrap().expose_secret(),
            "two"
        );
        std::fs::remove_file(&path).unwrap();
        assert!(assertion.read().await.is_err());
    }

    #[tokio::test]
    async fn a_function_is_called_on_every_call() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&calls);
        let assertion = ClientAssertion::from_fn(move || {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            async move { Ok(format!(" jwt-{n} ")) }
        });
        assert_eq!(assertion.read().await.unwrap().expose_secret(), "jwt-0");
        assert_eq!(assertion.read().await.unwrap().expose_secret(), "jwt-1");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(format!("{assertion:?}"), "ClientAssertion(Fn(..))");
    }

    #[tokio::test]
    async fn a_function_s_error_passes_through_and_blank_is_refused() {
        let failing = ClientAssertion::from_fn(|| async {
            Err(Error::Unreachable {
                call: crate::TokenCall::Login,
                reason: "metadata server down".into(),
            })
        });
        assert!(failing.read().await.unwrap_err().is_transient());
        let blank = ClientAssertion::from_fn(|| async { Ok("  ".to_owned()) });
        let err = blank.read().await.unwrap_err();
        assert!(
            !err.is_transient() && err.to_string().contains("empty"),
            "{err}"
        );
    }
}
