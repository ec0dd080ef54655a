//! DPoP-bound tokens on the API side, end to end: the certified OpenID
//! provider (npm `oidc-provider`, tests/oidc-server) issues the tokens, and
//! a strict resource server written here (tests/support/resource.rs, which
//! lists every rule it checks) checks each proof, its nonce, and the
//! token's `cnf.jkt` by introspection at the provider. `cargo test`
//! installs the provider itself; it needs node.

#[cfg(feature = "tonic")]
#[path = "support/echo.rs"]
mod echo;
mod support;

use std::sync::atomic::Ordering;

use bearer_refresh::dpop::DpopKey;
use bearer_refresh::oauth2::{ClientCredentials, RefreshTokenSource};
use bearer_refresh::{BearerAuthLayer, BearerAuthMiddleware, Origin, TokenManager};
use futures::future::join_all;
use secrecy::ExposeSecret;
use serde_json::Value;
use support::clients::{Adapter, Client, ADAPTERS};
use support::oidc::{form, Oidc, FORM};
use support::resource::ResourceServer;

/// The provider, the resource server, and a manager of DPoP-bound tokens
/// of `secret-client`.
struct Setup {
    oidc: Oidc,
    api: ResourceServer,
    key: DpopKey,
    tokens: TokenManager,
}

async fn setup() -> Setup {
    let oidc = Oidc::start(&[]).await;
    let api = ResourceServer::start(oidc.issuer()).await;
    let key = DpopKey::generate();
    let source = ClientCredentials::new(&oidc.token_url(), "secret-client", "secret")
        .unwrap()
        .dpop(key.clone());
    let tokens = TokenManager::new(source);
    Setup {
        oidc,
        api,
        key,
        tokens,
    }
}

impl Setup {
    fn client(&self, adapter: Adapter) -> Client {
        client(adapter, &self.tokens, &self.api)
    }

    /// The token calls the provider answered 200.
    async fn token_grants(&self) -> usize {
        let requests = self.oidc.requests().await;
        requests.iter().filter(|r| r["status"] == 200).count()
    }

    fn sends(&self) -> usize {
        self.api.seen().sends.load(Ordering::SeqCst)
    }
}

fn client(adapter: Adapter, tokens: &TokenManager, api: &ResourceServer) -> Client {
    let origin = Origin::parse(&api.url).unwrap();
    Client::with_layer(
        adapter,
        tokens,
        |layer| layer.allow_origin(origin.clone()),
        |middleware| middleware.allow_origin(origin.clone()),
    )
}

/// Both adapters: the first request meets the server's nonce challenge
/// (one extra send), later ones carry the nonce each answer gave, and a
/// nonce rotated on a 200 is used without a challenge.
#[tokio::test]
async fn dpop_bound_tokens_go_through_both_adapters() {
    let s = setup().await;
    s.api.rules.rotate_on_success.store(true, Ordering::SeqCst);
    for adapter in ADAPTERS {
        let client = s.client(adapter);
        let before = s.sends();
        let url = format!("{}/v1/videos?page=2#top", s.api.url);
        for _ in 0..3 {
            let reply = client.get(&url).await.unwrap();
            assert_eq!(reply.status, 200, "{adapter:?}: {}", reply.body);
        }
        let sends = s.sends() - before;
        // The first adapter meets the challenge; the nonce is the
        // manager's, so the others never do.
        let expected = if matches!(adapter, Adapter::Tower) {
            4
        } else {
            3
        };
        assert_eq!(sends, expected, "{adapter:?}");
        let reply = client
            .send(
                http::Method::POST,
                &format!("{}/v1/videos", s.api.url),
                &[("content-type", "application/json")],
                bytes::Bytes::from_static(b"{}"),
            )
            .await
            .unwrap();
        assert_eq!(reply.status, 200, "{adapter:?}: {}", reply.body);
    }
    assert_eq!(s.api.violations(), Vec::<String>::new());
    assert_eq!(s.api.seen().challenges.load(Ordering::SeqCst), 1);
    assert_eq!(s.token_grants().await, 1);
}

