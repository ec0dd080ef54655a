//! The token wire format, expiry arithmetic, the JWT `exp` fallback, and
//! the redacted types that carry tokens around.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use http::HeaderValue;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::redact::Redactor;
use crate::error::{Error, TokenCall};

/// The lifetime given to a token whose response has neither `expires_in`
/// nor a readable JWT `exp`: short, because a token must never be cached
/// for ever.
pub(crate) const DEFAULT_LIFETIME: Duration = Duration::from_secs(60);

/// The longest lifetime we believe. A larger `expires_in` is clamped, which
/// also keeps `Instant` arithmetic far from overflow.
pub(crate) const MAX_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);

/// The shortest lifetime we accept. A shorter token would cost a token
/// call per request, so a broken or hostile endpoint could turn every API
/// request into one: it is an invalid answer, retried with backoff.
pub(crate) const MIN_LIFETIME: Duration = Duration::from_secs(1);

/// A token endpoint's successful answer.
///
/// [`TokenSource`](crate::TokenSource) implementations return this;
/// [`TokenManager`](crate::TokenManager) turns it into a cached header. Its
/// `Debug` output never shows a token. Build one with [`new`](Self::new)
/// and the `with_` methods: more fields may come (the struct is
/// `#[non_exhaustive]`).
///
/// ```
/// use std::time::Duration;
/// use bearer_refresh::TokenResponse;
///
/// let response = TokenResponse::new("s3cr3t-access")
///     .with_refresh_token("s3cr3t-refresh")
///     .with_expires_in(Duration::from_secs(3600));
/// assert!(!format!("{response:?}").contains("s3cr3t"));
/// ```
#[non_exhaustive]
pub struct TokenResponse {
    /// The access token sent as `Authorization: Bearer <access_token>`.
    pub access_token: SecretString,
    /// The refresh token, if the endpoint rotated or issued one.
    pub refresh_token: Option<SecretString>,
    /// The lifetime the endpoint announced. When `None`, the JWT `exp`
    /// claim is read instead, and failing that a short default applies.
    /// A lifetime under 1 s makes the token unusable: the manager treats
    /// it as an invalid answer, and retries with backoff.
    pub expires_in: Option<Duration>,
    token_type: TokenType,
}

/// How an access token is presented to the API: the `token_type` of a
/// token response (RFC 6749 §7.1), compared without regard to case.
///
/// ```
/// use bearer_refresh::{TokenResponse, TokenType};
///
/// assert_eq!(TokenResponse::new("t").token_type(), TokenType::Bearer);
/// let bound = TokenResponse::new("t").with_token_type(TokenType::Dpop);
/// assert_eq!(bound.token_type().as_str(), "DPoP");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum TokenType {
    /// `Bearer` (RFC 6750): whoever holds the token may use it. Also what a
    /// response without a `token_type` is taken for.
    #[default]
    Bearer,
    /// `DPoP` (RFC 9449): the token is bound to the client's DPoP key, and
    /// each request carries a fresh proof signed with it (feature `dpop`).
    Dpop,
}

