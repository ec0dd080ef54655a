//! An in-process double of api.video, for testing clients without an
//! account or a network (cargo feature `test-util`).
//!
//! [`ApiVideoDouble`] is a real HTTP server (axum on `127.0.0.1:0`) that
//! speaks api.video's wire format: `POST /auth/api-key`, `POST /auth/refresh`
//! and a protected, rate-limitable `/videos` endpoint. It counts every call,
//! enforces one-time refresh tokens, and has a switch for every behaviour of
//! the real API that this crate handles:
//!
//! | the real API | switch |
//! |---|---|
//! | a rejected key or refresh token answers 400 (the spec) or 401 (the docs) | [`reject_api_key`](ApiVideoDouble::reject_api_key), [`reject_refresh_tokens`](ApiVideoDouble::reject_refresh_tokens), [`set_rejection_status`](ApiVideoDouble::set_rejection_status) |
//! | a suspended account answers 403 | [`suspend_account`](ApiVideoDouble::suspend_account) |
//! | refresh tokens are long opaque hex strings (`def50200…`) | always |
//! | a refresh may revoke the previous access token | [`revoke_on_refresh`](ApiVideoDouble::revoke_on_refresh) |
//! | `/videos` is rate limited with `X-RateLimit-*` headers; `/auth` is not | [`set_rate_limit`](ApiVideoDouble::set_rate_limit) |
//! | 5xx, 429, slow, hanging or malformed token answers | [`fail_next`](ApiVideoDouble::fail_next), [`rate_limit_next`](ApiVideoDouble::rate_limit_next), [`set_latency`](ApiVideoDouble::set_latency), [`hang`](ApiVideoDouble::hang), [`malformed_next`](ApiVideoDouble::malformed_next), [`trickle_next`](ApiVideoDouble::trickle_next) |
//!
//! ```
//! use bearer_refresh::testing::ApiVideoDouble;
//! use bearer_refresh::TokenManager;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let double = ApiVideoDouble::start().await.unwrap();
//! let tokens = TokenManager::new(double.source());
//! let header = tokens.authorization().await.unwrap();
//! assert!(header.to_str().unwrap().starts_with("Bearer "));
//! assert_eq!(double.calls().logins, 1);
//! # });
//! ```

mod faults;
mod routes;
mod state;
mod switches;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::http::{HeaderMap, Method};
use bytes::Bytes;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::source::ApiKeySource;
use state::{lock, DoubleState};

pub use state::VideosMode;

/// A running api.video double. Dropping it stops the server.
pub struct ApiVideoDouble {
    addr: SocketAddr,
    state: Arc<Mutex<DoubleState>>,
    server: JoinHandle<()>,
}

/// How many calls each endpoint received, and the protocol violations seen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Calls {
    /// `POST /auth/api-key` calls.
    pub logins: u64,
    /// `POST /auth/refresh` calls.
    pub refreshes: u64,
    /// Calls to `/videos`, any method.
    pub videos: u64,
    /// `/videos` calls answered 401.
    pub unauthorized: u64,
    /// `/videos` calls answered 429 by the rate limit.
    pub rate_limited: u64,
    /// Refresh tokens presented a second time (must stay 0).
    pub refresh_reuses: u64,
    /// `/videos` calls that carried an expired access token.
    pub expired_tokens_seen: u64,
    /// `/videos` calls that carried a revoked access token (see
    /// [`ApiVideoDouble::revoke_on_refresh`] and
    /// [`ApiVideoDouble::revoke_access_tokens`]).
    pub revoked_tokens_seen: u64,
}

/// A `/videos` request as the double received it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// The method.
    pub method: Method,
    /// The headers, `Authorization` included.
    pub headers: HeaderMap,
    /// The body bytes.
    pub body: Bytes,
    /// Whether it was let through (200).
    pub authorized: bool,
}

/// A token call (`POST /auth/...`) as the double received it, without its
/// body, which holds the secret.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AuthCall {
    /// `/auth/api-key` or `/auth/refresh`.
    pub path: &'static str,
    /// The headers. They carry no secret: the credentials travel in the body.
    pub headers: HeaderMap,
    /// When it arrived, on Tokio's clock.
    pub at: Instant,
}

impl AuthCall {
    /// The `User-Agent` header, if the call sent a readable one.
    pub fn user_agent(&self) -> Option<&str> {
        self.headers
            .get(http::header::USER_AGENT)
            .and_then(|value| value.to_str().ok())
    }
}

impl ApiVideoDouble {
    /// The API key the double accepts.
    pub const API_KEY: &'static str = "double-api-key-0123456789";

    /// Starts a double on `127.0.0.1:0` issuing tokens that live one hour.
    ///
    /// # Errors
    ///
    /// The I/O error if no loopback port could be bound.
    pub async fn start() -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(DoubleState::new()));
        let app = routes::router(Arc::clone(&state));
        let server = tokio::spawn(async move {
            // The server ends with the listener's task; an accept error on
            // loopback leaves nothing to recover.
            let _ = axum::serve(listener, app).await;
        });
        Ok(ApiVideoDouble {
            addr,
            state,
            server,
        })
    }

    /// The base URL, `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The URL of `path` on the double.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// An [`ApiKeySource`] pointed at the double with the right API key.
    pub fn source(&self) -> ApiKeySource {
        self.source_with_key(Self::API_KEY)
    }

    /// An [`ApiKeySource`] pointed at the double with another API key.
    ///
    /// # Panics
    ///
    /// If `api_key` is empty, which `ApiKeySource::new` refuses.
    pub fn source_with_key(&self, api_key: &str) -> ApiKeySource {
        // The base URL is a loopback http URL we just built, which
        // `ApiKeySource::new` always accepts; only an empty key can fail.
        ApiKeySource::new(&self.base_url(), api_key)
            .unwrap_or_else(|err| panic!("the double's source is invalid: {err}"))
    }

    /// The call counters.
    pub fn calls(&self) -> Calls {
        self.lock().calls
    }

    /// When each auth call arrived, on Tokio's clock.
    pub fn auth_call_times(&self) -> Vec<Instant> {
        self.lock().auth_calls.iter().map(|call| call.at).collect()
    }

    /// Every auth call received, in order.
    pub fn auth_calls(&self) -> Vec<AuthCall> {
        self.lock().auth_calls.clone()
    }

    /// Every `/videos` request received, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().requests.clone()
    }

    /// Every access and refresh token issued so far, for leak checks.
    pub fn issued_secrets(&self) -> Vec<String> {
        let state = self.lock();
        state
            .issued_access
            .iter()
            .chain(&state.issued_refresh)
            .cloned()
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, DoubleState> {
        lock(&self.state)
    }
}

impl Drop for ApiVideoDouble {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl std::fmt::Debug for ApiVideoDouble {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiVideoDouble")
            .field("addr", &self.addr)
            .field("calls", &self.calls())
            .finish_non_exhaustive()
    }
}