/// Each nonce challenge costs exactly one extra send, with the same
/// token: no token call, no invalidation.
#[tokio::test]
async fn each_nonce_challenge_costs_one_extra_send() {
    let s = setup().await;
    for adapter in ADAPTERS {
        let client = s.client(adapter);
        for _ in 0..2 {
            let before = s.sends();
            // A new nonce the client has not seen yet.
            s.api.rules.endless.store(true, Ordering::SeqCst);
            let _ = client.get(&format!("{}/v1/me", s.api.url)).await;
            s.api.rules.endless.store(false, Ordering::SeqCst);
            let before_ok = s.sends();
            let reply = client.get(&format!("{}/v1/me", s.api.url)).await.unwrap();
            assert_eq!(reply.status, 200, "{adapter:?}: {}", reply.body);
            assert_eq!(s.sends() - before_ok, 1, "{adapter:?}: the nonce was kept");
            assert_eq!(before_ok - before, 2, "{adapter:?}");
        }
    }
    let tokens = s.api.seen().tokens.lock().unwrap().clone();
    assert!(
        tokens.windows(2).all(|pair| pair[0] == pair[1]),
        "one token"
    );
    assert_eq!(s.tokens.stats().invalidations, 0);
    assert_eq!(s.token_grants().await, 1);
    assert_eq!(s.api.violations(), Vec::<String>::new());
}

/// A server that challenges every send gets two sends a request, and its
/// 401 comes back to the caller as it is.
#[tokio::test]
async fn an_endless_challenger_gets_two_sends_a_request() {
    let s = setup().await;
    s.api.rules.endless.store(true, Ordering::SeqCst);
    for adapter in ADAPTERS {
        let client = s.client(adapter);
        for _ in 0..3 {
            let before = s.sends();
            let reply = client.get(&format!("{}/v1/me", s.api.url)).await.unwrap();
            assert_eq!(reply.status, 401, "{adapter:?}");
            assert_eq!(s.sends() - before, 2, "{adapter:?}");
        }
    }
    assert_eq!(s.tokens.stats().invalidations, 0);
    assert_eq!(s.token_grants().await, 1);
    assert_eq!(s.api.violations(), Vec::<String>::new());
}

/// 50 concurrent cold requests: one token call (with its own nonce retry
/// at the provider), 50 requests each challenged once, and every proof
/// with its own `jti`.
#[tokio::test]
async fn fifty_cold_requests_make_one_token_call_and_fifty_distinct_proofs() {
    for adapter in [Adapter::Tower, Adapter::Reqwest] {
        let s = setup().await;
        let client = s.client(adapter);
        let url = format!("{}/v1/videos", s.api.url);
        let replies = join_all((0..50).map(|_| client.get(&url))).await;
        for reply in replies {
            assert_eq!(reply.unwrap().status, 200, "{adapter:?}");
        }
        let requests = s.oidc.requests().await;
        let statuses: Vec<_> = requests.iter().map(|r| r["status"].clone()).collect();
        assert_eq!(
            statuses,
            [400, 200],
            "{adapter:?}: one token call and its nonce retry"
        );
        let seen = s.api.seen();
        assert_eq!(seen.accepted.load(Ordering::SeqCst), 50);
        let sends = s.sends();
        assert!((50..=100).contains(&sends), "{adapter:?}: {sends}");
        assert_eq!(seen.jtis.lock().unwrap().len(), sends, "a jti per send");
        assert_eq!(s.api.violations(), Vec::<String>::new());
    }
}

