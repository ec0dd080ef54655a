//! Managers sharing one store, as the file store and Redis fleet tests run
//! them: storms on several managers, and this test binary run again as
//! child processes, each one a member of the fleet.

use std::process::Stdio;
use std::time::Duration;

use bearer_refresh::testing::ApiVideoDouble;
use bearer_refresh::{StoredBytes, TokenManager, TokenStore};
use futures::future::join_all;
use http::{HeaderValue, StatusCode};

use super::clients::{Adapter, Client};

/// `per_member` concurrent `authorization()` calls on every member.
pub(crate) async fn storm(members: &[TokenManager], per_member: usize) -> Vec<HeaderValue> {
    let calls = members.iter().flat_map(|tokens| {
        (0..per_member).map(move |_| {
            let tokens = tokens.clone();
            tokio::spawn(async move { tokens.authorization().await.unwrap() })
        })
    });
    join_all(calls)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect()
}

/// Whether every header carries the same token.
pub(crate) fn one_token(headers: &[HeaderValue]) -> bool {
    headers.iter().all(|header| *header == headers[0])
}

/// A client per member, each with one successful request behind it.
pub(crate) async fn warm_clients(
    members: &[TokenManager],
    adapter: Adapter,
    url: &str,
) -> Vec<Client> {
    let clients: Vec<_> = members
        .iter()
        .map(|tokens| Client::new(adapter, tokens))
        .collect();
    for client in &clients {
        assert_eq!(client.get(url).await.unwrap().status, 200);
    }
    clients
}

/// `per_client` concurrent GETs of `url` on every client: their statuses.
pub(crate) async fn request_storm(
    clients: &[Client],
    url: &str,
    per_client: usize,
) -> Vec<StatusCode> {
    let requests = clients.iter().flat_map(|client| {
        (0..per_client).map(move |_| {
            let (client, url) = (client.clone(), url.to_owned());
            tokio::spawn(async move { client.get(&url).await.unwrap().status })
        })
    });
    join_all(requests)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect()
}

/// Runs the test `name` of this binary again, alone, as a child process
/// with `env`; the test is expected to do nothing without it. The child is
/// killed if dropped before it ends.
pub(crate) fn rerun_as_child(name: &str, env: &[(&str, &str)]) -> tokio::process::Child {
    tokio::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--test-threads", "1"])
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// Waits for every child, failing if one did.
pub(crate) async fn all_succeed(children: Vec<tokio::process::Child>) {
    for child in children {
        let output = child.wait_with_output().await.unwrap();
        assert!(
            output.status.success(),
            "a child failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout)
        );
    }
}

/// The expiry scenario every shared store passes: on 2 s tokens, after a
/// first storm, `rounds` storms of `per_member` calls on expired tokens
/// each make one refresh, and no refresh token is ever presented twice.
pub(crate) async fn expiry_storms(
    double: &ApiVideoDouble,
    members: &[TokenManager],
    rounds: u64,
    per_member: usize,
) {
    storm(members, 10).await;
    for round in 1..=rounds {
        // A 2 s token is unusable after 1.5 s.
        tokio::time::sleep(Duration::from_millis(1600)).await;
        let headers = storm(members, per_member).await;
        assert!(one_token(&headers), "round {round}");
        let calls = double.calls();
        assert_eq!((calls.logins, calls.refreshes), (1, round), "round {round}");
    }
    assert_eq!(double.calls().refresh_reuses, 0);
}

/// The 401 scenario every shared store passes: warm members' tokens are
/// revoked, and 20 concurrent requests per member all succeed after one
/// new token.
pub(crate) async fn revocation_storm(double: &ApiVideoDouble, members: &[TokenManager]) {
    let url = double.url("/videos");
    let clients = warm_clients(members, Adapter::Reqwest, &url).await;
    double.revoke_access_tokens();
    let statuses = request_storm(&clients, &url, 20).await;
    assert!(statuses.into_iter().all(|status| status == 200));
    let calls = double.calls();
    assert_eq!((calls.logins, calls.refreshes), (1, 1));
}

/// The bytes of a token of `generation`, for the stores' own tests (a
/// store keeps opaque bytes; what they hold is no business of its).
pub(crate) fn entry(generation: u64, access: &str) -> StoredBytes {
    StoredBytes::new(generation, access.as_bytes().to_vec())
}

/// The compare-and-swap every shared store keeps, on two stores over one
/// empty place: a writer that still believes an older generation is
/// current loses, and the newest token stays.
pub(crate) async fn a_stale_writer_loses(first: &impl TokenStore, second: &impl TokenStore) {
    assert!(first.store(0, &entry(1, "one")).await.unwrap());
    assert!(second.store(1, &entry(2, "two")).await.unwrap());
    assert!(!first.store(1, &entry(2, "late")).await.unwrap());
    assert!(!first.store(0, &entry(1, "later")).await.unwrap());
    let stored = first.load().await.unwrap().unwrap();
    assert_eq!(stored, entry(2, "two"));
}
