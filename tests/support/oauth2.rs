//! A real OAuth2 server (the npm package `oauth2-mock-server`, driven by
//! tests/oauth2-server/server.mjs) in a child process, and a loopback API
//! that accepts any bearer token and counts what it receives.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde::Deserialize;

use super::npm::NodeServer;

/// The OAuth2 server, stopped when dropped (its stdin closes and the
/// child is killed).
pub(crate) struct Idp {
    base: String,
    http: reqwest::Client,
    _server: NodeServer,
}

impl Idp {
    /// Starts the server with `env` (see server.mjs for the variables).
    pub(crate) async fn start(env: &[(&str, &str)]) -> Idp {
        let server = NodeServer::start("oauth2-server", "OAuth2 server", env).await;
        Idp {
            base: server.base.clone(),
            http: reqwest::Client::new(),
            _server: server,
        }
    }

    pub(crate) fn token_url(&self) -> String {
        format!("{}/token", self.base)
    }

    /// What the server saw so far.
    pub(crate) async fn stats(&self) -> IdpStats {
        self.http
            .get(format!("{}/stats", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Sends a control message (`fail_next`, `reset_stats`,
    /// `add_refresh_token`).
    pub(crate) async fn control(&self, message: serde_json::Value) {
        let response = self
            .http
            .post(format!("{}/control", self.base))
            .json(&message)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success());
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct IdpStats {
    pub grants: HashMap<String, usize>,
    pub requests: Vec<TokenRequest>,
    pub reused_refresh_tokens: usize,
}

impl IdpStats {
    pub(crate) fn grants(&self, grant: &str) -> usize {
        self.grants.get(grant).copied().unwrap_or(0)
    }

    /// The status of every token request, in order.
    pub(crate) fn statuses(&self) -> Vec<u16> {
        self.requests.iter().map(|request| request.status).collect()
    }
}

/// One token request as the server saw it.
#[derive(Debug, Deserialize)]
pub(crate) struct TokenRequest {
    pub grant_type: Option<String>,
    /// `basic`, `post` or `none`.
    pub auth: String,
    pub has_authorization_header: bool,
    pub client_id: Option<String>,
    pub scope: Option<String>,
    pub audience: Option<String>,
    pub refresh_token: Option<String>,
    pub status: u16,
    pub error: Option<String>,
}

/// An API on loopback: any bearer token is accepted (200), a request
/// without one gets a 401, and the next bearer requests can be refused.
#[derive(Clone, Default)]
pub(crate) struct Api {
    pub url: String,
    bearers: Arc<Mutex<Vec<String>>>,
    anonymous: Arc<AtomicUsize>,
    refuse: Arc<AtomicUsize>,
}

impl Api {
    pub(crate) async fn start() -> Api {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api = Api {
            url: format!("http://{}", listener.local_addr().unwrap()),
            ..Api::default()
        };
        let state = api.clone();
        let app = axum::Router::new().fallback(move |headers: HeaderMap| {
            let api = state.clone();
            async move { api.answer(&headers) }
        });
        tokio::spawn(async move { axum::serve(listener, app).await });
        api
    }

    fn answer(&self, headers: &HeaderMap) -> axum::response::Response {
        let bearer = headers
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "));
        let Some(token) = bearer else {
            self.anonymous.fetch_add(1, Ordering::SeqCst);
            return (StatusCode::UNAUTHORIZED, "no token").into_response();
        };
        self.bearers.lock().unwrap().push(token.to_owned());
        let refused = self
            .refuse
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if refused {
            let challenge = [("www-authenticate", r#"Bearer error="invalid_token""#)];
            return (StatusCode::UNAUTHORIZED, challenge, "token refused").into_response();
        }
        (StatusCode::OK, "ok").into_response()
    }

    /// Refuses the next `n` bearer requests with a 401.
    pub(crate) fn refuse_next(&self, n: usize) {
        self.refuse.store(n, Ordering::SeqCst);
    }

    /// Every bearer token received, in order.
    pub(crate) fn bearers(&self) -> Vec<String> {
        self.bearers.lock().unwrap().clone()
    }

    /// Requests that came without a token.
    pub(crate) fn anonymous(&self) -> usize {
        self.anonymous.load(Ordering::SeqCst)
    }
}