/// A revoked token: the server's `DPoP error="invalid_token"` invalidates
/// it; the manager gets a new one and the request is replayed with it.
#[tokio::test]
async fn a_revoked_token_is_invalidated_refreshed_and_replayed() {
    let s = setup().await;
    for adapter in [Adapter::Tower, Adapter::Reqwest] {
        let client = s.client(adapter);
        let url = format!("{}/v1/me", s.api.url);
        assert_eq!(client.get(&url).await.unwrap().status, 200);
        let grants = s.token_grants().await;
        let header = s.tokens.authorization().await.unwrap();
        let token = header.to_str().unwrap().strip_prefix("DPoP ").unwrap();
        revoke(&s.oidc, token).await;
        let before = s.sends();
        let reply = client.get(&url).await.unwrap();
        assert_eq!(reply.status, 200, "{adapter:?}: {}", reply.body);
        assert_eq!(s.sends() - before, 2, "{adapter:?}: the 401 and the replay");
        assert_eq!(s.token_grants().await, grants + 1, "{adapter:?}");
    }
    assert_eq!(s.tokens.stats().invalidations, 2);
    assert_eq!(s.api.violations(), Vec::<String>::new());
}

async fn revoke(oidc: &Oidc, token: &str) {
    let answer = reqwest::Client::new()
        .post(format!("{}/token/revocation", oidc.issuer()))
        .basic_auth("secret-client", Some("secret"))
        .header("content-type", FORM)
        .body(form(&[("token", token)]))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(oidc.introspect(token).await["active"], false);
}

/// The refresh-token grant of a public client, DPoP-bound, through both
/// adapters; `thumbprint()` is the `cnf.jkt` the provider bound to, also
/// for a key read back from its PEM.
#[tokio::test]
async fn a_public_client_refreshes_dpop_bound_tokens() {
    let oidc = Oidc::start(&[]).await;
    let api = ResourceServer::start(oidc.issuer()).await;
    let key = DpopKey::from_pem(DpopKey::generate().to_pem().expose_secret()).unwrap();
    let seed = oidc.seed_refresh_token("openid offline_access").await;
    let source = RefreshTokenSource::new(&oidc.token_url(), "public-client", seed)
        .unwrap()
        .dpop(key.clone());
    let tokens = TokenManager::new(source);
    for adapter in [Adapter::Tower, Adapter::Reqwest] {
        let client = client(adapter, &tokens, &api);
        let reply = client.get(&format!("{}/v1/me", api.url)).await.unwrap();
        assert_eq!(reply.status, 200, "{adapter:?}: {}", reply.body);
        // The next request needs the next token: the rotated refresh token.
        let auth = tokens.authorize().await.unwrap();
        assert!(auth.is_dpop());
        tokens.invalidate(auth.generation());
    }
    let reply = client(Adapter::Reqwest, &tokens, &api)
        .get(&format!("{}/v1/me", api.url))
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    let header = tokens.authorization().await.unwrap();
    let token = header.to_str().unwrap().strip_prefix("DPoP ").unwrap();
    let introspected: Value = oidc.introspect(token).await;
    assert_eq!(introspected["cnf"]["jkt"], key.thumbprint().as_str());
    let grants: Vec<_> = oidc
        .requests()
        .await
        .into_iter()
        .filter(|r| r["status"] == 200)
        .map(|r| r["grant_type"].clone())
        .collect();
    assert_eq!(grants, ["refresh_token"; 3]);
    assert_eq!(api.violations(), Vec::<String>::new());
}

/// No `Debug` shows the private key: not the key's, the source's, the
/// manager's, the layer's, the middleware's, nor a header's.
#[tokio::test]
async fn no_debug_shows_the_private_key() {
    let s = setup().await;
    let auth = s.tokens.authorize().await.unwrap();
    let pem = s.key.to_pem();
    let body: String = pem
        .expose_secret()
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    let source = ClientCredentials::new(&s.oidc.token_url(), "secret-client", "secret")
        .unwrap()
        .dpop(s.key.clone());
    let shown = [
        format!("{:?}", s.key),
        format!("{source:?}"),
        format!("{:?}", s.tokens),
        format!("{:?}", BearerAuthLayer::new(s.tokens.clone())),
        format!("{:?}", BearerAuthMiddleware::new(s.tokens.clone())),
        format!("{auth:?}"),
    ];
    let token = auth
        .header()
        .to_str()
        .unwrap()
        .strip_prefix("DPoP ")
        .unwrap();
    for text in shown {
        for window in body.as_bytes().windows(12).step_by(4) {
            let window = std::str::from_utf8(window).unwrap();
            assert!(!text.contains(window), "{text}");
        }
        assert!(!text.contains("PRIVATE"), "{text}");
        assert!(!text.contains(token), "{text}");
    }
}

