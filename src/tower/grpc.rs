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
pub(super) enum Grpc {
    /// Not a gRPC response.
    No,
    /// A trailers-only response with `grpc-status: 16`: a 401.
    Unauthenticated,
    /// A gRPC call whose status comes in the trailers.
    Call,
}

/// Tells gRPC responses apart by their content type. gRPC answers every
/// call with HTTP 200 and a content type, so other statuses and header-less
/// responses cost no header lookup.
#[inline]
pub(super) fn classify<B>(response: &Response<B>) -> Grpc {
    let headers = response.headers();
    if response.status() != StatusCode::OK || headers.is_empty() {
        return Grpc::No;
    }
    let grpc = headers
        .get(CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/grpc"));
    if !grpc {
        Grpc::No
    } else if unauthenticated(headers) {
        Grpc::Unauthenticated
    } else {
        Grpc::Call
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
