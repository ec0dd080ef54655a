//! A token endpoint's refusal, mapped to the crate's [`Error`] per RFC 6749
//! §5.2 (the table is in the module docs of `bearer_refresh::oauth2`).

use std::time::Duration;

use http::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::endpoint::Grant;
use crate::error::Error;
use crate::source::short;

/// The error response of §5.2. Any field may be missing or malformed; the
/// status still decides then.
#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

/// The error for a non-2xx answer to `grant`. `secrets` are what the
/// request carried: a description that quotes one is dropped.
pub(super) fn refusal<'a>(
    grant: Grant,
    status: StatusCode,
    retry_after: Option<Duration>,
    body: &[u8],
    secrets: impl Iterator<Item = &'a SecretString>,
) -> Error {
    let call = grant.call();
    if status == StatusCode::TOO_MANY_REQUESTS {
        return Error::RateLimited { call, retry_after };
    }
    let ErrorBody {
        error,
        error_description,
    } = serde_json::from_slice(body).unwrap_or_default();
    let error = error
        .filter(|code| !code.is_empty())
        .map(|code| short(&code));
    let description = error_description
        .filter(|text| !text.is_empty())
        .filter(|text| {
            !secrets
                .map(ExposeSecret::expose_secret)
                .any(|secret| !secret.is_empty() && text.contains(secret))
        })
        .map(|text| short(&text));
    let status = status.as_u16();
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
        return Error::ClientAuthRejected {
            status,
            description,
        };
    }
    match (error.as_deref(), grant) {
        (Some("invalid_grant"), Grant::RefreshToken) => Error::RefreshTokenRejected {
            status,
            title: Some(match description {
                Some(description) => format!("invalid_grant: {description}"),
                None => "invalid_grant".to_owned(),
            }),
        },
        _ => Error::GrantRefused {
            grant: grant.as_str(),
            status,
            error,
            description,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(grant: Grant, status: u16, body: &str) -> Error {
        let secret = SecretString::from("s3cret");
        refusal(
            grant,
            StatusCode::from_u16(status).unwrap(),
            None,
            body.as_bytes(),
            [&secret].into_iter(),
        )
    }

    #[test]
    fn invalid_grant_on_a_refresh_is_a_rejected_refresh_token() {
        let err = map(
            Grant::RefreshToken,
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
        let err = map(
            Grant::ClientCredentials,
            400,
            r#"{"error":"invalid_grant"}"#,
        );
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
            for grant in [Grant::ClientCredentials, Grant::RefreshToken] {
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
                let err = map(Grant::ClientCredentials, status, &body);
                assert!(matches!(err, Error::GrantRefused { .. }), "{code}: {err:?}");
                assert!(!err.is_transient());
                let text = err.to_string();
                assert!(text.contains(code), "{text}");
                assert!(text.contains(advice), "{text}");
            }
        }
        let missing = map(Grant::RefreshToken, 404, "Not Found");
        assert!(
            missing.to_string().contains("check the token URL"),
            "{missing}"
        );
        let bare = map(Grant::RefreshToken, 400, "");
        assert!(
            matches!(bare, Error::GrantRefused { error: None, .. }),
            "{bare:?}"
        );
    }

    #[test]
    fn server_failures_and_rate_limits_are_transient() {
        for status in [500, 502, 503] {
            let err = map(Grant::RefreshToken, status, r#"{"error":"invalid_grant"}"#);
            assert!(matches!(err, Error::Status { .. }), "{err:?}");
            assert!(err.is_transient());
        }
        let limited = refusal(
            Grant::ClientCredentials,
            StatusCode::TOO_MANY_REQUESTS,
            Some(Duration::from_secs(3)),
            b"{}",
            std::iter::empty(),
        );
        assert!(limited.is_transient());
        assert_eq!(limited.retry_after(), Some(Duration::from_secs(3)));
    }

    #[test]
    fn a_description_that_echoes_a_secret_is_dropped() {
        let err = map(
            Grant::ClientCredentials,
            401,
            r#"{"error":"invalid_client","error_description":"secret s3cret is wrong"}"#,
        );
        assert!(matches!(
            err,
            Error::ClientAuthRejected {
                description: None,
                ..
            }
        ));
        assert!(!err.to_string().contains("s3cret"));
        let long = "x".repeat(10_000);
        let err = map(
            Grant::ClientCredentials,
            400,
            &format!(r#"{{"error":"invalid_scope","error_description":"{long}"}}"#),
        );
        assert!(err.to_string().len() < 1_000);
    }
}