impl TokenType {
    /// The name on the wire, which is also the scheme of the
    /// `Authorization` header: `Bearer` or `DPoP`.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenType::Bearer => "Bearer",
            TokenType::Dpop => "DPoP",
        }
    }

    /// The type named `name`, without regard to case; `None` for a type the
    /// crate cannot present (`MAC`, `N_A`, ...).
    fn parse(name: &str) -> Option<Self> {
        [TokenType::Bearer, TokenType::Dpop]
            .into_iter()
            .find(|kind| kind.as_str().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for TokenType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TokenResponse {
    /// A response carrying only an access token.
    pub fn new(access_token: impl Into<String>) -> Self {
        TokenResponse {
            access_token: SecretString::from(access_token.into()),
            refresh_token: None,
            expires_in: None,
            token_type: TokenType::Bearer,
        }
    }

    /// Sets the refresh token.
    pub fn with_refresh_token(mut self, refresh_token: impl Into<String>) -> Self {
        self.refresh_token = Some(SecretString::from(refresh_token.into()));
        self
    }

    /// Sets the announced lifetime.
    pub fn with_expires_in(mut self, expires_in: Duration) -> Self {
        self.expires_in = Some(expires_in);
        self
    }

    /// Sets the token type: [`TokenType::Dpop`] for a token bound to the
    /// source's DPoP key. The default is [`TokenType::Bearer`].
    pub fn with_token_type(mut self, token_type: TokenType) -> Self {
        self.token_type = token_type;
        self
    }

    /// How the token is presented: the answer's `token_type`, `Bearer`
    /// when it had none.
    pub fn token_type(&self) -> TokenType {
        self.token_type
    }

    /// Decodes an api.video (or OAuth2) token response body. Its
    /// `token_type` must be `Bearer` or `DPoP` (in any case), or absent.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidResponse`] when the body is not the expected JSON,
    /// and [`Error::InvalidToken`] when it names another token type,
    /// announces a lifetime under 1 s, or carries an empty or malformed
    /// access token.
    pub fn from_json(call: TokenCall, body: &[u8]) -> Result<Self, Error> {
        Self::decode(call, body, &Redactor::default())
    }

    /// [`from_json`](Self::from_json), quoting the server's text only
    /// through `redactor`.
    pub(crate) fn decode(call: TokenCall, body: &[u8], redactor: &Redactor) -> Result<Self, Error> {
        let wire: Wire = serde_json::from_slice(body).map_err(|err| Error::InvalidResponse {
            call,
            // Only the kind and position of the fault: serde_json's message
            // can quote the offending value, which may be a secret.
            reason: format!(
                "not a token response ({:?} error at line {}, column {})",
                err.classify(),
                err.line(),
                err.column()
            ),
        })?;
        let token_type = match &wire.token_type {
            None => TokenType::Bearer,
            Some(kind) => TokenType::parse(kind).ok_or_else(|| {
                let kind = redactor.quote(kind).unwrap_or_default();
                Error::invalid_token(format!("token_type is {kind:?}, expected Bearer or DPoP"))
            })?,
        };
        let expires_in = wire
            .expires_in
            .map(|n| expires_in_from_json(call, &n))
            .transpose()?;
        check_token_bytes("access_token", &wire.access_token)?;
        let refresh_token = match wire.refresh_token {
            Some(token) if token.is_empty() => None,
            Some(token) => {
                check_token_bytes("refresh_token", &token)?;
                Some(SecretString::from(token))
            }
            None => None,
        };
        Ok(TokenResponse {
            access_token: SecretString::from(wire.access_token),
            refresh_token,
            expires_in,
            token_type,
        })
    }

    /// The lifetime to use: `expires_in`, else the JWT `exp`, else the
    /// short default; clamped to [`MAX_LIFETIME`].
    ///
    /// A lifetime under [`MIN_LIFETIME`] (a JWT that has expired or is about
    /// to, a sub-second `expires_in`) gives zero, which the caller rejects.
    pub(crate) fn lifetime(&self, now: SystemTime) -> Duration {
        let lifetime = self
            .expires_in
            .or_else(|| jwt_remaining(self.access_token.expose_secret(), now))
            .unwrap_or(DEFAULT_LIFETIME)
            .min(MAX_LIFETIME);
        if lifetime < MIN_LIFETIME {
            Duration::ZERO
        } else {
            lifetime
        }
    }

    /// The `Authorization` header for this token, marked sensitive.
    pub(crate) fn header(&self) -> Result<HeaderValue, Error> {
        let token = self.access_token.expose_secret();
        check_token_bytes("access_token", token)?;
        let mut value = HeaderValue::try_from(format!("Bearer {token}"))
            .map_err(|_| Error::invalid_token("access_token is not a valid header value"))?;
        value.set_sensitive(true);
        Ok(value)
    }
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &"[redacted]")
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[redacted]"),
            )
            .field("expires_in", &self.expires_in)
            .field("token_type", &self.token_type)
            .finish()
    }
}

