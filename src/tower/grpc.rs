//! gRPC calls' trailers: a `grpc-status: 16` (UNAUTHENTICATED) there comes
//! after the response went to the caller. Which calls are watched, and the
//! body wrapper that hands their trailers to the decision. (In the headers
//! of a trailers-only response, it is a 401 to the decision itself.)

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use super::body::{cast, recordable_types};
use crate::engine::TokenManager;
use crate::request::{decide, Answer, Sent, TokenAction};

/// Whether a response is a gRPC call, whose status comes in its trailers.
/// gRPC answers every call with HTTP 200 and headers, so other statuses and
/// header-less responses cost no header lookup.
#[inline]
pub(super) fn is_call<B>(response: &Response<B>) -> bool {
    let headers = response.headers();
    response.status() == StatusCode::OK
        && !headers.is_empty()
        && headers
            .get(CONTENT_TYPE)
            .is_some_and(|value| value.as_bytes().starts_with(b"application/grpc"))
}

/// Wraps a gRPC response's body in [`GrpcTrailers`], inside its own type,
/// when that type is one the crate can rebuild; any other body goes as it
/// is, with its trailers unwatched.
pub(super) fn watch<B: 'static>(
    response: Response<B>,
    tokens: &TokenManager,
    sent: Sent,
) -> Response<B> {
    response.map(|body| {
        let mut rest = body;
        macro_rules! try_type {
            ($ty:ty, $wrap:expr) => {
                rest = match cast::<B, $ty>(rest) {
                    Ok(body) => {
                        let watched = $wrap(GrpcTrailers::new(body, tokens.clone(), sent));
                        return cast::<$ty, B>(watched)
                            .unwrap_or_else(|_| unreachable!("B is $ty"));
                    }
                    Err(body) => body,
                };
            };
        }
        recordable_types!(try_type);
        rest
    })
}

pin_project! {
    /// The body of a gRPC response, watched for `grpc-status: 16` in its
    /// trailers.
    ///
    /// That status invalidates the token the call carried (if it is still
    /// the current one), so that the next call gets a fresh token; the
    /// response itself reaches the caller unchanged, since the call may have
    /// had effects and is not replayed.
    ///
    /// [`BearerAuth`](super::BearerAuth) keeps the inner service's response
    /// body type: it puts this wrapper inside that type (`tonic::body::Body`,
    /// `axum::body::Body`, `BoxBody`, `UnsyncBoxBody`), and only for gRPC
    /// responses (content type `application/grpc…`). Other responses are
    /// not wrapped and pay nothing.
    pub struct GrpcTrailers<B> {
        #[pin]
        inner: B,
        watch: Option<(TokenManager, Sent)>,
    }
}

impl<B> GrpcTrailers<B> {
    fn new(inner: B, tokens: TokenManager, sent: Sent) -> Self {
        GrpcTrailers {
            inner,
            watch: Some((tokens, sent)),
        }
    }
}

impl<B> std::fmt::Debug for GrpcTrailers<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcTrailers").finish_non_exhaustive()
    }
}

impl<B: Body<Data = Bytes>> Body for GrpcTrailers<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        let trailers = frame
            .as_ref()
            .and_then(|frame| frame.as_ref().ok())
            .and_then(Frame::trailers_ref);
        if let Some(trailers) = trailers {
            if let Some((tokens, sent)) = this.watch.take() {
                if let TokenAction::Invalidate(generation) =
                    decide(Answer::Trailers(trailers), sent).token()
                {
                    tokens.invalidate(generation);
                }
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, headers: &[(&str, &str)]) -> Response<()> {
        let mut response = Response::new(());
        *response.status_mut() = StatusCode::from_u16(status).unwrap();
        for (name, value) in headers {
            response.headers_mut().insert(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        response
    }

    #[test]
    fn grpc_calls_are_told_apart() {
        let grpc = ("content-type", "application/grpc+proto");
        assert!(is_call(&response(200, &[grpc])));
        assert!(is_call(&response(200, &[grpc, ("grpc-status", "7")])));
        assert!(!is_call(&response(200, &[])));
        assert!(!is_call(&response(
            200,
            &[("content-type", "application/json")]
        )));
        assert!(!is_call(&response(401, &[grpc])), "a 401 is handled as one");
    }
}
