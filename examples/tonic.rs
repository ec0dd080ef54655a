//! gRPC with a short-lived bearer token: a tonic client over a `Channel`
//! wrapped in `BearerAuthLayer`, against an in-process tonic server that
//! checks the token with the api.video double. The token is revoked between
//! two calls: the server answers UNAUTHENTICATED, the layer refreshes the
//! token and replays the call, and the caller sees no error.
//!
//! ```text
//! cargo run --example tonic --features tonic
//! ```
//!
//! The `Echo` service is written with tonic's building blocks rather than
//! generated from a `.proto` (see its module); a generated client is used
//! the same way, through its `with_origin` constructor.

#[path = "../tests/support/echo.rs"]
mod echo;

use bearer_refresh::testing::ApiVideoDouble;
use bearer_refresh::{BearerAuthLayer, Origin, TokenManager};
use bytes::Bytes;
use echo::{EchoClient, EchoServer, Mode};
use tonic::transport::Channel;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The token endpoint (the api.video double) and the gRPC API, which
    // accepts a token only if the double does.
    let double = ApiVideoDouble::start().await?;
    let api = EchoServer::new(Mode::Check, double.url("/videos"));
    let origin = api.spawn().await;

    let tokens = TokenManager::new(double.source());
    let channel = Channel::builder(origin.clone()).connect().await?;
    let service = tower::ServiceBuilder::new()
        // The API is not the token endpoint's origin: allow it by name.
        .layer(BearerAuthLayer::new(tokens).allow_origin(Origin::parse(&origin.to_string())?))
        .service(channel);
    // `with_origin` puts the API's origin on every request, so the layer
    // knows where it goes (a bare path would get no token).
    let mut client = EchoClient::with_origin(service, origin);

    let reply = client.unary(Bytes::from_static(b"hello")).await?;
    println!("first call: {:?}", reply.into_inner());

    double.revoke_access_tokens();
    let reply = client.unary(Bytes::from_static(b"hello again")).await?;
    println!("after revocation: {:?}", reply.into_inner());

    let calls = double.calls();
    println!(
        "token calls: {} login, {} refresh; the revoked call was replayed once",
        calls.logins, calls.refreshes
    );
    assert_eq!((calls.logins, calls.refreshes), (1, 1));
    Ok(())
}