/// gRPC through the tower layer over a tonic `Channel`: the proof's `htm`
/// is `POST` and its `htu` `scheme://authority/package.Service/Method`;
/// the server's nonce challenge (a trailers-only UNAUTHENTICATED with a
/// `DPoP` challenge) costs one extra send.
#[cfg(feature = "tonic")]
mod grpc {
    use std::convert::Infallible;
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::atomic::Ordering;
    use std::sync::Arc;
    use std::task::{Context, Poll};

    use super::echo::{EchoClient, EchoServer, Mode};
    use bearer_refresh::{BearerAuthLayer, Origin};
    use bytes::Bytes;
    use tonic::server::NamedService;
    use tonic::transport::Channel;

    use super::support::resource::{htu, Rules, Verdict};
    use super::*;

    /// The echo server behind the resource server's checks. The echo's own
    /// token check is given a URL that always answers 200 (the provider's
    /// discovery document): the gate has checked the token already.
    #[derive(Clone)]
    struct Gate {
        rules: Arc<Rules>,
        echo: EchoServer,
    }

    impl NamedService for Gate {
        const NAME: &'static str = "test.Echo";
    }

    impl tower::Service<http::Request<tonic::body::Body>> for Gate {
        type Response = http::Response<tonic::body::Body>;
        type Error = Infallible;
        type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
            let mut gate = self.clone();
            Box::pin(async move {
                let htu = htu(request.uri(), request.headers());
                let verdict = gate
                    .rules
                    .check(request.method(), &htu, request.headers())
                    .await;
                if matches!(verdict, Verdict::Ok) {
                    return tower::Service::call(&mut gate.echo, request).await;
                }
                // gRPC's 401: UNAUTHENTICATED in a trailers-only answer,
                // with the HTTP challenge and nonce.
                let refused = gate.rules.answer(verdict);
                let mut response = http::Response::new(tonic::body::Body::empty());
                *response.headers_mut() = refused.headers().clone();
                let headers = response.headers_mut();
                headers.insert("content-type", "application/grpc".parse().unwrap());
                headers.insert("grpc-status", "16".parse().unwrap());
                Ok(response)
            })
        }
    }

    #[tokio::test]
    async fn grpc_calls_carry_proofs_of_post_and_the_method_path() {
        let s = setup().await;
        let discovery = format!("{}/.well-known/openid-configuration", s.oidc.issuer());
        let gate = Gate {
            rules: Arc::clone(&s.api.rules),
            echo: EchoServer::new(Mode::Check, discovery),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin: http::Uri = format!("http://{}", listener.local_addr().unwrap())
            .parse()
            .unwrap();
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(gate)
                .serve_with_incoming(incoming),
        );
        let channel = Channel::builder(origin.clone()).connect().await.unwrap();
        let layer = BearerAuthLayer::new(s.tokens.clone())
            .allow_origin(Origin::parse(&origin.to_string()).unwrap());
        let service = tower::ServiceBuilder::new().layer(layer).service(channel);
        let mut client = EchoClient::with_origin(service, origin);
        for (call, sends) in [(0, 2), (1, 1), (2, 1)] {
            let before = s.sends();
            let reply = client
                .unary(Bytes::from(format!("call {call}")))
                .await
                .unwrap();
            assert_eq!(reply.into_inner(), format!("call {call}"));
            assert_eq!(s.sends() - before, sends, "call {call}");
        }
        assert_eq!(s.api.seen().challenges.load(Ordering::SeqCst), 1);
        assert_eq!(s.api.violations(), Vec::<String>::new());
        assert_eq!(s.token_grants().await, 1);
    }
}
