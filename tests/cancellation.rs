//! Cancellation: callers dropped at random points, through timeouts under
//! paused time, never cancel the shared token call nor cost an extra one.

mod support;

use std::time::Duration;

use bearer_refresh::testing::{ApiVideoDouble, Calls};
use bearer_refresh::{BearerAuthLayer, TokenManager};
use bytes::Bytes;
use futures::future::join_all;
use http_body_util::Full;
use proptest::prelude::*;
use tokio::time::timeout;
use tower::{ServiceBuilder, ServiceExt};

/// Runs `give_ups` callers that each drop out after their delay (through
/// `authorization()` or the tower service's `call()`), then one patient
/// caller, and returns the calls the double saw.
fn run(give_ups: Vec<u64>, through_service: bool, expired: bool) -> (Calls, u64) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    runtime.block_on(async move {
        let double = ApiVideoDouble::start().await.unwrap();
        double.set_lifetime(Duration::from_secs(4));
        let tokens = TokenManager::new(double.source());
        if expired {
            tokens.authorization().await.unwrap();
            tokio::time::advance(Duration::from_secs(4)).await;
        }
        double.set_latency(Duration::from_millis(100));
        let hyper =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build::<_, Full<Bytes>>(hyper_util::client::legacy::connect::HttpConnector::new());
        let service = ServiceBuilder::new()
            .layer(BearerAuthLayer::new(tokens.clone()))
            .service(hyper);
        let url = double.url("/videos");
        join_all(give_ups.iter().map(|ms| {
            let patience = Duration::from_millis(*ms);
            let tokens = tokens.clone();
            let service = service.clone();
            let request = http::Request::get(&url).body(Full::default()).unwrap();
            async move {
                if through_service {
                    let _ = timeout(patience, service.oneshot(request)).await;
                } else {
                    let _ = timeout(patience, tokens.authorization()).await;
                }
            }
        }))
        .await;
        let response = service
            .oneshot(http::Request::get(&url).body(Full::default()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        (double.calls(), tokens.stats().generation)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn dropped_callers_never_cost_an_extra_login(
        give_ups in proptest::collection::vec(0u64..250, 1..16),
        through_service in any::<bool>(),
    ) {
        let (calls, generation) = run(give_ups, through_service, false);
        prop_assert_eq!(calls.logins, 1);
        prop_assert_eq!(calls.refreshes, 0);
        prop_assert_eq!(generation, 1);
    }

    #[test]
    fn dropped_callers_never_cost_an_extra_refresh(
        give_ups in proptest::collection::vec(0u64..250, 1..16),
        through_service in any::<bool>(),
    ) {
        let (calls, generation) = run(give_ups, through_service, true);
        prop_assert_eq!(calls.logins, 1);
        prop_assert_eq!(calls.refreshes, 1);
        prop_assert_eq!(calls.refresh_reuses, 0);
        prop_assert_eq!(generation, 2);
    }
}