#[derive(Deserialize)]
struct Wire {
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    expires_in: Option<serde_json::Number>,
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
}

fn expires_in_from_json(call: TokenCall, n: &serde_json::Number) -> Result<Duration, Error> {
    let bad = |what: &str| Error::InvalidResponse {
        call,
        reason: format!("expires_in is {what}"),
    };
    let secs = n.as_f64().ok_or_else(|| bad("not a number"))?;
    if !secs.is_finite() || secs < 0.0 {
        return Err(bad("negative"));
    }
    if secs == 0.0 {
        return Err(Error::invalid_token(
            "expires_in is 0: the token is already expired",
        ));
    }
    if secs < MIN_LIFETIME.as_secs_f64() {
        return Err(Error::invalid_token(format!(
            "expires_in is {secs} s, under the {} s a token must live (one token call per \
             request otherwise)",
            MIN_LIFETIME.as_secs()
        )));
    }
    Ok(Duration::try_from_secs_f64(secs).map_or(MAX_LIFETIME, |d| d.min(MAX_LIFETIME)))
}

/// Tokens travel in a header: only visible ASCII is allowed, which rules out
/// header injection (CR, LF) and the ambiguity of spaces.
fn check_token_bytes(field: &str, token: &str) -> Result<(), Error> {
    if token.is_empty() {
        return Err(Error::invalid_token(format!("{field} is empty")));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::invalid_token(format!(
            "{field} contains bytes that are not allowed in an HTTP header"
        )));
    }
    Ok(())
}

