//! The stacks under comparison, each a reqwest-middleware client sending
//! GETs to the loopback server (`src/bin/server.rs`):
//!
//! - `rm04-static`: a static-header middleware on reqwest 0.12 +
//!   reqwest-middleware 0.4, the base of the two peers;
//! - `aliri`: aliri_reqwest 0.5 over an aliri_tokens `TokenWatcher`;
//! - `reqwest-auth`: reqwest-auth 1.0 over a `token_source::TokenSource`;
//! - `rm05-static`: the static-header middleware on reqwest 0.13 +
//!   reqwest-middleware 0.5, our base;
//! - `ours`: `BearerAuthMiddleware` with its default single replay;
//! - `ours-noreplay`: the same with `max_replays(0)`, keeping no copy,
//!   like the peers.
//!
//! Every library is given a warm, long-lived token and scoped to the
//! server's host, so each does the same job: look the token up, check the
//! destination, attach the header.

use std::sync::Arc;
use std::time::Duration;

use futures::stream::{self, StreamExt};

/// Every stack, bases first.
pub const STACKS: [&str; 6] = [
    "rm04-static",
    "aliri",
    "reqwest-auth",
    "rm05-static",
    "ours",
    "ours-noreplay",
];

/// The static stack each library is compared with.
pub fn base_of(stack: &str) -> Option<&'static str> {
    match stack {
        "aliri" | "reqwest-auth" => Some("rm04-static"),
        "ours" | "ours-noreplay" => Some("rm05-static"),
        _ => None,
    }
}

/// Requests in flight at once.
pub const IN_FLIGHT: usize = 64;
const TOKEN: &str = "t0k3n";
/// The header the server expects; anything else is answered 401.
pub const BEARER: &str = "Bearer t0k3n";

/// The same static middleware for both reqwest-middleware versions, in
/// the way users write one.
macro_rules! static_middleware {
    ($name:ident, $rm:ident, $reqwest:ident) => {
        struct $name;

        #[async_trait::async_trait]
        impl $rm::Middleware for $name {
            async fn handle(
                &self,
                mut request: $reqwest::Request,
                extensions: &mut http::Extensions,
                next: $rm::Next<'_>,
            ) -> $rm::Result<$reqwest::Response> {
                request.headers_mut().insert(
                    http::header::AUTHORIZATION,
                    http::HeaderValue::from_static(BEARER),
                );
                next.run(request, extensions).await
            }
        }
    };
}

static_middleware!(Static04, rm04, reqwest12);
static_middleware!(Static05, rm05, reqwest13);

/// reqwest-auth's token source: hands out its cached header value.
#[derive(Debug)]
struct CachedToken {
    // reqwest-auth inserts the string as the whole header value.
    header: String,
}

#[async_trait::async_trait]
impl token_source::TokenSource for CachedToken {
    async fn token(&self) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
        Ok(self.header.clone())
    }
}

/// Our token source: one long-lived token, for the server's origin.
struct Fixed {
    origin: String,
}

impl bearer_refresh::TokenSource for Fixed {
    fn login(
        &self,
    ) -> bearer_refresh::BoxFuture<'_, Result<bearer_refresh::TokenResponse, bearer_refresh::Error>>
    {
        Box::pin(async {
            Ok(
                bearer_refresh::TokenResponse::new(TOKEN)
                    .with_expires_in(Duration::from_secs(3600)),
            )
        })
    }

    fn refresh<'a>(
        &'a self,
        _: &'a secrecy::SecretString,
    ) -> bearer_refresh::BoxFuture<'a, Result<bearer_refresh::TokenResponse, bearer_refresh::Error>>
    {
        self.login()
    }

    fn origin(&self) -> Option<bearer_refresh::Origin> {
        Some(bearer_refresh::Origin::parse(&self.origin).expect("the server's origin"))
    }
}

