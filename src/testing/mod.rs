//! An in-process double of api.video's auth endpoints, for testing clients
//! without an account or a network (cargo feature `test-util`).
//!
//! [`ApiVideoDouble`] is a real HTTP server (axum on `127.0.0.1:0`) that
//! speaks the exact wire format: `POST /auth/api-key`, `POST /auth/refresh`
//! and a protected `/videos` endpoint. It counts every call, enforces
//! one-time refresh tokens, and has a switch for every fault this crate
//! handles.
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

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::source::ApiKeySource;

const INVALID_CREDENTIALS: &str =
    "https://docs.api.video/reference/authentication-invalid-user-credentials";
const TOO_MANY_REQUESTS: &str = "https://docs.api.video/reference/too-many-requests";

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
    /// Refresh tokens presented a second time (must stay 0).
    pub refresh_reuses: u64,
    /// `/videos` calls that carried an expired access token.
    pub expired_tokens_seen: u64,
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

/// How `/videos` answers a valid token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum VideosMode {
    /// 200 with a JSON list (the default).
    Normal,
    /// 403 Forbidden.
    Forbidden,
    /// 401 with `WWW-Authenticate: Bearer error="insufficient_scope"`.
    InsufficientScope,
    /// 401 whatever the token.
    AlwaysUnauthorized,
}

/// A canned fault for the auth endpoints, served once.
enum Fault {
    Status(StatusCode),
    RateLimited { retry_after: u64 },
    Body(Bytes),
    Trickle,
}

struct DoubleState {
    calls: Calls,
    lifetime: Duration,
    send_expires_in: bool,
    rotate_refresh_tokens: bool,
    reject_api_key: bool,
    reject_refresh_tokens: bool,
    latency: Duration,
    videos_latency: Duration,
    hang: bool,
    faults: VecDeque<Fault>,
    videos_mode: VideosMode,
    serial: u64,
    access: HashMap<String, Instant>,
    refresh_live: HashSet<String>,
    refresh_used: HashSet<String>,
    issued_access: Vec<String>,
    issued_refresh: Vec<String>,
    auth_call_times: Vec<Instant>,
    requests: Vec<RecordedRequest>,
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
        let state = Arc::new(Mutex::new(DoubleState {
            calls: Calls::default(),
            lifetime: Duration::from_secs(3600),
            send_expires_in: true,
            rotate_refresh_tokens: true,
            reject_api_key: false,
            reject_refresh_tokens: false,
            latency: Duration::ZERO,
            videos_latency: Duration::ZERO,
            hang: false,
            faults: VecDeque::new(),
            videos_mode: VideosMode::Normal,
            serial: 0,
            access: HashMap::new(),
            refresh_live: HashSet::new(),
            refresh_used: HashSet::new(),
            issued_access: Vec::new(),
            issued_refresh: Vec::new(),
            auth_call_times: Vec::new(),
            requests: Vec::new(),
        }));
        let app = Router::new()
            .route("/auth/api-key", post(login))
            .route("/auth/refresh", post(refresh))
            .route("/videos", any(videos))
            .with_state(Arc::clone(&state));
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

    /// The lifetime of the tokens issued from now on, sent as `expires_in`
    /// in whole seconds (at least 1) and as the JWT `exp`.
    pub fn set_lifetime(&self, lifetime: Duration) {
        self.lock().lifetime = lifetime;
    }

    /// Whether responses carry `expires_in` (default on). Off, clients must
    /// read the JWT `exp`.
    pub fn send_expires_in(&self, send: bool) {
        self.lock().send_expires_in = send;
    }

    /// Whether a refresh issues a new refresh token (default on). Off, the
    /// response has none and the old one stays valid.
    pub fn rotate_refresh_tokens(&self, rotate: bool) {
        self.lock().rotate_refresh_tokens = rotate;
    }

    /// Rejects the API key with a 400 problem, as api.video does.
    pub fn reject_api_key(&self, reject: bool) {
        self.lock().reject_api_key = reject;
    }

    /// Rejects every refresh token with a 400 problem.
    pub fn reject_refresh_tokens(&self, reject: bool) {
        self.lock().reject_refresh_tokens = reject;
    }

    /// Expires every refresh token issued so far.
    pub fn expire_refresh_tokens(&self) {
        self.lock().refresh_live.clear();
    }

    /// Revokes every access token issued so far: `/videos` answers 401.
    pub fn revoke_access_tokens(&self) {
        self.lock().access.clear();
    }

    /// The next `n` auth calls answer `status` with a problem body.
    pub fn fail_next(&self, n: usize, status: u16) {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut state = self.lock();
        state.faults.extend((0..n).map(|_| Fault::Status(status)));
    }

