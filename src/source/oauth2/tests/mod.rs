//! The form exchange on the wire, against a small axum token endpoint that
//! records what it receives and answers as scripted.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};

use super::auth::basic;
use super::{ClientCredentials, RefreshTokenSource};
use crate::error::{Error, TokenCall};
use crate::source::TokenSource;

/// What the endpoint saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    user_agent: Option<String>,
    content_type: Option<String>,
    authorization: Option<String>,
    form: Vec<(String, String)>,
}

impl Seen {
    fn field(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// The scripted answer: status, extra headers, body.
type Answer = (u16, Vec<(&'static str, &'static str)>, String);

#[derive(Clone)]
struct Endpoint {
    seen: Arc<Mutex<Vec<Seen>>>,
    answer: Arc<Mutex<Answer>>,
}

impl Endpoint {
    async fn start() -> (Endpoint, String) {
        let endpoint = Endpoint {
            seen: Arc::default(),
            answer: Arc::new(Mutex::new((
                200,
                Vec::new(),
                r#"{"access_token":"at-1","token_type":"bearer","expires_in":60,"scope":"a b","id_token":"x.y.z"}"#.into(),
            ))),
        };
        let app = axum::Router::new()
            .route("/token", axum::routing::post(token))
            .with_state(endpoint.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/token", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (endpoint, url)
    }

    fn answer(&self, status: u16, headers: Vec<(&'static str, &'static str)>, body: &str) {
        *self.answer.lock().unwrap() = (status, headers, body.to_owned());
    }

    fn last(&self) -> Seen {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("a request")
    }
}

async fn token(
    State(endpoint): State<Endpoint>,
    headers: HeaderMap,
    body: String,
) -> impl IntoResponse {
    let header = |name| {
        headers
            .get(name)
            .map(|value: &http::HeaderValue| value.to_str().unwrap().to_owned())
    };
    endpoint.seen.lock().unwrap().push(Seen {
        user_agent: header("user-agent"),
        content_type: header("content-type"),
        authorization: header("authorization"),
        form: form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect(),
    });
    let (status, extra, body) = endpoint.answer.lock().unwrap().clone();
    let mut response = (StatusCode::from_u16(status).unwrap(), body).into_response();
    for (name, value) in extra {
        response.headers_mut().insert(name, value.parse().unwrap());
    }
    response
}

#[test]
fn basic_credentials_are_form_encoded_before_base64() {
    let header = basic("my client:1", &SecretString::from("p@ss:wörd+%"));
    assert!(header.is_sensitive());
    let encoded = header.to_str().unwrap().strip_prefix("Basic ").unwrap();
    let decoded = String::from_utf8(STANDARD.decode(encoded).unwrap()).unwrap();
    assert_eq!(decoded, "my+client%3A1:p%40ss%3Aw%C3%B6rd%2B%25");
}

#[tokio::test]
async fn client_credentials_use_basic_auth_with_scope_and_audience() {
    let (endpoint, url) = Endpoint::start().await;
    let source = ClientCredentials::new(&url, "id:1", "s3cr&t")
        .unwrap()
        .scope("a b")
        .audience("https://api.example");
    let response = source.login().await.unwrap();
    assert_eq!(response.access_token.expose_secret(), "at-1");
    assert_eq!(response.expires_in, Some(Duration::from_secs(60)));
    assert!(response.refresh_token.is_none());
    let seen = endpoint.last();
    assert_eq!(
        seen.content_type.as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(
        seen.user_agent.as_deref(),
        Some(crate::source::endpoint::USER_AGENT),
        "one client for every token endpoint"
    );
    assert_eq!(seen.field("grant_type"), Some("client_credentials"));
    assert_eq!(seen.field("scope"), Some("a b"));
    assert_eq!(seen.field("audience"), Some("https://api.example"));
    assert_eq!(seen.field("client_secret"), None);
    assert_eq!(seen.field("client_id"), None);
    let expected = format!("Basic {}", STANDARD.encode("id%3A1:s3cr%26t"));
    assert_eq!(seen.authorization.as_deref(), Some(expected.as_str()));
}

#[tokio::test]
async fn client_secret_post_sends_no_authorization_header() {
    let (endpoint, url) = Endpoint::start().await;
    let source = ClientCredentials::new(&url, "id", "s3cr&t")
        .unwrap()
        .client_secret_post();
    source.login().await.unwrap();
    let seen = endpoint.last();
    assert_eq!(seen.authorization, None);
    assert_eq!(seen.field("client_id"), Some("id"));
    assert_eq!(seen.field("client_secret"), Some("s3cr&t"));
    assert_eq!(seen.field("scope"), None);
    assert_eq!(seen.field("audience"), None);
}

#[tokio::test]
async fn refresh_grants_for_public_and_confidential_clients() {
    let (endpoint, url) = Endpoint::start().await;
    endpoint.answer(
        200,
        Vec::new(),
        r#"{"access_token":"at-2","token_type":"Bearer","refresh_token":"rt-2"}"#,
    );
    let public = RefreshTokenSource::new(&url, "cli", "rt-1").unwrap();
    assert!(!public.can_login());
    assert!(public.long_lived_secret().is_none());
    let start = public.initial_refresh_token().unwrap();
    let response = public.refresh(&start).await.unwrap();
    assert_eq!(response.refresh_token.unwrap().expose_secret(), "rt-2");
    let seen = endpoint.last();
    assert_eq!(seen.field("grant_type"), Some("refresh_token"));
    assert_eq!(seen.field("refresh_token"), Some("rt-1"));
    assert_eq!(seen.field("client_id"), Some("cli"));
    assert_eq!(seen.authorization, None);

    let confidential = public.clone().client_secret("sec");
    assert_eq!(
        confidential.long_lived_secret().unwrap().expose_secret(),
        "sec"
    );
    confidential.refresh(&start).await.unwrap();
    let seen = endpoint.last();
    assert_eq!(seen.field("client_id"), None);
    assert!(seen.authorization.unwrap().starts_with("Basic "));

    let posted = confidential.client_secret_post();
    posted.refresh(&start).await.unwrap();
    let seen = endpoint.last();
    assert_eq!(seen.authorization, None);
    assert_eq!(seen.field("client_secret"), Some("sec"));
}

#[tokio::test]
async fn refusals_are_mapped_on_the_wire() {
    let (endpoint, url) = Endpoint::start().await;
    let source = ClientCredentials::new(&url, "id", "wrong-secret").unwrap();
    endpoint.answer(
        401,
        vec![("www-authenticate", "Basic realm=\"token\"")],
        r#"{"error":"invalid_client","error_description":"wrong-secret is not it"}"#,
    );
    let err = source.login().await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::ClientAuthRejected {
                status: 401,
                description: None
            }
        ),
        "{err:?}"
    );
    assert!(!err.to_string().contains("wrong-secret"));

    endpoint.answer(400, Vec::new(), r#"{"error":"invalid_grant"}"#);
    let refresh = source.refresh(&SecretString::from("rt")).await.unwrap_err();
    assert!(
        matches!(refresh, Error::RefreshTokenRejected { .. }),
        "{refresh:?}"
    );

    endpoint.answer(429, vec![("retry-after", "2")], "{}");
    let limited = source.login().await.unwrap_err();
    assert_eq!(limited.retry_after(), Some(Duration::from_secs(2)));

    endpoint.answer(503, Vec::new(), "<html>down</html>");
    let down = source.login().await.unwrap_err();
    assert!(matches!(down, Error::Status { status: 503, .. }) && down.is_transient());

    endpoint.answer(200, Vec::new(), "<html>login page</html>");
    let garbled = source.login().await.unwrap_err();
    assert!(matches!(
        garbled,
        Error::InvalidResponse {
            call: TokenCall::Login,
            ..
        }
    ));

    endpoint.answer(302, vec![("location", "https://evil.example/token")], "");
    let moved = source.login().await.unwrap_err();
    assert!(!moved.is_transient(), "{moved:?}");
    assert_eq!(
        endpoint.seen.lock().unwrap().len(),
        6,
        "no redirect followed"
    );
}

#[tokio::test]
async fn an_unreachable_endpoint_is_transient() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/token", listener.local_addr().unwrap());
    drop(listener);
    let source = RefreshTokenSource::new(&url, "cli", "rt").unwrap();
    let err = source.refresh(&SecretString::from("rt")).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Unreachable {
                call: TokenCall::Refresh,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_transient());
}

#[test]
fn token_urls_and_credentials_are_checked() {
    for ok in [
        "https://idp.example/oauth/token",
        "https://idp.example/token?tenant=a",
        "http://127.0.0.1:9000/token",
        "http://[::1]:9000/token",
        "http://localhost:9000/token",
    ] {
        assert!(ClientCredentials::new(ok, "id", "secret").is_ok(), "{ok}");
        assert!(RefreshTokenSource::new(ok, "id", "rt").is_ok(), "{ok}");
    }
    for bad in [
        "not a url",
        "http://idp.example/token",
        "ftp://idp.example/token",
        "https://id:secret@idp.example/token",
        "https://idp.example/token#frag",
    ] {
        let err = ClientCredentials::new(bad, "id", "secret").unwrap_err();
        assert!(matches!(err, Error::InvalidConfig { .. }), "{bad}");
        assert!(!err.to_string().contains("secret@"), "{err}");
        assert!(RefreshTokenSource::new(bad, "id", "rt").is_err(), "{bad}");
    }
    let clear = ClientCredentials::new("http://idp.example/token", "id", "s").unwrap_err();
    assert!(
        clear.to_string().contains("client secret in clear"),
        "{clear}"
    );
    assert!(ClientCredentials::new("https://idp.example", "", "secret").is_err());
    assert!(ClientCredentials::new("https://idp.example", "id", "").is_err());
    assert!(RefreshTokenSource::new("https://idp.example", "id", " ").is_err());
}

mod without_secret;
