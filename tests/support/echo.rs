//! A tiny gRPC service, `test.Echo`, written with tonic's own building
//! blocks instead of generated code: no `.proto`, `build.rs` or `protoc`,
//! and messages are raw bytes (a codec that copies them). The client is
//! shaped like tonic-build's output, `EchoClient::with_origin` included.
//!
//! ```proto
//! service Echo {
//!   rpc Unary(bytes) returns (bytes);          // echoes the message
//!   rpc Collect(stream bytes) returns (bytes); // concatenates the stream
//!   rpc Watch(bytes) returns (stream bytes);   // one message, then the handler's status
//! }
//! ```
#![allow(dead_code)]

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::{Buf, BufMut, Bytes};
use http::uri::PathAndQuery;
use tokio_stream::StreamExt;
use tonic::client::GrpcService;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder, Streaming};
use tonic::server::NamedService;
use tonic::{IntoRequest, IntoStreamingRequest, Response, Status};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Messages are their bytes.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }

    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// The client, as tonic-build would generate it.
#[derive(Debug, Clone)]
pub(crate) struct EchoClient<T> {
    inner: tonic::client::Grpc<T>,
}

impl<T> EchoClient<T>
where
    T: GrpcService<tonic::body::Body>,
    T::Error: Into<BoxError>,
    T::ResponseBody: http_body::Body<Data = Bytes> + Send + 'static,
    <T::ResponseBody as http_body::Body>::Error: Into<BoxError> + Send,
{
    /// A client over `inner`, whose requests carry `origin`
    /// (`https://host:port`): the layer sends the token to that origin only.
    pub(crate) fn with_origin(inner: T, origin: http::Uri) -> Self {
        EchoClient {
            inner: tonic::client::Grpc::with_origin(inner, origin),
        }
    }

    async fn ready(&mut self) -> Result<(), Status> {
        self.inner
            .ready()
            .await
            .map_err(|error| Status::unknown(format!("service not ready: {}", error.into())))
    }

    pub(crate) async fn unary(
        &mut self,
        message: impl IntoRequest<Bytes>,
    ) -> Result<Response<Bytes>, Status> {
        self.ready().await?;
        let path = PathAndQuery::from_static("/test.Echo/Unary");
        self.inner
            .unary(message.into_request(), path, RawCodec)
            .await
    }

    pub(crate) async fn collect(
        &mut self,
        messages: impl IntoStreamingRequest<Message = Bytes>,
    ) -> Result<Response<Bytes>, Status> {
        self.ready().await?;
        let path = PathAndQuery::from_static("/test.Echo/Collect");
        self.inner
            .client_streaming(messages.into_streaming_request(), path, RawCodec)
            .await
    }

    pub(crate) async fn watch(
        &mut self,
        message: impl IntoRequest<Bytes>,
    ) -> Result<Response<Streaming<Bytes>>, Status> {
        self.ready().await?;
        let path = PathAndQuery::from_static("/test.Echo/Watch");
        self.inner
            .server_streaming(message.into_request(), path, RawCodec)
            .await
    }
}

/// How the server treats the bearer token of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Only tokens the API accepts pass; others get UNAUTHENTICATED at
    /// once (a trailers-only response).
    Check,
    /// UNAUTHENTICATED whatever the token.
    Always,
    /// `Watch` sends its message, then UNAUTHENTICATED in the trailers.
    InTrailers,
}

/// What the server saw, for the tests to count.
#[derive(Debug, Default)]
pub(crate) struct Seen {
    /// Calls received, any method.
    pub(crate) calls: AtomicUsize,
    /// The `authorization` value of each call.
    pub(crate) tokens: Mutex<Vec<String>>,
    /// Messages received on `Collect`, as they arrive.
    pub(crate) collected: tokio::sync::Mutex<Option<tokio::sync::mpsc::UnboundedSender<Bytes>>>,
}

/// The server: checks the bearer token, then echoes.
#[derive(Clone)]
pub(crate) struct EchoServer {
    pub(crate) seen: Arc<Seen>,
    mode: Mode,
    /// Where tokens are checked: a URL that answers 200 to a good one (the
    /// api.video double's `/videos`), as a resource server introspects.
    introspect: String,
    http: reqwest::Client,
}

impl EchoServer {
    pub(crate) fn new(mode: Mode, introspect: String) -> Self {
        EchoServer {
            seen: Arc::default(),
            mode,
            introspect,
            http: reqwest::Client::new(),
        }
    }

    /// Serves on `127.0.0.1:0`; returns the origin to reach it.
    pub(crate) async fn spawn(self) -> http::Uri {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(self)
                .serve_with_incoming(incoming),
        );
        origin.parse().unwrap()
    }

    /// Counts the call and checks its token.
    async fn admit<T>(&self, request: &tonic::Request<T>) -> Result<(), Status> {
        self.seen.calls.fetch_add(1, Ordering::SeqCst);
        let token = request
            .metadata()
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        self.seen.tokens.lock().unwrap().push(token.clone());
        let accepted = self
            .http
            .get(&self.introspect)
            .header("authorization", token)
            .send()
            .await
            .is_ok_and(|response| response.status().is_success());
        if self.mode == Mode::Always || !accepted {
            return Err(Status::unauthenticated("invalid bearer token"));
        }
        Ok(())
    }
}

impl NamedService for EchoServer {
    const NAME: &'static str = "test.Echo";
}

impl tower::Service<http::Request<tonic::body::Body>> for EchoServer {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let server = self.clone();
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(RawCodec);
            let response = match request.uri().path() {
                "/test.Echo/Unary" => {
                    let handler = tower::service_fn(move |request: tonic::Request<Bytes>| {
                        let server = server.clone();
                        async move {
                            server.admit(&request).await?;
                            Ok(Response::new(request.into_inner()))
                        }
                    });
                    grpc.unary(handler, request).await
                }
                "/test.Echo/Collect" => {
                    let handler =
                        tower::service_fn(move |request: tonic::Request<Streaming<Bytes>>| {
                            let server = server.clone();
                            async move {
                                server.admit(&request).await?;
                                let report = server.seen.collected.lock().await.clone();
                                let mut stream = request.into_inner();
                                let mut all = Vec::new();
                                while let Some(message) = stream.next().await {
                                    let message = message?;
                                    if let Some(report) = &report {
                                        let _ = report.send(message.clone());
                                    }
                                    all.extend_from_slice(&message);
                                }
                                Ok(Response::new(Bytes::from(all)))
                            }
                        });
                    grpc.client_streaming(handler, request).await
                }
                "/test.Echo/Watch" => {
                    let handler = tower::service_fn(move |request: tonic::Request<Bytes>| {
                        let server = server.clone();
                        let end = if server.mode == Mode::InTrailers {
                            Status::unauthenticated("token revoked mid-call")
                        } else {
                            Status::ok("")
                        };
                        async move {
                            server.admit(&request).await?;
                            let items = vec![Ok(request.into_inner()), Err(end)];
                            let stream = tokio_stream::iter(items).filter(|item| {
                                !matches!(item, Err(status) if status.code() == tonic::Code::Ok)
                            });
                            Ok(Response::new(Box::pin(stream)
                                as Pin<
                                    Box<
                                        dyn tokio_stream::Stream<Item = Result<Bytes, Status>>
                                            + Send,
                                    >,
                                >))
                        }
                    });
                    grpc.server_streaming(handler, request).await
                }
                _ => http::Response::builder()
                    .header("grpc-status", "12")
                    .header("content-type", "application/grpc")
                    .body(tonic::body::Body::empty())
                    .unwrap(),
            };
            Ok(response)
        })
    }
}
