//! The crate's layer over the no-op service with a warm manager, as the
//! store benchmarks measure it against the in-memory store.

use bearer_refresh::{BearerAuthLayer, TokenManager};
use criterion::measurement::WallTime;
use criterion::{BatchSize, BenchmarkGroup};
use tower::{Service, ServiceBuilder};

use super::{noop, poll_once, request, Req};

/// `BearerAuthLayer` with `tokens` over [`noop`].
pub(crate) fn layered(tokens: TokenManager) -> impl Service<Req> {
    ServiceBuilder::new()
        .layer(BearerAuthLayer::new(tokens))
        .service(noop())
}

/// Benches one request to `url` at a time through [`layered`], as `name`
/// in `group`; `tokens` should already hold a token.
pub(crate) fn bench_warm(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    tokens: TokenManager,
    url: &str,
) {
    let mut service = layered(tokens);
    group.bench_function(name, |b| {
        b.iter_batched(
            || request(url),
            |request| poll_once(&mut service, request),
            BatchSize::SmallInput,
        )
    });
}
