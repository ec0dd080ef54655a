//! gRPC through the tower layer: a tonic client over a `Channel` wrapped in
//! `BearerAuth`, a real tonic server checking the bearer token against the
//! api.video double, and calls counted at that server.

#[path = "support/echo.rs"]
mod echo;
mod support;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bearer_refresh::testing::ApiVideoDouble;
use bearer_refresh::tower::BearerAuth;
use bearer_refresh::{BearerAuthLayer, Origin, TokenManager};
use bytes::Bytes;
use echo::{EchoClient, EchoServer, Mode, Seen};
use tokio_stream::StreamExt;
use tonic::transport::Channel;
use tonic::Code;

struct Setup {
    double: ApiVideoDouble,
    tokens: TokenManager,
    seen: Arc<Seen>,
    origin: http::Uri,
    service: BearerAuth<Channel>,
}

async fn setup(mode: Mode) -> Setup {
    let double = ApiVideoDouble::start().await.unwrap();
    let tokens = TokenManager::new(double.source());
    tokens.authorization().await.unwrap();
    let server = EchoServer::new(mode, double.url("/videos"));
    let seen = Arc::clone(&server.seen);
    let origin = server.spawn().await;
    let channel = Channel::builder(origin.clone()).connect().await.unwrap();
    let layer = BearerAuthLayer::new(tokens.clone())
        .allow_origin(Origin::parse(&origin.to_string()).unwrap());
    let service = tower::ServiceBuilder::new().layer(layer).service(channel);
    Setup {
        double,
        tokens,
        seen,
        origin,
        service,
    }
}

impl Setup {
    fn client(&self) -> EchoClient<BearerAuth<Channel>> {
        EchoClient::with_origin(self.service.clone(), self.origin.clone())
    }

    fn calls(&self) -> usize {
        self.seen.calls.load(Ordering::SeqCst)
    }

    fn tokens_seen(&self) -> Vec<String> {
        self.seen.tokens.lock().unwrap().clone()
    }
}

#[tokio::test]
async fn a_revoked_token_is_refreshed_and_the_unary_call_replayed() {
    let setup = setup(Mode::Check).await;
    setup.double.revoke_access_tokens();
    let reply = setup
        .client()
        .unary(Bytes::from_static(b"hello"))
        .await
        .unwrap();
    assert_eq!(reply.into_inner(), "hello");
    assert_eq!(setup.calls(), 2, "one send, one replay");
    let calls = setup.double.calls();
    assert_eq!((calls.logins, calls.refreshes), (1, 1), "one token call");
    let seen = setup.tokens_seen();
    assert_ne!(seen[0], seen[1]);
}

#[tokio::test]
async fn an_always_unauthenticated_server_gets_exactly_one_replay() {
    let setup = setup(Mode::Always).await;
    let status = setup
        .client()
        .unary(Bytes::from_static(b"hello"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(setup.calls(), 2);
    assert_eq!(setup.double.calls().refreshes, 1);
}

#[tokio::test]
async fn a_client_stream_starts_before_its_last_message_exists() {
    let setup = setup(Mode::Check).await;
    let (report, mut reported) = tokio::sync::mpsc::unbounded_channel();
    *setup.seen.collected.lock().await = Some(report);
    let (sender, receiver) = tokio::sync::mpsc::channel::<Bytes>(4);
    let mut client = setup.client();
    let call = tokio::spawn(async move {
        client
            .collect(tokio_stream::wrappers::ReceiverStream::new(receiver))
            .await
    });
    sender.send(Bytes::from_static(b"first ")).await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), reported.recv())
        .await
        .expect("the first message reaches the server while the stream is open");
    assert_eq!(first.unwrap(), "first ");
    sender.send(Bytes::from_static(b"last")).await.unwrap();
    drop(sender);
    let reply = call.await.unwrap().unwrap();
    assert_eq!(reply.into_inner(), "first last");
    assert_eq!(setup.calls(), 1);
}

#[tokio::test]
async fn unauthenticated_in_trailers_is_not_replayed_and_the_next_call_gets_a_new_token() {
    let setup = setup(Mode::InTrailers).await;
    let mut client = setup.client();
    let mut stream = client
        .watch(Bytes::from_static(b"tick"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stream.next().await.unwrap().unwrap(), "tick");
    let status = stream.next().await.unwrap().unwrap_err();
    assert_eq!(
        status.code(),
        Code::Unauthenticated,
        "passed through as it is"
    );
    assert!(stream.next().await.is_none());
    assert_eq!(setup.calls(), 1, "no replay");
    let reply = client.unary(Bytes::from_static(b"next")).await.unwrap();
    assert_eq!(reply.into_inner(), "next");
    let seen = setup.tokens_seen();
    assert_eq!(seen.len(), 2);
    assert_ne!(seen[0], seen[1], "the next call carries a new token");
    assert_eq!(setup.double.calls().refreshes, 1);
    assert_eq!(setup.tokens.stats().generation, 2);
}

#[tokio::test]
async fn bearer_auth_over_a_channel_works_behind_a_buffer() {
    let setup = setup(Mode::Check).await;
    let buffered = tower::buffer::Buffer::new(setup.service.clone(), 16);
    let mut client = EchoClient::with_origin(buffered, setup.origin.clone());
    setup.double.revoke_access_tokens();
    let calls = (0..4).map(|i| {
        let mut client = client.clone();
        async move { client.unary(Bytes::from(format!("call {i}"))).await }
    });
    for (i, reply) in futures::future::join_all(calls)
        .await
        .into_iter()
        .enumerate()
    {
        assert_eq!(reply.unwrap().into_inner(), format!("call {i}"));
    }
    assert_eq!(
        client
            .unary(Bytes::from_static(b"again"))
            .await
            .unwrap()
            .into_inner(),
        "again"
    );
    assert_eq!(setup.double.calls().refreshes, 1);
}
