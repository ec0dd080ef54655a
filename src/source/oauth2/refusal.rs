//! A token endpoint's refusal, mapped to the crate's [`Error`] per RFC 6749
//! §5.2 (the table is in the module docs of `bearer_refresh::oauth2`).

use crate::error::Error;
use crate::source::refusal::Refusal;

use super::auth::ClientAuth;
use super::grant::Grant;

/// The error for a refused `grant`, sent with `auth`. Server text is quoted
/// only through [`Refusal::field`], without the request's secrets; a
/// refused client authentication quotes none at all.
pub(super) fn refusal(grant: Grant<'_>, auth: &ClientAuth, refusal: &Refusal) -> Error {
    let call = grant.call();
    let status = refusal.status().as_u16();
    let error = refusal.field("error");
    if status >= 500 {
        return Error::Status {
            call,
            status,
            title: error,
        };
    }
    // §5.2: a failed client authentication is `invalid_client`, and a 401
    // is how the endpoint answers one sent in the Authorization header.
    let client_refused = match error.as_deref() {
        Some(code) => code == "invalid_client",
        None => status == 401,
    };
    if client_refused {
        // Whatever the server says here is about the credentials: the one
        // place where an echo is most likely, so nothing is quoted.
        if auth.is_assertion() {
            return Error::ClientAssertionRejected { status };
        }
        return Error::ClientAuthRejected {
            status,
            description: None,
        };
    }
    let description = refusal.field("error_description");
    match (error.as_deref(), grant) {
        (Some("invalid_grant"), Grant::RefreshToken(_)) => Error::RefreshTokenRejected {
            status,
            title: Some(match description {
                Some(description) => format!("invalid_grant: {description}"),
                None => "invalid_grant".to_owned(),
            }),
        },
        _ => Error::GrantRefused {
            grant: grant.label(),
            status,
            error,
            description,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use http::StatusCode;
    use secrecy::SecretString;

    use crate::source::redact::Redactor;

    const CLIENT: Grant<'static> = Grant::ClientCredentials {
        scope: None,
        audience: None,
    };

    fn refresh() -> Grant<'static> {
        static TOKEN: std::sync::LazyLock<SecretString> =
            std::sync::LazyLock::new(|| SecretString::from("r3fresh"));
        Grant::RefreshToken(&TOKEN)
    }

    fn map(grant: Grant<'_>, status: u16, body: &str) -> Error {
        let mut redactor = Redactor::default();
        redactor.secret("s3cret");
        let status = StatusCode::from_u16(status).unwrap();
        refusal(
            grant,
            &ClientAuth::Public,
            &Refusal::new(grant.call(), status, body.as_bytes(), redactor),
        )
    }

    #[test]
    fn invalid_grant_on_a_refresh_is_a_rejected_refresh_token() {
        let err = map(
            refresh(),
            400,
            r#"{"error":"invalid_grant","error_description":"expired"}"#,
        );
        assert!(
            matches!(&err, Error::RefreshTokenRejected { status: 400, title: Some(t) } if t == "invalid_grant: expired"),
            "{err:?}"
        );
    }

    #[test]
    fn invalid_grant_on_client_credentials_is_permanent() {
        let err = map(CLIENT, 400, r#"{"error":"invalid_grant"}"#);
        assert!(matches!(
            err,
            Error::GrantRefused {
                grant: "client_credentials",
                ..
            }
        ));
        assert!(!err.is_transient());
        assert!(err.to_string().contains("allowed grants"), "{err}");
    }

    #[test]
    fn client_authentication_failures_name_the_client() {
        for (status, body) in [
            (401, r#"{"error":"invalid_client"}"#),
            (
                400,
                r#"{"error":"invalid_client","error_description":"bad secret"}"#,
            ),
            (401, ""),
            (401, "<html>Unauthorized</html>"),
        ] {
            for grant in [CLIENT, refresh()] {
                let err = map(grant, status, body);
                assert!(
                    matches!(err, Error::ClientAuthRejected { .. }),
                    "{status} {body}: {err:?}"
                );
                assert!(!err.is_transient());
                let text = err.to_string();
                assert!(text.contains("client authentication"), "{text}");
                assert!(text.contains("client id and secret"), "{text}");
                assert!(!text.contains("API key"), "{text}");
            }
        }
    }

    #[test]
    fn other_codes_are_permanent_and_say_what_to_fix() {
        for (code, advice) in [
            ("unauthorized_client", "may not use this grant type"),
            ("invalid_scope", "scope"),
            ("unsupported_grant_type", "does not support this grant type"),
            ("invalid_request", "audience"),
            ("something_new", "check the token URL"),
        ] {
            let body = format!(r#"{{"error":"{code}"}}"#);
            for status in [400, 401, 403] {
                let err = map(CLIENT, status, &body);
                assert!(matches!(err, Error::GrantRefused { .. }), "{code}: {err:?}");
                assert!(!err.is_transient());
                let text = err.to_string();
                assert!(text.contains(code), "{text}");
                assert!(text.contains(advice), "{text}");
            }
        }
        let missing = map(refresh(), 404, "Not Found");
        assert!(
            missing.to_string().contains("check the token URL"),
            "{missing}"
        );
        let bare = map(refresh(), 400, "");
        assert!(
            matches!(bare, Error::GrantRefused { error: None, .. }),
            "{bare:?}"
        );
    }

    #[test]
    fn server_failures_are_transient() {
        for status in [500, 502, 503] {
            let err = map(refresh(), status, r#"{"error":"invalid_grant"}"#);
            assert!(matches!(err, Error::Status { .. }), "{err:?}");
            assert!(err.is_transient());
        }
    }

    #[test]
    fn a_client_authentication_error_quotes_no_server_text() {
        let err = map(
            CLIENT,
            401,
            r#"{"error":"invalid_client","error_description":"client unknown"}"#,
        );
        assert!(matches!(
            err,
            Error::ClientAuthRejected {
                description: None,
                ..
            }
        ));
        assert!(!err.to_string().contains("unknown"), "{err}");
    }

    #[test]
    fn echoed_secrets_are_removed_from_every_quoted_field() {
        for (status, body) in [
            (400, r#"{"error":"s3cret"}"#),
            (503, r#"{"error":"S3CRET down"}"#),
            (
                400,
                r#"{"error":"invalid_scope","error_description":"client_secret=s3cret"}"#,
            ),
            (
                400,
                r#"{"error":"invalid_request","error_description":"bad: czNjcmV0"}"#,
            ),
        ] {
            for grant in [CLIENT, refresh()] {
                let err = map(grant, status, body);
                let text = format!("{err} {err:?}").to_lowercase();
                assert!(!text.contains("s3cret"), "{body}: {text}");
                assert!(!text.contains("cznjcmv0"), "{body}: {text}");
            }
        }
        let long = "x".repeat(10_000);
        let err = map(
            CLIENT,
            400,
            &format!(r#"{{"error":"invalid_scope","error_description":"{long}"}}"#),
        );
        assert!(err.to_string().len() < 1_000);
    }
}
