//! `POST /auth/api-key` and `POST /auth/refresh`. Not rate limited, as on
//! api.video.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::Value;
use tokio::time::Instant;

use crate::testing::faults::problem;
use crate::testing::state::{lock, Shared};
use crate::testing::{ApiVideoDouble, AuthCall};

const INVALID_CREDENTIALS: &str =
    "https://docs.api.video/reference/authentication-invalid-user-credentials";

const LOGIN: &str = "/auth/api-key";
const REFRESH: &str = "/auth/refresh";

pub(super) async fn login(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(early) = arrive(&state, LOGIN, headers).await {
        return early;
    }
    let key = field(&body, "apiKey");
    let mut s = lock(&state);
    if s.reject_api_key || key.as_deref() != Some(ApiVideoDouble::API_KEY) {
        return invalid_credentials(s.rejection_status);
    }
    s.issue(true)
}

pub(super) async fn refresh(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(early) = arrive(&state, REFRESH, headers).await {
        return early;
    }
    let mut s = lock(&state);
    let Some(token) = field(&body, "refreshToken") else {
        return invalid_credentials(s.rejection_status);
    };
    if s.refresh_used.contains(&token) {
        s.calls.refresh_reuses += 1;
    }
    if s.reject_refresh_tokens || !s.refresh_live.contains(&token) {
        return invalid_credentials(s.rejection_status);
    }
    let rotate = s.rotate_refresh_tokens;
    if rotate {
        s.refresh_live.remove(&token);
        s.refresh_used.insert(token);
    }
    if s.revoke_on_refresh {
        s.revoke_access();
    }
    s.issue(rotate)
}

/// What every auth call goes through first: counted, recorded, delayed, and
/// answered early with the next canned fault or a suspended account.
async fn arrive(state: &Shared, path: &'static str, headers: HeaderMap) -> Option<Response> {
    let fault = {
        let mut s = lock(state);
        match path {
            LOGIN => s.calls.logins += 1,
            _ => s.calls.refreshes += 1,
        }
        s.auth_calls.push(AuthCall {
            path,
            headers,
            at: Instant::now(),
        });
        s.faults.pop_front()
    };
    delay(state).await;
    if let Some(fault) = fault {
        return Some(fault.into_response());
    }
    lock(state).suspended.then(suspended)
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

fn invalid_credentials(status: StatusCode) -> Response {
    problem(
        status,
        INVALID_CREDENTIALS,
        "The user credentials were incorrect.",
    )
}

fn suspended() -> Response {
    problem(
        StatusCode::FORBIDDEN,
        "https://docs.api.video/reference/authentication-suspended-account",
        "This account is suspended.",
    )
}
