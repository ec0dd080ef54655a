//! The metrics through a real recorder (metrics-util's `DebuggingRecorder`),
//! against the api.video double: names, exact label sets and counts, and
//! no secret in any label.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use bearer_refresh::testing::ApiVideoDouble;
use bearer_refresh::{FileStore, TokenManager};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use metrics_util::MetricKind;
use support::clients::{Client, ADAPTERS};
use support::{builder, steady_backoff};
use tokio::time::advance;

const SECOND: Duration = Duration::from_secs(1);

/// A metric's name and labels.
type Id = (String, BTreeMap<String, String>);

/// What the recorder saw so far, summed over snapshots: a snapshot drains
/// the recorder, and the tests of this file share it (each names its
/// managers apart).
#[derive(Default)]
struct Seen {
    counters: HashMap<Id, u64>,
    gauges: HashMap<Id, f64>,
    histograms: HashMap<Id, Vec<f64>>,
}

fn snapshotter() -> &'static Snapshotter {
    static SNAPSHOTTER: OnceLock<Snapshotter> = OnceLock::new();
    SNAPSHOTTER.get_or_init(|| {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorder.install().expect("the only recorder");
        snapshotter
    })
}

/// Folds a new snapshot into what was seen, and reads it.
fn seen<T>(read: impl FnOnce(&Seen) -> T) -> T {
    static SEEN: OnceLock<Mutex<Seen>> = OnceLock::new();
    let mut seen = SEEN.get_or_init(Mutex::default).lock().unwrap();
    for (key, _, _, value) in snapshotter().snapshot().into_vec() {
        let (kind, key) = key.into_parts();
        let labels = key
            .labels()
            .map(|label| (label.key().to_owned(), label.value().to_owned()))
            .collect();
        let id = (key.name().to_owned(), labels);
        match (kind, value) {
            (MetricKind::Counter, DebugValue::Counter(n)) => {
                *seen.counters.entry(id).or_default() += n;
            }
            (MetricKind::Gauge, DebugValue::Gauge(v)) if v.0 != 0.0 => {
                seen.gauges.insert(id, v.0);
            }
            (MetricKind::Histogram, DebugValue::Histogram(values)) => {
                let values = values.into_iter().map(|v| v.0);
                seen.histograms.entry(id).or_default().extend(values);
            }
            _ => {}
        }
    }
    read(&seen)
}

fn id(name: &str, labels: &[(&str, &str)]) -> Id {
    let labels = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    (name.to_owned(), labels)
}

fn counter(name: &str, labels: &[(&str, &str)]) -> u64 {
    seen(|seen| seen.counters.get(&id(name, labels)).copied().unwrap_or(0))
}

/// Every metric of `client`, with its labels.
fn of_client(client: &str) -> Vec<Id> {
    seen(|seen| {
        let ids = seen.counters.keys().chain(seen.gauges.keys());
        ids.chain(seen.histograms.keys())
            .filter(|(_, labels)| labels.get("client").is_some_and(|c| c == client))
            .cloned()
            .collect()
    })
}

const CALLS: &str = "bearer_refresh_token_calls_total";

