use std::sync::Arc;

use tower_layer::Layer;

use super::policy::Policy;
use super::BearerAuth;
use crate::engine::TokenManager;
use crate::origin::{Origin, Scope};

/// A tower [`Layer`](tower_layer::Layer) that wraps services in [`BearerAuth`].
///
/// By default the token goes only to the token source's origin, and a 401
/// is replayed once.
///
/// ```
/// use bearer_refresh::{ApiKeySource, BearerAuthLayer, Origin, TokenManager};
///
/// let tokens = TokenManager::new(ApiKeySource::new(ApiKeySource::SANDBOX, "key")?);
/// let layer = BearerAuthLayer::new(tokens)
///     .max_replays(2)
///     .allow_origin(Origin::parse("https://upload.example.com")?);
/// # let _ = layer;
/// # Ok::<(), bearer_refresh::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct BearerAuthLayer {
    policy: Arc<Policy>,
}

impl BearerAuthLayer {
    /// A layer attaching the tokens of `tokens`.
    pub fn new(tokens: TokenManager) -> Self {
        BearerAuthLayer {
            policy: Arc::new(Policy::new(tokens)),
        }
    }

    /// How many times a request is sent again after a 401 (default 1). The
    /// first replay goes at once, later ones back off. 0 disables replays;
    /// a 401 still invalidates the token.
    pub fn max_replays(mut self, max_replays: u32) -> Self {
        Arc::make_mut(&mut self.policy).max_replays = max_replays;
        self
    }

    /// The cap on the bytes a request keeps for its replay (default
    /// 64 KiB): a request holds at most this much beyond its own body.
    ///
    /// - Streaming and type-erased bodies (`BoxBody`, `UnsyncBoxBody`,
    ///   `axum::body::Body`, `tonic::body::Body`) are recorded as they go
    ///   out, never read ahead, so a replay can send them again. A body
    ///   that turns out longer than the cap is sent once: its 401 still
    ///   refreshes the token for the next request, and is handed back. The
    ///   recording is freed once the body passes the cap.
    /// - `Vec<u8>` and `String` bodies are copied when they fit in the
    ///   cap; a longer one is sent once, uncopied, like a stream past it.
    /// - `Full<Bytes>`, `Empty<Bytes>` and `Bytes` share their bytes with
    ///   the copy, so they are replayed whatever their length.
    ///
    /// 0 records and copies nothing: such bodies are then replayed only
    /// when known to be empty (`size_hint().exact() == Some(0)`, or an
    /// empty `Vec` or `String`).
    pub fn replay_buffer(mut self, bytes: usize) -> Self {
        Arc::make_mut(&mut self.policy).bodies.replay_buffer = bytes;
        self
    }

    /// How to copy a body of your own type `B` for a replay, like
    /// tower-http's `follow_redirect` takes a `clone_body` policy: return
    /// `None` when a body cannot be copied (it is then sent once).
    ///
    /// Bodies the crate knows (see [`BearerAuth`]) need no hook; a hook for
    /// `B` replaces an earlier one for the same type.
    ///
    /// ```
    /// use bearer_refresh::{ApiKeySource, BearerAuthLayer, TokenManager};
    ///
    /// /// A body that knows its bytes when it was built from them.
    /// enum MyBody {
    ///     Bytes(bytes::Bytes),
    ///     Stream(std::fs::File),
    /// }
    ///
    /// let tokens = TokenManager::new(ApiKeySource::new(ApiKeySource::SANDBOX, "key")?);
    /// let layer = BearerAuthLayer::new(tokens).clone_body(|body: &MyBody| match body {
    ///     MyBody::Bytes(bytes) => Some(MyBody::Bytes(bytes.clone())),
    ///     MyBody::Stream(_) => None,
    /// });
    /// # let _ = layer;
    /// # Ok::<(), bearer_refresh::Error>(())
    /// ```
    pub fn clone_body<B: 'static>(
        mut self,
        clone: impl Fn(&B) -> Option<B> + Send + Sync + 'static,
    ) -> Self {
        Arc::make_mut(&mut self.policy).bodies.add_hook(clone);
        self
    }

    /// Sends the token to `origin` too.
    pub fn allow_origin(mut self, origin: Origin) -> Self {
        Arc::make_mut(&mut self.policy).scope.add(origin);
        self
    }

    /// Sends the token with every request, whatever its destination. Use it
    /// only when the inner service can reach nothing but the API (a bare
    /// path URI, a pinned connection).
    pub fn allow_any_origin(mut self) -> Self {
        Arc::make_mut(&mut self.policy).scope = Scope::Any;
        self
    }
}

impl<S> Layer<S> for BearerAuthLayer {
    type Service = BearerAuth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BearerAuth::from_policy(inner, Arc::clone(&self.policy))
    }
}
