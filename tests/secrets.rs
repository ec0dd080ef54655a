//! Secret hygiene: a full scenario traced at TRACE, and the `Debug` and
//! `Display` of every public type, contain neither the API key nor any
//! token the double issued. The token also never follows a redirect to
//! another host. A token endpoint that echoes the secrets it was sent, in
//! any field and any form, gets none of them into an error or a log.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bearer_refresh::testing::{ApiVideoDouble, VideosMode};
use bearer_refresh::{
    Backoff, BearerAuthLayer, BearerAuthMiddleware, Error, Origin, TokenManager, TokenResponse,
};
use support::clients::{Adapter, Client, ADAPTERS};
use tracing_subscriber::fmt::MakeWriter;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Capture {
    /// What was traced from byte `from` on.
    fn since(&self, from: usize) -> String {
        let bytes = self.0.lock().unwrap();
        String::from_utf8_lossy(&bytes[from.min(bytes.len())..]).into_owned()
    }

    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

/// The TRACE output of every test of this binary.
///
/// Global, not per thread: a thread-local default races with the other
/// tests of this binary over tracing's per-callsite interest cache, and
/// lost events now and then. Every test's events land here, and must all
/// be clean.
fn traces() -> &'static Capture {
    static CAPTURE: OnceLock<Capture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let capture = Capture::default();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(capture.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only global subscriber");
        capture
    })
}

fn assert_clean(what: &str, text: &str, secrets: &[String]) {
    for secret in secrets {
        assert!(
            !text.contains(secret.as_str()),
            "{what} leaks a secret: {text}"
        );
    }
}

#[tokio::test(flavor = "current_thread")]
async fn no_secret_reaches_traces_debug_or_errors() {
    let capture = traces();
    let from = capture.len();

    let double = ApiVideoDouble::start().await.unwrap();
    double.set_lifetime(Duration::from_secs(2));
    let tokens = TokenManager::builder(double.source())
        .backoff(
            Backoff::default()
                .initial(Duration::from_millis(10))
                .max(Duration::from_millis(50)),
        )
        .build();
    let mut printed = Vec::new();
    for adapter in ADAPTERS {
        let client = Client::new(adapter, &tokens);
        let url = double.url("/videos");
        // Login, then a 401 replay, then an expiry refresh, then a fallback.
        client.get(&url).await.unwrap();
        double.revoke_access_tokens();
        client.get(&url).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1600)).await;
        client.get(&url).await.unwrap();
        double.reject_refresh_tokens(true);
        double.revoke_access_tokens();
        client.get(&url).await.unwrap();
        double.reject_refresh_tokens(false);
        double.fail_next(1, 503);
        double.revoke_access_tokens();
        client.get(&url).await.unwrap();
        double.set_videos_mode(VideosMode::AlwaysUnauthorized);
        printed.push(format!("{:?}", client.get(&url).await.unwrap()));
        double.set_videos_mode(VideosMode::Normal);
    }
    // Errors: a rejected key, a rejected refresh with a failed fallback.
    let bad = TokenManager::new(double.source_with_key("not-the-key-but-secret-too"));
    let rejected = bad.authorization().await.unwrap_err();
    double.reject_api_key(true);
    double.reject_refresh_tokens(true);
    double.revoke_access_tokens();
    let failure = Client::new(Adapter::Tower, &tokens)
        .get(&double.url("/videos"))
        .await
        .unwrap_err();
    let relogin = failure.token_error().cloned().unwrap();
    assert!(
        matches!(relogin, Error::ReloginFailed { .. }),
        "{relogin:?}"
    );

    let auth = tokens.authorize().await;
    let source = double.source();
    let response = TokenResponse::new(double.issued_secrets()[0].clone()).with_refresh_token("x");
    printed.extend([
        format!("{rejected:?} {rejected}"),
        format!("{relogin:?} {relogin}"),
        format!("{failure:?}"),
        format!("{auth:?}"),
        format!("{source:?}"),
        format!("{tokens:?} {:?}", tokens.stats()),
        format!("{:?}", TokenManager::builder(double.source())),
        format!("{response:?}"),
        format!("{:?}", BearerAuthLayer::new(tokens.clone())),
        format!("{:?}", BearerAuthMiddleware::new(tokens.clone())),
        format!("{double:?}"),
    ]);

    let mut secrets = double.issued_secrets();
    assert!(
        secrets.len() >= 10,
        "the scenario issued {} secrets",
        secrets.len()
    );
    secrets.push(ApiVideoDouble::API_KEY.to_owned());
    secrets.push("not-the-key-but-secret-too".to_owned());
    for text in &printed {
        assert_clean("Debug/Display", text, &secrets);
    }
    let traces = capture.since(from);
    assert!(traces.contains("new token"), "the scenario was traced");
    assert_clean("the TRACE output", &traces, &secrets);
}

