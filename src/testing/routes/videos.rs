//! `/videos`: a protected, rate-limited API endpoint.

use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::json;
use tokio::time::Instant;

use crate::testing::faults::{challenge, problem, rate_limit_headers, too_many_requests};
use crate::testing::state::{lock, DoubleState, Shared, TokenCheck, VideosMode};
use crate::testing::RecordedRequest;

/// What the rate limit said about one request.
struct Budget {
    limit: u64,
    remaining: u64,
    retry_after_secs: u64,
    exceeded: bool,
}

pub(super) async fn videos(
    State(state): State<Shared>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let budget = {
        let mut s = lock(&state);
        s.calls.videos += 1;
        spend(&mut s, Instant::now())
    };
    let mut response = match budget {
        Some(Budget { exceeded: true, .. }) => {
            lock(&state).calls.rate_limited += 1;
            too_many_requests()
        }
        _ => answer(&state, method, headers, body).await,
    };
    if let Some(budget) = budget {
        rate_limit_headers(
            &mut response,
            budget.limit,
            budget.remaining,
            budget.retry_after_secs,
        );
    }
    response
}

/// Takes one request from the window's budget, if a limit is set.
fn spend(state: &mut DoubleState, now: Instant) -> Option<Budget> {
    let limit = state.rate_limit.as_mut()?;
    if now.duration_since(limit.window_start) >= limit.window {
        limit.window_start = now;
        limit.used = 0;
    }
    let exceeded = limit.used >= limit.limit;
    if !exceeded {
        limit.used += 1;
    }
    let left = limit
        .window
        .saturating_sub(now.duration_since(limit.window_start));
    Some(Budget {
        limit: limit.limit,
        remaining: limit.limit - limit.used,
        retry_after_secs: whole_seconds(left),
        exceeded,
    })
}

/// Seconds rounded up, as a client must not come back early.
fn whole_seconds(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

async fn answer(state: &Shared, method: Method, headers: HeaderMap, body: Bytes) -> Response {
    let latency = lock(state).videos_latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let mut s = lock(state);
    let token = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    let valid = match s.check(token, Instant::now()) {
        TokenCheck::Valid => true,
        TokenCheck::Expired => {
            s.calls.expired_tokens_seen += 1;
            false
        }
        TokenCheck::Revoked => {
            s.calls.revoked_tokens_seen += 1;
            false
        }
        TokenCheck::Unknown => false,
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
        return challenge(
            StatusCode::UNAUTHORIZED,
            "https://docs.api.video/reference/authentication-invalid-token",
            "The access token is missing, expired or revoked.",
            r#"Bearer realm="api.video", error="invalid_token""#,
        );
    }
    match mode {
        VideosMode::Forbidden => problem(
            StatusCode::FORBIDDEN,
            "https://docs.api.video/reference/forbidden",
            "Forbidden.",
        ),
        VideosMode::InsufficientScope => {
            s.calls.unauthorized += 1;
            challenge(
                StatusCode::UNAUTHORIZED,
                "https://docs.api.video/reference/insufficient-scope",
                "The token lacks the required scope.",
                r#"Bearer realm="api.video", error="insufficient_scope""#,
            )
        }
        _ => {
            let echo = String::from_utf8_lossy(&body).into_owned();
            axum::Json(json!({ "data": [], "echo": echo })).into_response()
        }
    }
}