#[tokio::test(start_paused = true)]
async fn each_token_call_is_counted_with_its_kind_outcome_and_duration() {
    snapshotter();
    let double = ApiVideoDouble::start().await.unwrap();
    double.set_lifetime(4 * SECOND);
    let tokens = builder(&double)
        .name("calls")
        .backoff(steady_backoff())
        .build();
    // Two 503s, then a login: three attempts, one wait.
    double.fail_next(2, 503);
    tokens.authorization().await.unwrap();
    let login = |outcome| {
        counter(
            CALLS,
            &[("client", "calls"), ("kind", "login"), ("outcome", outcome)],
        )
    };
    assert_eq!((login("transient"), login("ok")), (2, 1));
    let durations = id(
        "bearer_refresh_token_call_duration_seconds",
        &[("client", "calls"), ("kind", "login")],
    );
    assert_eq!(seen(|s| s.histograms[&durations].len()), 3);
    let remaining = id(
        "bearer_refresh_token_remaining_seconds",
        &[("client", "calls")],
    );
    let left = seen(|s| s.gauges[&remaining]);
    assert!(left > 3.0 && left <= 4.0, "{left}");
    assert_eq!(
        counter("bearer_refresh_waits_total", &[("client", "calls")]),
        1
    );

    // Expired: a refresh, then a rejected refresh and a rejected login.
    advance(3500 * Duration::from_millis(1)).await;
    tokens.authorization().await.unwrap();
    double.reject_refresh_tokens(true);
    double.reject_api_key(true);
    advance(3500 * Duration::from_millis(1)).await;
    assert!(tokens.authorization().await.is_err());
    let refresh = |outcome| {
        counter(
            CALLS,
            &[
                ("client", "calls"),
                ("kind", "refresh"),
                ("outcome", outcome),
            ],
        )
    };
    assert_eq!((refresh("ok"), refresh("rejected")), (1, 1));
    assert_eq!(login("rejected"), 1);
    assert_eq!(
        counter("bearer_refresh_waits_total", &[("client", "calls")]),
        3
    );

    // The exact label sets.
    for (name, labels) in of_client("calls") {
        let keys: Vec<_> = labels.keys().map(String::as_str).collect();
        let expected: &[&str] = match name.as_str() {
            CALLS => &["client", "kind", "outcome"],
            "bearer_refresh_token_call_duration_seconds" => &["client", "kind"],
            "bearer_refresh_token_remaining_seconds" | "bearer_refresh_waits_total" => &["client"],
            other => panic!("unexpected metric {other}"),
        };
        assert_eq!(keys, expected, "{name}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_warm_request_records_nothing() {
    snapshotter();
    let double = ApiVideoDouble::start().await.unwrap();
    let tokens = builder(&double).name("warm").build();
    tokens.authorization().await.unwrap();
    let before = seen(|s| s.counters.clone());
    for _ in 0..100 {
        tokens.try_authorize().unwrap();
        tokens.authorization().await.unwrap();
    }
    let after = seen(|s| s.counters.clone());
    let mine = |counters: &HashMap<Id, u64>| -> Vec<(Id, u64)> {
        let mut mine: Vec<_> = counters
            .iter()
            .filter(|((_, labels), _)| labels.get("client").is_some_and(|c| c == "warm"))
            .map(|(id, n)| (id.clone(), *n))
            .collect();
        mine.sort_by(|a, b| a.0.cmp(&b.0));
        mine
    };
    assert_eq!(mine(&before), mine(&after));
}

#[tokio::test(start_paused = true)]
async fn replays_are_counted_by_reason_and_no_secret_is_a_label() {
    snapshotter();
    for (n, adapter) in ADAPTERS.into_iter().enumerate() {
        let name = format!("replays-{n}");
        let double = ApiVideoDouble::start().await.unwrap();
        let tokens = builder(&double).name(&name).build();
        let client = Client::new(adapter, &tokens);
        client.get(&double.url("/videos")).await.unwrap();
        double.revoke_access_tokens();
        // A secret-bearing URL: the query never becomes a label.
        let url = double.url("/videos?api_key=query-secret-123");
        assert_eq!(client.get(&url).await.unwrap().status, 200, "{adapter:?}");
        let replays = counter(
            "bearer_refresh_replays_total",
            &[("client", &name), ("reason", "unauthorized")],
        );
        assert_eq!(replays, 1, "{adapter:?}");
        let mut secrets = double.issued_secrets();
        secrets.extend([
            ApiVideoDouble::API_KEY.to_owned(),
            "query-secret-123".to_owned(),
        ]);
        for (metric, labels) in of_client(&name) {
            for value in labels.values() {
                assert!(
                    !secrets.iter().any(|s| value.contains(s.as_str())),
                    "{metric} has a secret in {labels:?}"
                );
                assert!(
                    !value.contains('?') && !value.contains("http"),
                    "{labels:?}"
                );
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn requests_served_an_expired_token_are_counted() {
    snapshotter();
    let double = ApiVideoDouble::start().await.unwrap();
    double.set_lifetime(4 * SECOND);
    let tokens: TokenManager = builder(&double)
        .name("outage")
        .backoff(steady_backoff())
        .outage_grace(60 * SECOND)
        .build();
    tokens.authorization().await.unwrap();
    double.fail_next(100, 503);
    advance(5 * SECOND).await;
    for _ in 0..3 {
        tokens.authorization().await.unwrap();
    }
    let served = counter(
        "bearer_refresh_expired_served_total",
        &[("client", "outage")],
    );
    assert_eq!(served, tokens.stats().expired_served);
    assert_eq!(served, 3);
    let failed = counter(
        CALLS,
        &[
            ("client", "outage"),
            ("kind", "refresh"),
            ("outcome", "transient"),
        ],
    );
    assert!(failed >= 1);
}

#[tokio::test]
async fn a_failing_store_is_counted_with_its_kind() {
    snapshotter();
    let double = ApiVideoDouble::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("gone");
    std::fs::create_dir(&folder).unwrap();
    let store = FileStore::open(folder.join("token")).unwrap();
    let tokens = builder(&double).name("store").store(store).build();
    std::fs::remove_dir_all(&folder).unwrap();
    tokens.authorization().await.unwrap();
    assert!(!tokens.store_available());
    let errors = counter(
        "bearer_refresh_store_errors_total",
        &[("client", "store"), ("store", "file")],
    );
    assert_eq!(errors, 1);
}