/// A server on another port whose `/go` answers 307 to `target`; returns
/// its base URL.
async fn redirect_to(target: String) -> String {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().route(
        "/go",
        axum::routing::get(move || async move { axum::response::Redirect::temporary(&target) }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

/// reqwest's redirect policy drops `Authorization` (and cookies) when a
/// redirect changes the host, port or scheme. Check it holds for the
/// middleware's header.
#[tokio::test]
async fn reqwest_drops_the_token_on_a_cross_origin_redirect() {
    let double = ApiVideoDouble::start().await.unwrap();
    let elsewhere = ApiVideoDouble::start().await.unwrap();
    let redirector = redirect_to(elsewhere.url("/videos")).await;

    let tokens = TokenManager::new(double.source());
    let client = Client::with_layer(
        Adapter::Reqwest,
        &tokens,
        |layer| layer,
        |middleware| middleware.allow_origin(Origin::parse(&redirector).unwrap()),
    );
    let reply = client.get(&format!("{redirector}/go")).await.unwrap();
    assert_eq!(reply.status, 401, "the other host saw no token");
    let seen = elsewhere.requests();
    assert_eq!(seen.len(), 1);
    assert!(!seen[0].headers.contains_key("authorization"));
    assert_eq!(
        double.calls().logins,
        1,
        "the token was attached to the first hop"
    );
    // The other host's 401 says nothing about our token.
    assert_eq!(double.calls().refreshes, 0);
    assert_eq!(tokens.stats().invalidations, 0);
}

/// On the tower side a redirect-following layer outside ours sends each hop
/// through our scope check, so the next host gets no token.
#[tokio::test]
async fn tower_follow_redirect_outside_the_layer_keeps_the_token_home() {
    use bytes::Bytes;
    use http_body_util::Full;
    use tower::{ServiceBuilder, ServiceExt};
    use tower_http::follow_redirect::FollowRedirectLayer;

    let double = ApiVideoDouble::start().await.unwrap();
    let elsewhere = ApiVideoDouble::start().await.unwrap();
    let redirector = redirect_to(elsewhere.url("/videos")).await;

    let tokens = TokenManager::new(double.source());
    let hyper = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build::<_, Full<Bytes>>(hyper_util::client::legacy::connect::HttpConnector::new());
    let service = ServiceBuilder::new()
        .layer(FollowRedirectLayer::new())
        .layer(
            BearerAuthLayer::new(tokens.clone()).allow_origin(Origin::parse(&redirector).unwrap()),
        )
        .service(hyper);
    let request = http::Request::get(format!("{redirector}/go"))
        .body(Full::default())
        .unwrap();
    let response = service.oneshot(request).await.unwrap();
    assert_eq!(response.status(), 401);
    assert!(!elsewhere.requests()[0]
        .headers
        .contains_key("authorization"));
    assert_eq!(double.calls().logins, 1);
}

/// A token endpoint that echoes the secrets it was sent.
#[cfg(feature = "oauth2")]
mod echoes {
    use std::sync::{Arc, Mutex, OnceLock};

    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::IntoResponse;
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;
    use bearer_refresh::oauth2::{ClientCredentials, RefreshTokenSource};
    use bearer_refresh::{ApiKeySource, Backoff, Error, TokenManager, TokenSource};
    use proptest::prelude::*;
    use secrecy::SecretString;
    use serde_json::json;

    use super::traces;

    const ID: &str = "svc:1 é";
    const SECRET: &str = "Cl1ent+Secret/é ß%&";
    const REFRESH: &str = "r3fresh-Token:öK";

    /// The scripted answer: a status and a JSON body in which `{AUTH}`,
    /// `{BASIC}` and `{BODY}` become the `Authorization` header, its
    /// credential, and the request body that the endpoint received.
    #[derive(Clone)]
    struct Script(Arc<Mutex<(u16, String)>>);

    struct Endpoint {
        script: Script,
        base: String,
    }

    impl Endpoint {
        async fn start() -> Endpoint {
            let script = Script(Arc::new(Mutex::new((500, String::new()))));
            let app = axum::Router::new()
                .fallback(echo)
                .with_state(script.clone());
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let base = format!("http://{}", listener.local_addr().unwrap());
            tokio::spawn(async move { axum::serve(listener, app).await });
            Endpoint { script, base }
        }

        fn answer(&self, status: u16, body: serde_json::Value) {
            *self.script.0.lock().unwrap() = (status, body.to_string());
        }

        fn token_url(&self) -> String {
            format!("{}/token", self.base)
        }
    }

    /// `text` as it sits inside a JSON string.
    fn escaped(text: &str) -> String {
        let quoted = serde_json::to_string(text).unwrap();
        quoted[1..quoted.len() - 1].to_owned()
    }

    async fn echo(
        State(script): State<Script>,
        headers: HeaderMap,
        body: String,
    ) -> impl IntoResponse {
        let (status, template) = script.0.lock().unwrap().clone();
        let auth = headers
            .get("authorization")
            .map(|value| value.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let basic = auth.strip_prefix("Basic ").unwrap_or_default().to_owned();
        let answer = template
            .replace("{AUTH}", &escaped(&auth))
            .replace("{BASIC}", &escaped(&basic))
            .replace("{BODY}", &escaped(&body));
        (
            StatusCode::from_u16(status).unwrap(),
            [("content-type", "application/json")],
            answer,
        )
    }

    fn form(text: &str) -> String {
        form_urlencoded::byte_serialize(text.as_bytes()).collect()
    }

    /// Every form in which `secret` would count as leaked, lower-cased.
    fn leak_forms(secrets: &[&str]) -> Vec<String> {
        let mut forms = Vec::new();
        for secret in secrets {
            forms.extend([
                secret.to_string(),
                secret.to_uppercase(),
                form(secret),
                form(secret).replace('+', "%20"),
                STANDARD.encode(secret),
                escaped(secret),
            ]);
        }
        if let [secret, ..] = secrets {
            forms.push(STANDARD.encode(format!("{}:{}", form(ID), form(secret))));
        }
        forms.iter().map(|form| form.to_lowercase()).collect()
    }

    fn assert_no_leak(what: &str, text: &str, secrets: &[&str]) {
        let lower = text.to_lowercase();
        for form in leak_forms(secrets) {
            assert!(!lower.contains(&form), "{what} leaks {form:?}: {text}");
        }
    }

    /// Which secret the endpoint echoes.
    #[derive(Clone, Copy, Debug)]
    enum Echoed {
        /// The API key or the client secret.
        Credential,
        /// The refresh token presented.
        RefreshToken,
    }

    /// Every error the shipped sources give for the scripted answer, from
    /// each call whose request carried the `echoed` secret, when `secret`
    /// is the API key or client secret and `refresh` the refresh token;
    /// called directly, and through a manager whose warnings are traced.
    async fn errors(
        endpoint: &Endpoint,
        secret: &str,
        refresh: &str,
        echoed: Echoed,
    ) -> Vec<Error> {
        let url = endpoint.token_url();
        let presented = SecretString::from(refresh.to_owned());
        let api = ApiKeySource::new(&endpoint.base, secret).unwrap();
        let basic = ClientCredentials::new(&url, ID, secret).unwrap();
        let post = basic.clone().client_secret_post();
        let user = RefreshTokenSource::new(&url, ID, refresh).unwrap();
        let confidential = user.clone().client_secret(secret).client_secret_post();
        let mut errors = vec![
            api.refresh(&presented).await.unwrap_err(),
            basic.refresh(&presented).await.unwrap_err(),
            post.refresh(&presented).await.unwrap_err(),
            confidential.refresh(&presented).await.unwrap_err(),
        ];
        let one_attempt = || Backoff::default().max_attempts(1);
        let managers = match echoed {
            Echoed::Credential => {
                errors.extend([
                    api.login().await.unwrap_err(),
                    basic.login().await.unwrap_err(),
                    post.login().await.unwrap_err(),
                ]);
                vec![
                    TokenManager::builder(api).backoff(one_attempt()).build(),
                    TokenManager::builder(basic).backoff(one_attempt()).build(),
                    TokenManager::builder(confidential)
                        .backoff(one_attempt())
                        .build(),
                ]
            }
            Echoed::RefreshToken => {
                errors.push(user.refresh(&presented).await.unwrap_err());
                vec![
                    TokenManager::builder(user).backoff(one_attempt()).build(),
                    TokenManager::builder(confidential)
                        .backoff(one_attempt())
                        .build(),
                ]
            }
        };
        for tokens in managers {
            errors.push(tokens.authorization().await.unwrap_err());
        }
        errors
    }

    /// Scripts an answer echoing each secret in turn, as `body` writes it,
    /// and checks that no error, and nothing traced meanwhile, holds a
    /// secret; returns the errors.
    async fn check(status: u16, body: impl Fn(&str) -> serde_json::Value) -> Vec<Error> {
        let endpoint = Endpoint::start().await;
        let mut all = Vec::new();
        for (echoed, secret) in [
            (Echoed::Credential, SECRET),
            (Echoed::RefreshToken, REFRESH),
        ] {
            endpoint.answer(status, body(secret));
            let from = traces().len();
            let errors = errors(&endpoint, SECRET, REFRESH, echoed).await;
            for err in &errors {
                assert_no_leak("an error", &format!("{err} {err:?}"), &[SECRET, REFRESH]);
            }
            assert_no_leak(
                "the TRACE output",
                &traces().since(from),
                &[SECRET, REFRESH],
            );
            all.extend(errors);
        }
        all
    }

    #[tokio::test]
    async fn an_echo_in_the_oauth2_error_code_is_removed() {
        check(400, |secret| json!({ "error": secret })).await;
        check(
            503,
            |secret| json!({ "error": format!("{secret} is down") }),
        )
        .await;
    }

    #[tokio::test]
    async fn an_echo_in_a_status_title_is_removed() {
        for status in [503, 400, 403] {
            check(
                status,
                |secret| json!({ "title": format!("down while serving {secret}") }),
            )
            .await;
        }
    }

    #[tokio::test]
    async fn a_form_urlencoded_echo_is_removed() {
        check(400, |secret| {
            let description = format!("bad request: {{BODY}} ({})", form(secret));
            json!({ "error": "invalid_scope", "error_description": description, "title": description })
        })
        .await;
        check(
            400,
            |_| json!({ "error": "invalid_grant", "error_description": "{BODY}" }),
        )
        .await;
    }

    #[tokio::test]
    async fn the_whole_basic_credential_echo_is_removed() {
        for echo in ["Authorization: {AUTH}", "credential {BASIC} unknown"] {
            check(
                400,
                |_| json!({ "error": "invalid_request", "error_description": echo, "title": echo }),
            )
            .await;
        }
    }

    #[tokio::test]
    async fn a_case_folded_echo_is_removed() {
        for fold in [str::to_uppercase, str::to_lowercase] {
            check(400, |secret| {
                let echo = fold(secret);
                json!({ "error": "invalid_scope", "error_description": echo, "title": echo })
            })
            .await;
        }
    }

    #[tokio::test]
    async fn a_refused_client_authentication_quotes_no_server_text() {
        let errors = check(
            401,
            |_| json!({ "error": "invalid_client", "error_description": "no client by that name" }),
        )
        .await;
        let refused = errors
            .iter()
            .filter(|err| matches!(err, Error::ClientAuthRejected { .. }))
            .collect::<Vec<_>>();
        assert!(refused.len() >= 4, "{errors:?}");
        for err in refused {
            assert!(
                matches!(
                    err,
                    Error::ClientAuthRejected {
                        description: None,
                        ..
                    }
                ),
                "{err:?}"
            );
            assert!(!err.to_string().contains("by that name"), "{err}");
        }
    }

    /// How the endpoint echoes a secret.
    fn echo_of(format: usize, secret: &str) -> String {
        match format {
            0 => secret.to_owned(),
            1 => form(secret),
            2 => form(secret).replace('+', "%20"),
            3 => secret.to_uppercase(),
            4 => secret.to_lowercase(),
            5 => STANDARD.encode(secret),
            6 => format!("{{\"client_secret\":\"{}\"}}", escaped(secret)),
            7 => "{AUTH}".to_owned(),
            8 => "{BASIC}".to_owned(),
            _ => "{BODY}".to_owned(),
        }
    }

    fn secret() -> impl Strategy<Value = String> {
        "[A-Za-z0-9 :@+%&/=._~éßÖ-]{12,32}".prop_filter("not blank", |s| !s.trim().is_empty())
    }

    /// One runtime and endpoint for every case.
    fn runtime() -> &'static (tokio::runtime::Runtime, Endpoint) {
        static SHARED: OnceLock<(tokio::runtime::Runtime, Endpoint)> = OnceLock::new();
        SHARED.get_or_init(|| {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            let endpoint = runtime.block_on(Endpoint::start());
            (runtime, endpoint)
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn random_echoes_of_random_secrets_never_leak(
            secret in secret(),
            refresh in secret(),
            format in 0usize..10,
            of_refresh in any::<bool>(),
            status in prop::sample::select(vec![400u16, 401, 403, 404, 500, 503]),
            code in prop::sample::select(vec!["", "invalid_grant", "invalid_scope", "invalid_client", "echo"]),
        ) {
            let (echoed, of) = if of_refresh {
                (Echoed::RefreshToken, &refresh)
            } else {
                (Echoed::Credential, &secret)
            };
            let echo = echo_of(format, of);
            let mut body = json!({
                "title": format!("title {echo}"),
                "detail": echo,
                "error_description": format!("description {echo} end"),
            });
            match code {
                "" => {}
                "echo" => body["error"] = json!(echo),
                code => body["error"] = json!(code),
            }
            let (runtime, endpoint) = runtime();
            endpoint.answer(status, body);
            let from = traces().len();
            let errors = runtime.block_on(errors(endpoint, &secret, &refresh, echoed));
            for err in &errors {
                assert_no_leak("an error", &format!("{err} {err:?}"), &[&secret, &refresh]);
            }
            assert_no_leak("the TRACE output", &traces().since(from), &[&secret, &refresh]);
        }
    }
}