    /// The next `n` auth calls answer 429 with
    /// `X-RateLimit-Retry-After: retry_after_secs`.
    pub fn rate_limit_next(&self, n: usize, retry_after_secs: u64) {
        let mut state = self.lock();
        state.faults.extend((0..n).map(|_| Fault::RateLimited {
            retry_after: retry_after_secs,
        }));
    }

    /// The next `n` auth calls answer 200 with `body` (malformed JSON, a
    /// huge body, invalid UTF-8, a token with bad bytes...).
    pub fn malformed_next(&self, n: usize, body: impl Into<Bytes>) {
        let body = body.into();
        let mut state = self.lock();
        state
            .faults
            .extend((0..n).map(|_| Fault::Body(body.clone())));
    }

    /// The next `n` auth calls answer 200 and then send the body one byte
    /// per second, for ever (a slowloris endpoint).
    pub fn trickle_next(&self, n: usize) {
        let mut state = self.lock();
        state.faults.extend((0..n).map(|_| Fault::Trickle));
    }

    /// Drops every pending fault.
    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// Delays every auth answer by `latency`.
    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    /// Delays every `/videos` answer by `latency`; the token is checked
    /// when the answer goes out, so a slow request can see a revocation.
    pub fn set_videos_latency(&self, latency: Duration) {
        self.lock().videos_latency = latency;
    }

    /// Makes the auth endpoints accept calls and never answer.
    pub fn hang(&self, hang: bool) {
        self.lock().hang = hang;
    }

    /// How `/videos` answers a valid token.
    pub fn set_videos_mode(&self, mode: VideosMode) {
        self.lock().videos_mode = mode;
    }

    /// The call counters.
    pub fn calls(&self) -> Calls {
        self.lock().calls
    }

