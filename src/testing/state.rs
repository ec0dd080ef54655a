//! What the double remembers: switches, counters, and the tokens it issued.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::json;
use tokio::time::Instant;

use super::faults::Fault;
use super::{AuthCall, Calls, RecordedRequest};

/// How `/videos` answers a valid token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum VideosMode {
    /// 200 with a JSON list (the default).
    Normal,
    /// 403 Forbidden.
    Forbidden,
    /// 401 with `WWW-Authenticate: Bearer error="insufficient_scope"`.
    InsufficientScope,
    /// 401 whatever the token.
    AlwaysUnauthorized,
}

pub(super) type Shared = Arc<Mutex<DoubleState>>;

pub(super) fn lock(state: &Mutex<DoubleState>) -> MutexGuard<'_, DoubleState> {
    // A test that panicked mid-update must not hide the counters from the
    // tests that follow.
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What an access token presented to `/videos` turned out to be.
pub(super) enum TokenCheck {
    Valid,
    Expired,
    Revoked,
    Unknown,
}

/// A request budget per fixed window, as api.video applies to its API
/// endpoints.
pub(super) struct RateLimit {
    pub(super) limit: u64,
    pub(super) window: Duration,
    pub(super) window_start: Instant,
    pub(super) used: u64,
}

pub(super) struct DoubleState {
    pub(super) calls: Calls,
    pub(super) lifetime: Duration,
    pub(super) send_expires_in: bool,
    pub(super) rotate_refresh_tokens: bool,
    pub(super) reject_api_key: bool,
    pub(super) reject_refresh_tokens: bool,
    pub(super) rejection_status: StatusCode,
    pub(super) suspended: bool,
    pub(super) revoke_on_refresh: bool,
    pub(super) latency: Duration,
    pub(super) videos_latency: Duration,
    pub(super) hang: bool,
    pub(super) faults: VecDeque<Fault>,
    pub(super) videos_mode: VideosMode,
    pub(super) rate_limit: Option<RateLimit>,
    serial: u64,
    access: HashMap<String, Instant>,
    revoked: HashSet<String>,
    pub(super) refresh_live: HashSet<String>,
    pub(super) refresh_used: HashSet<String>,
    pub(super) issued_access: Vec<String>,
    pub(super) issued_refresh: Vec<String>,
    pub(super) auth_calls: Vec<AuthCall>,
    pub(super) requests: Vec<RecordedRequest>,
}

impl DoubleState {
    pub(super) fn new() -> Self {
        DoubleState {
            calls: Calls::default(),
            lifetime: Duration::from_secs(3600),
            send_expires_in: true,
            rotate_refresh_tokens: true,
            reject_api_key: false,
            reject_refresh_tokens: false,
            rejection_status: StatusCode::BAD_REQUEST,
            suspended: false,
            revoke_on_refresh: false,
            latency: Duration::ZERO,
            videos_latency: Duration::ZERO,
            hang: false,
            faults: VecDeque::new(),
            videos_mode: VideosMode::Normal,
            rate_limit: None,
            serial: 0,
            access: HashMap::new(),
            revoked: HashSet::new(),
            refresh_live: HashSet::new(),
            refresh_used: HashSet::new(),
            issued_access: Vec::new(),
            issued_refresh: Vec::new(),
            auth_calls: Vec::new(),
            requests: Vec::new(),
        }
    }

    /// Revokes every live access token.
    pub(super) fn revoke_access(&mut self) {
        self.revoked
            .extend(self.access.drain().map(|(token, _)| token));
    }

    pub(super) fn check(&self, token: Option<&str>, now: Instant) -> TokenCheck {
        let Some(token) = token else {
            return TokenCheck::Unknown;
        };
        match self.access.get(token) {
            Some(expires) if now < *expires => TokenCheck::Valid,
            Some(_) => TokenCheck::Expired,
            None if self.revoked.contains(token) => TokenCheck::Revoked,
            None => TokenCheck::Unknown,
        }
    }

    /// A token response: a JWT access token, and a refresh token when
    /// `with_refresh`.
    pub(super) fn issue(&mut self, with_refresh: bool) -> Response {
        self.serial += 1;
        let serial = self.serial;
        let lifetime = self.lifetime.max(Duration::from_secs(1));
        let exp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs()
            + lifetime.as_secs();
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"JWT"}"#);
        let claims = URL_SAFE_NO_PAD
            .encode(json!({ "exp": exp, "jti": serial, "sub": "double" }).to_string());
        let access = format!("{header}.{claims}.sig{serial:08x}");
        self.access
            .insert(access.clone(), Instant::now() + lifetime);
        self.issued_access.push(access.clone());
        let mut body = json!({ "token_type": "Bearer", "access_token": access });
        if self.send_expires_in {
            body["expires_in"] = json!(lifetime.as_secs());
        }
        if with_refresh {
            let refresh = opaque_refresh_token(serial);
            self.refresh_live.insert(refresh.clone());
            self.issued_refresh.push(refresh.clone());
            body["refresh_token"] = json!(refresh);
        }
        axum::Json(body).into_response()
    }
}

/// The length of api.video's refresh tokens: hex, about 780 characters.
pub(super) const REFRESH_TOKEN_LEN: usize = 780;

/// A refresh token shaped like api.video's: `def50200` and opaque hex, unique
/// per `serial`.
fn opaque_refresh_token(serial: u64) -> String {
    use std::fmt::Write as _;
    let mut token = String::with_capacity(REFRESH_TOKEN_LEN + 16);
    token.push_str("def50200");
    // SplitMix64: a cheap, well-spread stream, so tokens differ everywhere
    // and not only in a counter at the end.
    let mut seed = serial;
    while token.len() < REFRESH_TOKEN_LEN {
        seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        // Writing to a String cannot fail.
        let _ = write!(token, "{:016x}", z ^ (z >> 31));
    }
    token.truncate(REFRESH_TOKEN_LEN);
    token
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_tokens_look_like_api_videos() {
        let first = opaque_refresh_token(1);
        let second = opaque_refresh_token(2);
        assert_eq!(first.len(), REFRESH_TOKEN_LEN);
        assert!(first.starts_with("def50200"));
        assert!(first.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(first, second);
        assert_ne!(first[8..24], second[8..24]);
    }
}
