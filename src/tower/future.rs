use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use http::header::AUTHORIZATION;
use http::{Request, Response};
use pin_project_lite::pin_project;
use tokio::time::Sleep;
use tower_service::Service;

use super::body::keep_body;
use super::policy::Policy;
use super::snapshot::Snapshot;
use super::{grpc, BearerAuthError};
use crate::engine::AuthHeader;
use crate::engine::{is_bound, prove, Proved};
use crate::error::Error;
use crate::request::{decide, Answer, Decision, Sent, TokenAction};
use crate::source::BoxFuture;

pin_project! {
    /// The response future of [`BearerAuth`](super::BearerAuth).
    ///
    /// With a warm token it only polls the inner future; it allocates only
    /// on the slow paths (waiting for a token, backing off a replay).
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S::Future, B>,
        replay: Option<Replay<S, B>>,
    }
}

/// A request waiting to go out, boxed: it lives in the state that waits
/// for it (a slow path), so that the warm path's future, moved several
/// times per request, carries no room for one.
type Pending<B> = Option<Box<Request<B>>>;

pin_project! {
    #[project = StateProj]
    enum State<F, B> {
        // Waiting for a token: the first one, or the next after a 401.
        Token {
            token: BoxFuture<'static, Result<AuthHeader, Error>>,
            request: Pending<B>,
        },
        // Spacing out replays after the first.
        Backoff { sleep: Pin<Box<Sleep>>, request: Pending<B> },
        // Waiting for the inner service to accept a replay.
        Ready { request: Pending<B> },
        Call { #[pin] future: F },
    }
}

/// What a request in scope keeps for its 401 handling.
struct Replay<S, B> {
    inner: S,
    policy: Arc<Policy>,
    /// A copy for the next replay, if the body allows one.
    copy: Option<Snapshot<B>>,
    generation: u64,
    replays: u32,
    /// What a DPoP send keeps for its answer; `None` for a bearer one.
    proved: Option<Box<Proved>>,
    /// Whether the request went again for a DPoP nonce challenge.
    nonce_replayed: bool,
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    pub(super) fn passthrough(future: S::Future) -> Self {
        ResponseFuture {
            state: State::Call { future },
            replay: None,
        }
    }

    pub(super) fn sent(
        future: S::Future,
        inner: S,
        policy: Arc<Policy>,
        copy: Option<Snapshot<B>>,
        generation: u64,
        proved: Option<Box<Proved>>,
    ) -> Self {
        ResponseFuture {
            state: State::Call { future },
            replay: Some(Replay {
                inner,
                policy,
                copy,
                generation,
                replays: 0,
                proved,
                nonce_replayed: false,
            }),
        }
    }

    pub(super) fn wait_for_token(inner: S, policy: Arc<Policy>, request: Request<B>) -> Self {
        ResponseFuture {
            state: State::Token {
                token: next_token(&policy),
                request: Some(Box::new(request)),
            },
            replay: Some(Replay {
                inner,
                policy,
                copy: None,
                generation: 0,
                replays: 0,
                proved: None,
                nonce_replayed: false,
            }),
        }
    }
}

fn next_token(policy: &Policy) -> BoxFuture<'static, Result<AuthHeader, Error>> {
    let tokens = policy.tokens.clone();
    Box::pin(async move { tokens.authorize().await })
}