    /// When each auth call arrived, on Tokio's clock.
    pub fn auth_call_times(&self) -> Vec<Instant> {
        self.lock().auth_call_times.clone()
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

type Shared = Arc<Mutex<DoubleState>>;

fn lock(state: &Shared) -> MutexGuard<'_, DoubleState> {
    // A test that panicked mid-update must not hide the counters from the
    // tests that follow.
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn login(State(state): State<Shared>, body: Bytes) -> Response {
    if let Some(fault) = arrive(&state, |calls| calls.logins += 1).await {
        return fault.into_response();
    }
    let key = field(&body, "apiKey");
    let mut s = lock(&state);
    if s.reject_api_key || key.as_deref() != Some(ApiVideoDouble::API_KEY) {
        return invalid_credentials();
    }
    s.issue(true)
}

async fn refresh(State(state): State<Shared>, body: Bytes) -> Response {
    if let Some(fault) = arrive(&state, |calls| calls.refreshes += 1).await {
        return fault.into_response();
    }
    let Some(token) = field(&body, "refreshToken") else {
        return invalid_credentials();
    };
    let mut s = lock(&state);
    if s.refresh_used.contains(&token) {
        s.calls.refresh_reuses += 1;
    }
    if s.reject_refresh_tokens || !s.refresh_live.contains(&token) {
        return invalid_credentials();
    }
    let rotate = s.rotate_refresh_tokens;
    if rotate {
        s.refresh_live.remove(&token);
        s.refresh_used.insert(token);
    }
    s.issue(rotate)
}

async fn videos(
    State(state): State<Shared>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let latency = lock(&state).videos_latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let mut s = lock(&state);
    s.calls.videos += 1;
    let token = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    let now = Instant::now();
    let valid = match token.and_then(|token| s.access.get(token)) {
        Some(expires) if now < *expires => true,
        Some(_) => {
            s.calls.expired_tokens_seen += 1;
            false
        }
        None => false,
    };
    let mode = s.videos_mode;
    let authorized = valid && mode != VideosMode::AlwaysUnauthorized;
    s.requests.push(RecordedRequest {
        method,
        headers,
        body: body.clone(),
        authorized: authorized && mode == VideosMode::Normal,
    });
    if !authorized {
        s.calls.unauthorized += 1;
        return problem(
            StatusCode::UNAUTHORIZED,
            "https://docs.api.video/reference/authentication-invalid-token",
            "The access token is missing, expired or revoked.",
            Some(r#"Bearer realm="api.video", error="invalid_token""#),
        );
    }
    match mode {
        VideosMode::Forbidden => problem(
            StatusCode::FORBIDDEN,
            "https://docs.api.video/reference/forbidden",
            "Forbidden.",
            None,
        ),
        VideosMode::InsufficientScope => {
            s.calls.unauthorized += 1;
            problem(
                StatusCode::UNAUTHORIZED,
                "https://docs.api.video/reference/insufficient-scope",
                "The token lacks the required scope.",
                Some(r#"Bearer realm="api.video", error="insufficient_scope""#),
            )
        }
        _ => {
            let echo = String::from_utf8_lossy(&body).into_owned();
            axum::Json(json!({ "data": [], "echo": echo })).into_response()
        }
    }
}

impl DoubleState {
    fn issue(&mut self, with_refresh: bool) -> Response {
        self.serial += 1;
        let serial = self.serial;
        let lifetime = self.lifetime.max(Duration::from_secs(1));
        let exp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs()
            + lifetime.as_secs();
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"JWT"}"#);
        let claims = URL_SAFE_NO_PAD
            .encode(json!({ "exp": exp, "jti": serial, "sub": "double" }).to_string());
        let access = format!("{header}.{claims}.sig{serial:08x}");
        self.access
            .insert(access.clone(), Instant::now() + lifetime);
        self.issued_access.push(access.clone());
        let mut body = json!({ "token_type": "Bearer", "access_token": access });
        if self.send_expires_in {
            body["expires_in"] = json!(lifetime.as_secs());
        }
        if with_refresh {
            let refresh = format!(
                "{:016x}{serial:08x}",
                serial.wrapping_mul(0x9e37_79b9_7f4a_7c15)
            );
            self.refresh_live.insert(refresh.clone());
            self.issued_refresh.push(refresh.clone());
            body["refresh_token"] = json!(refresh);
        }
        axum::Json(body).into_response()
    }
}

impl IntoResponse for Fault {
    fn into_response(self) -> Response {
        match self {
            Fault::Status(status) => problem(
                status,
                "https://docs.api.video/reference/internal-error",
                "The double was told to fail.",
                None,
            ),
            Fault::RateLimited { retry_after } => {
                let mut response = problem(
                    StatusCode::TOO_MANY_REQUESTS,
                    TOO_MANY_REQUESTS,
                    "Too many requests.",
                    None,
                );
                let headers = response.headers_mut();
                headers.insert("x-ratelimit-limit", HeaderValue::from_static("10"));
                headers.insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
                headers.insert("x-ratelimit-retry-after", HeaderValue::from(retry_after));
                response
            }
            Fault::Body(body) => {
                ([(http::header::CONTENT_TYPE, "application/json")], body).into_response()
            }
            Fault::Trickle => (
                [(http::header::CONTENT_TYPE, "application/json")],
                axum::body::Body::new(Trickle {
                    sleep: Box::pin(tokio::time::sleep(Duration::ZERO)),
                }),
            )
                .into_response(),
        }
    }
}

/// A body that never ends: one byte a second.
struct Trickle {
    sleep: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl http_body::Body for Trickle {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        std::task::ready!(self.sleep.as_mut().poll(cx));
        let next = tokio::time::Instant::now() + Duration::from_secs(1);
        self.sleep.as_mut().reset(next);
        std::task::Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from_static(b" ")))))
    }
}

/// What every auth call goes through first: counted, timed, delayed, and
/// given the next canned fault if there is one.
async fn arrive(state: &Shared, count: impl FnOnce(&mut Calls)) -> Option<Fault> {
    let fault = {
        let mut s = lock(state);
        count(&mut s.calls);
        s.auth_call_times.push(Instant::now());
        s.faults.pop_front()
    };
    delay(state).await;
    fault
}

async fn delay(state: &Shared) {
    let (latency, hang) = {
        let s = lock(state);
        (s.latency, s.hang)
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if hang {
        std::future::pending::<()>().await;
    }
}

fn field(body: &[u8], name: &str) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    value.get(name)?.as_str().map(str::to_owned)
}

fn invalid_credentials() -> Response {
    problem(
        StatusCode::BAD_REQUEST,
        INVALID_CREDENTIALS,
        "The user credentials were incorrect.",
        None,
    )
}

fn problem(
    status: StatusCode,
    kind: &str,
    title: &str,
    challenge: Option<&'static str>,
) -> Response {
    let body = json!({
        "type": kind,
        "title": title,
        "status": status.as_u16(),
        "name": "",
    });
    let mut response = (
        status,
        [(http::header::CONTENT_TYPE, "application/problem+json")],
        body.to_string(),
    )
        .into_response();
    if let Some(challenge) = challenge {
        response.headers_mut().insert(
            http::header::WWW_AUTHENTICATE,
            HeaderValue::from_static(challenge),
        );
    }
    response
}
