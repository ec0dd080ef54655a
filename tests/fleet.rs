//! A fleet sharing one token through Redis (`--features redis`). Each test
//! starts its own `redis-server`; managers with their own connections stand
//! in for processes, and one test runs real OS processes.

mod support;

use std::time::Duration;

use bearer_refresh::testing::ApiVideoDouble;
use bearer_refresh::{
    ApiKeySource, BoxFuture, Error, RedisStore, TokenManager, TokenResponse, TokenSource,
};
use secrecy::SecretString;
use support::clients::Adapter;
use support::fleet::{
    a_stale_writer_loses, all_succeed, expiry_storms, one_token, rerun_as_child, revocation_storm,
    storm, warm_clients,
};
use support::redis::RedisServer;

const PREFIX: &str = "fleet-test";

async fn member(double: &ApiVideoDouble, redis: &RedisServer) -> TokenManager {
    let store = RedisStore::connect(&redis.url(), PREFIX).await.unwrap();
    TokenManager::builder(double.source())
        .call_timeout(Duration::from_secs(2))
        .store(store)
        .build()
}

async fn fleet(double: &ApiVideoDouble, redis: &RedisServer, n: usize) -> Vec<TokenManager> {
    let mut members = Vec::new();
    for _ in 0..n {
        members.push(member(double, redis).await);
    }
    members
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_fleet_storm_makes_one_login() {
    let redis = RedisServer::start();
    let double = ApiVideoDouble::start().await.unwrap();
    double.set_latency(Duration::from_millis(50));
    let members = fleet(&double, &redis, 8).await;
    let headers = storm(&members, 100).await;
    assert!(one_token(&headers), "one token for the fleet");
    assert_eq!(double.calls().logins, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_fleet_makes_one_refresh_and_never_reuses_a_refresh_token() {
    let redis = RedisServer::start();
    let double = ApiVideoDouble::start().await.unwrap();
    double.set_lifetime(Duration::from_secs(2));
    let members = fleet(&double, &redis, 8).await;
    expiry_storms(&double, &members, 3, 100).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_wide_401_storm_makes_one_new_token() {
    let redis = RedisServer::start();
    let double = ApiVideoDouble::start().await.unwrap();
    let members = fleet(&double, &redis, 8).await;
    revocation_storm(&double, &members).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_lease_holder_is_replaced_after_the_lease_ttl() {
    let redis = RedisServer::start();
    let double = ApiVideoDouble::start().await.unwrap();
    let members = fleet(&double, &redis, 3).await;
    let ttl = Duration::from_millis(1500);
    redis.hold_lease(&format!("{PREFIX}:lease"), ttl).await;
    let started = tokio::time::Instant::now();
    let headers = storm(&members, 20).await;
    assert!(
        started.elapsed() >= ttl - Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    assert!(one_token(&headers));
    assert_eq!(double.calls().logins, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_falls_back_locally_and_the_fleet_rejoins() {
    let mut redis = RedisServer::start();
    let double = ApiVideoDouble::start().await.unwrap();
    let members = fleet(&double, &redis, 4).await;
    let url = double.url("/videos");
    let clients = warm_clients(&members, Adapter::Tower, &url).await;
    assert_eq!(double.calls().logins, 1);

    redis.kill();
    double.revoke_access_tokens();
    let started = tokio::time::Instant::now();
    for client in &clients {
        assert_eq!(
            client.get(&url).await.unwrap().status,
            200,
            "served during the outage"
        );
    }
    // Each member needed a token of its own, and waited at most a command
    // timeout or two for Redis before falling back.
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    assert!(members.iter().all(|tokens| !tokens.store_available()));

    redis.restart();
    // The members try the store again once their back-off from it is over.
    tokio::time::sleep(Duration::from_millis(5500)).await;
    double.revoke_access_tokens();
    let before = double.calls();
    for client in &clients {
        assert_eq!(client.get(&url).await.unwrap().status, 200);
    }
    let after = double.calls();
    let token_calls = |c: bearer_refresh::testing::Calls| c.logins + c.refreshes;
    assert_eq!(
        token_calls(after) - token_calls(before),
        1,
        "the fleet shares one token again"
    );
    assert!(members.iter().all(TokenManager::store_available));
}

#[tokio::test]
async fn a_stale_writer_cannot_overwrite_a_newer_generation() {
    let redis = RedisServer::start();
    let key = || [7u8; 32];
    let first = RedisStore::connect(&redis.url(), PREFIX)
        .await
        .unwrap()
        .seal_key(key());
    let second = RedisStore::connect(&redis.url(), PREFIX)
        .await
        .unwrap()
        .seal_key(key());
    a_stale_writer_loses(&first, &second).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_with_another_seal_key_goes_alone_and_leaves_the_fleets_token() {
    let redis = RedisServer::start();
    let double = ApiVideoDouble::start().await.unwrap();
    let keyed = |key: &'static [u8]| {
        let url = redis.url();
        let source = double.source();
        async move {
            let store = RedisStore::connect(&url, PREFIX)
                .await
                .unwrap()
                .seal_key(key);
            TokenManager::builder(source).store(store).build()
        }
    };
    let fleet = keyed(b"the fleet's key").await;
    let token = fleet.authorization().await.unwrap();
    let stranger = keyed(b"another fleet's key material").await;
    assert_ne!(stranger.authorization().await.unwrap(), token);
    assert!(
        !stranger.store_available(),
        "its store failed: it cannot open the token"
    );
    // The fleet's token is still there for the fleet.
    let member = keyed(b"the fleet's key").await;
    assert_eq!(member.authorization().await.unwrap(), token);
    assert_eq!(double.calls().logins, 2);
}

/// A source with no long-lived credential to seal with, like a public
/// client's refresh-token source.
struct NoSealingSecret(ApiKeySource);

impl TokenSource for NoSealingSecret {
    fn login(&self) -> BoxFuture<'_, Result<TokenResponse, Error>> {
        self.0.login()
    }

    fn refresh<'a>(
        &'a self,
        refresh_token: &'a SecretString,
    ) -> BoxFuture<'a, Result<TokenResponse, Error>> {
        self.0.refresh(refresh_token)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_seal_key_the_fleet_shares_an_unsealed_token_as_the_file_store_does() {
    let redis = RedisServer::start();
    let double = ApiVideoDouble::start().await.unwrap();
    let mut members = Vec::new();
    for _ in 0..3 {
        let store = RedisStore::connect(&redis.url(), PREFIX).await.unwrap();
        members.push(
            TokenManager::builder(NoSealingSecret(double.source()))
                .store(store)
                .build(),
        );
    }
    let headers = storm(&members, 5).await;
    assert!(one_token(&headers));
    assert_eq!(double.calls().logins, 1, "one login for the fleet");
    assert!(members.iter().all(TokenManager::store_available));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_redis_values_hold_no_token_in_clear() {
    let redis = RedisServer::start();
    let double = ApiVideoDouble::start().await.unwrap();
    double.set_lifetime(Duration::from_secs(2));
    let members = fleet(&double, &redis, 3).await;
    storm(&members, 5).await;
    tokio::time::sleep(Duration::from_millis(1600)).await;
    storm(&members, 5).await;
    let dump = redis.dump().await;
    assert!(!dump.is_empty());
    let mut secrets = double.issued_secrets();
    secrets.push(ApiVideoDouble::API_KEY.to_owned());
    assert!(secrets.len() >= 4);
    for secret in secrets {
        let found = dump
            .windows(secret.len())
            .any(|window| window == secret.as_bytes());
        assert!(!found, "a secret is stored in clear");
    }
}

/// Runs only as a child of `a_fleet_of_processes_makes_one_login`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_child() {
    let (Ok(redis), Ok(base)) = (std::env::var("FLEET_REDIS"), std::env::var("FLEET_BASE")) else {
        return;
    };
    let source = ApiKeySource::new(&base, ApiVideoDouble::API_KEY).unwrap();
    let store = RedisStore::connect(&redis, PREFIX).await.unwrap();
    let tokens = TokenManager::builder(source).store(store).build();
    let headers = storm(&[tokens], 100).await;
    assert!(one_token(&headers));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_of_processes_makes_one_login() {
    let redis = RedisServer::start();
    let double = ApiVideoDouble::start().await.unwrap();
    double.set_latency(Duration::from_millis(200));
    let (redis_url, base) = (redis.url(), double.base_url());
    let env = [
        ("FLEET_REDIS", redis_url.as_str()),
        ("FLEET_BASE", base.as_str()),
    ];
    all_succeed(
        (0..4)
            .map(|_| rerun_as_child("fleet_child", &env))
            .collect(),
    )
    .await;
    assert_eq!(double.calls().logins, 1);
    assert_eq!(double.calls().refreshes, 0);
}