impl<S, B, ResB> Future for ResponseFuture<S, B>
where
    S: Service<Request<B>, Response = Response<ResB>>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: 'static,
    ResB: 'static,
{
    type Output = Result<Response<ResB>, BearerAuthError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            let next = match this.state.as_mut().project() {
                StateProj::Call { future } => {
                    let response = ready!(future.poll(cx)).map_err(BearerAuthError::inner_error)?;
                    let Some(replay) = this.replay.as_mut() else {
                        return Poll::Ready(Ok(response));
                    };
                    if let Some(proved) = &replay.proved {
                        proved.observe(response.headers());
                    }
                    let answer = Answer::Head {
                        status: response.status(),
                        headers: response.headers(),
                        grpc: true,
                    };
                    match decide(answer, replay.sent()) {
                        Decision::Return(TokenAction::Keep) if grpc::is_call(&response) => {
                            let tokens = &replay.policy.tokens;
                            return Poll::Ready(Ok(grpc::watch(response, tokens, replay.sent())));
                        }
                        Decision::Return(TokenAction::Keep) => return Poll::Ready(Ok(response)),
                        decision => {
                            let nonce = matches!(decision, Decision::Replay { nonce: true, .. });
                            match replay.carry_out(decision) {
                                Some(next) => crate::metrics::replayed(
                                    &replay.policy.tokens,
                                    response.status(),
                                    nonce,
                                    next,
                                ),
                                None => return Poll::Ready(Ok(response)),
                            }
                        }
                    }
                }
                StateProj::Token { token, request } => {
                    let auth = ready!(token.as_mut().poll(cx)).map_err(BearerAuthError::token)?;
                    let (Some(replay), Some(mut request)) = (this.replay.as_mut(), request.take())
                    else {
                        unreachable!("a token is only awaited for a pending request in scope")
                    };
                    replay.attach(&mut request, auth);
                    if replay.is_first_send() {
                        // The first send uses the readiness the caller
                        // obtained through `poll_ready`.
                        State::Call {
                            future: replay.inner.call(*request),
                        }
                    } else {
                        State::Ready {
                            request: Some(request),
                        }
                    }
                }
                StateProj::Backoff { sleep, request } => {
                    ready!(sleep.as_mut().poll(cx));
                    let Some(replay) = this.replay.as_ref() else {
                        unreachable!("only a request in scope backs off")
                    };
                    State::Token {
                        token: next_token(&replay.policy),
                        request: request.take(),
                    }
                }
                StateProj::Ready { request } => {
                    let Some(replay) = this.replay.as_mut() else {
                        unreachable!("only a request in scope is replayed")
                    };
                    ready!(replay.inner.poll_ready(cx)).map_err(BearerAuthError::inner_error)?;
                    let Some(request) = request.take() else {
                        unreachable!("a replay waits for readiness with its request")
                    };
                    State::Call {
                        future: replay.inner.call(*request),
                    }
                }
            };
            this.state.set(next);
        }
    }
}

/// Puts a DPoP-bound `auth`'s proof for this send on `request`.
#[inline]
pub(super) fn proof<B>(request: &mut Request<B>, auth: &AuthHeader) -> Option<Box<Proved>> {
    if !is_bound(auth) {
        return None;
    }
    let (method, url) = (request.method().clone(), request.uri().to_string());
    prove(auth, &method, &url, request.headers_mut()).map(Box::new)
}

/// Keeps what a replay of `request` needs, if replays are on and its body
/// can be had again.
pub(super) fn keep<B: 'static>(request: &mut Request<B>, policy: &Policy) -> Option<Snapshot<B>> {
    if !Sent::may_replay(0, policy.max_replays) {
        return None;
    }
    let body = keep_body(request.body_mut(), &policy.bodies)?;
    Snapshot::take(request, body)
}

impl<S, B> Replay<S, B>
where
    S: Service<Request<B>>,
    B: 'static,
{
    /// Puts the token (and a DPoP-bound token's proof) on the request,
    /// first keeping a copy (without our headers) if this is the first
    /// send.
    fn attach(&mut self, request: &mut Request<B>, auth: AuthHeader) {
        if self.is_first_send() {
            self.copy = keep(request, &self.policy);
        }
        self.generation = auth.generation();
        self.proved = proof(request, &auth);
        request
            .headers_mut()
            .insert(AUTHORIZATION, auth.into_header());
    }

    /// Whether no send of the request went before.
    fn is_first_send(&self) -> bool {
        self.replays == 0 && !self.nonce_replayed
    }

    /// The send the current answer is for.
    #[inline]
    fn sent(&self) -> Sent {
        Sent {
            generation: self.generation,
            replays: self.replays,
            max_replays: self.policy.max_replays,
            dpop: self.proved.is_some(),
            nonce_replayed: self.nonce_replayed,
        }
    }

    /// Carries out a decision that acts: the state to go on with, or `None`
    /// to hand the response to the caller.
    fn carry_out(&mut self, decision: Decision) -> Option<State<S::Future, B>> {
        if let TokenAction::Invalidate(generation) = decision.token() {
            self.policy.tokens.invalidate(generation);
        }
        let Decision::Replay { replay, nonce, .. } = decision else {
            return None;
        };
        // A recorded body's replay cuts off the first send's body here.
        let request = Some(Box::new(self.copy.as_ref()?.restore(&self.policy.bodies)?));
        self.replays = replay;
        self.nonce_replayed |= nonce;
        // A nonce challenge is answered at once: the server asked for it.
        let delay = if nonce {
            std::time::Duration::ZERO
        } else {
            self.policy.tokens.backoff().replay_delay(replay)
        };
        Some(if delay.is_zero() {
            State::Token {
                token: next_token(&self.policy),
                request,
            }
        } else {
            State::Backoff {
                sleep: Box::pin(tokio::time::sleep(delay)),
                request,
            }
        })
    }
}
