//! gRPC's 401: `grpc-status: 16` (UNAUTHENTICATED), in the response
//! headers (a trailers-only response) or in the trailers.

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use crate::engine::TokenManager;
use crate::request::{cast, recordable_types};

const UNAUTHENTICATED: &[u8] = b"16";

/// What a response is to gRPC.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Grpc {
    /// Not a gRPC response.
    No,
    /// A trailers-only response with `grpc-status: 16`: a 401.
    Unauthenticated,
    /// A gRPC call whose status comes in the trailers.
    Call,
}

/// Tells gRPC responses apart: `grpc-status: 16` in the headers of a 200 is
/// UNAUTHENTICATED, and a gRPC content type marks a call whose trailers are
/// watched. gRPC answers every call with HTTP 200 and headers, so other
/// statuses and header-less responses cost no header lookup.
#[inline]
pub(super) fn classify<B>(response: &Response<B>) -> Grpc {
    let headers = response.headers();
    if response.status() != StatusCode::OK || headers.is_empty() {
        return Grpc::No;
    }
    // A trailers-only UNAUTHENTICATED counts whatever the content type: a
    // proxy's own answer (an auth filter, say) may carry none.
    if unauthenticated(headers) {
        return Grpc::Unauthenticated;
    }
    let grpc = headers
        .get(CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/grpc"));
    if grpc {
        Grpc::Call
    } else {
        Grpc::No
    }
}

fn unauthenticated(headers: &HeaderMap) -> bool {
    headers
        .get("grpc-status")
        .is_some_and(|status| status.as_bytes() == UNAUTHENTICATED)
}

/// Wraps a gRPC response's body in [`GrpcTrailers`], inside its own type,
/// when that type is one the crate can rebuild; any other body goes as it
/// is, with its trailers unwatched.
pub(super) fn watch<B: 'static>(
    response: Response<B>,
    tokens: &TokenManager,
    generation: u64,
) -> Response<B> {
    response.map(|body| {
        let mut rest = body;
        macro_rules! try_type {
            ($ty:ty, $wrap:expr) => {
                rest = match cast::<B, $ty>(rest) {
                    Ok(body) => {
                        let watched = $wrap(GrpcTrailers::new(body, tokens.clone(), generation));
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
        watch: Option<(TokenManager, u64)>,
    }
}

impl<B> GrpcTrailers<B> {
    fn new(inner: B, tokens: TokenManager, generation: u64) -> Self {
        GrpcTrailers {
            inner,
            watch: Some((tokens, generation)),
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
        if let Some(Ok(trailers)) = frame
            .as_ref()
            .map(|frame| frame.as_ref().map(Frame::trailers_ref))
        {
            if trailers.is_some_and(unauthenticated) {
                if let Some((tokens, generation)) = this.watch.take() {
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
    fn grpc_responses_are_told_apart() {
        let grpc = ("content-type", "application/grpc+proto");
        assert_eq!(classify(&response(200, &[grpc])), Grpc::Call);
        assert_eq!(
            classify(&response(200, &[grpc, ("grpc-status", "16")])),
            Grpc::Unauthenticated
        );
        assert_eq!(
            classify(&response(200, &[grpc, ("grpc-status", "7")])),
            Grpc::Call
        );
        assert_eq!(classify(&response(200, &[])), Grpc::No);
        assert_eq!(
            classify(&response(200, &[("content-type", "application/json")])),
            Grpc::No
        );
        assert_eq!(
            classify(&response(401, &[grpc, ("grpc-status", "16")])),
            Grpc::No,
            "a 401 is handled as one"
        );
    }

    #[test]
    fn unauthenticated_counts_without_a_grpc_content_type() {
        // A proxy's trailers-only answer, with no content type.
        assert_eq!(
            classify(&response(200, &[("grpc-status", "16")])),
            Grpc::Unauthenticated
        );
    }
}