/// A client of one stack.
pub enum Client {
    /// reqwest 0.12 + reqwest-middleware 0.4.
    Rm04(rm04::ClientWithMiddleware),
    /// reqwest 0.13 + reqwest-middleware 0.5.
    Rm05(rm05::ClientWithMiddleware),
}

/// Sends `n` GETs, `IN_FLIGHT` at a time; checks each is a 200 and reads
/// its body. Returns the body bytes read.
macro_rules! drive {
    ($client:expr, $url:expr, $n:expr) => {{
        let client = $client;
        let url: &str = $url;
        stream::iter(0..$n)
            .map(|_| async move {
                let response = client.get(url).send().await.expect("a response");
                assert_eq!(response.status().as_u16(), 200, "the token was attached");
                response.bytes().await.expect("a body").len()
            })
            .buffer_unordered(IN_FLIGHT)
            .fold(0usize, |total, len| async move { total + len })
            .await
    }};
}

impl Client {
    /// Builds `stack`'s client for the server at `origin`, with its token
    /// already cached.
    ///
    /// # Panics
    ///
    /// On an unknown stack name.
    pub async fn new(stack: &str, origin: &str) -> Self {
        match stack {
            "rm04-static" => Client::Rm04(
                rm04::ClientBuilder::new(reqwest12::Client::new())
                    .with(Static04)
                    .build(),
            ),
            "aliri" => {
                use aliri_tokens::{backoff::ErrorBackoffConfig, jitter::NullJitter};
                let source = aliri_tokens::sources::ConstTokenSource::new(TOKEN)
                    .with_token_valid_for(aliri_clock::DurationSecs(3600));
                let watcher = aliri_tokens::TokenWatcher::spawn_from_token_source(
                    source,
                    NullJitter,
                    ErrorBackoffConfig::default(),
                )
                .await
                .expect("a token watcher");
                // The default predicate is HttpsOnly; scope it to our host.
                let middleware = aliri_reqwest::AccessTokenMiddleware::new(watcher)
                    .with_predicate(aliri_reqwest::ExactHostMatch::new("127.0.0.1"));
                Client::Rm04(
                    rm04::ClientBuilder::new(reqwest12::Client::new())
                        .with(middleware)
                        .build(),
                )
            }
            "reqwest-auth" => {
                let source: Arc<dyn token_source::TokenSource> = Arc::new(CachedToken {
                    header: BEARER.to_owned(),
                });
                Client::Rm04(
                    rm04::ClientBuilder::new(reqwest12::Client::new())
                        .with(reqwest_auth::AuthorizationHeaderMiddleware::from(source))
                        .build(),
                )
            }
            "rm05-static" => Client::Rm05(
                rm05::ClientBuilder::new(reqwest13::Client::new())
                    .with(Static05)
                    .build(),
            ),
            "ours" | "ours-noreplay" => {
                let tokens = bearer_refresh::TokenManager::new(Fixed {
                    origin: origin.to_owned(),
                });
                tokens.authorization().await.expect("the first token");
                let mut middleware = bearer_refresh::BearerAuthMiddleware::new(tokens);
                if stack == "ours-noreplay" {
                    middleware = middleware.max_replays(0);
                }
                Client::Rm05(
                    rm05::ClientBuilder::new(reqwest13::Client::new())
                        .with(middleware)
                        .build(),
                )
            }
            other => panic!("unknown stack {other:?}; the stacks are {STACKS:?}"),
        }
    }

    /// Sends `n` GETs to `url`, `IN_FLIGHT` at a time, each checked for a
    /// 200; returns the body bytes read.
    pub async fn drive(&self, url: &str, n: usize) -> usize {
        match self {
            Client::Rm04(client) => drive!(client, url, n),
            Client::Rm05(client) => drive!(client, url, n),
        }
    }

    /// Opens `IN_FLIGHT` connections and warms every cache on the way.
    pub async fn warm_up(&self, url: &str) {
        self.drive(url, 2 * IN_FLIGHT).await;
    }
}

/// A current-thread runtime, as the measurements use.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}
