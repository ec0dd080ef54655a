//! One client interface over every way the crate is plugged in, so each
//! request-side scenario runs against the tower layer (boxed and buffered)
//! and the reqwest middleware alike.

use bearer_refresh::tower::BearerAuthError;
use bearer_refresh::{BearerAuthLayer, BearerAuthMiddleware, Error, TokenManager};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tower::util::BoxCloneSyncService;
use tower::{ServiceBuilder, ServiceExt};

/// The ways to plug the crate into a client.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Adapter {
    /// `BearerAuthLayer` over a hyper-util client, behind `boxed_clone`.
    Tower,
    /// The same behind `tower::buffer`.
    TowerBuffered,
    /// `BearerAuthMiddleware` in a reqwest-middleware client.
    Reqwest,
}

pub(crate) const ADAPTERS: [Adapter; 3] =
    [Adapter::Tower, Adapter::TowerBuffered, Adapter::Reqwest];

type TowerService = BoxCloneSyncService<Request<Full<Bytes>>, Response<Incoming>, tower::BoxError>;

#[derive(Clone)]
pub(crate) enum Client {
    Tower(TowerService),
    Reqwest(reqwest_middleware::ClientWithMiddleware),
}

/// What came back: a response, or the crate's typed token error.
#[derive(Debug)]
pub(crate) struct Reply {
    pub status: StatusCode,
    pub body: String,
}

impl Client {
    pub(crate) fn new(adapter: Adapter, tokens: &TokenManager) -> Self {
        Self::with_layer(adapter, tokens, |layer| layer, |middleware| middleware)
    }

    /// A client with the layer and middleware adjusted by the caller.
    pub(crate) fn with_layer(
        adapter: Adapter,
        tokens: &TokenManager,
        layer: impl FnOnce(BearerAuthLayer) -> BearerAuthLayer,
        middleware: impl FnOnce(BearerAuthMiddleware) -> BearerAuthMiddleware,
    ) -> Self {
        let hyper = || {
            hyper_util::client::legacy::Client::builder(TokioExecutor::new())
                .build::<_, Full<Bytes>>(HttpConnector::new())
        };
        match adapter {
            Adapter::Tower => Client::Tower(BoxCloneSyncService::new(
                ServiceBuilder::new()
                    .map_err(tower::BoxError::from)
                    .layer(layer(BearerAuthLayer::new(tokens.clone())))
                    .service(hyper()),
            )),
            Adapter::TowerBuffered => Client::Tower(BoxCloneSyncService::new(
                ServiceBuilder::new()
                    .buffer(1024)
                    .layer(layer(BearerAuthLayer::new(tokens.clone())))
                    .service(hyper()),
            )),
            Adapter::Reqwest => Client::Reqwest(
                reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
                    .with(middleware(BearerAuthMiddleware::new(tokens.clone())))
                    .build(),
            ),
        }
    }

    pub(crate) async fn get(&self, url: &str) -> Result<Reply, Failure> {
        self.send(Method::GET, url, &[], Bytes::new()).await
    }

    pub(crate) async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Reply, Failure> {
        match self {
            Client::Tower(service) => {
                let mut request = Request::builder().method(method).uri(url);
                for (name, value) in headers {
                    request = request.header(*name, *value);
                }
                let request = request.body(Full::new(body)).expect("a valid request");
                let response = service
                    .clone()
                    .oneshot(request)
                    .await
                    .map_err(Failure::Tower)?;
                let status = response.status();
                let bytes = response
                    .into_body()
                    .collect()
                    .await
                    .expect("a body")
                    .to_bytes();
                Ok(Reply {
                    status,
                    body: String::from_utf8_lossy(&bytes).into_owned(),
                })
            }
            Client::Reqwest(client) => {
                let mut request = client.request(method, url).body(body);
                for (name, value) in headers {
                    request = request.header(*name, *value);
                }
                let response = request.send().await.map_err(Failure::Reqwest)?;
                let status = response.status();
                let body = response.text().await.expect("a body");
                Ok(Reply { status, body })
            }
        }
    }
}

/// A request that produced no response.
#[derive(Debug)]
pub(crate) enum Failure {
    Tower(tower::BoxError),
    Reqwest(reqwest_middleware::Error),
}

impl Failure {
    /// The crate's token error, reached the way a user would.
    pub(crate) fn token_error(&self) -> Option<&Error> {
        match self {
            Failure::Tower(error) => error
                .downcast_ref::<BearerAuthError>()
                .and_then(BearerAuthError::token_error),
            Failure::Reqwest(reqwest_middleware::Error::Middleware(error)) => {
                error.downcast_ref::<Error>()
            }
            Failure::Reqwest(_) => None,
        }
    }
}
