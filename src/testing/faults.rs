//! Canned failures of the auth endpoints, and the problem bodies every
//! route answers errors with.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::json;

pub(super) const TOO_MANY_REQUESTS: &str = "https://docs.api.video/reference/too-many-requests";

/// A canned fault for the auth endpoints, served once.
pub(super) enum Fault {
    Status(StatusCode),
    RateLimited { retry_after: u64 },
    Body(Bytes),
    Trickle,
}

impl IntoResponse for Fault {
    fn into_response(self) -> Response {
        match self {
            Fault::Status(status) => problem(
                status,
                "https://docs.api.video/reference/internal-error",
                "The double was told to fail.",
            ),
            Fault::RateLimited { retry_after } => {
                let mut response = too_many_requests();
                rate_limit_headers(&mut response, 10, 0, retry_after);
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
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl http_body::Body for Trickle {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        ready!(self.sleep.as_mut().poll(cx));
        let next = tokio::time::Instant::now() + Duration::from_secs(1);
        self.sleep.as_mut().reset(next);
        Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from_static(b" ")))))
    }
}

/// api.video's problem body, with `status` as the HTTP status.
pub(super) fn problem(status: StatusCode, kind: &str, title: &str) -> Response {
    let body = json!({
        "type": kind,
        "title": title,
        "status": status.as_u16(),
        "name": "",
    });
    (
        status,
        [(http::header::CONTENT_TYPE, "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}

/// The same problem with a `WWW-Authenticate` challenge.
pub(super) fn challenge(
    status: StatusCode,
    kind: &str,
    title: &str,
    challenge: &'static str,
) -> Response {
    let mut response = problem(status, kind, title);
    response.headers_mut().insert(
        http::header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    response
}

/// api.video's 429 body, without headers.
pub(super) fn too_many_requests() -> Response {
    problem(
        StatusCode::TOO_MANY_REQUESTS,
        TOO_MANY_REQUESTS,
        "Too many requests.",
    )
}

/// api.video's `X-RateLimit-*` headers.
pub(super) fn rate_limit_headers(
    response: &mut Response,
    limit: u64,
    remaining: u64,
    retry_after_secs: u64,
) {
    let headers = response.headers_mut();
    headers.insert("x-ratelimit-limit", HeaderValue::from(limit));
    headers.insert("x-ratelimit-remaining", HeaderValue::from(remaining));
    headers.insert(
        "x-ratelimit-retry-after",
        HeaderValue::from(retry_after_secs),
    );
}
