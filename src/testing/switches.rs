//! The double's switches: how it answers from now on.

use std::time::Duration;

use axum::http::StatusCode;
use bytes::Bytes;
use tokio::time::Instant;

use super::faults::Fault;
use super::state::RateLimit;
use super::{ApiVideoDouble, VideosMode};

impl ApiVideoDouble {
    /// The lifetime of the tokens issued from now on, sent as `expires_in`
    /// in whole seconds (at least 1) and as the JWT `exp`.
    pub fn set_lifetime(&self, lifetime: Duration) {
        self.lock().lifetime = lifetime;
    }

    /// Whether responses carry `expires_in` (default on). Off, clients must
    /// read the JWT `exp`.
    pub fn send_expires_in(&self, send: bool) {
        self.lock().send_expires_in = send;
    }

    /// Whether a refresh issues a new refresh token (default on). Off, the
    /// response has none and the old one stays valid.
    pub fn rotate_refresh_tokens(&self, rotate: bool) {
        self.lock().rotate_refresh_tokens = rotate;
    }

    /// Rejects the API key with an invalid-credentials problem, answered
    /// with the [rejection status](Self::set_rejection_status).
    pub fn reject_api_key(&self, reject: bool) {
        self.lock().reject_api_key = reject;
    }

    /// Rejects every refresh token with an invalid-credentials problem,
    /// answered with the [rejection status](Self::set_rejection_status).
    pub fn reject_refresh_tokens(&self, reject: bool) {
        self.lock().reject_refresh_tokens = reject;
    }

    /// The status of a rejected API key or refresh token: 400 (the default,
    /// as api.video's OpenAPI spec says) or 401 (as its error docs say).
    /// Another status is taken as it is.
    pub fn set_rejection_status(&self, status: u16) {
        self.lock().rejection_status =
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    }

    /// Suspends the account: both auth endpoints answer 403, whatever the
    /// credential, as api.video does for a suspended account.
    pub fn suspend_account(&self, suspended: bool) {
        self.lock().suspended = suspended;
    }

    /// Expires every refresh token issued so far.
    pub fn expire_refresh_tokens(&self) {
        self.lock().refresh_live.clear();
    }

    /// Revokes every access token issued so far: `/videos` answers 401.
    pub fn revoke_access_tokens(&self) {
        self.lock().revoke_access();
    }

    /// Whether each successful refresh revokes the access tokens issued
    /// before it (default off), as api.video very likely does. Requests
    /// still in flight with the old token then get 401s.
    pub fn revoke_on_refresh(&self, revoke: bool) {
        self.lock().revoke_on_refresh = revoke;
    }

    /// Limits `/videos` to `limit` requests per `window`, counted from the
    /// next request, with api.video's headers on every answer
    /// (`X-RateLimit-Limit`, `X-RateLimit-Remaining`,
    /// `X-RateLimit-Retry-After` in seconds) and a 429 problem past the
    /// budget. The auth endpoints stay unlimited, as on api.video, whose
    /// sandbox allows 40 to 100 requests a minute per endpoint and whose
    /// production allows 100 to 500.
    pub fn set_rate_limit(&self, limit: u64, window: Duration) {
        self.lock().rate_limit = Some(RateLimit {
            limit,
            window,
            window_start: Instant::now(),
            used: 0,
        });
    }

    /// Lifts the rate limit of `/videos` (the default).
    pub fn clear_rate_limit(&self) {
        self.lock().rate_limit = None;
    }

    /// The next `n` auth calls answer `status` with a problem body.
    pub fn fail_next(&self, n: usize, status: u16) {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut state = self.lock();
        state.faults.extend((0..n).map(|_| Fault::Status(status)));
    }

    /// The next `n` auth calls answer 429 with
    /// `X-RateLimit-Retry-After: retry_after_secs`. (api.video does not
    /// rate-limit its auth endpoints; a proxy in front of it may.)
    pub fn rate_limit_next(&self, n: usize, retry_after_secs: u64) {
        let mut state = self.lock();
        state.faults.extend((0..n).map(|_| Fault::RateLimited {
            retry_after: retry_after_secs,
        }));
    }

    /// The next `n` auth calls answer 200 with `body` (malformed JSON, a
    /// huge body, invalid UTF-8, a token with bad bytes...).
    pub fn malformed_next(&self, n: usize, body: impl Into<Bytes>) {
        let body = body.into();
        let mut state = self.lock();
        state
            .faults
            .extend((0..n).map(|_| Fault::Body(body.clone())));
    }

    /// The next `n` auth calls answer 200 and then send the body one byte
    /// per second, for ever (a slowloris endpoint).
    pub fn trickle_next(&self, n: usize) {
        let mut state = self.lock();
        state.faults.extend((0..n).map(|_| Fault::Trickle));
    }

    /// Drops every pending fault.
    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// Delays every auth answer by `latency`.
    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    /// Delays every `/videos` answer by `latency`; the token is checked
    /// when the answer goes out, so a slow request can see a revocation.
    pub fn set_videos_latency(&self, latency: Duration) {
        self.lock().videos_latency = latency;
    }

    /// Makes the auth endpoints accept calls and never answer.
    pub fn hang(&self, hang: bool) {
        self.lock().hang = hang;
    }

    /// How `/videos` answers a valid token.
    pub fn set_videos_mode(&self, mode: VideosMode) {
        self.lock().videos_mode = mode;
    }
}
