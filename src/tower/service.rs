use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::AUTHORIZATION;
use http::{Request, Response};
use tower_service::Service;

use super::future::{keep, proof};
use super::policy::Policy;
use super::{BearerAuthError, BearerAuthLayer, ResponseFuture};
use crate::engine::{TokenCache, TokenManager};

/// Attaches `Authorization: Bearer <token>` to requests bound for the
/// token's origin, and answers a 401 by refreshing the token and replaying
/// the request.
///
/// Built by [`BearerAuthLayer`]. Requests to other origins go through
/// untouched.
///
/// It serves requests of any body type `B`, with no trait to implement:
/// - in-memory bodies (`Full<Bytes>`, `Empty<Bytes>`, `String`, `Bytes`,
///   `Vec<u8>`) are copied for a replay; a `Vec<u8>` or `String` longer
///   than [`BearerAuthLayer::replay_buffer`] is sent once, uncopied;
/// - `BoxBody<Bytes, E>` and `UnsyncBoxBody<Bytes, E>` (with `E` a
///   `BoxError`, `Infallible`, `hyper::Error`, `std::io::Error`, or under
///   their features `tonic::Status` and `axum::Error`), `axum::body::Body`
///   (feature `axum`) and `tonic::body::Body` (feature `tonic`) are recorded
///   as they stream out, up to [`BearerAuthLayer::replay_buffer`], and a
///   replay sends the recorded bytes, then the rest;
/// - your own type opts in with [`BearerAuthLayer::clone_body`];
/// - any other body is sent once. Its 401 still refreshes the token for the
///   next request, and is handed back.
///
/// A gRPC response with `grpc-status: 16` (UNAUTHENTICATED) in its headers
/// is a 401. In its trailers, it invalidates the token for the next call
/// (see [`GrpcTrailers`](super::GrpcTrailers)).
///
/// ```
/// use std::convert::Infallible;
/// use bearer_refresh::{BearerAuth, TokenManager, TokenResponse, TokenSource, BoxFuture, Error};
/// use http_body_util::Full;
/// use bytes::Bytes;
/// use tower::{Service, ServiceExt};
/// # struct Fixed;
/// # impl TokenSource for Fixed {
/// #     fn login(&self) -> BoxFuture<'_, Result<TokenResponse, Error>> {
/// #         Box::pin(async { Ok(TokenResponse::new("t0k3n")) })
/// #     }
/// #     fn refresh<'a>(&'a self, _: &'a secrecy::SecretString) -> BoxFuture<'a, Result<TokenResponse, Error>> {
/// #         self.login()
/// #     }
/// #     fn origin(&self) -> Option<bearer_refresh::Origin> {
/// #         bearer_refresh::Origin::parse("https://api.example").ok()
/// #     }
/// # }
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let echo = tower::service_fn(|request: http::Request<Full<Bytes>>| async move {
///     let seen = request.headers().get("authorization").cloned();
///     Ok::<_, Infallible>(http::Response::new(seen))
/// });
/// let mut svc = BearerAuth::new(echo, TokenManager::new(Fixed));
/// let request = http::Request::get("https://api.example/videos").body(Full::default()).unwrap();
/// let response = svc.ready().await.unwrap().call(request).await.unwrap();
/// assert_eq!(response.body().as_ref().unwrap(), "Bearer t0k3n");
/// # });
/// ```
#[derive(Debug)]
pub struct BearerAuth<S> {
    inner: S,
    policy: Arc<Policy>,
    /// This clone's view of the current token: `call` has `&mut self`, so a
    /// warm request checks it with one relaxed load instead of a full
    /// `ArcSwap` load.
    token: TokenCache,
}

impl<S: Clone> Clone for BearerAuth<S> {
    /// A clone gets a handle of its own: each request's future holds a
    /// reference to it, and counting those on one handle shared by every
    /// clone would bounce its cache line between threads on every request.
    fn clone(&self) -> Self {
        BearerAuth {
            inner: self.inner.clone(),
            policy: Arc::new(Policy::clone(&self.policy)),
            token: self.token.clone(),
        }
    }
}

impl<S> BearerAuth<S> {
    /// Wraps `inner` with the default policy (see [`BearerAuthLayer`]).
    pub fn new(inner: S, tokens: TokenManager) -> Self {
        Self::from_policy(inner, Arc::new(Policy::new(tokens)))
    }

    /// A layer producing this service.
    pub fn layer(tokens: TokenManager) -> BearerAuthLayer {
        BearerAuthLayer::new(tokens)
    }

    pub(crate) fn from_policy(inner: S, policy: Arc<Policy>) -> Self {
        let token = policy.tokens.token_cache();
        BearerAuth {
            inner,
            policy,
            token,
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B, ResB> Service<Request<B>> for BearerAuth<S>
where
    S: Service<Request<B>, Response = Response<ResB>> + Clone,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: 'static,
    ResB: 'static,
{
    type Response = Response<ResB>;
    type Error = BearerAuthError;
    type Future = ResponseFuture<S, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner
            .poll_ready(cx)
            .map_err(BearerAuthError::inner_error)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        if !self.policy.scope.allows_uri(request.uri()) {
            return ResponseFuture::passthrough(self.inner.call(request));
        }
        // The future keeps the service that was made ready, for replays; a
        // clone takes its place for the next `poll_ready` (tower's
        // clone-and-swap).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let Some(auth) = self.token.try_authorize(&self.policy.tokens) else {
            return ResponseFuture::wait_for_token(inner, Arc::clone(&self.policy), request);
        };
        let copy = keep(&mut request, &self.policy);
        let generation = auth.generation();
        let proved = proof(&mut request, &auth);
        request
            .headers_mut()
            .insert(AUTHORIZATION, auth.into_header());
        let future = inner.call(request);
        ResponseFuture::sent(
            future,
            inner,
            Arc::clone(&self.policy),
            copy,
            generation,
            proved,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fails to compile if a field (the token cache among them) stops the
    /// service from moving to, or being shared with, other threads.
    #[test]
    fn the_service_stays_clone_send_and_sync() {
        fn check<T: Clone + Send + Sync>() {}
        check::<BearerAuth<()>>();
    }
}
