//! The metrics (cargo feature `metrics`): every instrument, and every
//! label, is named here and nowhere else. Without the feature each function
//! is an empty `#[inline]` body.
//!
//! | name | kind | labels |
//! |---|---|---|
//! | `bearer_refresh_token_calls_total` | counter | `client`, `kind`, `outcome` |
//! | `bearer_refresh_token_call_duration_seconds` | histogram | `client`, `kind` |
//! | `bearer_refresh_token_remaining_seconds` | gauge | `client` |
//! | `bearer_refresh_replays_total` | counter | `client`, `reason` |
//! | `bearer_refresh_waits_total` | counter | `client` |
//! | `bearer_refresh_expired_served_total` | counter | `client` |
//! | `bearer_refresh_store_errors_total` | counter | `client`, `store` |
//!
//! Every label value is one of the fixed words below, or the manager's
//! name (`client`), which the user chooses: no token, key or URL is ever a
//! label. A warm request records nothing.
//!
//! How the engine learns a token call's `kind`: from the call and the
//! source, in [`Kind::of`], the one place here that knows the shipped
//! sources. Every call of an OAuth2 token exchange is `exchange` (its
//! renewals are new exchanges); otherwise [`TokenCall::Refresh`] is
//! `refresh`, and a [`TokenCall::Login`] is `grant` for OAuth2 client
//! credentials and `login` for the rest (api.video's API key exchange, a
//! source of the user's).

#![cfg_attr(not(feature = "metrics"), allow(unused_variables))]

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;

use crate::error::{Error, TokenCall};
use crate::source::TokenSource;
use crate::store::TokenStore;

/// The `client` label: the manager's name.
pub(crate) type Client = Arc<str>;

/// The `kind` of a token call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Login,
    Refresh,
    #[cfg_attr(not(feature = "oauth2"), allow(dead_code))]
    Grant,
    #[cfg_attr(not(feature = "oauth2"), allow(dead_code))]
    Exchange,
}

impl Kind {
    /// The kind of `call` made through `source`.
    pub(crate) fn of(call: TokenCall, source: &dyn TokenSource) -> Self {
        #[cfg(feature = "oauth2")]
        {
            let source: &dyn std::any::Any = source;
            // Every renewal of a token exchange is a new exchange.
            if source.is::<crate::oauth2::TokenExchange>() {
                return Kind::Exchange;
            }
            if call != TokenCall::Refresh && source.is::<crate::oauth2::ClientCredentials>() {
                return Kind::Grant;
            }
        }
        if call == TokenCall::Refresh {
            return Kind::Refresh;
        }
        let _ = source;
        Kind::Login
    }

    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    fn label(self) -> &'static str {
        match self {
            Kind::Login => "login",
            Kind::Refresh => "refresh",
            Kind::Grant => "grant",
            Kind::Exchange => "exchange",
        }
    }
}

/// The `outcome` label of a token call's result.
#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
fn outcome<T>(result: &Result<T, Error>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(error) if error.is_transient() => "transient",
        Err(_) => "rejected",
    }
}

/// The `reason` label of a replay: the status of the answer that caused
/// it, and whether the request side's decision took it for a DPoP nonce
/// challenge.
#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
fn reason(status: StatusCode, nonce: bool) -> &'static str {
    if nonce {
        "dpop_nonce"
    } else if status == StatusCode::UNAUTHORIZED {
        "unauthorized"
    } else {
        "grpc_unauthenticated"
    }
}

/// The `store` label of a shared store.
pub(crate) fn store_label(store: &dyn TokenStore) -> &'static str {
    let store: &dyn std::any::Any = store;
    #[cfg(feature = "file-store")]
    if store.is::<crate::store::FileStore>() {
        return "file";
    }
    #[cfg(feature = "redis")]
    if store.is::<crate::store::RedisStore>() {
        return "redis";
    }
    let _ = store;
    "custom"
}

/// One token call (one HTTP attempt) of `kind`, its result and duration.
#[inline]
pub(crate) fn token_call<T>(
    client: &Client,
    kind: Kind,
    result: &Result<T, Error>,
    took: Duration,
) {
    #[cfg(feature = "metrics")]
    {
        let (client, kind) = (Arc::clone(client), kind.label());
        metrics::counter!(
            "bearer_refresh_token_calls_total",
            "client" => Arc::clone(&client),
            "kind" => kind,
            "outcome" => outcome(result),
        )
        .increment(1);
        metrics::histogram!(
            "bearer_refresh_token_call_duration_seconds",
            "client" => client,
            "kind" => kind,
        )
        .record(took.as_secs_f64());
    }
}

/// A new token with `remaining` to live.
#[inline]
pub(crate) fn new_token(client: &Client, remaining: Duration) {
    #[cfg(feature = "metrics")]
    metrics::gauge!("bearer_refresh_token_remaining_seconds", "client" => Arc::clone(client))
        .set(remaining.as_secs_f64());
}

/// A request waits for a token.
#[inline]
pub(crate) fn wait(client: &Client) {
    #[cfg(feature = "metrics")]
    metrics::counter!("bearer_refresh_waits_total", "client" => Arc::clone(client)).increment(1);
}

/// A request goes with an expired token, in outage mode.
#[inline]
pub(crate) fn expired_served(client: &Client) {
    #[cfg(feature = "metrics")]
    metrics::counter!("bearer_refresh_expired_served_total", "client" => Arc::clone(client))
        .increment(1);
}

/// A shared store's operation failed.
#[inline]
pub(crate) fn store_error(client: &Client, store: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!(
        "bearer_refresh_store_errors_total",
        "client" => Arc::clone(client),
        "store" => store,
    )
    .increment(1);
}

/// An adapter sends a request again after the answer `status`, `headers`;
/// hands `next` (what the adapter does next) back, so that the adapter's
/// replay stays one expression.
#[inline]
pub(crate) fn replayed<T>(
    tokens: &crate::TokenManager,
    status: StatusCode,
    nonce: bool,
    next: T,
) -> T {
    #[cfg(feature = "metrics")]
    metrics::counter!(
        "bearer_refresh_replays_total",
        "client" => Arc::clone(tokens.name()),
        "reason" => reason(status, nonce),
    )
    .increment(1);
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replays_reason_comes_from_its_answer() {
        assert_eq!(reason(StatusCode::UNAUTHORIZED, false), "unauthorized");
        assert_eq!(reason(StatusCode::OK, false), "grpc_unauthenticated");
        assert_eq!(reason(StatusCode::UNAUTHORIZED, true), "dpop_nonce");
        assert_eq!(reason(StatusCode::OK, true), "dpop_nonce");
    }

    #[test]
    fn a_calls_outcome_says_whether_it_is_worth_retrying() {
        let transient = Error::Status {
            call: TokenCall::Login,
            status: 503,
            title: None,
        };
        let rejected = Error::ApiKeyRejected {
            status: 401,
            title: None,
        };
        assert_eq!(outcome(&Ok::<(), Error>(())), "ok");
        assert_eq!(outcome::<()>(&Err(transient)), "transient");
        assert_eq!(outcome::<()>(&Err(rejected)), "rejected");
    }
}