/// The time left before a JWT's `exp`, read without checking the signature:
/// the token is ours to use, not to trust.
fn jwt_remaining(token: &str, now: SystemTime) -> Option<Duration> {
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    #[derive(Deserialize)]
    struct Claims {
        exp: serde_json::Number,
    }
    let mut parts = token.split('.');
    let payload = match (parts.next(), parts.next(), parts.next()) {
        (Some(_), Some(payload), Some(_)) => payload,
        _ => return None,
    };
    let bytes = LENIENT.decode(payload).ok()?;
    let claims: Claims = serde_json::from_slice(&bytes).ok()?;
    let exp = claims.exp.as_f64().filter(|exp| exp.is_finite())?;
    let now = now.duration_since(UNIX_EPOCH).ok()?.as_secs_f64();
    Some(Duration::try_from_secs_f64((exp - now).max(0.0)).unwrap_or(MAX_LIFETIME))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(body: &str) -> Result<TokenResponse, Error> {
        TokenResponse::from_json(TokenCall::Login, body.as_bytes())
    }

    fn jwt(payload: &str) -> String {
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.sig",
            engine.encode(r#"{"alg":"none"}"#),
            engine.encode(payload)
        )
    }

    #[test]
    fn decodes_the_documented_response() {
        let response = decode(
            r#"{"token_type":"bearer","expires_in":3600,"access_token":"a.b.c","refresh_token":"0a1b"}"#,
        )
        .unwrap();
        assert_eq!(response.access_token.expose_secret(), "a.b.c");
        assert_eq!(response.refresh_token.unwrap().expose_secret(), "0a1b");
        assert_eq!(response.expires_in, Some(Duration::from_secs(3600)));
        assert_eq!(response.token_type, TokenType::Bearer);
    }

    #[test]
    fn dpop_is_a_token_type_in_any_case_and_none_means_bearer() {
        for (kind, expected) in [
            (r#""token_type":"DPoP","#, TokenType::Dpop),
            (r#""token_type":"dpop","#, TokenType::Dpop),
            (r#""token_type":"BEARER","#, TokenType::Bearer),
            ("", TokenType::Bearer),
        ] {
            let body = format!(r#"{{{kind}"access_token":"t"}}"#);
            assert_eq!(decode(&body).unwrap().token_type(), expected, "{body}");
        }
        for other in ["N_A", "MAC", "DPoP2", ""] {
            let body = format!(r#"{{"token_type":"{other}","access_token":"t"}}"#);
            let err = decode(&body).err().unwrap();
            assert!(
                matches!(err, Error::InvalidToken { .. }),
                "{other}: {err:?}"
            );
        }
    }

    #[test]
    fn rejects_bad_fields_with_clear_errors() {
        for (body, expected) in [
            (r#"{"access_token":"t","token_type":"MAC"}"#, "token_type"),
            (r#"{"access_token":""}"#, "empty"),
            (r#"{"access_token":"a\r\nX-Evil: 1"}"#, "not allowed"),
            (r#"{"access_token":"t","expires_in":-5}"#, "negative"),
            (r#"{"access_token":"t","expires_in":0}"#, "already expired"),
            (
                r#"{"access_token":"t","expires_in":0.999}"#,
                "under the 1 s",
            ),
            (r#"{"access_token":"t","expires_in":1e-9}"#, "under the 1 s"),
            (r#"{"access_token":"t","expires_in":"3600"}"#, "not a token"),
            (r#"{"token_type":"Bearer"}"#, "not a token"),
            ("\u{0}\u{1}", "not a token"),
        ] {
            let err = decode(body).err().unwrap().to_string();
            assert!(err.contains(expected), "{body}: {err}");
        }
    }

    #[test]
    fn huge_lifetimes_are_clamped() {
        let response = decode(r#"{"access_token":"t","expires_in":1e300}"#).unwrap();
        assert_eq!(response.expires_in, Some(MAX_LIFETIME));
    }

    #[test]
    fn jwt_exp_is_the_fallback_lifetime() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        let response = TokenResponse::new(jwt(r#"{"exp":1600}"#));
        assert_eq!(response.lifetime(now), Duration::from_secs(600));
        let expired = TokenResponse::new(jwt(r#"{"exp":10}"#));
        assert_eq!(expired.lifetime(now), Duration::ZERO);
    }

    #[test]
    fn lifetimes_under_a_second_are_unusable() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        let jwt = TokenResponse::new(jwt(r#"{"exp":1000.5}"#));
        assert_eq!(jwt.lifetime(now), Duration::ZERO);
        let announced = TokenResponse::new("t").with_expires_in(Duration::from_millis(999));
        assert_eq!(announced.lifetime(now), Duration::ZERO);
        let one = TokenResponse::new("t").with_expires_in(MIN_LIFETIME);
        assert_eq!(one.lifetime(now), MIN_LIFETIME);
        let err = decode(r#"{"access_token":"t","expires_in":0.001}"#)
            .err()
            .unwrap();
        assert!(matches!(err, Error::InvalidToken { .. }) && err.is_transient());
    }

    #[test]
    fn an_echoed_secret_in_token_type_is_not_quoted() {
        let mut redactor = Redactor::default();
        redactor.secret("k3y");
        let body = br#"{"access_token":"t","token_type":"K3Y"}"#;
        let err = TokenResponse::decode(TokenCall::Login, body, &redactor)
            .err()
            .unwrap();
        assert!(!err.to_string().to_lowercase().contains("k3y"), "{err}");
    }

    #[test]
    fn unreadable_jwts_fall_back_to_the_default() {
        let now = SystemTime::now();
        for token in [
            "opaque",
            "a.!!!.c",
            &jwt("not json"),
            &jwt(r#"{"exp":"x"}"#),
        ] {
            assert_eq!(TokenResponse::new(token).lifetime(now), DEFAULT_LIFETIME);
        }
    }

    #[test]
    fn the_header_is_sensitive_and_debug_is_redacted() {
        let response = TokenResponse::new("secret-token").with_refresh_token("secret-refresh");
        let header = response.header().unwrap();
        assert!(header.is_sensitive());
        assert_eq!(header, "Bearer secret-token");
        let debug = format!("{response:?}");
        assert!(!debug.contains("secret"), "{debug}");
    }
}
